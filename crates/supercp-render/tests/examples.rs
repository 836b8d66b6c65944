//! Snapshots of every rendered config of every repo under `examples/`, for each example node,
//! so a template change shows up in review as plainly as a code change.
//! Set `UPDATE_SNAPSHOTS=1` to rewrite them, then read the diff before committing.

use std::path::{Path, PathBuf};

use supercp_core::Object;
use supercp_load::LoadOptions;
use supercp_render::{NodeRef, Templates};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Renders a catalog for one of the example nodes, with `{state}` as `/STATE`.
fn render_for(catalog: &supercp_core::Catalog, node_file: &str) -> Vec<supercp_core::Desired> {
    let node_path = workspace().join("examples/nodes").join(node_file);
    let node = supercp_load::load_node(&node_path, node_file)
        .unwrap_or_else(|d| panic!("{node_file}: {d:?}"));
    let spec = node.spec.resolve("/STATE");
    let node = NodeRef {
        resource: &node,
        spec: &spec,
    };
    supercp_render::render(catalog, &node, &Templates::builtin())
        .unwrap_or_else(|d| panic!("must render for {node_file}: {d:?}"))
}

fn check_example(example: &str, node_file: &str) {
    let repo = workspace().join("examples").join(example);
    let catalog = supercp_load::load_repo(&repo, &LoadOptions::default())
        .unwrap_or_else(|d| panic!("{example} must load: {d:?}"));
    let desired = render_for(&catalog, node_file);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{example}-{}", node_file.trim_end_matches(".yaml")));
    let update = std::env::var("UPDATE_SNAPSHOTS").is_ok();
    let mut expected_files = Vec::new();
    let mut listing = String::new();
    for d in &desired {
        let path = d.id().key().to_owned();
        match &d.object {
            Object::File { content, mode, .. } => {
                listing.push_str(&format!("file {mode:o} {path}\n"));
                let snap = dir.join(path.trim_start_matches('/'));
                expected_files.push(snap.clone());
                let text = String::from_utf8_lossy(content);
                if update {
                    std::fs::create_dir_all(snap.parent().expect("parent")).expect("mkdir");
                    std::fs::write(&snap, text.as_bytes()).expect("write snapshot");
                } else {
                    let want = std::fs::read_to_string(&snap).unwrap_or_else(|e| {
                        panic!("{}: {e}; run with UPDATE_SNAPSHOTS=1", snap.display())
                    });
                    assert_eq!(
                        text,
                        want,
                        "{path} differs from {}; run with UPDATE_SNAPSHOTS=1 and review",
                        snap.display()
                    );
                }
            }
            Object::Dir { mode, owner, .. } => {
                listing.push_str(&format!("dir  {mode:o} {path} {owner:?}\n"))
            }
            Object::Account(a) => listing.push_str(&format!(
                "user {path} home={} shell={} members={:?}\n",
                a.home, a.shell, a.members
            )),
            Object::Cert(c) => listing.push_str(&format!(
                "tls  {path} names={:?} key={:?} renewDays={} unit={}\n",
                c.names, c.key, c.renewal.renew_days, d.unit
            )),
            Object::Zone(z) => {
                listing.push_str(&format!("zone {path} soa={:?}\n", z.soa));
                for r in &z.rrsets {
                    listing.push_str(&format!(
                        "     {} {} {} {:?} {:?}\n",
                        r.name, r.ttl, r.record_type, r.contents, r.source
                    ));
                }
            }
        }
    }
    let list_file = dir.join("OBJECTS.txt");
    if update {
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(&list_file, &listing).expect("write listing");
    } else {
        let want = std::fs::read_to_string(&list_file).unwrap_or_else(|e| {
            panic!("{}: {e}; run with UPDATE_SNAPSHOTS=1", list_file.display())
        });
        assert_eq!(
            listing, want,
            "the rendered objects changed; run with UPDATE_SNAPSHOTS=1 and review"
        );
    }
}

#[test]
fn quickstart_renders_as_snapshotted_for_the_sandbox_node() {
    check_example("quickstart", "sandbox.yaml");
}

