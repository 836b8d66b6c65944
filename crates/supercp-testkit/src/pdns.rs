//! A throwaway PowerDNS Authoritative server per test: Debian's `pdns_server` with the
//! gsqlite3 backend under a temp dir, DNS on 127.0.0.1 (UDP and TCP) and its HTTP API on
//! 127.0.0.1, each on a free port, with a random API key.
//!
//! It owns only that server and its files; it knows nothing of SuperCP. `api` speaks just
//! enough HTTP/1.1 for a test to set up or inspect a zone by hand (drift).
//!
//! [`Pdns::start_primary`] starts the same server as a primary for secondaries on loopback
//! (the BIND harness in `bind`). What PowerDNS 4.7 does there, checked against the real server:
//! - NOTIFY goes out only with `primary=yes`, and then only for zones of kind `Master` (the API
//!   also takes `Primary` and shows it as `Master`). A PATCH does not send one: the
//!   communicator notices the new serial on its next `xfr-cycle-interval` tick (60 s by
//!   default), notifies, and records `notified_serial`. `PUT …/zones/Z./notify` sends one at
//!   once (also for a `Native` zone) and records `notified_serial` too.
//! - Targets are the zone's `ALSO-NOTIFY` metadata (`["127.0.0.1:PORT"]`; the zone JSON has
//!   no also-notify field, and an `also_notify` key in a POST is ignored) plus, unless
//!   `only-notify` is empty, the addresses of its NS names on port 53, which it looks up with
//!   the system resolver. The primary sets `only-notify=` so no lookup leaves the machine.
//! - AXFR is allowed from `allow-axfr-ips` (default `127.0.0.0/8,::1`, set explicitly here) or
//!   a zone's `ALLOW-AXFR-FROM` metadata; an IXFR query falls back to AXFR.
//!
//! # Guarantees
//! The server is killed and its files removed when the [`Pdns`] is dropped, also when the test
//! panics.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::services::{free_port, require};

/// Where Debian's pdns-backend-sqlite3 keeps the schema.
const SCHEMA: &str = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql";

/// A running PowerDNS, killed on drop.
#[derive(Debug)]
pub struct Pdns {
    /// The DNS port on 127.0.0.1 (UDP and TCP).
    pub dns_port: u16,
    /// The HTTP API's port on 127.0.0.1.
    pub api_port: u16,
    /// The API key (`X-API-Key`).
    pub api_key: String,
    /// A file holding the API key, mode 0600 (what a node file points at).
    pub api_key_file: PathBuf,
    dir: TempDir,
    child: Child,
}

impl Pdns {
    /// Starts a fresh server for `test`. Returns `None` (after a loud line on stderr) when
    /// `pdns_server` or `sqlite3` is missing; under `CI=true` that panics instead.
    ///
    /// # Panics
    /// When the server does not come up: the message holds its log.
    pub fn start(test: &str) -> Option<Pdns> {
        Pdns::start_with(test, "")
    }

    /// Starts a fresh server for `test` that acts as a primary: `primary=yes`, AXFR allowed from
    /// 127.0.0.0/8, NOTIFY sent only to a zone's `ALSO-NOTIFY` targets (`only-notify=` empty,
    /// so NS names are never looked up), from 127.0.0.1. `xfr_cycle` is how often the
    /// communicator looks for zones whose serial changed since their last NOTIFY (whole
    /// seconds, at least 1): a long one leaves NOTIFY to `PUT …/zones/Z./notify`.
    ///
    /// Returns `None` like [`Pdns::start`].
    ///
    /// # Panics
    /// When the server does not come up: the message holds its log.
    pub fn start_primary(test: &str, xfr_cycle: Duration) -> Option<Pdns> {
        let extra = format!(
            "primary=yes\n\
             allow-axfr-ips=127.0.0.0/8\n\
             only-notify=\n\
             query-local-address=127.0.0.1\n\
             xfr-cycle-interval={}\n",
            xfr_cycle.as_secs().max(1)
        );
        Pdns::start_with(test, &extra)
    }

