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

/// Production code of a crate's `src`: each file up to its `#[cfg(test)]` module, test-module
/// files (`tests.rs`) left out.
fn production_lines(dir: &str) -> Vec<(String, usize, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir);
    let mut files = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                files.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            if line.contains("#[cfg(test)]") {
                break;
            }
            if !line.trim_start().starts_with("//") {
                out.push((file.display().to_string(), n + 1, line.to_owned()));
            }
        }
    }
    out
}

#[test]
fn the_engine_never_dispatches_on_an_object_kind_by_string() {
    let found: Vec<String> = production_lines("supercp-engine/src")
        .into_iter()
        .filter(|(_, _, l)| {
            let l = l.replace(' ', "");
            // `Kind::` of core's object kinds, not `KeyKind::` or `ResourceKind::`.
            let typed = l.match_indices("Kind::").any(|(i, _)| {
                !l[..i]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric)
            });
            l.contains("kind()==\"") || l.contains("kind()!=\"") || typed
        })
        .map(|(f, n, l)| format!("{f}:{n}: {l}"))
        .collect();
    assert!(
        found.is_empty(),
        "the driver registry (supercp-drivers/src/registry.rs) is the only dispatch on an \
         object kind outside core:\n{}",
        found.join("\n")
    );
}

#[test]
fn node_reads_go_through_the_drivers() {
    // `inputs.rs` reads what the run is given (the repo, the node file, its templates), not
    // the node's state.
    let reads = [
        "fs::read(",
        "fs::read_to_string(",
        "fs::read_dir(",
        "fs::metadata(",
        "fs::symlink_metadata(",
        "File::open(",
    ];
    let found: Vec<String> = ["supercp-engine/src", "supercp-tls/src"]
        .into_iter()
        .flat_map(production_lines)
        .filter(|(f, _, _)| !f.ends_with("supercp-engine/src/inputs.rs"))
        .filter(|(_, _, l)| reads.iter().any(|r| l.contains(r)))
        .map(|(f, n, l)| format!("{f}:{n}: {l}"))
        .collect();
    assert!(
        found.is_empty(),
        "the engine and the TLS crate observe the node only through supercp-drivers:\n{}",
        found.join("\n")
    );
}

#[test]
fn node_writes_go_through_the_drivers() {
    let writes = [
        "fs::write(",
        "fs::remove_file(",
        "fs::remove_dir_all(",
        "fs::rename(",
        "fs::set_permissions(",
        "fs::create_dir_all(",
        "OpenOptions::new(",
        "File::create(",
    ];
    let found: Vec<String> = ["supercp-engine/src", "supercp-tls/src"]
        .into_iter()
        .flat_map(production_lines)
        .filter(|(_, _, l)| writes.iter().any(|w| l.contains(w)))
        .map(|(f, n, l)| format!("{f}:{n}: {l}"))
        .collect();
    assert!(
        found.is_empty(),
        "the engine and the TLS crate write to the node only through supercp-drivers (no \
         symlink followed, temp file and rename):\n{}",
        found.join("\n")
    );
}
