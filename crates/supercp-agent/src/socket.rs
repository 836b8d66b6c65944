//! The agent's local control socket: JSON-RPC 2.0 over a Unix stream socket, one request (or
//! batch) per line and one response (or batch of responses) per line.
//!
//! Methods: `status`, `reconcile` (run now: the same path as a new commit), `runs.list`
//! (`{"limit": N}`), `runs.get` (`{"id": N}`), `plan` (a dry run of the current checkout),
//! `version`.
//!
//! # Guarantees
//! - A notification (a request without `id`) gets no reply, not even an error; a request that
//!   is not valid JSON-RPC gets an error even without `id` (JSON-RPC 2.0, section 5).
//! - A batch (a JSON array of up to [`MAX_BATCH`] requests) is answered, in order, by one array
//!   holding a response for each request that is not a notification, or by nothing when all
//!   are; an empty or larger batch gets one error. Requests of a batch run one after another.
//! - Every result that is an object carries `format_version` ([`FORMAT_VERSION`]); runs and
//!   steps are `supercp_status::api`'s mirrors, the same JSON as the status API's.
//! - The socket is mode 0660, owned by root (the agent's user) and the node file's group. A
//!   client is served only when its peer credentials show root, the agent's own user, or a
//!   member of that group; anyone else gets an error and the connection is closed.
//! - Nothing changes the node through the socket except `reconcile`, which the agent's loop
//!   runs exactly as it runs a new commit.
//! - Every error is an [`RpcError`] until the edge: its variant says what failed, `code` is its
//!   JSON-RPC code and `is_transient` whether the same request may succeed later.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};
use supercp_audit::Journal;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// The version of the results' JSON, the status API's (`supercp_status::api::FORMAT_VERSION`).
pub const FORMAT_VERSION: u32 = supercp_status::api::FORMAT_VERSION;

/// Most requests one batch may hold.
pub const MAX_BATCH: usize = 100;

/// What the loop knows right now, for `status`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Snapshot {
    pub node: String,
    pub roles: Vec<String>,
    /// The commit checked out now.
    pub current_commit: Option<String>,
    /// The last commit applied successfully.
    pub last_applied_commit: Option<String>,
    /// Unix milliseconds of the next drift scan.
    pub next_scan_unix_ms: Option<i64>,
    /// The last failure, until a run succeeds.
    pub last_error: Option<String>,
}

pub type SharedSnapshot = Arc<RwLock<Snapshot>>;

/// A request the loop must run (it owns the node: one run at a time).
pub enum Command {
    Reconcile(oneshot::Sender<Result<Value, RpcError>>),
    Plan(oneshot::Sender<Result<Value, RpcError>>),
}

/// Why a request got an error instead of a result. `code` and the message (`Display`) are the
/// JSON-RPC error object, made at the edge (`error`).
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("parse error: {0}")]
    Parse(serde_json::Error),
    #[error("invalid request: an empty batch; send at least one request")]
    EmptyBatch,
    #[error("invalid request: a batch of {0} requests; send at most {MAX_BATCH} at once")]
    BatchTooLarge(usize),
    #[error("invalid request: needs \"jsonrpc\": \"2.0\" and a \"method\"")]
    NotARequest,
    #[error("method not found: {0}")]
    NoSuchMethod(String),
    #[error("invalid params: limit must be 1 to 1000")]
    BadLimit,
    #[error("invalid params: {{\"id\": RUN}} is required")]
    NoRunId,
    #[error("invalid params: no run {0}")]
    NoSuchRun(i64),
    #[error("permission denied: not root, not the agent's user and not in the socket's group")]
    PermissionDenied,
    #[error("the agent is stopping")]
    Stopping,
    #[error(transparent)]
    Journal(#[from] supercp_audit::AuditError),
    /// The loop could not make the dry run (`plan`).
    #[error(transparent)]
    Run(#[from] crate::RunError),
}

impl RpcError {
    /// The JSON-RPC error code (docs/agent.md lists them).
    pub fn code(&self) -> i64 {
        match self {
            RpcError::Parse(_) => -32700,
            RpcError::EmptyBatch | RpcError::BatchTooLarge(_) | RpcError::NotARequest => -32600,
            RpcError::NoSuchMethod(_) => -32601,
            RpcError::BadLimit | RpcError::NoRunId | RpcError::NoSuchRun(_) => -32602,
            RpcError::PermissionDenied => -32001,
            RpcError::Stopping | RpcError::Journal(_) | RpcError::Run(_) => -32603,
        }
    }

    /// Whether the same request may succeed later as it is (the agent restarting, the journal
    /// back, a transient run failure gone), or only a different request (or a new commit, for
    /// a dry run of one that does not validate) can.
    pub fn is_transient(&self) -> bool {
        match self {
            RpcError::Stopping | RpcError::Journal(_) => true,
            RpcError::Run(e) => e.is_transient(),
            RpcError::Parse(_)
            | RpcError::EmptyBatch
            | RpcError::BatchTooLarge(_)
            | RpcError::NotARequest
            | RpcError::NoSuchMethod(_)
            | RpcError::BadLimit
            | RpcError::NoRunId
            | RpcError::NoSuchRun(_)
            | RpcError::PermissionDenied => false,
        }
    }
}

/// Everything a connection needs.
pub struct Context {
    pub journal: Arc<Journal>,
    pub snapshot: SharedSnapshot,
    pub commands: mpsc::Sender<Command>,
    /// The group whose members may use the socket.
    pub group: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("control socket {path}: group {group} does not exist")]
    NoGroup { path: String, group: String },
}

