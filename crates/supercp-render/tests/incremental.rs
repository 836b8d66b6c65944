//! `render_delta` renders again only the tenants whose files changed, and what its memory
//! holds is always what a full `render` makes from the same inputs.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use supercp_core::{Catalog, Desired};
use supercp_load::{LoadOptions, Source};
use supercp_render::{render_delta, Delta, NodeRef, RenderMemory, Templates};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A repo of files `(path, text)`, loaded, with the hash of each file's text.
struct Repo {
    catalog: Catalog,
    hashes: HashMap<String, u64>,
}

fn load(files: &[(&str, String)]) -> Repo {
    let sources: Vec<Source> = files
        .iter()
        .map(|(path, text)| Source {
            path: (*path).into(),
            text: text.clone(),
        })
        .collect();
    let catalog = supercp_load::load_sources(&sources, &LoadOptions::default()).expect("valid");
    let hashes = files
        .iter()
        .map(|(path, text)| {
            let mut h = DefaultHasher::new();
            text.hash(&mut h);
            ((*path).to_owned(), h.finish())
        })
        .collect();
    Repo { catalog, hashes }
}

fn tenant(name: &str, domains: &[&str]) -> String {
    let mut text = format!(
        "apiVersion: supercp/v1\nkind: Tenant\nmetadata: {{name: {name}}}\nspec: {{package: p}}\n"
    );
    for d in domains {
        text.push_str(&format!(
            "---\napiVersion: supercp/v1\nkind: Domain\nmetadata: {{name: {d}}}\nspec: {{tenant: {name}}}\n"
        ));
    }
    text
}

fn package() -> (&'static str, String) {
    (
        "packages.yaml",
        "apiVersion: supercp/v1\nkind: Package\nmetadata: {name: p}\nspec: {}\n".to_owned(),
    )
}

struct Node {
    resource: supercp_core::Resource<supercp_core::resource::NodeSpec>,
    spec: supercp_core::resource::NodeSpec,
}

fn debian_node() -> Node {
    let path = workspace().join("examples/nodes/debian.yaml");
    let resource = supercp_load::load_node(&path, "debian.yaml").expect("node");
    let spec = resource.spec.resolve("/STATE");
    Node { resource, spec }
}

fn delta(repo: &Repo, node: &Node, memory: &mut RenderMemory) -> Delta {
    let node = NodeRef {
        resource: &node.resource,
        spec: &node.spec,
    };
    let hashes = &repo.hashes;
    let file_hash = |path: &str| hashes.get(path).copied();
    render_delta(
        &repo.catalog,
        &node,
        &Templates::builtin(),
        &file_hash,
        memory,
    )
    .expect("renders")
}

fn full(repo: &Repo, node: &Node) -> Vec<Desired> {
    let node = NodeRef {
        resource: &node.resource,
        spec: &node.spec,
    };
    supercp_render::render(&repo.catalog, &node, &Templates::builtin()).expect("renders")
}

fn ids(objects: &[Desired]) -> Vec<String> {
    objects.iter().map(|d| d.id().to_string()).collect()
}

#[test]
fn only_the_tenant_whose_file_changed_renders_again_and_memory_matches_a_full_render() {
    let node = debian_node();
    let files = vec![
        package(),
        ("a.yaml", tenant("alpha", &["a.test"])),
        ("b.yaml", tenant("bravo", &["b.test", "b2.test"])),
        ("c.yaml", tenant("charlie", &["c.test"])),
    ];
    let repo = load(&files);
    let mut memory = RenderMemory::default();

    // First: everything, in render's order.
    let first = delta(&repo, &node, &mut memory);
    assert!(first.full);
    assert_eq!(first.tenants_rendered, 3);
    assert_eq!(first.fresh, full(&repo, &node));
    assert!(first.gone.is_empty());

    // Same inputs again: no tenant renders, only the node-wide objects are fresh.
    let again = delta(&repo, &node, &mut memory);
    assert!(!again.full);
    assert_eq!(again.tenants_rendered, 0);
    assert!(again
        .fresh
        .iter()
        .all(|d| d.resource.to_string().starts_with("Node/")));
    assert!(again.gone.is_empty());

    // bravo's file changes (b2.test goes, b3.test comes): bravo alone renders again.
    let mut changed = files.clone();
    changed[2].1 = tenant("bravo", &["b.test", "b3.test"]);
    let repo2 = load(&changed);
    let d = delta(&repo2, &node, &mut memory);
    assert!(!d.full);
    assert_eq!(d.tenants_rendered, 1);
    let fresh = ids(&d.fresh);
    assert!(fresh.iter().any(|id| id.contains("b3.test")), "{fresh:?}");
    assert!(
        d.fresh
            .iter()
            .all(|o| o.resource.to_string().starts_with("Node/")
                || o.resource.name.contains("bravo")
                || o.resource.name.contains("b.test")
                || o.resource.name.contains("b3.test")),
        "{fresh:?}"
    );
    assert!(!fresh.iter().any(|id| id.contains("a.test")), "{fresh:?}");
    assert!(
        d.gone.iter().any(|id| id.contains("b2.test")),
        "{:?}",
        d.gone
    );
    assert!(
        !d.gone.iter().any(|id| id.contains("b.test.conf")),
        "{:?}",
        d.gone
    );
    assert_eq!(memory.all(), full(&repo2, &node));

    // charlie's file is deleted: every object of charlie is gone.
    let without: Vec<(&str, String)> = changed
        .into_iter()
        .filter(|(p, _)| *p != "c.yaml")
        .collect();
    let repo3 = load(&without);
    let before: Vec<String> = ids(&full(&repo2, &node));
    let d = delta(&repo3, &node, &mut memory);
    assert_eq!(d.tenants_rendered, 0);
    let charlie: Vec<&String> = before
        .iter()
        .filter(|id| id.contains("charlie") || id.contains("c.test"))
        .collect();
    assert!(!charlie.is_empty());
    for id in charlie {
        assert!(d.gone.contains(id), "{id} is gone: {:?}", d.gone);
    }
    assert_eq!(memory.all(), full(&repo3, &node));
}

#[test]
fn a_changed_node_renders_every_tenant_again() {
    let files = vec![
        package(),
        ("a.yaml", tenant("alpha", &["a.test"])),
        ("b.yaml", tenant("bravo", &["b.test"])),
    ];
    let repo = load(&files);
    let mut node = debian_node();
    let mut memory = RenderMemory::default();
    delta(&repo, &node, &mut memory);
    node.spec.web.listen = vec!["127.0.0.1:8081".into()];
    let d = delta(&repo, &node, &mut memory);
    assert!(d.full);
    assert_eq!(d.tenants_rendered, 2);
    assert_eq!(d.fresh, full(&repo, &node));
    assert_eq!(memory.all(), full(&repo, &node));
}
