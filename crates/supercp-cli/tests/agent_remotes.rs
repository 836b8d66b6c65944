//! `supercp agent` pulling from real Git servers on loopback: OpenSSH's sshd with a deploy key
//! and a known_hosts file, and git-http-backend behind nginx over TLS with a token and a
//! private CA. Each applies commit after commit; a host key it does not know and a token the
//! server refuses stop the fetch, visibly, with nothing applied.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::agent::{commit_all, quickstart_remote, vhost, wait_for_run, Agent};
use common::Prefix;
use supercp_testkit::git_servers::{HttpsServer, SshServer};

/// A node file whose agent follows `git` (a YAML flow mapping's inner fields).
fn follow(p: &mut Prefix, git: &str) -> std::path::PathBuf {
    p.node_with(&format!(
        "  agent:\n    git: {{{git}, branch: main, pollSeconds: 1}}\n    statusBind: \"\"\n"
    ))
}

/// Waits until the agent's log holds `needle`; returns the log.
fn wait_for_log(p: &Prefix, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let log = fs::read_to_string(p.dir.path().join("agent.log")).unwrap_or_default();
        if log.contains(needle) {
            return log;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no {needle:?} in the agent's log after 30 s:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A second commit, adding a domain, as every remote test makes it.
fn add_domain(upstream_dir: &Path, upstream: &git2::Repository) -> git2::Oid {
    fs::write(
        upstream_dir.join("extra.yaml"),
        "apiVersion: supercp/v1\nkind: Domain\nmetadata: {name: new.acme.test}\nspec: {tenant: acme}\n",
    )
    .expect("write");
    commit_all(upstream, "Add new.acme.test")
}

/// No run is recorded and `supercp status` shows the fetch error.
fn refused_visibly(p: &Prefix, node: &Path, why: &str) {
    let log = wait_for_log(p, why);
    assert!(log.contains("fetch failed"), "{log}");
    let runs = p.supercp(&["audit", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&runs.stdout()).expect("json");
    assert_eq!(json["runs"].as_array().map(Vec::len), Some(0), "{json:#}");
    assert!(!vhost(p, "acme.test").exists(), "nothing was applied");
    let status = p.supercp(&["status", "--node", &node.to_string_lossy()]);
    assert!(
        status.stdout().contains("last error") && status.stdout().contains(why),
        "supercp status shows the fetch error: {}",
        status.described
    );
}

#[test]
fn agent_pulls_over_ssh_with_a_deploy_key_and_refuses_an_unknown_host_key() {
    let test = "agent_pulls_over_ssh";
    let mut p = Prefix::empty();
    let Some(ssh) = SshServer::start(&p.dir.path().join("sshd"), test) else {
        return;
    };
    let upstream_dir = p.dir.path().join("upstream");
    let upstream = quickstart_remote(&upstream_dir);
    let c1 = commit_all(&upstream, "Quickstart: acme and globex");
    // known_hosts hashed by OpenSSH itself (as Debian's ssh writes ~/.ssh/known_hosts).
    let hashed = p.dir.path().join("known_hosts.hashed");
    fs::copy(&ssh.known_hosts, &hashed).expect("copy");
    let keygen = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&hashed)
        .output()
        .expect("ssh-keygen -H");
    assert!(keygen.status.success(), "{keygen:?}");
    assert!(fs::read_to_string(&hashed)
        .expect("read")
        .starts_with("|1|"));
    let node = follow(
        &mut p,
        &format!(
            "url: \"{}\", sshKey: {}, knownHosts: {}",
            ssh.url(&upstream_dir),
            ssh.deploy_key.display(),
            hashed.display()
        ),
    );
    let agent = Agent::start(&p, &node, &[], &[]);
    let run = wait_for_run(&p, "commit 1 over ssh", |r| {
        r["git_commit"] == c1.to_string() && r["outcome"] == "succeeded"
    });
    assert_eq!(run["git_message"], "Quickstart: acme and globex");
    assert!(vhost(&p, "acme.test").is_file());
    let c2 = add_domain(&upstream_dir, &upstream);
    wait_for_run(&p, "commit 2 over ssh", |r| {
        r["git_commit"] == c2.to_string() && r["outcome"] == "succeeded"
    });
    assert!(vhost(&p, "new.acme.test").is_file());
    drop(agent);

    // Another node whose known_hosts lists some other key for this server: the fetch is
    // refused before any login, and says which key it saw.
    let mut other = Prefix::empty();
    let wrong = other.dir.path().join("known_hosts");
    let stranger = SshServer::start(&other.dir.path().join("stranger"), test).expect("sshd");
    let stranger_key = fs::read_to_string(&stranger.known_hosts).expect("read");
    let stranger_key = stranger_key.split_once(' ').expect("entry").1;
    fs::write(&wrong, format!("[127.0.0.1]:{} {stranger_key}", ssh.port)).expect("write");
    let node = follow(
        &mut other,
        &format!(
            "url: \"{}\", sshKey: {}, knownHosts: {}",
            ssh.url(&upstream_dir),
            ssh.deploy_key.display(),
            wrong.display()
        ),
    );
    let _agent = Agent::start(&other, &node, &[], &[]);
    refused_visibly(&other, &node, "is not listed in");
    let log = fs::read_to_string(other.dir.path().join("agent.log")).expect("log");
    assert!(
        log.contains("SHA256:"),
        "the refusal names the fingerprint: {log}"
    );
}

#[test]
fn an_ssh_deploy_key_readable_by_others_stops_the_agent_at_start() {
    let test = "an_ssh_deploy_key_readable_by_others";
    let mut p = Prefix::empty();
    let Some(ssh) = SshServer::start(&p.dir.path().join("sshd"), test) else {
        return;
    };
    fs::set_permissions(&ssh.deploy_key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let url = ssh.url(p.dir.path());
    let node = follow(
        &mut p,
        &format!(
            "url: \"{}\", sshKey: {}, knownHosts: {}",
            url,
            ssh.deploy_key.display(),
            ssh.known_hosts.display()
        ),
    );
    let out = p.supercp(&["agent", "--node", &node.to_string_lossy()]);
    assert_ne!(out.code(), 0, "{}", out.described);
    assert!(
        out.stderr().contains("agent.git.sshKey") && out.stderr().contains("chmod 600"),
        "{}",
        out.described
    );
}

#[test]
fn agent_pulls_over_https_with_a_token_and_a_private_ca() {
    let test = "agent_pulls_over_https";
    let mut p = Prefix::empty();
    let root = p.dir.path().join("git");
    let Some(https) = HttpsServer::start(
        &p.dir.path().join("https"),
        &root,
        "deploy",
        "s3cret-token",
        test,
    ) else {
        return;
    };
    let upstream_dir = root.join("hosting");
    let upstream = quickstart_remote(&upstream_dir);
    let c1 = commit_all(&upstream, "Quickstart: acme and globex");
    let token = p.dir.path().join("token");
    fs::write(&token, "s3cret-token\n").expect("token");
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).expect("chmod");
    let node = follow(
        &mut p,
        &format!(
            "url: \"{}\", tokenFile: {}, caFile: {}",
            https.url("deploy", "hosting"),
            token.display(),
            https.ca.display()
        ),
    );
    let agent = Agent::start(&p, &node, &[], &[]);
    wait_for_run(&p, "commit 1 over https", |r| {
        r["git_commit"] == c1.to_string() && r["outcome"] == "succeeded"
    });
    assert!(vhost(&p, "acme.test").is_file());
    let c2 = add_domain(&upstream_dir, &upstream);
    wait_for_run(&p, "commit 2 over https", |r| {
        r["git_commit"] == c2.to_string() && r["outcome"] == "succeeded"
    });
    assert!(vhost(&p, "new.acme.test").is_file());
    drop(agent);

    // A token the server refuses: one attempt, a clear error, nothing applied.
    let mut other = Prefix::empty();
    let bad = other.dir.path().join("token");
    fs::write(&bad, "not-the-token\n").expect("token");
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o600)).expect("chmod");
    let node = follow(
        &mut other,
        &format!(
            "url: \"{}\", tokenFile: {}, caFile: {}",
            https.url("deploy", "hosting"),
            bad.display(),
            https.ca.display()
        ),
    );
    let _agent = Agent::start(&other, &node, &[], &[]);
    refused_visibly(&other, &node, "refused the credentials");
}
