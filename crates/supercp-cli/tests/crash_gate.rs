//! An apply killed while a gate's check runs (its batch written, not yet checked) is finished
//! by the next apply: it checks the gate again and reloads, or puts the previous files back.
//! The check is the real `nginx -t`, behind a wrapper that sleeps first while a file says so.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Prefix;
use supercp_testkit::services::require;

/// A quickstart prefix whose nginx check runs through `slow-check.sh`: it appends a line to
/// `checks.log` at every check, then sleeps while `slow` exists, then runs the real check.
struct Slow {
    p: Prefix,
    templates: PathBuf,
}

impl Slow {
    fn new() -> Slow {
        let mut p = Prefix::with_example("quickstart");
        let templates = p.dir.path().join("templates");
        let vhost = fs::read_to_string(common::workspace().join("templates/vhost.conf.tera"))
            .expect("template");
        common::write(&templates.join("vhost.conf.tera"), &vhost);
        let script = p.dir.path().join("slow-check.sh");
        let log = p.dir.path().join("checks.log");
        let slow = p.dir.path().join("slow");
        common::write(
            &script,
            &format!(
                "echo \"$$\" >> '{}'\nwhile [ -e '{}' ]; do sleep 0.1; done\nexec \"$@\"\n",
                log.display(),
                slow.display()
            ),
        );
        let node = p.node_with(&format!("  templateDir: {}\n", templates.display()));
        let text = fs::read_to_string(&node).expect("node file").replacen(
            "check: [nginx, -t,",
            &format!("check: [/bin/sh, {}, nginx, -t,", script.display()),
            1,
        );
        fs::write(&node, text).expect("node file");
        Slow { p, templates }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.p.dir.path().join(name)
    }

    fn checks(&self) -> Vec<i32> {
        fs::read_to_string(self.path("checks.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Starts an apply whose nginx check hangs, and kills it (and the check) with SIGKILL once
    /// the check runs.
    fn apply_killed_inside_the_check(&self) {
        fs::write(self.path("slow"), "").expect("slow marker");
        let before = self.checks().len();
        let mut child = self
            .p
            .command(&["apply"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn apply");
        let checker = wait_for_check(&mut child, self, before);
        kill(child.id() as i32);
        let _ = child.wait();
        // The check is the apply's child: a real crash takes it down too (systemd kills the
        // unit's cgroup); here it is killed by hand.
        kill(checker);
        fs::remove_file(self.path("slow")).expect("fast again");
    }

    fn break_globex(&self) {
        let vhost = fs::read_to_string(self.templates.join("vhost.conf.tera")).expect("template");
        let broken = vhost.replacen(
            "server {",
            "server {\n{% if domain == \"globex.test\" %}    no_such_directive on;{% endif %}",
            1,
        );
        common::write(&self.templates.join("vhost.conf.tera"), &broken);
    }
}

fn wait_for_check(child: &mut Child, slow: &Slow, before: usize) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(pid) = slow.checks().get(before) {
            return *pid;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("apply ended before its nginx check ran: {status}");
        }
        assert!(Instant::now() < deadline, "the nginx check never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

fn vhost(p: &Prefix, domain: &str) -> String {
    fs::read_to_string(
        p.sandbox()
            .join("etc/nginx/sites-enabled")
            .join(format!("{domain}.conf")),
    )
    .unwrap_or_default()
}

fn files_below(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        fs::read(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn a_good_batch_whose_check_was_killed_is_checked_again_by_the_next_apply() {
    if require("nginx", "a_good_batch_whose_check_was_killed").is_none() {
        return;
    }
    let slow = Slow::new();
    slow.apply_killed_inside_the_check();
    let checks = slow.checks().len();
    // Before the fix the next apply found nothing to do: the vhosts were on disk already.
    let plan = slow.p.supercp(&["plan", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout().contains("never checked"),
        "the plan shows the unchecked batch\n{}",
        plan.described
    );
    let resumed = slow.p.supercp(&["apply"]);
    resumed.expect_code(0);
    assert_eq!(
        slow.checks().len(),
        checks + 1,
        "the resumed apply ran nginx's check again\n{}",
        resumed.described
    );
    assert!(vhost(&slow.p, "acme.test").contains("server_name"));
    // Settled: the run after that checks nothing.
    slow.p
        .supercp(&["plan", "--detailed-exitcode"])
        .expect_code(0);
    slow.p.supercp(&["apply"]).expect_code(0);
    assert_eq!(slow.checks().len(), checks + 1, "nothing left to check");
}

#[test]
fn a_broken_batch_whose_check_was_killed_is_put_back_by_the_next_apply() {
    if require("nginx", "a_broken_batch_whose_check_was_killed").is_none() {
        return;
    }
    let slow = Slow::new();
    slow.p.supercp(&["apply"]).expect_code(0);
    let sites = slow.p.sandbox().join("etc/nginx/sites-enabled");
    let good = files_below(&sites);
    slow.break_globex();
    slow.apply_killed_inside_the_check();
    assert!(
        vhost(&slow.p, "globex.test").contains("no_such_directive"),
        "the killed run left the broken vhost on disk"
    );
    let resumed = slow.p.supercp(&["apply"]);
    resumed.expect_code(1);
    assert!(
        resumed.stderr().contains("Domain/globex.test"),
        "names the domain that broke the check\n{}",
        resumed.described
    );
    assert_eq!(
        files_below(&sites),
        good,
        "the vhosts are the last ones that passed the check, byte for byte\n{}",
        resumed.described
    );
    // Nothing is left unchecked: the next apply fails on the template again, as any run
    // would, and still puts the good files back.
    let again = slow.p.supercp(&["apply"]);
    again.expect_code(1);
    assert_eq!(files_below(&sites), good);
}

#[test]
fn a_check_over_its_gates_timeout_is_killed_and_its_batch_put_back() {
    if require("nginx", "a_check_over_its_gates_timeout").is_none() {
        return;
    }
    let slow = Slow::new();
    let node = slow.p.node.clone().expect("node file");
    let text = fs::read_to_string(&node).expect("node file").replacen(
        "    - name: nginx\n",
        "    - name: nginx\n      timeoutSeconds: 1\n",
        1,
    );
    assert!(text.contains("timeoutSeconds: 1"), "{text}");
    fs::write(&node, text).expect("node file");
    fs::write(slow.path("slow"), "").expect("slow marker");
    let started = Instant::now();
    let run = slow.p.supercp(&["apply"]);
    let took = started.elapsed();
    fs::remove_file(slow.path("slow")).expect("fast again");
    run.expect_code(1);
    assert!(
        run.stderr().contains("gate nginx") && run.stderr().contains("did not finish within 1"),
        "the run fails naming the gate and its limit\n{}",
        run.described
    );
    assert!(
        took < Duration::from_secs(60),
        "killed at its timeout, not waited for: {took:?}"
    );
    let sites = slow.p.sandbox().join("etc/nginx/sites-enabled");
    assert!(
        files_below(&sites).is_empty(),
        "the unchecked batch was put back (nothing was there before)\n{}",
        run.described
    );
    // Fast again: the next apply passes the same check.
    slow.p.supercp(&["apply"]).expect_code(0);
    assert!(vhost(&slow.p, "acme.test").contains("server_name"));
}
