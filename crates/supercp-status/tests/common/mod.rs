//! Shared by the status tests: a real SQLite journal filled through the audit API, the status
//! router served on 127.0.0.1:0 by a runtime of its own, and a tiny HTTP/1.1 client over
//! `std::net::TcpStream`, so the tests themselves are plain blocking `#[test]`s.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use supercp_audit::{
    Journal, NewRun, NewStep, Outcome, OwnedObject, RunId, StepResult, StepStatus,
};
use supercp_core::Observation;
use supercp_status::{router, AgentSnapshot, NodeInfo, Shared};

/// Every kind of markup a journal string could try to smuggle into a page.
pub const EVIL: &str = "<script>alert(1)</script>&\"'";
/// `EVIL` as it must appear in HTML.
pub const EVIL_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;";
pub const NODE: &str = "web1";
pub const COMMIT_APPLIED: &str = "0123456789abcdef0123456789abcdef01234567";
pub const COMMIT_CURRENT: &str = "fedcba9876543210fedcba9876543210fedcba98";
pub const TOKEN: &str = "s3cret-status-token";
/// The committer time of the fixture's commits, unix seconds (2023-11-14 22:13:20 UTC).
pub const COMMIT_TIME: i64 = 1_700_000_000;
/// When the agent observed the fixture's objects, unix ms (2023-11-14 22:14:20 UTC).
pub const OBSERVED_AT: i64 = 1_700_000_060_000;

/// The runs the fixture recorded.
#[derive(Debug, Clone, Copy)]
pub struct Runs {
    /// Trigger `commit`, succeeded, five steps (one for the tenant named [`EVIL`]).
    pub applied: RunId,
    /// Trigger `drift`, succeeded, one step done.
    pub drift_changed: RunId,
    /// Trigger `drift`, succeeded, no step.
    pub drift_clean: RunId,
    /// Trigger `commit`, failed at the nginx gate, error and log holding [`EVIL`].
    pub failed: RunId,
    /// The newest run of the journal, but of another node (`web2`).
    pub other_node: RunId,
}

