//! The command-line contract scripts rely on, through the real binary: usage errors exit 1
//! (2 means "changes"), `--help` and `--version` exit 0, colour only on a terminal and never
//! under `NO_COLOR`, no escape codes in logs that do not go to a terminal, and `audit` on a
//! state directory without a journal says so and creates nothing.

mod common;

use std::process::Command;

use common::{Prefix, Run};

#[test]
fn usage_errors_exit_1_and_help_and_version_exit_0() {
    let p = Prefix::with_example("quickstart");
    for args in [
        &["plan", "--no-such-flag"][..],
        &["plan", "--format", "yaml"],
        &["no-such-command"],
        &["audit", "--limit", "many"],
        &[],
    ] {
        let run = p.supercp(args);
        run.expect_code(1);
        assert!(
            run.stderr().contains("error") || run.stderr().contains("Usage"),
            "a usage error says what is wrong\n{}",
            run.described
        );
        assert!(
            run.stdout().is_empty(),
            "stdout stays empty\n{}",
            run.described
        );
    }
    for args in [&["--help"][..], &["plan", "--help"], &["--version"]] {
        let run = p.supercp(args);
        run.expect_code(0);
        assert!(!run.stdout().is_empty(), "{}", run.described);
    }
    assert!(!p.state.exists(), "a usage error writes nothing");
}

#[test]
fn no_color_keeps_escape_codes_out_of_the_text_plan_and_logs_on_a_terminal() {
    let p = Prefix::with_example("quickstart");
    // `script` runs the command on a pseudo-terminal: stdout and stderr are both a tty there.
    let on_tty = |no_color: bool| -> Run {
        let supercp = env!("CARGO_BIN_EXE_supercp");
        let line = format!(
            "{supercp} --state {} plan --repo {}",
            p.state.display(),
            p.repo.display()
        );
        let mut cmd = Command::new("script");
        cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
            .env("RUST_LOG", "info")
            .current_dir(p.dir.path());
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let output = cmd.output().expect("script(1) runs");
        let described = common::describe(&cmd, &output, p.dir.path());
        Run { output, described }
    };
    let coloured = on_tty(false);
    assert!(
        coloured.stdout().contains("\x1b["),
        "on a terminal the plan is coloured (so the check below means something)\n{}",
        coloured.described
    );
    let plain = on_tty(true);
    assert!(
        plain.stdout().contains("to create"),
        "the plan is printed\n{}",
        plain.described
    );
    assert!(
        !plain.stdout().contains('\x1b'),
        "NO_COLOR: no escape code in the plan or the logs\n{}",
        plain.described
    );
}

#[test]
fn logs_to_a_pipe_carry_no_escape_codes() {
    let p = Prefix::with_example("quickstart");
    let mut cmd = p.command(&["validate"]);
    cmd.env("RUST_LOG", "info").env_remove("NO_COLOR");
    let output = cmd.output().expect("the supercp binary runs");
    let run = Run {
        described: common::describe(&cmd, &output, p.dir.path()),
        output,
    };
    run.expect_code(0);
    assert!(
        run.stderr().contains("INFO"),
        "an info log line is written\n{}",
        run.described
    );
    assert!(
        !run.stderr().contains('\x1b'),
        "stderr is a pipe: no escape codes\n{}",
        run.described
    );
}

#[test]
fn audit_without_a_journal_says_so_and_creates_nothing() {
    let p = Prefix::empty();
    for args in [
        &["audit"][..],
        &["audit", "--run", "1"],
        &["audit", "--format", "json"],
    ] {
        let run = p.supercp(args);
        run.expect_code(1);
        assert!(
            run.stderr().contains("no audit journal at") && run.stderr().contains("help:"),
            "{}",
            run.described
        );
        assert!(run.stdout().is_empty(), "{}", run.described);
        assert!(
            !p.state.exists(),
            "no state directory and no audit.db\n{}",
            run.described
        );
    }
}

/// A node whose last PHP site goes away (or whose PHP tenant has no PHP domain) still passes
/// its php-fpm gate: the sandbox's gate runs the real `php-fpm8.2 -t`, which refuses a config
/// without a pool, so apply keeps the main config and writes the placeholder pool.
#[test]
fn the_php_fpm_gate_passes_when_the_last_php_site_goes_away() {
    let test = "the_php_fpm_gate_passes_when_the_last_php_site_goes_away";
    let Some(fpm) = supercp_testkit::services::require("php-fpm8.2", test) else {
        return;
    };
    let repo = |tenant_php: &str, domain_php: bool| {
        format!(
            "apiVersion: supercp/v1\nkind: Package\nmetadata: {{name: basic}}\nspec: {{}}\n---\n\
             apiVersion: supercp/v1\nkind: Tenant\nmetadata: {{name: acme}}\n\
             spec: {{package: basic{tenant_php}}}\n---\n\
             apiVersion: supercp/v1\nkind: Domain\nmetadata: {{name: acme.test}}\n\
             spec: {{tenant: acme, php: {domain_php}}}\n"
        )
    };
    let with_php = ", php: {version: \"8.2\"}";
    let p = Prefix::with_files(&[("acme.yaml", &repo(with_php, true))]);
    let pools = p.sandbox().join("etc/php/8.2/fpm/pool.d");
    let main = p.sandbox().join("etc/php/8.2/fpm/php-fpm.conf");
    let fpm_check = || {
        let out = Command::new(&fpm)
            .arg("-t")
            .arg("-y")
            .arg(&main)
            .output()
            .expect("php-fpm8.2 runs");
        assert!(
            out.status.success(),
            "php-fpm8.2 -t on the applied config:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let apply = || {
        let run = p.supercp(&["apply"]);
        run.expect_code(0);
        assert!(
            !run.stderr().contains(":0:0"),
            "no error located at :0:0\n{}",
            run.described
        );
        fpm_check();
    };
    apply();
    assert!(pools.join("acme.conf").is_file() && !pools.join("supercp.conf").exists());
    // A PHP tenant without a PHP domain: its pool goes, the placeholder comes.
    common::write(&p.repo.join("acme.yaml"), &repo(with_php, false));
    apply();
    assert!(!pools.join("acme.conf").exists() && pools.join("supercp.conf").is_file());
    // No PHP left at all: the main config stays, with the placeholder.
    common::write(&p.repo.join("acme.yaml"), &repo("", false));
    apply();
    assert!(main.is_file() && pools.join("supercp.conf").is_file());
    // PHP back: the tenant's pool replaces the placeholder.
    common::write(&p.repo.join("acme.yaml"), &repo(with_php, true));
    apply();
    assert!(pools.join("acme.conf").is_file() && !pools.join("supercp.conf").exists());
}
