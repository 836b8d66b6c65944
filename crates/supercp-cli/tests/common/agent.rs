//! Helpers of the agent tests: the agent as a child process, a Git remote holding the
//! quickstart, and waiting for a run in the journal.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use git2::{Oid, Repository, Signature};

use super::Prefix;

/// The agent as a child process, stopped with SIGTERM on drop.
pub struct Agent(pub Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

impl Agent {
    /// `supercp --state STATE agent --node NODE [ARGS]` with its log in `<prefix>/agent.log`
    /// and the environment given.
    pub fn start(
        p: &Prefix,
        node: &std::path::Path,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Agent {
        let log = fs::File::create(p.dir.path().join("agent.log")).expect("log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_supercp"));
        command
            .arg("--state")
            .arg(&p.state)
            .args(["agent", "--node"])
            .arg(node)
            .args(args)
            .stdin(Stdio::null())
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        Agent(command.spawn().expect("the agent starts"))
    }
}

/// A repository on branch `main` holding a copy of examples/quickstart (not committed yet).
pub fn quickstart_remote(dir: &std::path::Path) -> Repository {
    let mut init = git2::RepositoryInitOptions::new();
    init.initial_head("main");
    let repo = Repository::init_opts(dir, &init).expect("init");
    super::copy_dir(&super::workspace().join("examples/quickstart"), dir);
    repo
}

pub fn commit_all(repo: &Repository, message: &str) -> Oid {
    let mut index = repo.index().expect("index");
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .expect("add");
    index.update_all(["*"], None).expect("stage deletions");
    index.write().expect("write index");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let who = Signature::now("Test", "test@example.test").expect("signature");
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &who, &who, message, &tree, &parents)
        .expect("commit")
}

/// Polls the journal (through `supercp audit --format json`) until `pick` finds a run.
pub fn wait_for_run(
    p: &Prefix,
    what: &str,
    pick: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let run = p.supercp(&["audit", "--format", "json"]);
        if run.code() == 0 {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&run.stdout()) {
                // A run still going is not an answer yet.
                if let Some(found) = json["runs"]
                    .as_array()
                    .and_then(|runs| runs.iter().find(|r| r["outcome"] != "running" && pick(r)))
                {
                    return found.clone();
                }
                if start.elapsed() > Duration::from_secs(30) {
                    let log =
                        fs::read_to_string(p.dir.path().join("agent.log")).unwrap_or_default();
                    panic!("{what}: no such run after 30 s; runs:\n{json:#}\nagent log:\n{log}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn vhost(p: &Prefix, domain: &str) -> std::path::PathBuf {
    p.sandbox()
        .join("etc/nginx/sites-enabled")
        .join(format!("{domain}.conf"))
}

/// A plain HTTP/1.1 GET on 127.0.0.1; the whole answer (status line, headers, body).
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("the status page listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    answer
}
