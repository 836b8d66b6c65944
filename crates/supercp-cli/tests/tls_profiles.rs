//! The TLS profiles as a scanner sees them: sslyze checks each HTTPS site against Mozilla's
//! configuration of its profile (`intermediate` by default, `old` when the Domain opts in),
//! with certificates from a real ACME CA (pebble) served by SuperCP's nginx.
//!
//! Both sites share one address. nginx 1.22 takes the TLS versions of a connection from the
//! address's default server (the first site file on it) before SNI picks the site, and the
//! ciphers from the site itself; so the test scans an `old` site both as the default server and
//! behind an intermediate one, and an intermediate site behind an `old` one. It checks the
//! versions sslyze found, not only its verdict: Mozilla's check also passes a server that
//! offers *fewer* versions than its profile allows.
//!
//! Needs root (nginx's master and workers), nginx, pebble, pebble-challtestsrv, openssl, curl
//! and sslyze (`scripts/test.sh` installs it from PyPI into `/opt/supercp-test/sslyze`). Under
//! `CI=true` a missing one fails the test; elsewhere it skips, loudly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tls::{domain, needs_root, started, PACKAGE};
use supercp_testkit::pebble::Pebble;
use supercp_testkit::services::{find_binary, free_port, require};
use supercp_testkit::web::eventually;

/// Where `scripts/test.sh` installs sslyze (looked at before `PATH`).
const SSLYZE_VENV: &str = "/opt/supercp-test/sslyze/bin/sslyze";

#[test]
fn sslyze_finds_each_profile_compliant_with_mozillas_configuration_whichever_site_comes_first() {
    let test = "tls_profiles_sslyze";
    if !needs_root(test) {
        return;
    }
    let Some(sslyze) = sslyze(test) else {
        return;
    };
    let (http, https) = (free_port(), free_port());
    let work = tempfile::tempdir().expect("temp dir");
    // Mozilla's check refuses certificates that live longer than 366 days (pebble's default is
    // five years).
    let Some(pebble) = Pebble::start(&work.path().join("pebble"), http, 10 * 86_400, test) else {
        return;
    };
    let tls = pebble.node_tls();
    let Some(site) = started(test, &tls, http, https) else {
        return;
    };
    let p = &site.p;
    let root = pebble.issuing_root(&work.path().join("root.pem"));
    let scan = |name: &str, config: &str| Scan::run(&sslyze, &root, name, https, config);

    // legacy.test.conf sorts before modern.test.conf: legacy.test is the port's default server,
    // so TLS 1.0 and 1.1 are on at the version level for modern.test too; its ciphers refuse them.
    let sites = format!(
        "{PACKAGE}{}{}{}",
        domain("plain.test", ""),
        domain("modern.test", "  tls: {}\n"),
        domain("legacy.test", "  tls: {profile: old}\n")
    );
    common::write(&p.repo.join("sites.yaml"), &sites);
    p.supercp(&["apply"]).expect_code(0);
    verified(&["modern.test", "legacy.test"], https, &root);

    let modern = scan("modern.test", "intermediate");
    modern.expect_first_on_port("legacy.test");
    modern.expect_compliant();
    modern.expect_versions(&["TLS 1.2", "TLS 1.3"]);
    let legacy = scan("legacy.test", "old");
    legacy.expect_compliant();
    legacy.expect_versions(&["TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"]);

    // first.test (intermediate) sorts first: now the port's versions come from an intermediate
    // site, and legacy.test must still get TLS 1.0 and 1.1.
    common::write(
        &p.repo.join("sites.yaml"),
        &format!("{sites}{}", domain("first.test", "  tls: {}\n")),
    );
    p.supercp(&["apply"]).expect_code(0);
    verified(&["first.test", "modern.test", "legacy.test"], https, &root);

    let first = scan("first.test", "intermediate");
    first.expect_first_on_port("first.test");
    first.expect_compliant();
    first.expect_versions(&["TLS 1.2", "TLS 1.3"]);
    let legacy = scan("legacy.test", "old");
    legacy.expect_first_on_port("first.test");
    legacy.expect_compliant();
    legacy.expect_versions(&["TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"]);
}

/// One sslyze run: every scan it has, then the check against Mozilla's `config`.
struct Scan {
    name: String,
    config: String,
    /// The command and its whole output, for failure messages.
    described: String,
    stdout: String,
}

