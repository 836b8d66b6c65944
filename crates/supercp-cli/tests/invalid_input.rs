//! Every invalid-input fixture (`tests/fixtures/invalid/<case>/`) through the real binary:
//! `validate`, `plan` and `apply` exit 1, print each expected `file:line:col: error:` line on
//! stderr, print nothing on stdout, and write nothing.

mod common;

use std::fs;
use std::path::Path;

use common::Prefix;

#[test]
fn every_invalid_fixture_exits_1_with_its_diagnostics_and_writes_nothing() {
    let fixtures = common::workspace().join("tests/fixtures/invalid");
    let mut cases: Vec<_> = fs::read_dir(&fixtures)
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "one fixture per error class");
    for case in cases {
        check_case(&case);
    }
}

fn check_case(case: &Path) {
    let name = case
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let expected = fs::read_to_string(case.join("expected.txt")).expect("expected.txt");
    // Accounts below UID 1000 come from this machine's /etc/passwd through the binary; the
    // fixture's list of them is for the loader test, so only lines for built-in names count here.
    let node_specific = |line: &&str| line.contains("system account of this node");
    let p = Prefix::empty();
    common::copy_dir(case, &p.repo);
    for extra in ["expected.txt", "system-accounts.txt"] {
        fs::remove_file(p.repo.join(extra)).ok();
    }
    for command in ["validate", "plan", "apply"] {
        let run = p.supercp(&[command]);
        run.expect_code(1);
        let err = run.stderr();
        for line in expected
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| !node_specific(l))
        {
            assert!(
                err.contains(line),
                "{name}: `{command}` must print\n  {line}\n{}",
                run.described
            );
        }
        assert!(
            err.contains("help:"),
            "{name}: every error has a help line\n{}",
            run.described
        );
        assert!(
            run.stdout().is_empty(),
            "{name}: stdout stays empty\n{}",
            run.described
        );
        assert!(
            !p.sandbox().exists(),
            "{name}: `{command}` wrote nothing\n{}",
            run.described
        );
        assert!(
            !p.state.join("audit.db").exists(),
            "{name}: `{command}` recorded no run"
        );
    }
}

#[test]
fn three_errors_in_two_files_are_printed_together_sorted_by_file_and_line() {
    let case = common::workspace().join("tests/fixtures/invalid/three_errors_two_files");
    let p = Prefix::empty();
    common::copy_dir(&case, &p.repo);
    fs::remove_file(p.repo.join("expected.txt")).ok();
    let run = p.supercp(&["validate"]);
    run.expect_code(1);
    let errors: Vec<String> = run
        .stderr()
        .lines()
        .filter(|l| l.contains(": error: "))
        .map(str::to_owned)
        .collect();
    assert_eq!(errors.len(), 3, "{}", run.described);
    assert!(
        errors[0].starts_with("a.yaml:")
            && errors[1].starts_with("a.yaml:")
            && errors[2].starts_with("b.yaml:"),
        "{errors:?}"
    );
    assert!(
        run.stderr().contains("3 error(s); nothing was applied"),
        "{}",
        run.described
    );
}

#[test]
fn php_version_the_node_does_not_have_is_refused_naming_the_installed_ones() {
    let p = Prefix::with_files(&[(
        "acme.yaml",
        "apiVersion: supercp/v1\nkind: Package\nmetadata: {name: basic}\nspec: {}\n---\n\
         apiVersion: supercp/v1\nkind: Tenant\nmetadata: {name: acme}\nspec:\n  package: basic\n\
         \x20 php: {version: \"7.4\"}\n---\n\
         apiVersion: supercp/v1\nkind: Domain\nmetadata: {name: acme.test}\n\
         spec: {tenant: acme, php: true}\n",
    )]);
    for command in ["validate", "apply"] {
        let run = p.supercp(&[command]);
        run.expect_code(1);
        assert!(
            run.stderr().contains(
                "acme.yaml:11:18: error: Tenant/acme: spec.php.version: PHP 7.4 is not installed on node sandbox"
            ) && run.stderr().contains("help: use one of the installed versions: 8.2"),
            "{}",
            run.described
        );
        assert!(!p.state.exists(), "nothing written\n{}", run.described);
    }
}

#[test]
fn an_applied_file_replaced_by_a_symlink_is_refused_naming_the_link_and_nothing_is_deleted() {
    let p = Prefix::with_example("quickstart");
    p.supercp(&["apply"]).expect_code(0);
    let before = p.snapshot();
    // The same text, now behind a link: skipping it would delete acme's sites.
    let copy = p.dir.path().join("acme-copy.yaml");
    fs::rename(p.repo.join("acme.yaml"), &copy).expect("move");
    std::os::unix::fs::symlink(&copy, p.repo.join("acme.yaml")).expect("symlink");
    for command in ["validate", "plan", "apply"] {
        let run = p.supercp(&[command]);
        run.expect_code(1);
        assert!(
            run.stderr().contains(&format!(
                "acme.yaml:1:1: error: is a symbolic link (to {}); links in the repo are not followed",
                copy.display()
            )) && run.stderr().contains("help:"),
            "{}",
            run.described
        );
        assert!(run.stdout().is_empty(), "{}", run.described);
    }
    assert!(p.snapshot() == before, "nothing was changed or deleted");
}

#[test]
fn a_zone_is_refused_on_a_dns_node_without_a_dns_block_and_ignored_on_a_web_node() {
    let mut p = Prefix::empty();
    let fixture = common::workspace().join("tests/fixtures/valid/zone-example/resources.yaml");
    common::write(
        &p.repo.join("resources.yaml"),
        &fs::read_to_string(&fixture).expect("the fixture"),
    );
    // A web node holds no zone: the Zone is valid and not this node's.
    p.supercp(&["validate"]).expect_code(0);
    p.supercp(&["plan"]).expect_code(0);
    // A dns node that does not say where zones go: refused with nothing applied, not
    // silently skipped.
    let node = p.node_with("");
    let text =
        fs::read_to_string(&node)
            .expect("node")
            .replacen("roles: [web]", "roles: [web, dns]", 1);
    fs::write(&node, text).expect("node");
    let run = p.supercp(&["apply"]);
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains("error: Node/sandbox: node sandbox has the `dns` role and the repo has 1 zone(s), but the node has no `dns:` block"),
        "{}",
        run.described
    );
    assert!(
        !p.state.join("sandbox").exists(),
        "nothing applied\n{}",
        run.described
    );
}