/// A status page on a real journal, served on loopback until dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub runs: Runs,
    pub agent: Shared,
    // Dropped last: the runtime (and the server task) before the journal's directory.
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Server {
    /// Fills a new journal and serves the router over it, with `token` if given.
    pub fn start(token: Option<&str>) -> Server {
        Server::start_with(token, axum::Router::new())
    }

    /// As [`Server::start`], with test-only `extra` routes beside the status routes (outside
    /// their layers).
    pub fn start_with(token: Option<&str>, extra: axum::Router) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("audit.db");
        let journal = runtime.block_on(async {
            Journal::open(path.to_str().expect("utf-8 temp path"))
                .await
                .expect("open the SQLite journal")
        });
        let runs = runtime.block_on(fill(&journal));
        let agent: Shared = Arc::new(RwLock::new(AgentSnapshot {
            current_commit: Some(COMMIT_CURRENT.into()),
            last_applied_commit: Some(COMMIT_APPLIED.into()),
            next_scan_unix_ms: Some(now_ms() + 300_000),
            last_error: Some(format!("apply failed: {EVIL}")),
            observed: Arc::new(observed()),
        }));
        let app = router(
            Arc::new(journal),
            NodeInfo {
                node: NODE.into(),
                roles: vec!["web".into(), "dns".into()],
            },
            agent.clone(),
            token.map(str::to_owned),
        )
        .merge(extra);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        runtime.spawn(async move { axum::serve(listener, app).await });
        Server {
            addr,
            runs,
            agent,
            runtime,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, &[])
    }

    /// GET that must answer 200; the message names the path and the body otherwise.
    pub fn ok(&self, path: &str) -> String {
        let reply = self.get(path);
        assert_eq!(reply.status, 200, "GET {path}:\n{reply:#?}");
        reply.body
    }
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set a read timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" && method != "HEAD" {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .unwrap_or_else(|e| panic!("send {method} {path}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("read the answer to {method} {path}: {e}"));
    parse(&raw).unwrap_or_else(|| {
        panic!(
            "{method} {path}: not an HTTP answer:\n{}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds fit in i64")
}

/// Every HTML page of the fixture, by path.
pub fn html_paths(runs: &Runs) -> Vec<String> {
    vec![
        "/".into(),
        "/runs".into(),
        format!("/runs/{}", runs.applied),
        format!("/runs/{}", runs.drift_changed),
        format!("/runs/{}", runs.drift_clean),
        format!("/runs/{}", runs.failed),
        "/resources".into(),
        "/resources?kind=Domain".into(),
        "/resources?tenant=acme".into(),
        "/resources/Domain/acme.test".into(),
        "/resources/Tenant/acme".into(),
        format!("/resources/Tenant/{}", percent(EVIL)),
    ]
}

/// Every JSON and text answer of the fixture, by path.
pub fn data_paths(runs: &Runs) -> Vec<String> {
    vec![
        "/api/v1/status".into(),
        "/api/v1/runs".into(),
        format!("/api/v1/runs/{}", runs.applied),
        format!("/api/v1/runs/{}", runs.failed),
        "/api/v1/resources".into(),
        "/api/v1/resources?kind=Tenant".into(),
        format!("/api/v1/resources/Tenant/{}", percent(EVIL)),
        "/api/v1/resources/Domain/acme.test".into(),
        "/metrics".into(),
        "/healthz".into(),
    ]
}

/// Percent-encodes every byte but the unreserved ones.
pub fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What the agent last observed: the nginx file as desired, the web root with another mode, the
/// home of the tenant named [`EVIL`] blocked by a symlink, and `user:acme` not at all.
fn observed() -> HashMap<String, Observation> {
    let seen = |found, mode, owner, content_matches, differs: Option<String>| Observation {
        at_ms: OBSERVED_AT,
        found,
        mode,
        owner,
        content_matches,
        differs,
        notes: Vec::new(),
    };
    HashMap::from([
        (
            "file:/etc/nginx/sites-enabled/acme.test.conf".to_owned(),
            seen("file", Some(0o644), Some((0, 0)), Some(true), None),
        ),
        (
            "dir:/srv/homes/acme/domains/acme.test".to_owned(),
            seen(
                "dir",
                Some(0o755),
                Some((1001, 1001)),
                None,
                Some("mode 755 → 750".into()),
            ),
        ),
        (
            format!("dir:/srv/homes/{EVIL}"),
            seen(
                "blocked",
                None,
                None,
                None,
                Some(format!("refused: a symlink at /srv/homes/{EVIL}")),
            ),
        ),
    ])
}

/// Records the fixture's runs, steps and owned objects through the audit API.
async fn fill(journal: &Journal) -> Runs {
    let t = now_ms() - 60_000;
    // The successful runs' steps ran before the agent's observations; the failed run's after.
    let before = OBSERVED_AT - 60_000;
    let tenant_evil = format!("Tenant/{EVIL}");

    let applied = start(
        journal,
        NODE,
        "commit",
        Some(COMMIT_APPLIED),
        Some(&format!("add acme {EVIL}")),
        "5 to create, 0 to update, 0 to delete",
    )
    .await;
    let steps = [
        step(
            "Tenant/acme",
            "tenants/acme.yaml:1:1",
            "user:acme",
            "create",
        ),
        step(
            "Tenant/acme",
            "tenants/acme.yaml:1:1",
            "dir:/srv/homes/acme",
            "create",
        ),
        step(
            "Domain/acme.test",
            "tenants/acme.yaml:9:1",
            "dir:/srv/homes/acme/domains/acme.test",
            "create",
        ),
        step(
            "Domain/acme.test",
            "tenants/acme.yaml:9:1",
            "file:/etc/nginx/sites-enabled/acme.test.conf",
            "create",
        ),
        step(
            &tenant_evil,
            &format!("tenants/{EVIL}.yaml:1:1"),
            &format!("dir:/srv/homes/{EVIL}"),
            "create",
        ),
    ];
    let ids = journal.add_steps(applied, &steps).await.expect("add_steps");
    journal.steps_running(&ids, t).await.expect("steps_running");
    let results: Vec<StepResult> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| StepResult {
            id,
            status: StepStatus::Done,
            after_hash: None,
            log: vec![format!("applied step {i}"), format!("log line {EVIL}")],
            started_at: before + 100 * i as i64,
            finished_at: before + 100 * i as i64 + 40,
        })
        .collect();
    journal.finish_steps(&results).await.expect("finish_steps");
    journal
        .finish_run(applied, Outcome::Succeeded, None)
        .await
        .expect("finish_run");
    let owned: Vec<OwnedObject> = steps
        .iter()
        .map(|s| OwnedObject {
            object: s.object.clone(),
            resource: s.resource.clone(),
            tenant_data: s.object.starts_with("dir:/srv/homes") || s.object.starts_with("user:"),
            anchor: if s.object.starts_with("dir:/srv/homes") {
                "/srv/homes".into()
            } else if s.object.starts_with("file:/etc/nginx") {
                "/etc/nginx".into()
            } else {
                String::new()
            },
            deletion_policy: s
                .object
                .starts_with("dir:/srv/homes")
                .then(|| "Retain".to_owned()),
            gate: s
                .object
                .starts_with("file:/etc/nginx")
                .then(|| "nginx".to_owned()),
        })
        .collect();
    journal
        .set_owned(NODE, &owned, &[])
        .await
        .expect("set_owned");

    let drift_changed = start(
        journal,
        NODE,
        "drift",
        Some(COMMIT_APPLIED),
        None,
        "0 to create, 1 to update, 0 to delete",
    )
    .await;
    let ids = journal
        .add_steps(
            drift_changed,
            &[step(
                "Domain/acme.test",
                "tenants/acme.yaml:9:1",
                "file:/etc/nginx/sites-enabled/acme.test.conf",
                "update",
            )],
        )
        .await
        .expect("add_steps");
    finish(
        journal,
        &ids,
        StepStatus::Done,
        "put back by the drift scan",
        before + 1000,
    )
    .await;
    journal
        .finish_run(drift_changed, Outcome::Succeeded, None)
        .await
        .expect("finish_run");

    let drift_clean = start(
        journal,
        NODE,
        "drift",
        Some(COMMIT_APPLIED),
        None,
        "no changes",
    )
    .await;
    journal
        .finish_run(drift_clean, Outcome::Succeeded, None)
        .await
        .expect("finish_run");

    let failed = start(
        journal,
        NODE,
        "commit",
        Some(COMMIT_CURRENT),
        Some(EVIL),
        "0 to create, 1 to update, 0 to delete",
    )
    .await;
    let ids = journal
        .add_steps(
            failed,
            &[step(
                "Domain/acme.test",
                "tenants/acme.yaml:9:1",
                "file:/etc/nginx/sites-enabled/acme.test.conf",
                "update",
            )],
        )
        .await
        .expect("add_steps");
    finish(
        journal,
        &ids,
        StepStatus::Failed,
        &format!("nginx: [emerg] {EVIL}"),
        t + 2000,
    )
    .await;
    journal
        .finish_run(
            failed,
            Outcome::Failed,
            Some(&format!("gate nginx check failed: {EVIL}")),
        )
        .await
        .expect("finish_run");

    // Certificates: one issued, one the CA keeps refusing (its error holds markup).
    journal
        .record_certificates(
            NODE,
            &[
                supercp_audit::CertRecord {
                    domain: "ok.test".into(),
                    serial: Some("0abc".into()),
                    not_after: Some(now_ms() / 1000 + 86_400 * 60),
                    updated_at: t,
                    ..Default::default()
                },
                supercp_audit::CertRecord {
                    domain: "refused.test".into(),
                    failures: 2,
                    last_error: Some(format!("rejectedIdentifier {EVIL}")),
                    next_attempt: Some(now_ms() + 600_000),
                    updated_at: t,
                    ..Default::default()
                },
            ],
        )
        .await
        .expect("record_certificates");

    let other_node = start(journal, "web2", "cli", None, None, "other-node-run").await;
    journal
        .finish_run(other_node, Outcome::Succeeded, None)
        .await
        .expect("finish_run");

    Runs {
        applied,
        drift_changed,
        drift_clean,
        failed,
        other_node,
    }
}

