//! Helpers of the TLS tests: a repo with one tenant, Domains with `tls`, the sandbox node on
//! the test's ports, and a node whose nginx runs before its first TLS site.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use supercp_testkit::services::{in_ci, is_root, require};
use supercp_testkit::web::{start_nginx, Service};

use super::Prefix;

/// A Package and the Tenant `acme`.
pub const PACKAGE: &str = "apiVersion: supercp/v1\nkind: Package\nmetadata: {name: basic}\nspec: {}\n---\n\
                       apiVersion: supercp/v1\nkind: Tenant\nmetadata: {name: acme}\nspec: {package: basic}\n";

/// A Domain of `acme` (`extra`: more lines of its spec).
pub fn domain(name: &str, extra: &str) -> String {
    format!("---\napiVersion: supercp/v1\nkind: Domain\nmetadata: {{name: {name}}}\nspec:\n  tenant: acme\n{extra}")
}

/// The sandbox node on the test's ports, with `tls` settings.
pub fn node(p: &mut Prefix, http: u16, https: u16, tls: &str) -> PathBuf {
    let sandbox = fs::read_to_string(super::workspace().join("examples/nodes/sandbox.yaml"))
        .expect("sandbox node");
    let text = sandbox
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"))
        .replace(
            "  tls:\n    listen: [\"127.0.0.1:8443\"]\n",
            &format!("  tls:\n    listen: [\"127.0.0.1:{https}\"]\n{tls}"),
        )
        .replace("      optional: true\n", "");
    let path = p.dir.path().join("node.yaml");
    super::write(&path, &text);
    p.node = Some(path.clone());
    path
}

pub struct Site {
    pub p: Prefix,
    _nginx: Service,
}

/// A prefix whose first apply (one plain domain) rendered nginx's config, and nginx running
/// on it: what a node looks like before its first TLS site.
pub fn started(test: &str, tls: &str, http: u16, https: u16) -> Option<Site> {
    let nginx = require("nginx", test)?;
    require("curl", test)?;
    let mut p = Prefix::empty();
    fs::set_permissions(p.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    node(&mut p, http, https, tls);
    super::write(
        &p.repo.join("sites.yaml"),
        &format!("{PACKAGE}{}", domain("plain.test", "")),
    );
    p.supercp(&["apply"]).expect_code(0);
    let root = p.sandbox();
    let nginx = start_nginx(
        &nginx,
        &root.join("etc/nginx/nginx.conf"),
        &root.join("run/nginx.pid"),
        http,
        &p.dir.path().join("nginx.log"),
    );
    Some(Site { p, _nginx: nginx })
}

/// False (a loud skip) when not root outside CI; fails under CI.
pub fn needs_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(!in_ci(), "{test}: CI=true requires root (nginx's workers)");
    eprintln!("SKIPPED {test}: needs root");
    false
}