impl Scan {
    /// Scans `name` (sent as SNI) at 127.0.0.1:`port`, trusting `ca` as the only extra root.
    fn run(sslyze: &Path, ca: &Path, name: &str, port: u16, config: &str) -> Scan {
        let mut cmd = Command::new(sslyze);
        cmd.arg(format!("--mozilla_config={config}"))
            .arg("--certinfo_ca_file")
            .arg(ca)
            .arg(format!("{name}:{port}{{127.0.0.1}}"));
        let out = cmd.output().expect("sslyze runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let described = format!(
            "command: {cmd:?}\nstatus: {}\n--- stdout\n{stdout}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // The verdict and its reasons, for the test's log (`--nocapture`).
        let verdict = stdout
            .split_once("for more details.")
            .map_or("", |(_, v)| v);
        eprintln!(
            "sslyze {name} --mozilla_config={config}: {}",
            verdict.trim()
        );
        Scan {
            name: name.to_owned(),
            config: config.to_owned(),
            described,
            stdout,
        }
    }

    /// sslyze's verdict. Its exit code is no proof: it exits 0 when it could not connect at all.
    #[track_caller]
    fn expect_compliant(&self) {
        assert!(
            self.stdout.contains(": OK - Compliant."),
            "{}: not compliant with Mozilla's {:?} configuration\n{}",
            self.name,
            self.config,
            self.described
        );
    }

    /// The versions for which sslyze found an accepted cipher suite are exactly `expected`.
    #[track_caller]
    fn expect_versions(&self, expected: &[&str]) {
        let accepted: Vec<&str> = [
            "SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3",
        ]
        .into_iter()
        .filter(|v| self.accepts(v))
        .collect();
        eprintln!("sslyze {}: TLS versions accepted: {accepted:?}", self.name);
        assert_eq!(
            accepted, expected,
            "{}: TLS versions\n{}",
            self.name, self.described
        );
    }

    /// The site that answers a client without SNI: the port's default server.
    #[track_caller]
    fn expect_first_on_port(&self, name: &str) {
        let section = self
            .stdout
            .split_once("Certificate Chain with SNI disabled")
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("no certificate without SNI\n{}", self.described));
        let common_name = section
            .lines()
            .find_map(|l| l.trim().strip_prefix("Common Name:"))
            .map(str::trim);
        assert_eq!(
            common_name,
            Some(name),
            "{}: the port's default server\n{}",
            self.name,
            self.described
        );
    }

    /// Whether sslyze's section for `version` ("TLS 1.0") lists accepted cipher suites.
    fn accepts(&self, version: &str) -> bool {
        let header = format!("* {version} Cipher Suites:");
        let section = self
            .stdout
            .split_once(&header)
            .map(|(_, rest)| rest.split("\n * ").next().unwrap_or(rest))
            .unwrap_or_else(|| panic!("no {version} section\n{}", self.described));
        if section.contains("rejected all cipher suites") {
            false
        } else if section.contains("accepted the following") {
            true
        } else {
            panic!(
                "{version}: neither accepted nor rejected\n{}",
                self.described
            )
        }
    }
}

/// sslyze from `scripts/test.sh`'s venv, else from `PATH`.
fn sslyze(test: &str) -> Option<PathBuf> {
    if Path::new(SSLYZE_VENV).is_file() {
        return Some(PathBuf::from(SSLYZE_VENV));
    }
    find_binary("sslyze").or_else(|| require("sslyze", test))
}

/// Waits until every name in `names` verifies against `ca` (so it serves its issued
/// certificate, not the self-signed placeholder nor another site's) on every connection for
/// half a second: after `supercp apply` returns, nginx's old workers answer until the new ones
/// are up and the old ones are told to quit.
fn verified(names: &[&str], port: u16, ca: &Path) {
    for name in names {
        eventually(
            &format!("{name} verifies against pebble's root"),
            30,
            || {
                // Every connection for half a second: nginx's old workers still accept
                // connections for a while after the reload is signalled.
                for _ in 0..6 {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    let out = Command::new("curl")
                        .args(["-sS", "-o", "/dev/null", "--max-time", "10", "--resolve"])
                        .arg(format!("{name}:{port}:127.0.0.1"))
                        .arg("--cacert")
                        .arg(ca)
                        .arg(format!("https://{name}:{port}/"))
                        .output()
                        .expect("curl runs");
                    if !out.status.success() {
                        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
                    }
                }
                Ok(())
            },
        );
    }
}
