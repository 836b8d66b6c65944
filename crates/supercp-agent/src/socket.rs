//! The agent's local control socket: JSON-RPC 2.0 over a Unix stream socket, one request per
//! line and one response per line.
//!
//! Methods: `status`, `reconcile` (run now: the same path as a new commit), `runs.list`
//! (`{"limit": N}`), `runs.get` (`{"id": N}`), `plan` (a dry run of the current checkout).
//!
//! # Guarantees
//! - The socket is mode 0660, owned by root (the agent's user) and the node file's group. A
//!   client is served only when its peer credentials show root, the agent's own user, or a
//!   member of that group; anyone else gets an error and the connection is closed.
//! - Nothing changes the node through the socket except `reconcile`, which the agent's loop
//!   runs exactly as it runs a new commit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};
use supercp_audit::Journal;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

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
    Reconcile(oneshot::Sender<Result<Value, String>>),
    Plan(oneshot::Sender<Result<Value, String>>),
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
        let refusal = error(
            Value::Null,
            -32001,
            "permission denied: not root, not the agent's user and not in the socket's group",
        );
        let _ = write.write_all(format!("{refusal}\n").as_bytes()).await;
        info!("control socket: a client without permission was refused");
        return;
    }
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let response = handle(&line, &cx).await;
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

/// One JSON-RPC request line → one response.
pub async fn handle(line: &str, cx: &Context) -> Value {
    let request: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return error(Value::Null, -32700, &format!("parse error: {e}")),
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let (Some("2.0"), Some(method)) = (
        request.get("jsonrpc").and_then(Value::as_str),
        request.get("method").and_then(Value::as_str),
    ) else {
        return error(
            id,
            -32600,
            "invalid request: needs \"jsonrpc\": \"2.0\" and a \"method\"",
        );
    };
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    let result = match method {
        "status" => status(cx).await,
        "runs.list" => {
            let limit = params.get("limit").and_then(Value::as_i64).unwrap_or(50);
            if !(1..=1000).contains(&limit) {
                return error(id, -32602, "invalid params: limit must be 1 to 1000");
            }
            cx.journal
                .list_runs(limit)
                .await
                .map(|runs| json!(runs))
                .map_err(|e| e.to_string())
        }
        "runs.get" => {
            let Some(run) = params.get("id").and_then(Value::as_i64) else {
                return error(id, -32602, "invalid params: {\"id\": RUN} is required");
            };
            match cx.journal.get_run(run).await {
                Ok(Some((run, steps))) => Ok(json!({ "run": run, "steps": steps })),
                Ok(None) => return error(id, -32602, &format!("invalid params: no run {run}")),
                Err(e) => Err(e.to_string()),
            }
        }
        "reconcile" | "plan" => {
            let (reply, answer) = oneshot::channel();
            let command = if method == "reconcile" {
                Command::Reconcile(reply)
            } else {
                Command::Plan(reply)
            };
            if cx.commands.send(command).await.is_err() {
                return error(id, -32603, "the agent is stopping");
            }
            answer
                .await
                .unwrap_or_else(|_| Err("the agent is stopping".to_owned()))
        }
        other => return error(id, -32601, &format!("method not found: {other}")),
    };
    match result {
        Ok(value) => json!({ "jsonrpc": "2.0", "id": id, "result": value }),
        Err(message) => error(id, -32603, &message),
    }
}

async fn status(cx: &Context) -> Result<Value, String> {
    let snapshot = cx.snapshot.read().map(|s| s.clone()).unwrap_or_default();
    let last_run = cx
        .journal
        .list_runs(50)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|r| r.node == snapshot.node);
    Ok(json!({ "agent": snapshot, "last_run": last_run }))
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
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
