//! Config injection through the real binary: every user string that reaches an nginx vhost, a
//! PHP-FPM pool, a crontab or `authorized_keys` is tried with each character that could end a
//! line or a directive, open a block, quote, escape, expand or comment. `validate` and `apply`
//! must both exit 1 with an error at the `file:line:col` of the bad value naming its resource
//! and field, and write nothing: no sandbox, no audit journal.
//!
//! Each case starts from one valid repo (`BASE`, checked valid by its own test) and changes one
//! value, so the error printed is the one the case is about (and only it, but for a tenant name,
//! which the domains refer to).

mod common;

use common::{Prefix, Run};

const FILE: &str = "resources.yaml";

/// A valid repo with every config-bound value double-quoted on a line of its own.
const BASE: &str = r#"apiVersion: supercp/v1
kind: Package
metadata:
  name: basic
spec:
  maxDomains: 10
  maxPhpWorkers: 8
---
apiVersion: supercp/v1
kind: Tenant
metadata:
  name: "acme"
spec:
  package: basic
  shell: "/bin/bash"
  php:
    version: "8.2"
    maxChildren: 4
    memoryLimit: "256M"
    uploadMaxFilesize: "64M"
    ini:
      display_errors: "Off"
  sshKeys:
    - "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin@acme.test"
  cron:
    - schedule: "*/5 * * * *"
      command: "php cron.php"
---
apiVersion: supercp/v1
kind: Domain
metadata:
  name: "acme.test"
spec:
  tenant: acme
  documentRoot: "public_html"
  aliases:
    - "www.acme.test"
  php: true
  redirects:
    - from: "/old"
      to: "/new"
      code: 301
---
apiVersion: supercp/v1
kind: Domain
metadata:
  name: "acme.example"
spec:
  tenant: acme
  redirectTo: "https://acme.test/"
"#;

/// One config-bound value of `BASE`: the bad string goes between `head` and `tail`, which
/// together are the valid value written (quoted) on `line`.
struct Field {
    resource: &'static str,
    field: &'static str,
    line: u32,
    head: &'static str,
    tail: &'static str,
    /// Refused by the config-string grammar (the message names the character); false for
    /// fields with their own stricter grammar that runs instead (tenant names).
    config_string: bool,
    /// Whether a `#` must be refused: it can start a comment only where the value begins a
    /// token of nginx or a crontab line; inside a PHP ini value, a cron command or an SSH key
    /// comment it is an ordinary character (checked: `parse_ini_string("a = #x")` is "#x").
    hash_matters: bool,
    /// Errors printed in all: more than one only where the bad value is a name others refer to.
    errors: usize,
}

const fn field(
    resource: &'static str,
    field: &'static str,
    line: u32,
    head: &'static str,
    tail: &'static str,
) -> Field {
    Field {
        resource,
        field,
        line,
        head,
        tail,
        config_string: true,
        hash_matters: true,
        errors: 1,
    }
}

/// A free-text value, where `#` is an ordinary character (see `hash_matters`).
const fn free_text(mut f: Field) -> Field {
    f.hash_matters = false;
    f
}

const TENANT: &str = "Tenant/acme";
const SITE: &str = "Domain/acme.test";
const REDIRECT: &str = "Domain/acme.example";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin";

/// A resource named by the value itself is written `Domain/` or `Tenant/`.
const FIELDS: &[Field] = &[
    // nginx: server_name, location, return, root.
    field("Domain/", "metadata.name", 32, "acme", ".test"),
    field(SITE, "spec.aliases[0]", 37, "www.acme", ".test"),
    field(SITE, "spec.redirects[0].from", 40, "/ol", "d"),
    field(SITE, "spec.redirects[0].to", 41, "/ne", "w"),
    field(REDIRECT, "spec.redirectTo", 50, "https://acme.test/", ""),
    field(SITE, "spec.documentRoot", 35, "public", "_html"),
    // PHP-FPM pool: section name, paths, php_admin_value; nginx client_max_body_size.
    // Both domains then also refer to a tenant "acme" that does not exist: three errors.
    Field {
        config_string: false,
        errors: 3,
        ..field("Tenant/", "metadata.name", 12, "ac", "me")
    },
    field(TENANT, "spec.php.version", 17, "8.", "2"),
    field(TENANT, "spec.php.memoryLimit", 19, "256", "M"),
    field(TENANT, "spec.php.uploadMaxFilesize", 20, "64", "M"),
    free_text(field(TENANT, "spec.php.ini.display_errors", 22, "O", "ff")),
    // The tenant's crontab, authorized_keys and passwd entry.
    field(TENANT, "spec.cron[0].schedule", 26, "*/5", " * * * *"),
    free_text(field(
        TENANT,
        "spec.cron[0].command",
        27,
        "php cron.php",
        "",
    )),
    free_text(field(TENANT, "spec.sshKeys[0]", 24, KEY, "@acme.test")),
    field(TENANT, "spec.shell", 15, "/bin/bash", ""),
];

