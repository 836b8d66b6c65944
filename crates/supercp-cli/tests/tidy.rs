//! The boundary that must hold from the first commit: core, load and render are pure. Their
//! normal (non-dev) dependency closure holds no async runtime, database, syscall or web crate.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

const PURE: &[&str] = &["supercp-core", "supercp-load", "supercp-render"];
const FORBIDDEN: &[&str] = &["tokio", "sqlx", "nix", "axum", "git2"];

#[test]
fn pure_crates_pull_in_no_tokio_sqlx_nix_or_axum() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let mut normal_deps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve nodes") {
        let id = node["id"].as_str().expect("id");
        let deps = node["deps"].as_array().expect("deps").iter().filter(|d| {
            d["dep_kinds"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
        });
        normal_deps.insert(id, deps.filter_map(|d| d["pkg"].as_str()).collect());
    }
    for krate in PURE {
        let root = names
            .iter()
            .find(|(_, n)| *n == krate)
            .map(|(id, _)| *id)
            .expect("crate in metadata");
        let mut seen = BTreeSet::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            if seen.insert(id) {
                stack.extend(normal_deps.get(id).into_iter().flatten().copied());
            }
        }
        let pulled: Vec<&str> = seen
            .iter()
            .filter_map(|id| names.get(id).copied())
            .filter(|n| FORBIDDEN.contains(n))
            .collect();
        assert!(
            pulled.is_empty(),
            "{krate} must stay pure but depends on {pulled:?}"
        );
    }
}