    /// Starts a server whose pdns.conf ends with `extra` (settings, one a line).
    fn start_with(test: &str, extra: &str) -> Option<Pdns> {
        let server = require("pdns_server", test)?;
        let sqlite = require("sqlite3", test)?;
        if !Path::new(SCHEMA).is_file() {
            // `require` already failed loudly for the binaries; the schema ships with them.
            assert!(
                !crate::services::in_ci(),
                "{test}: {SCHEMA} is missing: install pdns-backend-sqlite3"
            );
            eprintln!("SKIPPED {test}: {SCHEMA} is missing (install pdns-backend-sqlite3)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("supercp-pdns-")
            .tempdir()
            .expect("creating a temp dir must work on any test machine");
        let db = dir.path().join("pdns.sqlite3");
        let schema = fs::read_to_string(SCHEMA).expect("the schema is readable");
        let mut init = Command::new(sqlite)
            .arg(&db)
            .stdin(Stdio::piped())
            .spawn()
            .expect("sqlite3 starts");
        init.stdin
            .take()
            .expect("stdin")
            .write_all(schema.as_bytes())
            .expect("write the schema");
        assert!(init.wait().expect("sqlite3").success(), "the schema loads");
        fs::create_dir(dir.path().join("run")).expect("run dir");
        let (dns_port, api_port) = (free_port(), free_port());
        let api_key = format!("test-{}-{}", std::process::id(), api_port);
        let api_key_file = dir.path().join("api.key");
        fs::write(&api_key_file, &api_key).expect("write the key");
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&api_key_file, fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let conf = format!(
            "launch=gsqlite3\n\
             gsqlite3-database={db}\n\
             gsqlite3-dnssec=yes\n\
             local-address=127.0.0.1\n\
             local-port={dns_port}\n\
             socket-dir={run}\n\
             api=yes\n\
             api-key={api_key}\n\
             webserver=yes\n\
             webserver-address=127.0.0.1\n\
             webserver-port={api_port}\n\
             webserver-allow-from=127.0.0.0/8\n\
             daemon=no\n\
             guardian=no\n\
             disable-syslog=yes\n\
             security-poll-suffix=\n\
             loglevel=6\n\
             webserver-loglevel=normal\n\
             {extra}",
            db = db.display(),
            run = dir.path().join("run").display(),
        );
        fs::write(dir.path().join("pdns.conf"), conf).expect("write pdns.conf");
        let log = fs::File::create(dir.path().join("pdns.log")).expect("log");
        let child = Command::new(server)
            .arg(format!("--config-dir={}", dir.path().display()))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("pdns_server starts");
        let pdns = Pdns {
            dns_port,
            api_port,
            api_key,
            api_key_file,
            dir,
            child,
        };
        pdns.wait_for_api();
        Some(pdns)
    }

    /// `http://127.0.0.1:PORT/api/v1/servers/localhost`: what a node file names.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    fn wait_for_api(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _)) = self.api("GET", "/api/v1/servers/localhost", None) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PowerDNS did not answer on its API within 20 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("pdns.log")).unwrap_or_default()
    }

    /// Every API request the server logged so far, as `METHOD PATH STATUS` (its web server
    /// logs one line per request): what a test counts to say what a run sent.
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|line| {
                let (_, quoted) = line.split_once(" \"")?;
                let (request, rest) = quoted.split_once('"')?;
                let mut words = request.split(' ');
                let (method, path) = (words.next()?, words.next()?);
                let status = rest.split_whitespace().next()?;
                Some(format!("{method} {path} {status}"))
            })
            .collect()
    }

    /// The requests that could change a zone (anything but GET) since the first `skip`.
    pub fn writes_since(&self, skip: usize) -> Vec<String> {
        self.requests()
            .into_iter()
            .skip(skip)
            .filter(|r| !r.starts_with("GET "))
            .collect()
    }

    /// One request to the HTTP API: its status and body.
    ///
    /// # Errors
    /// When the server cannot be reached or its answer is not HTTP.
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), String> {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.api_port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.api_key,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, rest) = answer.split_once("\r\n\r\n").ok_or("no HTTP head")?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("no HTTP status")?;
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        Ok((
            status,
            if chunked {
                unchunk(rest)
            } else {
                rest.to_owned()
            },
        ))
    }

    /// `dig +short` against this server: the answer's lines.
    ///
    /// # Panics
    /// When `dig` cannot run.
    pub fn dig(&self, name: &str, record_type: &str) -> Vec<String> {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &self.dns_port.to_string(),
                "+short",
                "+time=2",
                "+tries=2",
                name,
                record_type,
            ])
            .output()
            .expect("dig runs (bind9-dnsutils)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The body of a chunked HTTP answer.
fn unchunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        text = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for Pdns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
