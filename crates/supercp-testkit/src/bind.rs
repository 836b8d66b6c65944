//! A throwaway BIND 9 `named` per test, as a secondary: it slaves zones from a primary on
//! loopback (the PowerDNS of [`crate::pdns::Pdns::start_primary`]) over AXFR and follows its
//! NOTIFY, and answers on 127.0.0.1 (UDP and TCP) on a free port, with every file under a
//! temp dir.
//!
//! Why a secondary: that is the place BIND takes in a hosting setup fed by PowerDNS, and it is
//! the most independent check there is of what PowerDNS publishes. A second implementation
//! has to accept the zone whole over AXFR and serve the serial PowerDNS announced, and
//! `named-checkzone` (see [`check_zone`]) judges the same text by BIND's rules.
//!
//! It owns only that server and its files; it knows nothing of SuperCP. No rndc: the control
//! channel is off (`controls { };`), and the server is stopped by killing it.
//!
//! # Guarantees
//! The server is killed and its files removed when the [`Bind`] is dropped, also when the test
//! panics.
//!
//! # Assumptions
//! The zones exist on the primary before [`Bind::start_secondary`]: `named` transfers each one
//! when it starts, and after a failed first transfer it waits its retry time (minutes) unless
//! a NOTIFY comes.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::services::{free_port, require};

/// A running `named`, killed on drop.
#[derive(Debug)]
pub struct Bind {
    /// The DNS port on 127.0.0.1 (UDP and TCP).
    pub dns_port: u16,
    dig: PathBuf,
    dir: TempDir,
    child: Child,
}

impl Bind {
    /// Starts a fresh `named` for `test` that is a secondary for each of `zones` (with or
    /// without the trailing dot), transferring them from `primary` and taking NOTIFY from its
    /// address. It returns once the server answers queries; the zones may still be
    /// transferring (see [`Bind::wait_for_serial`]).
    ///
    /// Returns `None` (after a loud line on stderr) when `named` or `dig` is missing; under
    /// `CI=true` that panics instead.
    ///
    /// # Panics
    /// When `primary` is not IPv4 (the server runs with `-4`), when a zone name could not be
    /// written into named.conf as it is, or when the server does not come up: the message
    /// holds its log.
    pub fn start_secondary(test: &str, primary: SocketAddr, zones: &[&str]) -> Option<Bind> {
        let named = require("named", test)?;
        let dig = require("dig", test)?;
        let IpAddr::V4(primary_ip) = primary.ip() else {
            panic!(
                "{test}: the BIND secondary runs IPv4 only; give an IPv4 primary, not {primary}"
            );
        };
        let dir = tempfile::Builder::new()
            .prefix("supercp-bind-")
            .tempdir()
            .expect("creating a temp dir must work on any test machine");
        let dns_port = free_port();
        let conf = named_conf(dir.path(), dns_port, primary_ip, primary.port(), zones);
        let conf_path = dir.path().join("named.conf");
        fs::write(&conf_path, conf).expect("write named.conf");
        let log = fs::File::create(dir.path().join("named.log")).expect("log");
        // -g: foreground, every log line to stderr (the logging statement is ignored); -4: no
        // IPv6 sockets at all. As root without -u it stays root, which CI is anyway.
        let child = Command::new(named)
            .arg("-g")
            .arg("-4")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("named starts");
        let mut bind = Bind {
            dns_port,
            dig,
            dir,
            child,
        };
        bind.wait_until_answering(zones.first().copied().unwrap_or("."));
        Some(bind)
    }

    /// `127.0.0.1:PORT`: what a primary's `ALSO-NOTIFY` names to reach this server.
    pub fn notify_target(&self) -> String {
        format!("127.0.0.1:{}", self.dns_port)
    }

    /// The serial of the SOA this server serves for `zone`, or `None` while it serves none
    /// (not transferred yet: SERVFAIL) or does not answer.
    ///
    /// # Panics
    /// When `dig` cannot run.
    pub fn serial(&self, zone: &str) -> Option<u32> {
        self.dig(zone, "SOA")
            .first()
            .and_then(|soa| soa.split_whitespace().nth(2))
            .and_then(|serial| serial.parse().ok())
    }

