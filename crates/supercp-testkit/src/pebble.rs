//! A real ACME CA on loopback: Debian's pebble, with pebble-challtestsrv as its DNS server
//! answering 127.0.0.1 for every name (so HTTP-01 validation reaches the test's nginx).
//!
//! # Guarantees
//! Both processes listen on 127.0.0.1 only and stop when the guard is dropped. pebble's own
//! HTTPS certificate comes from a private CA made here (`https_ca`); the root that signs the
//! certificates it issues is fetched from its management interface (`issuing_root`), and
//! changes at every start.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::services::{free_port, require};
use crate::web::Service;

/// A name pebble refuses to issue for (`rejectedIdentifier`): a CA's refusal, on demand.
pub const BLOCKED: &str = "blocked.test";

/// The external account binding pebble requires (a key id and its base64url HMAC key), as a
/// commercial or private CA would: every account the tests make goes through EAB.
pub const EAB_KID: &str = "supercp-test";
pub const EAB_KEY: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";

/// pebble and its DNS server.
pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// The CA of pebble's own HTTPS listener (for the ACME client).
    pub https_ca: PathBuf,
    pub management_port: u16,
    pub http_port: u16,
    dir: PathBuf,
    // Dropped in order: pebble, then its DNS server.
    pebble: Option<Service>,
    _dns: Service,
    config: PathBuf,
    dns_port: u16,
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http_port` (the test's nginx), issuing
    /// certificates valid for `validity_seconds`; `None` (skipped, loudly) when pebble is
    /// missing outside CI.
    pub fn start(dir: &Path, http_port: u16, validity_seconds: u64, test: &str) -> Option<Pebble> {
        let pebble = require("pebble", test)?;
        let challtestsrv = require("pebble-challtestsrv", test)?;
        let openssl = require("openssl", test)?;
        fs::create_dir_all(dir).expect("pebble dir");
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        crate::git_servers::private_ca(&openssl, dir);
        let dns_port = free_port();
        let dns_management = free_port();
        let dns = Service::start(
            "pebble-challtestsrv",
            &[
                &challtestsrv.to_string_lossy(),
                "-management",
                &format!("127.0.0.1:{dns_management}"),
                "-dns01",
                &format!("127.0.0.1:{dns_port}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ],
            &dir.join("challtestsrv.log"),
            || TcpStream::connect(("127.0.0.1", dns_management)).is_ok(),
        );
        let port = free_port();
        let management_port = free_port();
        let config = dir.join("pebble.json");
        fs::write(
            &config,
            format!(
                r#"{{"pebble": {{"listenAddress": "127.0.0.1:{port}", "managementListenAddress": "127.0.0.1:{management_port}",
"certificate": "{cert}", "privateKey": "{key}", "httpPort": {http_port}, "tlsPort": {tls_port},
"ocspResponderURL": "", "externalAccountBindingRequired": true,
"externalAccountMACKeys": {{"{EAB_KID}": "{EAB_KEY}"}},
"domainBlocklist": ["{BLOCKED}"],
"certificateValidityPeriod": {validity_seconds}}}}}"#,
                cert = path("cert.pem"),
                key = path("key.pem"),
                tls_port = free_port(),
            ),
        )
        .expect("pebble config");
        let mut p = Pebble {
            directory: format!("https://127.0.0.1:{port}/dir"),
            https_ca: dir.join("ca.pem"),
            management_port,
            http_port,
            dir: dir.to_owned(),
            pebble: None,
            _dns: dns,
            config,
            dns_port,
        };
        p.pebble = Some(p.spawn(&pebble, port));
        Some(p)
    }

    fn spawn(&self, pebble: &Path, port: u16) -> Service {
        // The environment is the child's own (through env(1)): no validation sleeps, no
        // deliberately rejected nonces, no reused authorizations.
        let log = self.dir.join("pebble.log");
        let wrapper = [
            "/usr/bin/env",
            "PEBBLE_VA_NOSLEEP=1",
            "PEBBLE_WFE_NONCEREJECT=0",
            "PEBBLE_AUTHZREUSE=0",
            &pebble.to_string_lossy(),
            "-config",
            &self.config.to_string_lossy(),
            "-dnsserver",
            &format!("127.0.0.1:{}", self.dns_port),
        ]
        .map(str::to_owned);
        let argv: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        Service::start("pebble", &argv, &log, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
    }

    /// A node file's `tls` lines (under `tls:`) for this CA: its directory, the CA of its
    /// HTTPS, a contact, and the EAB key (written to `eab.key`, mode 0600).
    pub fn node_tls(&self) -> String {
        use std::os::unix::fs::PermissionsExt;
        let key = self.dir.join("eab.key");
        fs::write(&key, format!("{EAB_KEY}\n")).expect("eab key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
        format!(
            "    acmeDirectory: \"{}\"\n    acmeCaFile: \"{}\"\n    acmeEmail: ops@example.test\n    \
             acmeEab: {{kid: {EAB_KID}, hmacKeyFile: \"{}\"}}\n",
            self.directory,
            self.https_ca.display(),
            key.display()
        )
    }

    /// Stops pebble (the CA is unreachable until `restart`).
    pub fn stop(&mut self) {
        self.pebble = None;
    }

    /// Starts pebble again on the same ports (a new issuing root, and no accounts).
    pub fn restart(&mut self) {
        let pebble = crate::services::find_binary("pebble").expect("pebble");
        let port: u16 = self
            .directory
            .trim_start_matches("https://127.0.0.1:")
            .trim_end_matches("/dir")
            .parse()
            .expect("port");
        self.pebble = Some(self.spawn(&pebble, port));
    }

    /// The root certificate that signs what pebble issues now (PEM), from its management
    /// interface, written to `to`.
    pub fn issuing_root(&self, to: &Path) -> PathBuf {
        let curl = crate::services::find_binary("curl").expect("curl");
        let out = Command::new(curl)
            .args(["-sf", "--cacert"])
            .arg(&self.https_ca)
            .arg(format!(
                "https://127.0.0.1:{}/roots/0",
                self.management_port
            ))
            .output()
            .expect("curl");
        assert!(out.status.success(), "fetching pebble's root: {out:?}");
        fs::write(to, &out.stdout).expect("root");
        to.to_owned()
    }
}