/// Binds the socket at `path` (replacing a stale one), mode 0660, group `group`.
///
/// # Errors
/// When the directory cannot be made, the socket cannot be bound, or the group is unknown.
pub fn bind(path: &Path, group: Option<&str>) -> Result<(UnixListener, Option<u32>), SocketError> {
    let io = |source| SocketError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let gid = match group {
        Some(name) => Some(
            nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| SocketError::NoGroup {
                    path: path.display().to_string(),
                    group: name.to_owned(),
                })?
                .gid,
        ),
        None => None,
    };
    let listener = UnixListener::bind(path).map_err(io)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
    if let Some(gid) = gid {
        nix::unistd::chown(path, None, Some(gid))
            .map_err(|e| io(std::io::Error::from_raw_os_error(e as i32)))?;
    }
    Ok((listener, gid.map(nix::unistd::Gid::as_raw)))
}

/// Serves connections until the listener fails.
pub async fn serve(listener: UnixListener, cx: Arc<Context>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let cx = cx.clone();
                tokio::spawn(async move { connection(stream, cx).await });
            }
            Err(e) => {
                warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: UnixStream, cx: Arc<Context>) {
    let allowed = stream
        .peer_cred()
        .map(|c| permitted(c.uid(), c.gid(), c.pid(), cx.group))
        .unwrap_or(false);
    let (read, mut write) = stream.into_split();
    if !allowed {
        let refusal = error(Value::Null, &RpcError::PermissionDenied);
        let _ = write.write_all(format!("{refusal}\n").as_bytes()).await;
        info!("control socket: a client without permission was refused");
        return;
    }
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let Some(response) = handle(&line, &cx).await else {
            continue;
        };
        if write
            .write_all(format!("{response}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Root, the agent's own user, or a member (primary or supplementary) of the socket's group.
fn permitted(uid: u32, gid: u32, pid: Option<i32>, group: Option<u32>) -> bool {
    if uid == 0 || uid == nix::unistd::geteuid().as_raw() {
        return true;
    }
    let Some(group) = group else {
        return false;
    };
    if gid == group {
        return true;
    }
    // Supplementary groups of the peer, from /proc (the socket's credentials carry only one).
    let Some(pid) = pid else {
        return false;
    };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Groups:"))
                .map(|g| g.split_whitespace().any(|g| g.parse() == Ok(group)))
        })
        .unwrap_or(false)
}

/// One line (a request or a batch) → the line to answer; `None` when nothing is answered (a
/// notification, or a batch of notifications only).
pub async fn handle(line: &str, cx: &Context) -> Option<Value> {
    let request: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return Some(error(Value::Null, &RpcError::Parse(e))),
    };
    let Value::Array(batch) = request else {
        return handle_one(request, cx).await;
    };
    if batch.is_empty() {
        return Some(error(Value::Null, &RpcError::EmptyBatch));
    }
    if batch.len() > MAX_BATCH {
        return Some(error(Value::Null, &RpcError::BatchTooLarge(batch.len())));
    }
    let mut answers = Vec::new();
    for request in batch {
        answers.extend(handle_one(request, cx).await);
    }
    (!answers.is_empty()).then_some(Value::Array(answers))
}