#[test]
fn quickstart_renders_as_snapshotted_for_a_debian_node() {
    check_example("quickstart", "debian.yaml");
}

#[test]
fn every_builtin_template_compiles() {
    let _ = Templates::builtin();
    assert!(Templates::with_overrides(&[(
        "nope.tera".into(),
        String::new(),
        "x/nope.tera".into()
    )])
    .is_err());
}

#[test]
fn adding_a_line_above_a_domain_does_not_change_its_rendered_config() {
    let render = |text: &str| {
        let source = supercp_load::Source {
            path: "t.yaml".into(),
            text: text.to_owned(),
        };
        let catalog =
            supercp_load::load_sources(&[source], &LoadOptions::default()).expect("valid");
        render_for(&catalog, "debian.yaml")
            .into_iter()
            .find(|d| d.location().is_some_and(|at| at.rel == "b.test.conf"))
            .expect("vhost of b.test")
            .object
    };
    let base = "apiVersion: supercp/v1\nkind: Package\nmetadata: {name: p}\nspec: {}\n---\n\
                apiVersion: supercp/v1\nkind: Tenant\nmetadata: {name: t}\nspec: {package: p}\n---\n\
                apiVersion: supercp/v1\nkind: Domain\nmetadata: {name: a.test}\nspec:\n  tenant: t\n---\n\
                apiVersion: supercp/v1\nkind: Domain\nmetadata: {name: b.test}\nspec: {tenant: t}\n";
    let edited = base.replace("  tenant: t\n", "  tenant: t\n  aliases: [www.a.test]\n");
    assert_ne!(base, edited);
    assert_eq!(
        render(base),
        render(&edited),
        "b.test's vhost must not depend on a.test's line count"
    );
}

#[test]
fn a_php_version_without_a_tenant_pool_gets_the_placeholder_pool_on_every_node() {
    let repo = |domain_php: bool| {
        let text = format!(
            "apiVersion: supercp/v1\nkind: Package\nmetadata: {{name: basic}}\nspec: {{}}\n---\n\
             apiVersion: supercp/v1\nkind: Tenant\nmetadata: {{name: acme}}\n\
             spec: {{package: basic, php: {{version: \"8.2\"}}}}\n---\n\
             apiVersion: supercp/v1\nkind: Domain\nmetadata: {{name: acme.test}}\n\
             spec: {{tenant: acme, php: {domain_php}}}\n"
        );
        let sources = [supercp_load::Source {
            path: "acme.yaml".into(),
            text,
        }];
        supercp_load::load_sources(&sources, &LoadOptions::default())
            .unwrap_or_else(|d| panic!("{d:?}"))
    };
    for (node, pool_dir) in [
        ("debian.yaml", "/etc/php/8.2/fpm/pool.d"),
        ("sandbox.yaml", "/STATE/sandbox/etc/php/8.2/fpm/pool.d"),
    ] {
        let files = |domain_php: bool| -> Vec<(String, String)> {
            render_for(&repo(domain_php), node)
                .into_iter()
                .filter_map(|d| match d.object {
                    Object::File { at, content, .. } => Some((
                        format!("{}/{}", at.anchor, at.rel),
                        String::from_utf8_lossy(&content).into_owned(),
                    )),
                    _ => None,
                })
                .filter(|(path, _)| path.starts_with(pool_dir))
                .collect()
        };
        let without = files(false);
        assert_eq!(
            without.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            [format!("{pool_dir}/supercp.conf")],
            "{node}: the placeholder alone"
        );
        let text = &without[0].1;
        for line in [
            "[supercp]",
            "pm = ondemand",
            "listen.mode = 0600",
            "security.limit_extensions = .supercp-placeholder",
        ] {
            assert!(text.lines().any(|l| l == line), "{node}: {line}\n{text}");
        }
        let with = files(true);
        assert_eq!(
            with.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            [format!("{pool_dir}/acme.conf")],
            "{node}: the tenant's pool, no placeholder"
        );
    }
}
