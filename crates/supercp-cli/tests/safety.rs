//! What must never go wrong: a broken config never stays live, a killed apply converges on the
//! next run, symlinks are never followed, and nothing is pruned that should not be.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;

use common::Prefix;
use supercp_testkit::postgres::Postgres;
use supercp_testkit::services::require;

#[test]
fn failed_nginx_check_restores_the_previous_files_and_names_the_domain() {
    if require("nginx", "failed_nginx_check_restores_the_previous_files").is_none() {
        return;
    }
    let mut p = Prefix::with_example("quickstart");
    // The node names its template dir from the start, holding the built-in vhost template.
    let overrides = p.dir.path().join("templates");
    let vhost = fs::read_to_string(common::workspace().join("templates/vhost.conf.tera"))
        .expect("template");
    common::write(&overrides.join("vhost.conf.tera"), &vhost);
    p.node_with(&format!("  templateDir: {}\n", overrides.display()));
    p.supercp(&["apply"]).expect_code(0);
    let before = managed_files(&p);
    let broken = vhost.replacen(
        "server {",
        "server {\n{% if domain == \"globex.test\" %}    no_such_directive on;{% endif %}",
        1,
    );
    common::write(&overrides.join("vhost.conf.tera"), &broken);
    let run = p.supercp(&["apply"]);
    run.expect_code(1);
    let err = run.stderr();
    assert!(
        err.contains("Domain/globex.test (globex.yaml:11:18)"),
        "names the domain and its file:line\n{}",
        run.described
    );
    assert!(
        !err.contains("Domain/acme.test ("),
        "names only the domain that broke the check\n{}",
        run.described
    );
    assert_eq!(
        managed_files(&p),
        before,
        "the files on disk are the previous ones, byte for byte"
    );
    let runs: serde_json::Value =
        serde_json::from_str(&p.supercp(&["audit", "--format", "json"]).stdout()).expect("json");
    assert_eq!(runs["runs"][0]["outcome"], "failed");
    assert!(
        runs["runs"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("no_such_directive"),
        "{runs}"
    );
}

#[test]
fn apply_killed_at_any_step_is_finished_by_the_next_apply() {
    let reference = Prefix::with_example("quickstart");
    reference.supercp(&["apply"]).expect_code(0);
    let expected = normalised(&reference);
    for pause in [0, 9, 21, 25] {
        crash_and_resume(Prefix::with_example("quickstart"), pause, &expected);
    }
}

#[test]
fn apply_killed_mid_run_is_finished_on_a_postgres_journal() {
    let Some(pg) = Postgres::start("apply_killed_mid_run_on_postgres") else {
        return;
    };
    let mut reference = Prefix::with_example("quickstart");
    reference.node_with("");
    reference.supercp(&["apply"]).expect_code(0);
    let expected = normalised(&reference);
    for pause in [3, 22] {
        let mut p = Prefix::with_example("quickstart");
        p.journal_at(&pg.create_database(&format!("crash{pause}")));
        crash_and_resume(p, pause, &expected);
    }
}

fn crash_and_resume(mut p: Prefix, pause: usize, expected: &[(String, String)]) {
    p.env = vec![("SUPERCP_TEST_PAUSE_BEFORE_STEP".into(), pause.to_string())];
    let mut child = p
        .command(&["apply"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn apply");
    let stderr = child.stderr.take().expect("stderr");
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("stderr line");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("paused before step") {
            break;
        }
    }
    assert!(
        seen.contains(&format!("paused before step {pause}")),
        "the apply reached the pause\n{seen}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
    let _ = child.wait();
    p.env.clear();
    let resumed = p.supercp(&["apply"]);
    resumed.expect_code(0);
    assert!(
        resumed.stderr().contains("interrupted"),
        "the next apply says it finishes an interrupted run\n{}",
        resumed.described
    );
    assert_eq!(
        normalised(&p),
        expected,
        "killed before step {pause}: the end state equals an uninterrupted run"
    );
    assert!(
        p.snapshot()
            .iter()
            .all(|(n, _)| !n.ends_with(".supercp-tmp")),
        "no temp file remains"
    );
    let runs: serde_json::Value =
        serde_json::from_str(&p.supercp(&["audit", "--format", "json"]).stdout()).expect("json");
    assert_eq!(runs["runs"][0]["outcome"], "succeeded", "{runs}");
    assert_eq!(runs["runs"][1]["outcome"], "interrupted", "{runs}");
    let killed = runs["runs"][1]["id"].to_string();
    let steps: serde_json::Value = serde_json::from_str(
        &p.supercp(&["audit", "--run", &killed, "--format", "json"])
            .stdout(),
    )
    .expect("json");
    let statuses: Vec<&str> = steps["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["status"].as_str())
        .collect();
    assert!(
        statuses.contains(&"interrupted"),
        "the killed run shows where it stopped: {statuses:?}"
    );
    p.supercp(&["plan", "--detailed-exitcode"]).expect_code(0);
}

#[test]
fn managed_directory_replaced_by_a_symlink_is_never_followed() {
    let p = Prefix::with_example("quickstart");
    p.supercp(&["apply"]).expect_code(0);
    let outside = tempfile::tempdir().expect("outside dir");
    fs::write(outside.path().join("secret"), "keep me").expect("file");
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    let outside_meta = fs::metadata(outside.path()).expect("meta");
    let public_html = p.sandbox().join("home/acme/domains/acme.test/public_html");
    fs::remove_dir(&public_html).expect("remove public_html");
    std::os::unix::fs::symlink(outside.path(), &public_html).expect("symlink");
    let plan = p.supercp(&["plan", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout().contains("refused: a symlink at"),
        "{}",
        plan.described
    );
    let run = p.supercp(&["apply"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("1 of 1 steps failed"),
        "{}",
        run.described
    );
    let audit = p.supercp(&["audit", "--run", "2"]).stdout();
    assert!(
        audit.contains(&format!("refused: a symlink at {}", public_html.display())),
        "the journal names the path\n{audit}"
    );
    let after = fs::metadata(outside.path()).expect("meta");
    assert_eq!(
        after.mode(),
        outside_meta.mode(),
        "no chmod through the symlink"
    );
    assert_eq!(
        (after.uid(), after.gid()),
        (outside_meta.uid(), outside_meta.gid()),
        "no chown through the symlink"
    );
    assert_eq!(
        fs::read_to_string(outside.path().join("secret")).expect("file"),
        "keep me"
    );
    assert_eq!(
        fs::read_dir(outside.path()).expect("dir").count(),
        1,
        "nothing was written into the target"
    );
    assert!(
        fs::symlink_metadata(&public_html)
            .expect("link")
            .file_type()
            .is_symlink(),
        "the link was left for the operator"
    );
}

#[test]
fn symlinked_parent_directory_and_symlinked_config_file_are_never_followed() {
    let p = Prefix::with_example("quickstart");
    p.supercp(&["apply"]).expect_code(0);
    let outside = tempfile::tempdir().expect("outside dir");
    let fake = outside.path().join("public_html");
    fs::create_dir(&fake).expect("dir");
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o711)).expect("chmod");
    fs::write(outside.path().join("target.conf"), "original\n").expect("file");
    let domain_dir = p.sandbox().join("home/globex/domains/globex.test");
    fs::remove_dir_all(&domain_dir).expect("remove domain dir");
    std::os::unix::fs::symlink(outside.path(), &domain_dir).expect("symlink");
    let vhost = p
        .sandbox()
        .join("etc/nginx/sites-enabled/static.globex.test.conf");
    fs::remove_file(&vhost).expect("remove vhost");
    std::os::unix::fs::symlink(outside.path().join("target.conf"), &vhost).expect("symlink");
    let run = p.supercp(&["apply"]);
    run.expect_code(1);
    assert_eq!(
        fs::metadata(&fake).expect("meta").mode() & 0o777,
        0o711,
        "no chmod below a symlinked parent"
    );
    assert_eq!(
        fs::read_to_string(outside.path().join("target.conf")).expect("file"),
        "original\n",
        "no write through a symlinked file"
    );
    assert!(
        !outside.path().join("logs").exists(),
        "nothing created below a symlinked parent"
    );
}

#[test]
fn removing_a_domain_deletes_its_vhost_but_keeps_its_tenant_data() {
    let p = Prefix::with_files(&many_domains(10, "Retain"));
    p.supercp(&["apply"]).expect_code(0);
    let vhost = p.sandbox().join("etc/nginx/sites-enabled/site3.test.conf");
    assert!(vhost.is_file());
    fs::remove_file(p.repo.join("site3.yaml")).expect("remove from repo");
    let plan = p.supercp(&["plan", "--format", "json"]);
    let value: serde_json::Value = serde_json::from_str(&plan.stdout()).expect("json");
    let deletes: Vec<&str> = value["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["action"] == "delete")
        .filter_map(|s| s["path"].as_str())
        .collect();
    assert_eq!(
        deletes,
        vec![vhost.to_str().expect("utf-8")],
        "{}",
        plan.described
    );
    p.supercp(&["apply"]).expect_code(0);
    assert!(!vhost.exists(), "the vhost of a removed domain is deleted");
    assert!(
        p.sandbox()
            .join("home/shop/domains/site3.test/public_html")
            .is_dir(),
        "tenant data is kept"
    );
    p.supercp(&["plan", "--detailed-exitcode"]).expect_code(0);
}

#[test]
fn removing_thirty_percent_of_domains_is_refused_without_an_override() {
    let p = Prefix::with_files(&many_domains(10, "Retain"));
    p.supercp(&["apply"]).expect_code(0);
    for i in [1, 2, 3] {
        fs::remove_file(p.repo.join(format!("site{i}.yaml"))).expect("remove");
    }
    let before = managed_files(&p);
    let run = p.supercp(&["apply"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("3 of 10 Domain resources"),
        "{}",
        run.described
    );
    assert!(
        run.stderr().contains("--max-delete-share 30"),
        "says how to override\n{}",
        run.described
    );
    assert_eq!(managed_files(&p), before, "nothing was deleted");
    p.supercp(&["plan"]).expect_code(1);
    p.supercp(&["apply", "--max-delete-share", "30"])
        .expect_code(0);
    assert!(!p
        .sandbox()
        .join("etc/nginx/sites-enabled/site1.test.conf")
        .exists());
}

#[test]
fn tenant_data_is_deleted_only_with_policy_delete_and_allow_destroy() {
    let mut files = many_domains(2, "Delete");
    files.push(("other.yaml", OTHER_TENANT));
    let p = Prefix::with_files(&files);
    p.supercp(&["apply"]).expect_code(0);
    let home = p.sandbox().join("home/shop");
    fs::write(
        home.join("domains/site1.test/public_html/index.html"),
        "tenant content",
    )
    .expect("content");
    for f in ["tenant.yaml", "site1.yaml", "site2.yaml"] {
        fs::remove_file(p.repo.join(f)).expect("remove");
    }
    let run = p.supercp(&["apply", "--max-delete-share", "100"]);
    run.expect_code(0);
    assert!(run.stderr().contains("kept"), "{}", run.described);
    assert!(
        home.join("domains/site1.test/public_html/index.html")
            .is_file(),
        "no --allow-destroy: tenant data stays"
    );
    assert!(
        !p.sandbox()
            .join("etc/nginx/sites-enabled/site1.test.conf")
            .exists(),
        "configs are pruned"
    );
    let plan = p.supercp(&[
        "plan",
        "--allow-destroy",
        "--max-delete-share",
        "100",
        "--format",
        "json",
    ]);
    let value: serde_json::Value = serde_json::from_str(&plan.stdout()).expect("json");
    assert!(
        value["summary"]["delete"].as_u64().unwrap_or(0) > 0,
        "{}",
        plan.described
    );
    p.supercp(&["apply", "--allow-destroy", "--max-delete-share", "100"])
        .expect_code(0);
    assert!(
        !home.exists(),
        "policy Delete with --allow-destroy removes the tenant's home"
    );
    assert!(
        p.sandbox().join("home/other").is_dir(),
        "another tenant is untouched"
    );
}

#[test]
fn tenant_data_with_policy_retain_survives_allow_destroy() {
    let mut files = many_domains(1, "Retain");
    files.push(("other.yaml", OTHER_TENANT));
    let p = Prefix::with_files(&files);
    p.supercp(&["apply"]).expect_code(0);
    for f in ["tenant.yaml", "site1.yaml"] {
        fs::remove_file(p.repo.join(f)).expect("remove");
    }
    p.supercp(&["apply", "--allow-destroy", "--max-delete-share", "100"])
        .expect_code(0);
    assert!(
        p.sandbox()
            .join("home/shop/domains/site1.test/public_html")
            .is_dir(),
        "Retain keeps the data"
    );
    p.supercp(&["apply", "--allow-destroy", "--max-delete-share", "100"])
        .expect_code(0);
    assert!(
        p.sandbox().join("home/shop").is_dir(),
        "released data is not deleted later either"
    );
}

const OTHER_TENANT: &str =
    "apiVersion: supercp/v1\nkind: Tenant\nmetadata: {name: other}\nspec: {package: basic}\n";

/// A package, tenant `shop` with `policy`, and `n` domains `siteN.test`, one file each.
fn many_domains(n: usize, policy: &str) -> Vec<(&'static str, &'static str)> {
    let mut files: Vec<(&'static str, &'static str)> = vec![
        ("package.yaml", "apiVersion: supercp/v1\nkind: Package\nmetadata: {name: basic}\nspec: {maxDomains: 20}\n"),
        (leak("tenant.yaml"), leak(&format!("apiVersion: supercp/v1\nkind: Tenant\nmetadata: {{name: shop}}\nspec: {{package: basic, deletionPolicy: {policy}}}\n"))),
    ];
    for i in 1..=n {
        files.push((
            leak(&format!("site{i}.yaml")),
            leak(&format!("apiVersion: supercp/v1\nkind: Domain\nmetadata: {{name: site{i}.test}}\nspec: {{tenant: shop}}\n")),
        ));
    }
    files
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// Managed files and directories (service logs excluded), with content.
fn managed_files(p: &Prefix) -> Vec<(String, Vec<u8>)> {
    p.snapshot()
        .into_iter()
        .filter(|(n, _)| !n.ends_with(".log") && !n.starts_with("var/lib/nginx/"))
        .collect()
}

/// The sandbox as text with the prefix path replaced, so two prefixes compare equal.
fn normalised(p: &Prefix) -> Vec<(String, String)> {
    let prefix = p.dir.path().display().to_string();
    managed_files(p)
        .into_iter()
        .map(|(n, c)| (n, String::from_utf8_lossy(&c).replace(&prefix, "PREFIX")))
        .collect()
}

#[test]
fn second_apply_fails_at_once_naming_the_holder() {
    let mut p = Prefix::with_example("quickstart");
    p.env = vec![("SUPERCP_TEST_PAUSE_BEFORE_STEP".into(), "0".into())];
    let mut first = p
        .command(&["apply"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn apply");
    let stderr = first.stderr.take().expect("stderr");
    for line in BufReader::new(stderr).lines() {
        if line.expect("line").contains("paused before step") {
            break;
        }
    }
    p.env.clear();
    let second = p.supercp(&["apply"]);
    let _ = first.kill();
    let _ = first.wait();
    second.expect_code(1);
    let err = second.stderr();
    assert!(
        err.contains(&format!("pid {} started at 20", first.id())),
        "names the holder's pid and start time\n{}",
        second.described
    );
}

#[test]
fn apply_that_nginx_could_not_check_for_open_files_is_refused_before_writing() {
    let mut files = vec![(
        "package.yaml",
        "apiVersion: supercp/v1\nkind: Package\nmetadata: {name: basic}\nspec: {}\n",
    )];
    files.push((
        "tenant.yaml",
        "apiVersion: supercp/v1\nkind: Tenant\nmetadata: {name: shop}\nspec: {package: basic}\n",
    ));
    for i in 0..150 {
        files.push((
            leak(&format!("site{i}.yaml")),
            leak(&format!("apiVersion: supercp/v1\nkind: Domain\nmetadata: {{name: site{i}.test}}\nspec: {{tenant: shop}}\n")),
        ));
    }
    let mut p = Prefix::with_files(&files);
    // Per-site logs and a required nginx check, as on a real node.
    p.node_with("");
    let node = p.node.clone().expect("node");
    let text = fs::read_to_string(&node)
        .expect("node")
        .replace("siteLogs: Node", "siteLogs: Domain")
        .replace("optional: true", "optional: false");
    fs::write(&node, text).expect("node");
    let mut cmd = p.command(&["apply"]);
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 200, 200)
                .map_err(std::io::Error::from)
        });
    }
    let output = cmd.output().expect("apply runs");
    let err = String::from_utf8_lossy(&output.stderr);
    if can_raise_hard_open_files_limit() {
        // With CAP_SYS_RESOURCE supercp lifts the limit itself and the apply goes through.
        assert_eq!(output.status.code(), Some(0), "{err}");
        return;
    }
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("needs about 556 open files") && err.contains("LimitNOFILE"),
        "{err}"
    );
    assert!(!p.sandbox().exists(), "nothing was written");
}

/// Whether this process may raise its hard open-files limit (root with CAP_SYS_RESOURCE).
fn can_raise_hard_open_files_limit() -> bool {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return false;
    };
    let raised = setrlimit(Resource::RLIMIT_NOFILE, soft, hard + 1).is_ok();
    if raised {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, soft, hard);
    }
    raised
}
