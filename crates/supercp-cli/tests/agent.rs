//! `supercp agent` against a real Git repository as its remote (file://): it applies commit after
//! commit without restarting, records each run with its SHA, author, message and trigger, puts
//! a hand edit back on its drift scan, and refuses a head that rewrites history.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::agent::{commit_all, http_get, quickstart_remote, vhost, wait_for_run, Agent};
use common::Prefix;

#[test]
fn agent_follows_a_git_remote_commit_by_commit_puts_drift_back_and_refuses_rewritten_history() {
    let mut p = Prefix::empty();
    let upstream_dir = p.dir.path().join("upstream");
    let upstream = quickstart_remote(&upstream_dir);
    let c1 = commit_all(&upstream, "Quickstart: acme and globex");
    let socket = p.dir.path().join("run/agent.sock");
    let status_port = supercp_testkit::services::free_port();
    p.node_with(&format!(
        "  agent:\n    git: {{url: \"file://{}\", branch: main, pollSeconds: 1}}\n    driftScanSeconds: 2\n    socket: {}\n    socketGroup: root\n    statusBind: \"127.0.0.1:{}\"\n",
        upstream_dir.display(),
        socket.display(),
        status_port
    ));
    let node = p.node.clone().expect("node file");
    // systemd's side of Type=notify: a datagram socket named by NOTIFY_SOCKET.
    let notify_path = p.dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut agent = Agent::start(
        &p,
        &node,
        &[],
        &[
            ("NOTIFY_SOCKET", notify_path.as_os_str()),
            ("WATCHDOG_USEC", std::ffi::OsStr::new("600000000")),
        ],
    );

    // Commit 1 is applied and recorded with its SHA, author, message and trigger.
    let run = wait_for_run(&p, "commit 1 applied", |r| {
        r["git_commit"] == c1.to_string() && r["outcome"] == "succeeded"
    });
    assert_eq!(run["trigger"], "commit");
    assert_eq!(run["git_author"], "Test <test@example.test>");
    assert_eq!(run["git_message"], "Quickstart: acme and globex");
    let text = p.supercp(&["audit", "--run", &run["id"].to_string()]);
    assert!(
        text.stdout().contains(&format!(
            "commit {c1}  Test <test@example.test>  committed 20"
        )),
        "the text shows the commit time: {}",
        text.described
    );
    assert!(vhost(&p, "acme.test").is_file());
    let mut buf = [0u8; 64];
    let n = notify.recv(&mut buf).expect("a notification");
    assert_eq!(&buf[..n], b"READY=1", "ready after the first cycle");
    let n = notify.recv(&mut buf).expect("a notification");
    assert_eq!(&buf[..n], b"WATCHDOG=1", "the watchdog after every cycle");

    // Commit 2 (a new domain) is applied by the same process.
    fs::write(
        upstream_dir.join("extra.yaml"),
        "apiVersion: supercp/v1\nkind: Domain\nmetadata: {name: new.acme.test}\nspec: {tenant: acme}\n",
    )
    .expect("write");
    let c2 = commit_all(&upstream, "Add new.acme.test");
    wait_for_run(&p, "commit 2 applied", |r| {
        r["git_commit"] == c2.to_string() && r["outcome"] == "succeeded"
    });
    assert!(
        vhost(&p, "new.acme.test").is_file(),
        "commit 2's site exists"
    );
    assert!(
        agent.0.try_wait().expect("wait").is_none(),
        "the agent did not restart"
    );

    // The status page shows the commit applied.
    let page = http_get(status_port, "/");
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains(&c2.to_string()[..12]),
        "the overview shows commit 2: {page}"
    );
    let api = http_get(status_port, "/api/v1/status");
    assert!(api.contains(&c2.to_string()), "{api}");

    // The control socket: every method answers, bad requests get JSON-RPC errors.
    check_socket(&p, &socket, &c2.to_string());

    // SIGHUP: a reconcile now, recorded as such.
    let pid = nix::unistd::Pid::from_raw(agent.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("hup");
    let hup = wait_for_run(&p, "the SIGHUP reconcile", |r| r["trigger"] == "signal");
    assert_eq!(hup["outcome"], "succeeded");
    assert_eq!(hup["git_commit"], c2.to_string());

    // A hand edit is put back by the drift scan, and that run says drift.
    let managed = vhost(&p, "acme.test");
    let good = fs::read_to_string(&managed).expect("read");
    fs::write(&managed, format!("{good}# hand edit\n")).expect("edit");
    let drift = wait_for_run(&p, "the drift scan", |r| {
        r["trigger"] == "drift" && r["summary"] == "0 to create, 1 to update, 0 to delete"
    });
    assert_eq!(drift["outcome"], "succeeded");
    assert_eq!(drift["git_commit"], c2.to_string());
    assert_eq!(fs::read_to_string(&managed).expect("read"), good);

    // A commit that removes the domain: its vhost goes (an incremental run prunes it).
    fs::remove_file(upstream_dir.join("extra.yaml")).expect("rm");
    let c2b = commit_all(&upstream, "Remove new.acme.test");
    let removed = wait_for_run(&p, "commit 2b applied", |r| {
        r["git_commit"] == c2b.to_string() && r["outcome"] == "succeeded"
    });
    assert!(
        removed["summary"]
            .as_str()
            .is_some_and(|s| s.ends_with("1 to delete")),
        "{removed}"
    );
    assert!(!vhost(&p, "new.acme.test").exists(), "its vhost is gone");

    // History rewritten: main goes back to commit 1 plus another commit. Refused, recorded,
    // and the node stays as commit 2b left it.
    upstream.set_head_detached(c1).expect("detach");
    upstream
        .reference("refs/heads/main", c1, true, "rewrite")
        .expect("reset main");
    upstream.set_head("refs/heads/main").expect("head");
    let mut checkout = git2::build::CheckoutBuilder::new();
    upstream
        .checkout_head(Some(checkout.force().remove_untracked(true)))
        .expect("checkout");
    assert!(!upstream_dir.join("extra.yaml").exists());
    fs::write(upstream_dir.join("note.yaml"), "# not a resource\n").expect("write");
    let c3 = commit_all(&upstream, "Rewritten history");
    let refused = wait_for_run(&p, "the rewritten head refused", |r| {
        r["git_commit"] == c3.to_string()
    });
    assert_eq!(refused["outcome"], "failed");
    assert_eq!(refused["git_message"], "Rewritten history");
    assert!(
        refused["error"].as_str().is_some_and(|e| e
            .contains("does not descend from the last applied commit")
            && e.contains(&c2b.to_string())),
        "{refused}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(vhost(&p, "acme.test").is_file(), "the node is as it was");
    assert!(
        !p.state.join("checkout/note.yaml").exists(),
        "the refused commit was never checked out"
    );
    assert!(agent.0.try_wait().expect("wait").is_none(), "still running");

    // SIGTERM stops it cleanly.
    let pid = nix::unistd::Pid::from_raw(agent.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    let status = agent.0.wait().expect("wait");
    assert!(
        status.success(),
        "{status}: {}",
        fs::read_to_string(p.dir.path().join("agent.log")).unwrap_or_default()
    );
}

/// One JSON-RPC exchange on the agent's socket.
fn rpc(socket: &std::path::Path, line: &str) -> serde_json::Value {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    stream
        .write_all(format!("{line}\n").as_bytes())
        .expect("send");
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .expect("an answer");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

fn check_socket(p: &Prefix, socket: &std::path::Path, applied: &str) {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(socket).expect("socket").permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "the socket is 0660");

    let status = rpc(socket, r#"{"jsonrpc":"2.0","id":1,"method":"status"}"#);
    assert_eq!(status["id"], 1);
    assert_eq!(
        status["result"]["agent"]["last_applied_commit"], applied,
        "{status}"
    );
    assert_eq!(status["result"]["agent"]["node"], "sandbox");
    let runs = rpc(
        socket,
        r#"{"jsonrpc":"2.0","id":2,"method":"runs.list","params":{"limit":3}}"#,
    );
    let list = runs["result"].as_array().expect("a list of runs");
    assert!(!list.is_empty() && list.len() <= 3, "{runs}");
    let id = list[0]["id"].as_i64().expect("run id");
    let run = rpc(
        socket,
        &format!(r#"{{"jsonrpc":"2.0","id":3,"method":"runs.get","params":{{"id":{id}}}}}"#),
    );
    assert_eq!(run["result"]["run"]["id"], id, "{run}");
    assert!(run["result"]["steps"].is_array(), "{run}");
    let plan = rpc(socket, r#"{"jsonrpc":"2.0","id":4,"method":"plan"}"#);
    assert_eq!(
        plan["result"]["summary"], "0 to create, 0 to update, 0 to delete",
        "{plan}"
    );

    let malformed = rpc(socket, "{not json");
    assert_eq!(malformed["error"]["code"], -32700, "{malformed}");
    let no_version = rpc(socket, r#"{"id":5,"method":"status"}"#);
    assert_eq!(no_version["error"]["code"], -32600, "{no_version}");
    let unknown = rpc(socket, r#"{"jsonrpc":"2.0","id":6,"method":"rm -rf"}"#);
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
    let bad = rpc(
        socket,
        r#"{"jsonrpc":"2.0","id":7,"method":"runs.get","params":{}}"#,
    );
    assert_eq!(bad["error"]["code"], -32602, "{bad}");

    // The CLI talks to the agent through it.
    let node = p.node.clone().expect("node");
    let out = p.supercp(&["status", "--node", &node.to_string_lossy()]);
    out.expect_code(0);
    assert!(
        out.stdout()
            .contains(&format!("last applied commit  {applied}")),
        "{}",
        out.described
    );
    let out = p.supercp(&["reconcile", "--node", &node.to_string_lossy()]);
    out.expect_code(0);
    assert!(out.stderr().contains("(reconcile)"), "{}", out.described);
    wait_for_run(p, "the socket's reconcile", |r| r["trigger"] == "reconcile");

    // A user outside the socket's group (root) is refused.
    if supercp_testkit::services::is_root() {
        use std::os::unix::process::CommandExt;
        for dir in [p.dir.path().to_path_buf(), p.state.clone()] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("getpwnam")
            .expect("nobody");
        let out = Command::new(env!("CARGO_BIN_EXE_supercp"))
            .arg("--state")
            .arg(&p.state)
            .args(["reconcile", "--node", &node.to_string_lossy()])
            .uid(nobody.uid.as_raw())
            .gid(nobody.gid.as_raw())
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no agent answers"),
            "{out:?}"
        );
    }
}

/// `git` with a private HOME and no system config, every argument separate.
fn git(home: &std::path::Path, repo: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=Test", "-c", "user.email=t@example.test"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Commits everything in `repo`, signed with `key` (SSH signature) or unsigned.
fn git_commit(
    home: &std::path::Path,
    repo: &std::path::Path,
    key: Option<&std::path::Path>,
    message: &str,
) -> String {
    git(home, repo, &["add", "-A"]);
    match key {
        Some(key) => {
            let key = format!("user.signingkey={}", key.display());
            git(
                home,
                repo,
                &[
                    "-c",
                    "gpg.format=ssh",
                    "-c",
                    &key,
                    "commit",
                    "-q",
                    "-S",
                    "-m",
                    message,
                ],
            );
        }
        None => {
            git(home, repo, &["commit", "-q", "-m", message]);
        }
    }
    git(home, repo, &["rev-parse", "HEAD"])
}

#[test]
fn agent_applies_only_head_commits_signed_by_an_allowed_key() {
    let test = "agent_applies_only_head_commits_signed_by_an_allowed_key";
    if supercp_testkit::services::require("ssh-keygen", test).is_none()
        || supercp_testkit::services::require("git", test).is_none()
    {
        return;
    }
    let mut p = Prefix::empty();
    let home = p.dir.path().join("home");
    fs::create_dir_all(&home).expect("home");
    let key = |name: &str| {
        let path = p.dir.path().join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&path)
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success(), "{out:?}");
        path
    };
    let (trusted, stranger) = (key("trusted"), key("stranger"));
    let public = fs::read_to_string(trusted.with_extension("pub")).expect("pub");
    let signers = p.dir.path().join("allowed_signers");
    fs::write(
        &signers,
        format!("t@example.test namespaces=\"git\" {public}"),
    )
    .expect("write");
    let upstream = p.dir.path().join("upstream");
    fs::create_dir_all(&upstream).expect("mkdir");
    git(&home, &upstream, &["init", "-q", "-b", "main"]);
    common::copy_dir(&common::workspace().join("examples/quickstart"), &upstream);
    let c1 = git_commit(
        &home,
        &upstream,
        Some(&trusted),
        "signed by the trusted key",
    );
    p.node_with(&format!(
        "  agent:\n    git: {{url: \"file://{}\", branch: main, pollSeconds: 1, requireSignedCommits: true, allowedSigners: \"{}\"}}\n    driftScanSeconds: 300\n    statusBind: \"\"\n",
        upstream.display(),
        signers.display()
    ));
    let _agent = Agent::start(&p, p.node.as_ref().expect("node"), &[], &[]);
    wait_for_run(&p, "the signed commit applied", |r| {
        r["git_commit"] == c1.as_str() && r["outcome"] == "succeeded"
    });

    let extra = "apiVersion: supercp/v1\nkind: Domain\nmetadata: {name: new.acme.test}\nspec: {tenant: acme}\n";
    fs::write(upstream.join("extra.yaml"), extra).expect("write");
    let c2 = git_commit(&home, &upstream, None, "unsigned");
    let refused = wait_for_run(&p, "the unsigned commit refused", |r| {
        r["git_commit"] == c2.as_str()
    });
    assert_eq!(refused["outcome"], "failed");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused commit")),
        "{refused}"
    );

    fs::write(
        upstream.join("extra.yaml"),
        extra.replace("new.acme", "other.acme"),
    )
    .expect("write");
    let c3 = git_commit(&home, &upstream, Some(&stranger), "signed by a stranger");
    let refused = wait_for_run(&p, "the stranger's commit refused", |r| {
        r["git_commit"] == c3.as_str()
    });
    assert_eq!(refused["outcome"], "failed");
    assert!(!vhost(&p, "new.acme.test").exists() && !vhost(&p, "other.acme.test").exists());

    // A trusted signature on the head vouches for its tree: applied.
    fs::write(upstream.join("README.txt"), "reviewed\n").expect("write");
    let c4 = git_commit(&home, &upstream, Some(&trusted), "signed again");
    wait_for_run(&p, "the trusted head applied", |r| {
        r["git_commit"] == c4.as_str() && r["outcome"] == "succeeded"
    });
    assert!(vhost(&p, "other.acme.test").is_file());
    // Our verdicts agree with git's on the same commits.
    let allowed = format!("gpg.ssh.allowedSignersFile={}", signers.display());
    for (id, ok) in [(&c1, true), (&c2, false), (&c3, false), (&c4, true)] {
        let out = Command::new("git")
            .env("HOME", &home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .arg("-C")
            .arg(&upstream)
            .args(["-c", &allowed, "verify-commit", id])
            .output()
            .expect("git verify-commit");
        assert_eq!(out.status.success(), ok, "git verify-commit {id}: {out:?}");
    }
}

#[test]
fn agent_in_local_mode_converges_a_directory_when_its_files_change() {
    let mut p = Prefix::with_example("quickstart");
    p.node_with("  agent:\n    driftScanSeconds: 300\n    statusBind: \"\"\n");
    let repo = [std::ffi::OsStr::new("--repo"), p.repo.as_os_str()];
    let _agent = Agent::start(&p, p.node.as_ref().expect("node"), &repo, &[]);
    // The first run comes on its own.
    let first = wait_for_run(&p, "the first run", |r| r["trigger"] == "change");
    assert_eq!(first["outcome"], "succeeded", "{first}");
    assert!(vhost(&p, "acme.test").is_file());
    // A new file in the directory is applied on its own: no signal, no scan (300 s away).
    fs::write(
        p.repo.join("extra.yaml"),
        "apiVersion: supercp/v1\nkind: Domain\nmetadata: {name: new.acme.test}\nspec: {tenant: acme}\n",
    )
    .expect("write");
    let run = wait_for_run(&p, "the change applied", |r| {
        r["trigger"] == "change" && r["summary"] != first["summary"] && r["id"] != first["id"]
    });
    assert_eq!(run["outcome"], "succeeded", "{run}");
    assert!(vhost(&p, "new.acme.test").is_file());
}

#[test]
fn an_incremental_run_that_removes_too_much_of_the_node_is_refused_and_deletes_nothing() {
    let mut p = Prefix::with_example("quickstart");
    p.node_with("  agent:\n    driftScanSeconds: 300\n    statusBind: \"\"\n");
    let repo = [std::ffi::OsStr::new("--repo"), p.repo.as_os_str()];
    let info = [("RUST_LOG", std::ffi::OsStr::new("info"))];
    let _agent = Agent::start(&p, p.node.as_ref().expect("node"), &repo, &info);
    let first = wait_for_run(&p, "the first run", |r| r["trigger"] == "change");
    assert_eq!(first["outcome"], "succeeded", "{first}");
    // Globex leaves the repo: its Tenant (one of two may go) and two of the three Domains.
    fs::remove_file(p.repo.join("globex.yaml")).expect("rm");
    let refused = wait_for_run(&p, "the removal refused", |r| r["id"] != first["id"]);
    assert_eq!(refused["outcome"], "failed", "{refused}");
    assert!(
        refused["error"].as_str().is_some_and(|e| e.starts_with(
            "the plan would delete 2 of 3 Domain resources (67 %), over the limit of 25 %"
        )),
        "{refused}"
    );
    // The run was an incremental one: the engine refused a part, guarding the whole node.
    let log = fs::read_to_string(p.dir.path().join("agent.log")).expect("log");
    assert!(log.contains("incremental reconcile"), "{log}");
    for domain in ["globex.test", "static.globex.test"] {
        assert!(
            vhost(&p, domain).is_file(),
            "{domain}'s vhost is still there"
        );
    }
}

/// A node file: the sandbox node renamed, with other roles, a shared journal and an agent.
fn fleet_node(
    p: &Prefix,
    name: &str,
    roles: &str,
    journal: &str,
    remote: &std::path::Path,
    status: &str,
) -> std::path::PathBuf {
    let sandbox = fs::read_to_string(common::workspace().join("examples/nodes/sandbox.yaml"))
        .expect("sandbox node");
    let text = sandbox
        .replacen("name: sandbox", &format!("name: {name}"), 1)
        .replacen("roles: [web]", &format!("roles: [{roles}]"), 1)
        .replacen("sqlite:{state}/audit.db", journal, 1)
        .replacen(
            "spec:\n",
            &format!(
                "spec:\n  agent:\n    git: {{url: \"file://{}\", branch: main, pollSeconds: 1}}\n    driftScanSeconds: 300\n    statusBind: \"{status}\"\n",
                remote.display()
            ),
            1,
        );
    let path = p.dir.path().join(format!("{name}.yaml"));
    common::write(&path, &text);
    path
}

#[test]
fn a_fleet_of_two_agents_on_one_postgresql_each_converges_only_its_roles() {
    let test = "a_fleet_of_two_agents_on_one_postgresql";
    let Some(pg) = supercp_testkit::postgres::Postgres::start(test) else {
        return;
    };
    let journal = pg.create_database("fleet");
    let (mut web, mut dns) = (Prefix::empty(), Prefix::empty());
    let upstream_dir = web.dir.path().join("upstream");
    let upstream = quickstart_remote(&upstream_dir);
    let c1 = commit_all(&upstream, "Quickstart");
    let port = supercp_testkit::services::free_port();
    let web_node = fleet_node(
        &web,
        "web1",
        "web",
        &journal,
        &upstream_dir,
        &format!("127.0.0.1:{port}"),
    );
    let dns_node = fleet_node(&dns, "dns1", "dns", &journal, &upstream_dir, "");
    // The dns node converges the quickstart's zone into a real PowerDNS.
    let Some(pdns) = supercp_testkit::pdns::Pdns::start(test) else {
        return;
    };
    let text = fs::read_to_string(&dns_node).expect("node file").replacen(
        "spec:\n",
        &format!(
            "spec:\n  dns:\n    apiUrl: {}\n    apiKeyFile: {}\n    nameservers: [ns1.example.net.]\n",
            pdns.api_url(),
            pdns.api_key_file.display()
        ),
        1,
    );
    common::write(&dns_node, &text);
    web.node = Some(web_node.clone());
    dns.node = Some(dns_node.clone());
    let _web_agent = Agent::start(&web, &web_node, &[], &[]);
    let _dns_agent = Agent::start(&dns, &dns_node, &[], &[]);
    // One journal holds both nodes' runs of the same commit.
    for node in ["web1", "dns1"] {
        wait_for_run(&web, &format!("{node} applied commit 1"), |r| {
            r["node"] == node && r["git_commit"] == c1.to_string() && r["outcome"] == "succeeded"
        });
    }
    assert!(
        vhost(&web, "acme.test").is_file(),
        "the web node serves the sites"
    );
    assert!(
        !dns.sandbox().join("etc/nginx").exists(),
        "the dns node holds none of the web role's objects"
    );
    assert_eq!(
        pdns.dig("_sip._tcp.acme.test", "SRV"),
        vec!["10 60 5060 sip.acme.test."],
        "the dns node serves the zones"
    );
    // Either status page shows the whole fleet.
    let page = http_get(port, "/");
    assert!(
        page.contains("<h2>Fleet</h2>") && page.contains("dns1") && page.contains("web1"),
        "{page}"
    );
}

/// Waits until the agent's log holds `needle`.
fn wait_for_log(p: &Prefix, needle: &str) {
    let start = std::time::Instant::now();
    loop {
        let log = fs::read_to_string(p.dir.path().join("agent.log")).unwrap_or_default();
        if log.contains(needle) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no {needle:?} in the agent's log after 30 s:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The runs of the journal, newest first.
fn runs(p: &Prefix) -> Vec<serde_json::Value> {
    let out = p.supercp(&["audit", "--format", "json"]);
    out.expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
    json["runs"].as_array().cloned().unwrap_or_default()
}

#[test]
fn agent_answers_healthz_and_the_socket_while_an_apply_is_held_open() {
    let mut p = Prefix::with_example("quickstart");
    let socket = p.dir.path().join("agent.sock");
    let port = supercp_testkit::services::free_port();
    let node = p.node_with(&format!(
        "  agent:\n    driftScanSeconds: 300\n    socket: {}\n    statusBind: \"127.0.0.1:{port}\"\n",
        socket.display()
    ));
    let repo = [std::ffi::OsStr::new("--repo"), p.repo.as_os_str()];
    let pause = [("SUPERCP_TEST_PAUSE_BEFORE_STEP", std::ffi::OsStr::new("0"))];
    let mut agent = Agent::start(&p, &node, &repo, &pause);
    // The first run stops before its first step and stays there (the hook sleeps the thread).
    wait_for_log(&p, "paused before step 0");
    // Answers come promptly; timings are the benchmark's (docs/performance.md), the bound
    // here is only generous.
    for _ in 0..5 {
        let asked = std::time::Instant::now();
        let health = http_get(port, "/healthz");
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        let status = rpc(&socket, r#"{"jsonrpc":"2.0","id":1,"method":"status"}"#);
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "answered after {:?}",
            asked.elapsed()
        );
        assert_eq!(status["result"]["agent"]["node"], "sandbox", "{status}");
        assert_eq!(
            status["result"]["last_run"]["outcome"], "running",
            "the apply is still held open: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A run held open forever does not stop on SIGTERM (that waits for the run): kill it.
    agent.0.kill().expect("kill");
    agent.0.wait().expect("wait");
}

#[test]
fn a_gate_check_that_hangs_is_killed_at_its_timeout_and_the_run_fails_naming_it() {
    let mut p = Prefix::with_example("quickstart");
    let hang = p.dir.path().join("hang.sh");
    let pid_file = p.dir.path().join("hang.pid");
    fs::write(
        &hang,
        format!(
            "#!/bin/sh\nsleep 600 &\necho $! > {}\nwait\n",
            pid_file.display()
        ),
    )
    .expect("script");
    let node = p.node_with("  agent:\n    driftScanSeconds: 300\n    statusBind: \"\"\n");
    let text = fs::read_to_string(&node).expect("node");
    let nginx_check = text
        .lines()
        .find(|l| l.trim_start().starts_with("check: [nginx"))
        .expect("the nginx gate's check")
        .to_owned();
    let text = text.replacen(
        &nginx_check,
        &format!("      check: [sh, \"{}\"]", hang.display()),
        1,
    );
    fs::write(&node, text).expect("node");
    let repo = [std::ffi::OsStr::new("--repo"), p.repo.as_os_str()];
    let timeout = [("SUPERCP_COMMAND_TIMEOUT_SECONDS", std::ffi::OsStr::new("2"))];
    let _agent = Agent::start(&p, &node, &repo, &timeout);
    let run = wait_for_run(&p, "the run with the hanging check", |r| {
        r["trigger"] == "change"
    });
    assert_eq!(run["outcome"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "gate nginx: `sh {}` did not finish within 2 s; its process group was killed",
            hang.display()
        )),
        "{run}"
    );
    assert!(
        !vhost(&p, "acme.test").exists(),
        "the batch of the check that never passed was put back"
    );
    // What the check started was killed with it.
    let sleep: i32 = fs::read_to_string(&pid_file)
        .expect("the script ran")
        .trim()
        .parse()
        .expect("a pid");
    let start = std::time::Instant::now();
    while std::path::Path::new(&format!("/proc/{sleep}")).exists()
        && !fs::read_to_string(format!("/proc/{sleep}/stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the check's sleep still runs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_invalid_commit_makes_exactly_one_failed_run_until_the_next_commit_or_node_file() {
    let mut p = Prefix::empty();
    let upstream_dir = p.dir.path().join("upstream");
    let upstream = quickstart_remote(&upstream_dir);
    let c1 = commit_all(&upstream, "Quickstart");
    let node = p.node_with(&format!(
        "  agent:\n    git: {{url: \"file://{}\", branch: main, pollSeconds: 1}}\n    driftScanSeconds: 300\n    statusBind: \"\"\n",
        upstream_dir.display()
    ));
    let _agent = Agent::start(&p, &node, &[], &[]);
    wait_for_run(&p, "commit 1 applied", |r| {
        r["git_commit"] == c1.to_string() && r["outcome"] == "succeeded"
    });
    // A Domain of a tenant that does not exist: the commit does not validate.
    fs::write(
        upstream_dir.join("bad.yaml"),
        "apiVersion: supercp/v1\nkind: Domain\nmetadata: {name: bad.acme.test}\nspec: {tenant: nobody}\n",
    )
    .expect("write");
    let c2 = commit_all(&upstream, "A domain of no tenant");
    let failed = wait_for_run(&p, "the invalid commit recorded", |r| {
        r["git_commit"] == c2.to_string()
    });
    assert_eq!(failed["outcome"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("bad.yaml")),
        "{failed}"
    );
    let of_c2 = |p: &Prefix| {
        runs(p)
            .iter()
            .filter(|r| r["git_commit"] == c2.to_string())
            .count()
    };
    // Polls every second and backoff steps of 2 and 4 s would have run it again by now.
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(of_c2(&p), 1, "recorded once: {:#?}", runs(&p));
    // A change of the node file is a reason to try the same commit again: once more.
    let text = fs::read_to_string(&node).expect("node");
    fs::write(&node, format!("{text}# edited\n")).expect("node");
    let start = std::time::Instant::now();
    while of_c2(&p) < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "not tried again");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(of_c2(&p), 2, "once per node file: {:#?}", runs(&p));
    // The next commit is applied.
    fs::remove_file(upstream_dir.join("bad.yaml")).expect("rm");
    let c3 = commit_all(&upstream, "Remove the bad domain");
    wait_for_run(&p, "the fixed commit applied", |r| {
        r["git_commit"] == c3.to_string() && r["outcome"] == "succeeded"
    });
    assert_eq!(of_c2(&p), 2);
}

/// The resource API's `observed` map for a Domain, from the agent's status page.
fn observed(port: u16, domain: &str) -> serde_json::Map<String, serde_json::Value> {
    let reply = http_get(port, &format!("/api/v1/resources/Domain/{domain}"));
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {reply}"));
    json["observed"].as_object().cloned().unwrap_or_default()
}

#[test]
fn after_a_failed_run_the_status_page_shows_each_object_as_that_run_observed_it() {
    let mut p = Prefix::with_example("quickstart");
    let port = supercp_testkit::services::free_port();
    p.node_with(&format!(
        "  agent:\n    driftScanSeconds: 2\n    statusBind: \"127.0.0.1:{port}\"\n"
    ));
    let repo = [std::ffi::OsStr::new("--repo"), p.repo.as_os_str()];
    let _agent = Agent::start(&p, p.node.as_ref().expect("node"), &repo, &[]);
    let first = wait_for_run(&p, "the first run", |r| r["trigger"] == "change");
    assert_eq!(first["outcome"], "succeeded", "{first}");
    let key = |seen: &serde_json::Map<String, serde_json::Value>| {
        seen.keys()
            .find(|k| k.starts_with("dir:") && k.ends_with("/acme.test/public_html"))
            .cloned()
    };
    let seen = observed(port, "acme.test");
    let id = key(&seen).unwrap_or_else(|| panic!("public_html is observed: {seen:?}"));
    assert_eq!(seen[&id]["found"], "dir", "{seen:?}");
    assert!(seen[&id]["differs"].is_null(), "as desired: {seen:?}");

    // A tenant puts a symlink where its document root was: the next drift scan refuses to
    // write through it and fails. The page must say so, not show the green of the first run.
    let public = std::path::PathBuf::from(id.trim_start_matches("dir:"));
    fs::remove_dir_all(&public).expect("rm public_html");
    std::os::unix::fs::symlink("/etc", &public).expect("symlink");
    let failed = wait_for_run(&p, "the drift scan that refuses the symlink", |r| {
        r["trigger"] == "drift" && r["outcome"] == "failed"
    });
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("failed")),
        "{failed}"
    );
    let seen = observed(port, "acme.test");
    assert_eq!(
        seen[&id]["found"], "blocked",
        "the failed run's observation, not the last green one: {seen:?}"
    );
    assert!(
        seen[&id]["differs"]
            .as_str()
            .is_some_and(|d| d.contains("refused: a symlink")),
        "{seen:?}"
    );
}