/// One request → its response; `None` for a valid notification (no `id`), whatever its result.
async fn handle_one(request: Value, cx: &Context) -> Option<Value> {
    let id = request.get("id").cloned();
    let (Some("2.0"), Some(method)) = (
        request.get("jsonrpc").and_then(Value::as_str),
        request.get("method").and_then(Value::as_str),
    ) else {
        return Some(error(id.unwrap_or(Value::Null), &RpcError::NotARequest));
    };
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    let answer = call_method(method, &params, id.clone().unwrap_or(Value::Null), cx).await;
    id.map(|_| answer)
}

async fn call_method(method: &str, params: &Value, id: Value, cx: &Context) -> Value {
    match result_of(method, params, cx).await {
        Ok(value) => json!({ "jsonrpc": "2.0", "id": id, "result": value }),
        Err(e) => error(id, &e),
    }
}

async fn result_of(method: &str, params: &Value, cx: &Context) -> Result<Value, RpcError> {
    match method {
        "status" => status(cx).await,
        "version" => Ok(json!({
            "format_version": FORMAT_VERSION,
            "supercp": env!("CARGO_PKG_VERSION"),
        })),
        "runs.list" => {
            let limit = params.get("limit").and_then(Value::as_i64).unwrap_or(50);
            if !(1..=1000).contains(&limit) {
                return Err(RpcError::BadLimit);
            }
            let runs = cx.journal.list_runs(limit).await?;
            Ok(json!(runs
                .iter()
                .map(supercp_status::api::Run::from)
                .collect::<Vec<_>>()))
        }
        "runs.get" => {
            let run = params
                .get("id")
                .and_then(Value::as_i64)
                .ok_or(RpcError::NoRunId)?;
            let (run, steps) = cx
                .journal
                .get_run(run)
                .await?
                .ok_or(RpcError::NoSuchRun(run))?;
            Ok(json!(supercp_status::api::RunDetail::new(&run, &steps)))
        }
        "reconcile" | "plan" => {
            let (reply, answer) = oneshot::channel();
            let command = if method == "reconcile" {
                Command::Reconcile(reply)
            } else {
                Command::Plan(reply)
            };
            cx.commands
                .send(command)
                .await
                .map_err(|_| RpcError::Stopping)?;
            answer.await.map_err(|_| RpcError::Stopping)?.map(versioned)
        }
        other => Err(RpcError::NoSuchMethod(other.to_owned())),
    }
}

/// `value` with `format_version`, when it is an object (the loop's `reconcile` and `plan`
/// answers; their runs have the mirror's field names already).
fn versioned(mut value: Value) -> Value {
    if let Value::Object(fields) = &mut value {
        fields.insert("format_version".into(), json!(FORMAT_VERSION));
    }
    value
}

async fn status(cx: &Context) -> Result<Value, RpcError> {
    let snapshot = cx.snapshot.read().map(|s| s.clone()).unwrap_or_default();
    let last_run = cx
        .journal
        .list_runs(50)
        .await?
        .into_iter()
        .find(|r| r.node == snapshot.node);
    Ok(json!({
        "format_version": FORMAT_VERSION,
        "agent": snapshot,
        "last_run": last_run.as_ref().map(supercp_status::api::Run::from),
    }))
}

/// The JSON-RPC error object of `e`, answering the request `id`.
fn error(id: Value, e: &RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": e.code(), "message": e.to_string() } })
}