    /// Waits until this server serves `serial` or a newer one (serial arithmetic) for `zone`.
    ///
    /// # Errors
    /// When it has not within `timeout`: the message holds the last serial seen and the
    /// server's log.
    pub fn wait_for_serial(
        &self,
        zone: &str,
        serial: u32,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.serial(zone);
            // RFC 1982: `seen` is at least `serial` when it is less than 2^31 ahead of it.
            if seen.is_some_and(|seen| seen.wrapping_sub(serial) < 1 << 31) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "BIND served serial {seen:?} for {zone}, not {serial}, after {timeout:?}\n\
                     named log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `dig +short` against this server: the answer's lines.
    ///
    /// # Panics
    /// When `dig` cannot run.
    pub fn dig(&self, name: &str, record_type: &str) -> Vec<String> {
        let out = self.dig_command(name, record_type, "+short");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The server's log so far (its stderr under `-g`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }

    /// The temp dir: named.conf, named.log and the transferred zone files (`ZONE.db`, text).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn dig_command(&self, name: &str, record_type: &str, format: &str) -> std::process::Output {
        Command::new(&self.dig)
            .args([
                "@127.0.0.1",
                "-p",
                &self.dns_port.to_string(),
                format,
                "+time=1",
                "+tries=2",
                name,
                record_type,
            ])
            .output()
            .expect("dig runs (bind9-dnsutils)")
    }

    /// Waits until the server answers a query at all (any rcode: dig exits 0 on an answer and
    /// 9 on none).
    fn wait_until_answering(&mut self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("named exited ({status}) while starting:\n{}", self.log());
            }
            if self.dig_command(name, "SOA", "+short").status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "named did not answer on 127.0.0.1:{} within 20 s:\n{}",
                self.dns_port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The zone `zone` as `server` gives it over AXFR (TCP), one record a line in zone-file syntax,
/// its SOA once.
///
/// # Errors
/// When `dig` cannot run, or the transfer fails or is refused: the message holds dig's output.
pub fn axfr(server: SocketAddr, zone: &str) -> Result<String, String> {
    let dig = crate::services::find_binary("dig").ok_or("dig is not installed (bind9-dnsutils)")?;
    let out = Command::new(dig)
        .args([
            &format!("@{}", server.ip()),
            "-p",
            &server.port().to_string(),
            "+noall",
            "+answer",
            "+onesoa",
            "+time=2",
            "+tries=1",
            zone,
            "AXFR",
        ])
        .output()
        .map_err(|e| format!("running dig: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // A refused or failed transfer prints "; Transfer failed." and no records.
    if !out.status.success() || text.contains("Transfer failed") || text.trim().is_empty() {
        return Err(format!(
            "AXFR of {zone} from {server} failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(text)
}

/// Runs `named-checkzone` on `text` as the zone `zone`: BIND's own judgement of a zone file.
/// Returns its output when it accepts the zone.
///
/// # Errors
/// When it rejects the zone (its output), or cannot run.
///
/// # Panics
/// When `named-checkzone` is missing under `CI=true` (elsewhere that is an `Err`).
pub fn check_zone(test: &str, zone: &str, text: &str) -> Result<String, String> {
    let checker = require("named-checkzone", test).ok_or("named-checkzone is not installed")?;
    let dir = tempfile::Builder::new()
        .prefix("supercp-checkzone-")
        .tempdir()
        .map_err(|e| format!("creating a temp dir: {e}"))?;
    let file = dir.path().join("zone.db");
    fs::write(&file, text).map_err(|e| format!("writing {}: {e}", file.display()))?;
    let out = Command::new(checker)
        .arg(zone)
        .arg(&file)
        .output()
        .map_err(|e| format!("running named-checkzone: {e}"))?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(report)
    } else {
        Err(format!(
            "named-checkzone {zone} rejected the zone:\n{report}\nzone:\n{text}"
        ))
    }
}

/// named.conf for a secondary of `zones` under `dir`, on 127.0.0.1:`port`.
fn named_conf(
    dir: &Path,
    port: u16,
    primary: std::net::Ipv4Addr,
    primary_port: u16,
    zones: &[&str],
) -> String {
    let d = dir.display();
    // Every path a default would put under /run or /var goes under the temp dir, so parallel
    // tests never share a lock, pid or key file. `notify no`: a secondary here notifies no one.
    let mut conf = format!(
        "options {{\n\
         \tdirectory \"{d}\";\n\
         \tpid-file \"{d}/named.pid\";\n\
         \tlock-file \"{d}/named.lock\";\n\
         \tsession-keyfile \"{d}/session.key\";\n\
         \tmanaged-keys-directory \"{d}\";\n\
         \tlisten-on port {port} {{ 127.0.0.1; }};\n\
         \tlisten-on-v6 {{ none; }};\n\
         \trecursion no;\n\
         \tdnssec-validation no;\n\
         \tnotify no;\n\
         \tallow-notify {{ {primary}; }};\n\
         \tallow-transfer {{ 127.0.0.1; }};\n\
         \tmasterfile-format text;\n\
         }};\n\
         controls {{ }};\n"
    );
    for zone in zones {
        let name = zone.trim_end_matches('.');
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
            "zone name {zone:?} is not a plain host name; the BIND harness writes it into named.conf as it is"
        );
        conf.push_str(&format!(
            "zone \"{name}\" {{\n\
             \ttype secondary;\n\
             \tfile \"{name}.db\";\n\
             \tprimaries {{ {primary} port {primary_port}; }};\n\
             }};\n"
        ));
    }
    conf
}