/// `(shown in messages, as written inside a YAML double-quoted string)`.
const BAD: &[(&str, &str)] = &[
    ("\n", r"\n"),
    ("\r", r"\r"),
    (";", ";"),
    ("{", "{"),
    ("}", "}"),
    ("\"", r#"\""#),
    ("'", "'"),
    ("\0", r"\0"),
    ("\\", r"\\"),
    ("$", "$"),
    ("#", "#"),
];

struct Case {
    name: String,
    repo: String,
    /// `resources.yaml:LINE:COL: error: `
    location: String,
    resource: String,
    field: &'static str,
    /// Part of the message that says why (the forbidden character), when the grammar says it.
    reason: Option<String>,
    errors: usize,
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for f in FIELDS {
        let index = usize::try_from(f.line - 1).expect("a line number");
        let line = BASE.lines().nth(index).expect("a line of BASE");
        let valid = format!("\"{}{}\"", f.head, f.tail);
        let at = line.find(&valid).unwrap_or_else(|| {
            panic!(
                "FIELDS is out of date: line {} of BASE is {line:?}, not {}'s value {valid}",
                f.line, f.field
            )
        });
        for &(bad, escaped) in BAD {
            if bad == "#" && !f.hash_matters {
                continue;
            }
            let quoted = format!("\"{}{escaped}{}\"", f.head, f.tail);
            let mut lines: Vec<String> = BASE.lines().map(str::to_owned).collect();
            lines[index] = line.replacen(&valid, &quoted, 1);
            // A bad name is shown escaped, so it cannot split or overwrite the error line.
            let resource = if f.resource.ends_with('/') {
                let name = format!("{}{bad}{}", f.head, f.tail);
                format!("{}{}", f.resource, name.escape_debug())
            } else {
                f.resource.to_owned()
            };
            let reason = (f.config_string && bad != "#").then(|| {
                let c = bad.chars().next().expect("one character");
                format!("contains {c:?}, which could break out of a config file")
            });
            cases.push(Case {
                name: format!("{} with {bad:?}", f.field),
                repo: lines.join("\n") + "\n",
                location: format!("{FILE}:{}:{}: error: ", f.line, at + 1),
                resource,
                field: f.field,
                reason,
                errors: f.errors,
            });
        }
    }
    cases
}

/// The one diagnostic of a run, from its location to its help line.
fn diagnostic<'a>(case: &Case, command: &str, run: &'a Run, err: &'a str) -> &'a str {
    let start = err.find(&case.location).unwrap_or_else(|| {
        panic!(
            "{}: `{command}` must report the value at {}\n{}",
            case.name, case.location, run.described
        )
    });
    let rest = &err[start..];
    let end = rest.find("\n  help: ").unwrap_or_else(|| {
        panic!(
            "{}: `{command}`: every error has a help line\n{}",
            case.name, run.described
        )
    });
    &rest[..end]
}

fn check(case: &Case, command: &str) {
    let p = Prefix::with_files(&[(FILE, &case.repo)]);
    let run = p.supercp(&[command]);
    assert_eq!(
        run.code(),
        1,
        "{}: `{command}` must refuse it with exit code 1\n{}",
        case.name,
        run.described
    );
    let err = run.stderr();
    let found = diagnostic(case, command, &run, &err);
    let resource_and_field = format!("{}: {}: ", case.resource, case.field);
    assert!(
        found.contains(&resource_and_field),
        "{}: `{command}` must name `{resource_and_field}`, found\n{found}\n{}",
        case.name,
        run.described
    );
    if let Some(reason) = &case.reason {
        assert!(
            found.contains(reason),
            "{}: `{command}` must say why: {reason}, found\n{found}\n{}",
            case.name,
            run.described
        );
    }
    let count = format!("\n{} error(s); nothing was applied\n", case.errors);
    assert!(
        err.ends_with(&count),
        "{}: `{command}` must end with{count}\n{}",
        case.name,
        run.described
    );
    assert!(
        run.stdout().is_empty(),
        "{}: `{command}` prints nothing on stdout\n{}",
        case.name,
        run.described
    );
    assert!(
        !p.state.exists(),
        "{}: `{command}` must write nothing, not even the state dir\n{}",
        case.name,
        run.described
    );
}

fn check_all(command: &str) {
    let cases = cases();
    assert!(
        cases.len() >= FIELDS.len() * 10,
        "one case per field and bad string"
    );
    for case in &cases {
        check(case, command);
    }
}

/// The control: unchanged, the repo is valid and applies, so each case fails for its value alone
/// and "nothing written" means something.
#[test]
fn the_base_repo_validates_and_applies() {
    let p = Prefix::with_files(&[(FILE, BASE)]);
    let run = p.supercp(&["validate"]);
    run.expect_code(0);
    assert!(
        run.stderr().starts_with("valid: 4 resources"),
        "{}",
        run.described
    );
    let run = p.supercp(&["apply"]);
    run.expect_code(0);
    assert!(
        p.sandbox().is_dir() && p.state.join("audit.db").is_file(),
        "apply writes the sandbox and records the run\n{}",
        run.described
    );
}

#[test]
fn validate_refuses_every_injection_character_in_every_config_string() {
    check_all("validate");
}

#[test]
fn apply_refuses_every_injection_character_in_every_config_string_and_writes_nothing() {
    check_all("apply");
}