async fn start(
    journal: &Journal,
    node: &str,
    trigger: &str,
    commit: Option<&str>,
    message: Option<&str>,
    summary: &str,
) -> RunId {
    journal
        .start_run(&NewRun {
            node: node.into(),
            actor: "root".into(),
            repo: "/srv/hosting".into(),
            git_commit: commit.map(str::to_owned),
            git_author: commit.map(|_| "Ada <ada@example.test>".to_owned()),
            git_dirty: commit.map(|_| false),
            git_message: message.map(str::to_owned),
            git_time: commit.map(|_| COMMIT_TIME),
            trigger: trigger.into(),
            summary: summary.into(),
            pid: std::process::id(),
        })
        .await
        .expect("start_run")
}

async fn finish(journal: &Journal, ids: &[i64], status: StepStatus, log: &str, at: i64) {
    let results: Vec<StepResult> = ids
        .iter()
        .map(|&id| StepResult {
            id,
            status,
            after_hash: None,
            log: vec![log.to_owned()],
            started_at: at,
            finished_at: at + 250,
        })
        .collect();
    journal.finish_steps(&results).await.expect("finish_steps");
}

fn step(resource: &str, origin: &str, object: &str, action: &str) -> NewStep {
    NewStep {
        resource: resource.into(),
        origin: origin.into(),
        object: object.into(),
        action: action.into(),
        before_hash: None,
        after_hash: Some("sha256:after".into()),
        before_content: None,
    }
}

/// Status line, headers and body (plain or chunked) of a raw HTTP/1.1 answer.
fn parse(raw: &[u8]) -> Option<Reply> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Reply {
        status,
        headers,
        body: String::from_utf8(body).ok()?,
    })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}
