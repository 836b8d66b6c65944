//! Plan and apply on the sandbox node, checked through the binary, the files and the journal,
//! on SQLite and on a real PostgreSQL.

mod common;

use std::fs;
use std::time::SystemTime;

use common::Prefix;
use supercp_testkit::postgres::Postgres;

/// Runs `body` with the journal on SQLite, then on a real PostgreSQL started for the test.
fn on_both_journals(test: &str, body: impl Fn(&mut Prefix)) {
    let mut sqlite = Prefix::with_example("quickstart");
    body(&mut sqlite);
    let Some(pg) = Postgres::start(test) else {
        return;
    };
    let url = pg.create_database("supercp");
    let mut prefix = Prefix::with_example("quickstart");
    prefix.journal_at(&url);
    body(&mut prefix);
}

fn json(run: &common::Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", run.described))
}

#[test]
fn fresh_sandbox_plans_changes_then_apply_converges_to_no_changes() {
    on_both_journals("fresh_sandbox_plans_changes", |p| {
        p.supercp(&["plan", "--detailed-exitcode"]).expect_code(2);
        p.supercp(&["apply"]).expect_code(0);
        let vhost = p.sandbox().join("etc/nginx/sites-enabled/acme.test.conf");
        let text = fs::read_to_string(&vhost).expect("vhost written");
        assert!(
            text.contains("server_name acme.test www.acme.test;"),
            "{text}"
        );
        assert!(text.contains("return 301 /new$is_args$args;"), "{text}");
        assert!(
            p.sandbox()
                .join("etc/php/8.2/fpm/pool.d/acme.conf")
                .is_file(),
            "acme has PHP: a pool"
        );
        assert!(
            !p.sandbox()
                .join("etc/php/8.2/fpm/pool.d/globex.conf")
                .exists(),
            "globex has no PHP domain: no pool"
        );
        assert!(p
            .sandbox()
            .join("home/globex/domains/static.globex.test/public_html")
            .is_dir());
        p.supercp(&["plan", "--detailed-exitcode"]).expect_code(0);
    });
}

#[test]
fn hand_edit_of_a_managed_file_shows_in_the_plan_and_apply_puts_it_back() {
    on_both_journals("hand_edit_shows_in_plan", |p| {
        p.supercp(&["apply"]).expect_code(0);
        let vhost = p.sandbox().join("etc/nginx/sites-enabled/globex.test.conf");
        let original = fs::read_to_string(&vhost).expect("vhost");
        fs::write(&vhost, format!("{original}# edited by hand\n")).expect("hand edit");
        let plan = p.supercp(&["plan", "--detailed-exitcode"]);
        plan.expect_code(2);
        assert!(
            plan.stdout().contains("-# edited by hand"),
            "the diff shows the edit\n{}",
            plan.described
        );
        let plan = p.supercp(&["plan", "--format", "json"]);
        let value = json(&plan);
        assert_eq!(value["format_version"], 2);
        let steps = value["steps"].as_array().expect("steps");
        assert_eq!(steps.len(), 1, "{}", plan.described);
        assert_eq!(steps[0]["action"], "update");
        assert_eq!(steps[0]["resource"], "Domain/globex.test");
        assert!(
            steps[0]["origin"]
                .as_str()
                .unwrap_or("")
                .starts_with("globex.yaml:"),
            "{}",
            plan.described
        );
        p.supercp(&["apply"]).expect_code(0);
        assert_eq!(fs::read_to_string(&vhost).expect("vhost"), original);
        p.supercp(&["plan", "--detailed-exitcode"]).expect_code(0);
    });
}

#[test]
fn second_apply_writes_nothing_and_runs_no_gate_or_reload() {
    on_both_journals("second_apply_writes_nothing", |p| {
        p.supercp(&["apply"]).expect_code(0);
        let before = mtimes(p);
        std::thread::sleep(std::time::Duration::from_millis(20));
        p.supercp(&["apply"]).expect_code(0);
        assert_eq!(mtimes(p), before, "no file was touched by the second apply");
        let runs = json(&p.supercp(&["audit", "--format", "json"]));
        let newest = &runs["runs"][0];
        assert_eq!(newest["summary"], "no changes");
        assert_eq!(newest["gate_checks"], 0);
        assert_eq!(newest["reloads"], 0);
        assert_eq!(newest["outcome"], "succeeded");
        let id = newest["id"].as_i64().expect("run id").to_string();
        let run = json(&p.supercp(&["audit", "--run", &id, "--format", "json"]));
        assert_eq!(run["steps"].as_array().map(Vec::len), Some(0));
    });
}

#[test]
fn markdown_plan_is_a_pull_request_comment() {
    let p = Prefix::with_example("quickstart");
    let run = p.supercp(&["plan", "--format", "markdown"]);
    run.expect_code(0);
    let md = run.stdout();
    assert!(
        md.starts_with("### SuperCP plan for node `sandbox`"),
        "{md}"
    );
    assert!(md.contains("| `+` | `file:"), "{md}");
    assert!(md.contains("```diff"), "{md}");
}

#[test]
fn audit_lists_runs_with_their_git_commit_and_steps() {
    let p = Prefix::with_example("quickstart");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(&p.repo)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&[
        "-c",
        "user.name=Op",
        "-c",
        "user.email=op@example.test",
        "commit",
        "-qm",
        "first",
    ]);
    let head = git(&["rev-parse", "HEAD"]);
    p.supercp(&["apply"]).expect_code(0);
    let runs = json(&p.supercp(&["audit", "--format", "json"]));
    let run = &runs["runs"][0];
    assert_eq!(run["git_commit"], head.as_str());
    assert_eq!(run["git_author"], "Op <op@example.test>");
    assert_eq!(run["git_dirty"], false);
    let steps = json(&p.supercp(&["audit", "--run", &run["id"].to_string(), "--format", "json"]));
    let steps = steps["steps"].as_array().expect("steps");
    assert!(steps.iter().all(|s| s["status"] == "done"), "{steps:?}");
    assert!(steps.iter().any(|s| s["resource"] == "Domain/acme.test"
        && s["origin"].as_str().unwrap_or("").starts_with("acme.yaml:")));
    let text = p.supercp(&["audit"]).stdout();
    assert!(text.contains("succeeded"), "{text}");
}

fn mtimes(p: &Prefix) -> Vec<(String, SystemTime)> {
    let mut out = Vec::new();
    for (name, _) in p.snapshot() {
        if name.contains("var/log") || name.contains("/logs/") || name.ends_with(".log") {
            continue; // the gate's own log files, not managed objects
        }
        let meta =
            fs::symlink_metadata(p.sandbox().join(name.trim_end_matches('/'))).expect("metadata");
        out.push((name, meta.modified().expect("mtime")));
    }
    out
}

#[test]
fn broken_pipe_on_stdout_exits_quietly() {
    let p = Prefix::with_example("quickstart");
    let mut child = p
        .command(&["plan"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take()); // the reader goes away before supercp writes the plan
    let output = child.wait_with_output().expect("wait");
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("error"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
