//! What a `dns` node renders for a Zone: its own records, the hosting template's records from
//! what the repo says (explicit records win), and the apex NS set of the node's nameservers.

use std::path::Path;

use supercp_core::object::{RrsetSource, Zone};
use supercp_core::Object;
use supercp_load::LoadOptions;
use supercp_render::{NodeRef, Templates};

const REPO: &str = "apiVersion: supercp/v1
kind: Package
metadata: {name: basic}
spec: {maxDomains: 10}
---
apiVersion: supercp/v1
kind: Tenant
metadata: {name: acme}
spec: {package: basic}
---
apiVersion: supercp/v1
kind: Domain
metadata: {name: acme.test}
spec: {tenant: acme, aliases: [www.acme.test, shop.acme.test, blog.acme.test]}
---
apiVersion: supercp/v1
kind: Domain
metadata: {name: deep.sub.acme.test}
spec: {tenant: acme}
---
apiVersion: supercp/v1
kind: Zone
metadata: {name: acme.test}
spec:
  tenant: acme
  ttl: 600
  records:
    - {name: shop, type: CNAME, values: [\"shops.example.\"]}
    - {name: blog, type: A, values: [\"203.0.113.9\"]}
---
apiVersion: supercp/v1
kind: Zone
metadata: {name: sub.acme.test}
spec: {tenant: acme}
---
apiVersion: supercp/v1
kind: Zone
metadata: {name: bare.test}
spec:
  tenant: acme
  template: none
  records:
    - {name: \"@\", type: A, values: [\"192.0.2.1\"]}
";

/// The node's spec: the sandbox node with the `web` and `dns` roles, addresses and a `dns:`
/// block; `extra` goes under `spec:` too.
fn node_yaml(extra: &str) -> String {
    let sandbox = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/nodes/sandbox.yaml"),
    )
    .expect("the sandbox node");
    sandbox.replace("roles: [web]", "roles: [web, dns]").replacen(
        "spec:\n",
        &format!(
            "spec:\n  addresses: [192.0.2.10, \"2001:db8::10\"]\n  dns:\n    apiUrl: http://127.0.0.1:8081\n    apiKeyFile: /etc/supercp/pdns.key\n    nameservers: [ns1.example.net.]\n{extra}"
        ),
        1,
    )
}

fn zones(repo_extra: &str, node_extra: &str) -> Vec<Zone> {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).expect("repo");
    std::fs::write(repo.join("all.yaml"), format!("{REPO}{repo_extra}")).expect("write");
    let node_path = dir.path().join("node.yaml");
    std::fs::write(&node_path, node_yaml(node_extra)).expect("write");
    let catalog = supercp_load::load_repo(&repo, &LoadOptions::default())
        .unwrap_or_else(|d| panic!("loads: {d:?}"));
    let node = supercp_load::load_node(&node_path, "node.yaml").expect("node loads");
    let spec = node.spec.resolve("/STATE");
    let node = NodeRef {
        resource: &node,
        spec: &spec,
    };
    supercp_render::render(&catalog, &node, &Templates::builtin())
        .expect("renders")
        .into_iter()
        .filter_map(|d| match d.object {
            Object::Zone(z) => Some(z),
            _ => None,
        })
        .collect()
}

/// `name TYPE contents (source)` of each rrset, for comparison.
fn lines(z: &Zone) -> Vec<String> {
    z.rrsets
        .iter()
        .map(|r| {
            let from = match r.source {
                RrsetSource::Explicit => "explicit",
                RrsetSource::Template => "template",
                RrsetSource::Server => "server",
            };
            format!(
                "{} {} {} {} ({from})",
                r.name,
                r.ttl,
                r.record_type,
                r.contents.join(" | ")
            )
        })
        .collect()
}

#[test]
fn the_hosting_template_fills_in_what_the_repo_says_and_explicit_records_win() {
    let all = zones("", "");
    let acme = all
        .iter()
        .find(|z| z.name == "acme.test.")
        .expect("acme.test");
    assert_eq!(
        lines(acme),
        vec![
            "_dmarc.acme.test. 600 TXT \"v=DMARC1; p=reject\" (template)",
            "acme.test. 600 A 192.0.2.10 (template)",
            "acme.test. 600 AAAA 2001:db8::10 (template)",
            "acme.test. 600 CAA 0 issue \"letsencrypt.org\" (template)",
            "acme.test. 86400 NS ns1.example.net. (template)",
            "acme.test. 600 TXT \"v=spf1 -all\" (template)",
            // Explicit wins over the template's A; the template adds the AAAA beside it.
            "blog.acme.test. 600 A 203.0.113.9 (explicit)",
            "blog.acme.test. 600 AAAA 2001:db8::10 (template)",
            // A CNAME holds nothing else.
            "shop.acme.test. 600 CNAME shops.example. (explicit)",
            "www.acme.test. 600 A 192.0.2.10 (template)",
            "www.acme.test. 600 AAAA 2001:db8::10 (template)",
        ]
    );
    // A domain inside a nested zone is that zone's.
    let sub = all
        .iter()
        .find(|z| z.name == "sub.acme.test.")
        .expect("sub.acme.test");
    assert!(
        lines(sub).contains(&"deep.sub.acme.test. 3600 A 192.0.2.10 (template)".to_owned()),
        "{:?}",
        lines(sub)
    );
    assert!(!lines(acme).iter().any(|l| l.contains("deep.")));
    // `template: none`: the zone's own records and the apex NS set only.
    let bare = all
        .iter()
        .find(|z| z.name == "bare.test.")
        .expect("bare.test");
    assert_eq!(
        lines(bare),
        vec![
            "bare.test. 3600 A 192.0.2.1 (explicit)",
            "bare.test. 86400 NS ns1.example.net. (template)",
        ]
    );
}

#[test]
fn with_a_mail_node_the_template_adds_mx_and_an_spf_that_allows_it() {
    let mail = "---
apiVersion: supercp/v1
kind: Node
metadata: {name: mail1}
spec:
  roles: [mail]
  addresses: [198.51.100.25]
  web: {sitesDir: /etc/nginx/sites-enabled, mainConfig: /etc/nginx/nginx.conf}
  php: {versions: [], poolDir: /etc/php/pool.d, socketDir: /run/php, mainConfig: /etc/php/php-fpm.conf}
";
    let all = zones(mail, "");
    let acme = all
        .iter()
        .find(|z| z.name == "acme.test.")
        .expect("acme.test");
    let acme = lines(acme);
    for want in [
        "acme.test. 600 MX 10 mail.acme.test. (template)",
        "mail.acme.test. 600 A 198.51.100.25 (template)",
        "acme.test. 600 TXT \"v=spf1 mx -all\" (template)",
        "_dmarc.acme.test. 600 TXT \"v=DMARC1; p=quarantine\" (template)",
    ] {
        assert!(acme.contains(&want.to_owned()), "{want} in {acme:#?}");
    }
}