/// A client: sends one request and returns its response (for `supercp status`/`reconcile`).
///
/// # Errors
/// When the socket cannot be reached or answers nothing.
pub async fn call(path: &Path, method: &str, params: Value) -> std::io::Result<Value> {
    let stream = UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    let request = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    write.write_all(format!("{request}\n").as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    let line = lines.next_line().await?.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the agent closed the socket",
        )
    })?;
    serde_json::from_str(&line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Where the socket is: the node file's `agent.socket`, else `<state>/agent.sock`.
pub fn path_for(spec_socket: Option<&str>, state: &Path) -> PathBuf {
    spec_socket.map_or_else(|| state.join("agent.sock"), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context over a new journal (one recorded run); the commands go nowhere.
    async fn context(dir: &tempfile::TempDir) -> (Context, mpsc::Receiver<Command>) {
        let path = dir.path().join("audit.db");
        let journal = Journal::open(path.to_str().expect("utf-8 path"))
            .await
            .expect("open the journal");
        let run = journal
            .start_run(&supercp_audit::NewRun {
                node: "web1".into(),
                actor: "root".into(),
                repo: "/srv/hosting".into(),
                git_commit: None,
                git_author: None,
                git_dirty: None,
                git_message: None,
                git_time: None,
                trigger: "commit".into(),
                summary: "no changes".into(),
                pid: 1,
            })
            .await
            .expect("start a run");
        journal
            .finish_run(run, supercp_audit::Outcome::Succeeded, None)
            .await
            .expect("finish the run");
        let (commands, rx) = mpsc::channel(1);
        let snapshot = Arc::new(RwLock::new(Snapshot {
            node: "web1".into(),
            ..Snapshot::default()
        }));
        let cx = Context {
            journal: Arc::new(journal),
            snapshot,
            commands,
            group: None,
        };
        (cx, rx)
    }

    #[tokio::test]
    async fn a_notification_gets_no_reply_not_even_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cx, _rx) = context(&dir).await;
        for line in [
            r#"{"jsonrpc":"2.0","method":"status"}"#,
            r#"{"jsonrpc":"2.0","method":"no.such.method"}"#,
            r#"{"jsonrpc":"2.0","method":"runs.get","params":{}}"#,
        ] {
            assert_eq!(handle(line, &cx).await, None, "{line}");
        }
        // With an id, even null, it is a request: answered.
        let answer = handle(r#"{"jsonrpc":"2.0","id":null,"method":"status"}"#, &cx).await;
        assert_eq!(
            answer.expect("an answer")["result"]["agent"]["node"],
            "web1"
        );
        // Not a valid request: an error, id null, even without an id.
        let invalid = handle(r#"{"method":"status"}"#, &cx)
            .await
            .expect("an error");
        assert_eq!(invalid["error"]["code"], -32600);
        assert_eq!(invalid["id"], Value::Null);
    }

    #[tokio::test]
    async fn a_batch_is_answered_in_order_without_its_notifications() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cx, _rx) = context(&dir).await;
        let batch = r#"[
            {"jsonrpc":"2.0","id":1,"method":"status"},
            {"jsonrpc":"2.0","method":"status"},
            {"jsonrpc":"2.0","id":"two","method":"runs.list","params":{"limit":1}},
            {"foo":"bar"},
            7,
            {"jsonrpc":"2.0","id":3,"method":"nope"}
        ]"#
        .replace('\n', "");
        let answer = handle(&batch, &cx).await.expect("answers");
        let answers = answer.as_array().expect("an array");
        let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
        assert_eq!(
            ids,
            [
                &json!(1),
                &json!("two"),
                &Value::Null,
                &Value::Null,
                &json!(3)
            ]
        );
        assert_eq!(answers[0]["result"]["agent"]["node"], "web1");
        assert_eq!(answers[1]["result"][0]["summary"], "no changes");
        assert_eq!(answers[2]["error"]["code"], -32600);
        assert_eq!(answers[3]["error"]["code"], -32600);
        assert_eq!(answers[4]["error"]["code"], -32601);

        let only_notifications =
            r#"[{"jsonrpc":"2.0","method":"status"},{"jsonrpc":"2.0","method":"version"}]"#;
        assert_eq!(handle(only_notifications, &cx).await, None);
        let empty = handle("[]", &cx).await.expect("an error");
        assert_eq!(empty["error"]["code"], -32600, "{empty}");
        let request = r#"{"jsonrpc":"2.0","id":1,"method":"version"}"#;
        let big = format!("[{}]", vec![request; MAX_BATCH + 1].join(","));
        let refused = handle(&big, &cx).await.expect("an error");
        assert_eq!(refused["error"]["code"], -32600);
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("at most 100")),
            "{refused}"
        );
        let full = format!("[{}]", vec![request; MAX_BATCH].join(","));
        let answers = handle(&full, &cx).await.expect("answers");
        assert_eq!(answers.as_array().map(Vec::len), Some(MAX_BATCH));
    }

    #[tokio::test]
    async fn results_carry_their_format_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cx, _rx) = context(&dir).await;
        let call = |line: &'static str| {
            let cx = &cx;
            async move { handle(line, cx).await.expect("an answer")["result"].clone() }
        };
        let status = call(r#"{"jsonrpc":"2.0","id":1,"method":"status"}"#).await;
        assert_eq!(status["format_version"], FORMAT_VERSION);
        assert_eq!(status["last_run"]["outcome"], "succeeded", "{status}");
        let version = call(r#"{"jsonrpc":"2.0","id":1,"method":"version"}"#).await;
        assert_eq!(version["format_version"], 1);
        assert_eq!(version["supercp"], env!("CARGO_PKG_VERSION"));
        let runs = call(r#"{"jsonrpc":"2.0","id":1,"method":"runs.list"}"#).await;
        let id = runs[0]["id"].as_i64().expect("a run id");
        let line =
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"runs.get","params":{{"id":{id}}}}}"#);
        let run = handle(&line, &cx).await.expect("an answer");
        assert_eq!(run["result"]["format_version"], 1);
        assert_eq!(run["result"]["run"]["id"], id);
        assert_eq!(
            versioned(json!({"ok": true, "run": null})),
            json!({"format_version": FORMAT_VERSION, "ok": true, "run": null})
        );
    }

    #[tokio::test]
    async fn errors_keep_their_codes_and_messages_and_say_whether_a_retry_may_help() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cx, rx) = context(&dir).await;
        for (line, code, message) in [
            ("{", -32700, "parse error: "),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"runs.get","params":{}}"#,
                -32602,
                r#"invalid params: {"id": RUN} is required"#,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"runs.get","params":{"id":99}}"#,
                -32602,
                "invalid params: no run 99",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"runs.list","params":{"limit":0}}"#,
                -32602,
                "invalid params: limit must be 1 to 1000",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"nope"}"#,
                -32601,
                "method not found: nope",
            ),
        ] {
            let answer = handle(line, &cx).await.expect("an error");
            assert_eq!(answer["error"]["code"], code, "{answer}");
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message)),
                "{answer}"
            );
        }
        // The loop is gone: the agent is stopping, which a later request may get past.
        drop(rx);
        let answer = handle(r#"{"jsonrpc":"2.0","id":1,"method":"reconcile"}"#, &cx)
            .await
            .expect("an error");
        assert_eq!(
            answer["error"],
            json!({"code": -32603, "message": "the agent is stopping"})
        );
        assert!(RpcError::Stopping.is_transient());
        assert!(!RpcError::NoSuchRun(99).is_transient());
        assert!(!RpcError::Run(crate::RunError::Invalid(Vec::new())).is_transient());
    }

    #[tokio::test]
    async fn over_the_socket_a_notification_is_skipped_and_the_next_request_answered() {
        use tokio::io::AsyncBufReadExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let (cx, _rx) = context(&dir).await;
        let path = dir.path().join("agent.sock");
        let (listener, _) = bind(&path, None).expect("bind the socket");
        let server = tokio::spawn(serve(listener, Arc::new(cx)));
        let stream = UnixStream::connect(&path).await.expect("connect");
        let (read, mut write) = stream.into_split();
        write
            .write_all(
                concat!(
                    r#"{"jsonrpc":"2.0","method":"status"}"#,
                    "\n",
                    r#"[{"jsonrpc":"2.0","method":"status"}]"#,
                    "\n",
                    r#"{"jsonrpc":"2.0","id":42,"method":"version"}"#,
                    "\n"
                )
                .as_bytes(),
            )
            .await
            .expect("send");
        let mut lines = BufReader::new(read).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
            .await
            .expect("an answer in time")
            .expect("read")
            .expect("a line");
        let first: Value = serde_json::from_str(&first).expect("json");
        assert_eq!(
            first["id"], 42,
            "the first line answers the request: {first}"
        );
        server.abort();
    }
}
