//! What `plan` promises: it changes nothing (node tree, mtimes, journal rows), and an object it
//! cannot observe fails the plan naming it, never "absent".

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use common::Prefix;
use supercp_testkit::services::{in_ci, is_root};

/// Every path below `root` with its kind, mode, size and modification time.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            // The journal's own files change when it is read (SQLite's WAL index): the journal
            // is compared by its rows instead.
            // (The state directory's mtime moves with them.)
            if path.to_string_lossy().contains("audit.db") {
                continue;
            }
            if path.ends_with("state") {
                stack.push(path);
                continue;
            }
            out.push(format!(
                "{} {:o} {} {}.{}",
                path.display(),
                meta.mode(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec()
            ));
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The number of rows of each table of the sandbox's SQLite journal.
fn row_counts(p: &Prefix) -> String {
    let runs: serde_json::Value =
        serde_json::from_str(&p.supercp(&["audit", "--format", "json"]).stdout()).expect("json");
    let run = runs["runs"][0]["id"].to_string();
    let steps: serde_json::Value = serde_json::from_str(
        &p.supercp(&["audit", "--run", &run, "--format", "json"])
            .stdout(),
    )
    .expect("json");
    format!(
        "{} runs, {} steps in the last",
        runs["runs"].as_array().map_or(0, Vec::len),
        steps["steps"].as_array().map_or(0, Vec::len)
    )
}

#[test]
fn plan_changes_nothing_on_the_node_or_in_the_journal() {
    let p = Prefix::with_example("quickstart");
    p.supercp(&["apply"]).expect_code(0);
    // Drift, so the plan has steps to show (and to not make).
    let vhost = p.sandbox().join("etc/nginx/sites-enabled/acme.test.conf");
    fs::write(&vhost, "# hand edit\n").expect("edit a vhost");
    let before = (tree(p.dir.path()), row_counts(&p));
    for format in ["text", "json", "markdown"] {
        p.supercp(&["plan", "--detailed-exitcode", "--format", format])
            .expect_code(2);
    }
    let after = (tree(p.dir.path()), row_counts(&p));
    let changed: Vec<&String> = after.0.iter().filter(|l| !before.0.contains(l)).collect();
    assert!(
        changed.is_empty(),
        "plan wrote or touched nothing: {changed:?}"
    );
    assert_eq!(before.1, after.1, "plan recorded nothing in the journal");
}

#[test]
fn an_object_that_cannot_be_observed_fails_the_plan_naming_it() {
    if !is_root() {
        assert!(!in_ci(), "CI runs as root: this test must run there");
        eprintln!("SKIPPED an_object_that_cannot_be_observed: needs root to run plan as nobody");
        return;
    }
    let p = Prefix::with_example("quickstart");
    // The binary and the prefix, usable by nobody (the workspace may sit below a 0700 dir).
    let bin = p.dir.path().join("supercp");
    fs::copy(env!("CARGO_BIN_EXE_supercp"), &bin).expect("copy the binary");
    fs::set_permissions(p.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let as_nobody = |args: &[&str]| {
        let mut cmd = Command::new(&bin);
        cmd.arg("--state")
            .arg(&p.state)
            .args(args)
            .arg("--repo")
            .arg(&p.repo)
            .current_dir(p.dir.path())
            .uid(65534)
            .gid(65534);
        let output = cmd.output().expect("run supercp as nobody");
        let described = common::describe(&cmd, &output, p.dir.path());
        (output, described)
    };
    let chown = |path: &Path| {
        let status = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(path)
            .status()
            .expect("chown");
        assert!(status.success());
    };
    chown(p.dir.path());
    let (applied, described) = as_nobody(&["apply"]);
    assert!(
        applied.status.success(),
        "nobody applies the sandbox\n{described}"
    );
    // A directory nobody may not enter, above managed objects.
    let home = p.sandbox().join("home/acme");
    let status = Command::new("chown")
        .arg("0:0")
        .arg(&home)
        .status()
        .expect("chown");
    assert!(status.success());
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).expect("chmod 0700");

    let (planned, described) = as_nobody(&["plan", "--detailed-exitcode"]);
    assert_eq!(planned.status.code(), Some(1), "{described}");
    let err = String::from_utf8_lossy(&planned.stderr);
    assert!(
        err.contains("cannot observe")
            && err.contains("home/acme/")
            && err.contains("Permission denied"),
        "names what it could not see and why\n{described}"
    );
    assert!(
        !String::from_utf8_lossy(&planned.stdout).contains("+ "),
        "no step claims the unseen objects are missing\n{described}"
    );
    let (applied, described) = as_nobody(&["apply"]);
    assert_eq!(applied.status.code(), Some(1), "{described}");

    // Nothing was pruned or forgotten: once the directory is readable again, nothing differs.
    chown(&home);
    fs::set_permissions(&home, fs::Permissions::from_mode(0o750)).expect("chmod");
    let (planned, described) = as_nobody(&["plan", "--detailed-exitcode"]);
    assert_eq!(planned.status.code(), Some(0), "{described}");
}
