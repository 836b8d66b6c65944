//! The loader never panics, whatever the bytes of a repo: arbitrary strings, and valid repos
//! with random bytes inserted, deleted or replaced (which reach far deeper into the parser and
//! the rules than random text does). The cargo-fuzz target `fuzz/fuzz_targets/load.rs` runs the
//! same property for longer; see docs/fuzzing.md.

use std::sync::Arc;

use proptest::prelude::*;
use supercp_load::{load_sources, LoadOptions, Source};

/// A valid repo touching every kind and most fields, so mutations land in every rule.
const VALID: &str = r#"apiVersion: supercp/v1
kind: Package
metadata: {name: basic, labels: {tier: small}}
spec: {maxDomains: 2, maxPhpWorkers: 8, diskQuotaMb: 1024, notes: "ten sites"}
---
apiVersion: supercp/v1
kind: Tenant
metadata: {name: acme}
spec:
  package: basic
  php:
    version: "8.2"
    maxChildren: 4
    memoryLimit: 256M
    ini: {display_errors: "Off", date.timezone: UTC}
  suspended: false
  shell: /bin/bash
  sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl acme@laptop"]
  cron:
    - {schedule: "*/5 * * * *", command: php cron.php}
---
apiVersion: supercp/v1
kind: Domain
metadata: {name: acme.test}
spec:
  tenant: acme
  aliases: [www.acme.test, bücher.acme.test]
  php: true
  documentRoot: public_html/web
  redirects:
    - {from: /old, to: /new, code: 301}
    - from: /shop
      to: https://shop.acme.test/
  redirectTo: https://acme.test/
---
apiVersion: supercp/v1
kind: Node
metadata: {name: web1}
spec:
  root: /
  web: {sitesDir: /etc/nginx/sites-enabled}
  php: {versions: ["8.2"], poolDir: "/etc/php/{version}/fpm/pool.d", socketDir: /run/php}
  gates: [{name: nginx, check: [nginx, -t], reload: [systemctl, reload, nginx]}]
"#;

/// Bytes that matter to YAML and to the loader's rules.
const INTERESTING: &[u8] = b"\n\t :-[]{},#&*!|>'\"%@`?\\\0\r.0-9aZ\xc3\xbc";

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, u8),
    Delete(usize),
    Replace(usize, u8),
    /// Repeat a slice (deep nesting, duplicate keys and documents).
    Duplicate(usize, usize),
}

fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![any::<u8>(), proptest::sample::select(INTERESTING.to_vec())]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), byte()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), byte()).prop_map(|(at, b)| Edit::Replace(at, b)),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Edit::Duplicate(at, len)),
    ]
}

fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for e in edits {
        let len = bytes.len().max(1);
        match *e {
            Edit::Insert(at, b) => bytes.insert(at % (bytes.len() + 1), b),
            Edit::Delete(at) if !bytes.is_empty() => {
                bytes.remove(at % len);
            }
            Edit::Replace(at, b) if !bytes.is_empty() => bytes[at % len] = b,
            Edit::Duplicate(at, n) if !bytes.is_empty() => {
                let start = at % len;
                let end = (start + n).min(bytes.len());
                let copy = bytes[start..end].to_vec();
                bytes.splice(start..start, copy);
            }
            _ => {}
        }
    }
    // Sources are text: a repo file that is not UTF-8 is refused before parsing.
    String::from_utf8_lossy(&bytes).into_owned()
}

fn load(texts: &[String]) {
    let sources: Vec<Source> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| Source {
            path: Arc::from(format!("f{i}.yaml")),
            text: text.clone(),
        })
        .collect();
    let options = LoadOptions {
        system_accounts: ["uuidd".to_owned()].into(),
    };
    if let Err(diagnostics) = load_sources(&sources, &options) {
        for d in &diagnostics {
            // Rendering is part of the contract too.
            let shown = d.to_string();
            assert!(!d.help.is_empty(), "no help: {shown}");
        }
    }
}

/// 256 cases a property by default (a few seconds in debug); `PROPTEST_CASES=N` runs more.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[test]
fn valid_repo_used_by_the_mutations_loads() {
    let sources = [Source {
        path: "repo.yaml".into(),
        text: VALID.to_owned(),
    }];
    if let Err(ds) = load_sources(&sources, &LoadOptions::default()) {
        panic!(
            "{}",
            ds.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn loader_does_not_panic_on_arbitrary_text(texts in prop::collection::vec(".{0,400}", 1..3)) {
        load(&texts);
    }

    #[test]
    fn loader_does_not_panic_on_yaml_like_text(
        text in "([ \\t]{0,4}(- )?[a-zA-Z.]{0,12}(: ?)?([\\[\\]{}\"',&*!|>#0-9a-z. -]{0,16})?\\n){0,30}",
    ) {
        load(&[text]);
    }

    #[test]
    fn loader_does_not_panic_on_a_mutated_valid_repo(edits in prop::collection::vec(edit(), 1..12)) {
        load(&[mutate(VALID, &edits)]);
    }

    #[test]
    fn loader_does_not_panic_when_documents_of_a_repo_are_mixed_up(
        split in any::<usize>(),
        edits in prop::collection::vec(edit(), 0..4),
    ) {
        // One file cut in two at a random place, each half mutated: documents, duplicates and
        // references end up across files.
        let mutated = mutate(VALID, &edits);
        let mut at = split % (mutated.len() + 1);
        while !mutated.is_char_boundary(at) {
            at -= 1;
        }
        load(&[mutated[..at].to_owned(), mutated[at..].to_owned()]);
    }
}
