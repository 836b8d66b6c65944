//! Data-driven boundary test: every repo under `tests/fixtures/invalid/<case>/` must fail to
//! load with exactly the diagnostics listed in its `expected.txt` (the first line of each,
//! `file:line:col: error: …`, files relative to the case directory).
//!
//! A case may hold a `system-accounts.txt` (one name a line): the accounts the node reports
//! below UID 1000, passed as `LoadOptions::system_accounts`.
//!
//! `UPDATE_EXPECT=1 cargo test -p supercp-load --test invalid_fixtures` rewrites every
//! `expected.txt` from the loader's output. Review each rewritten file by eye: the position must
//! point at the offending key or value.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use supercp_core::Diagnostic;
use supercp_load::{load_repo, LoadOptions};

/// The error classes of issue 3 item 2, one fixture directory each.
const CASES: &[&str] = &[
    "config_injection",
    "cron_rules",
    "domain_ip_or_localhost",
    "domain_name_grammar",
    "duplicate_name",
    "hostname_claimed_twice",
    "idn_homograph_and_bidi",
    "label_keys",
    "missing_field",
    "missing_package_reference",
    "missing_tenant_reference",
    "over_package_limits",
    "php_domain_without_php",
    "redirect_rules",
    "reserved_tenant_name",
    "tenant_name_grammar",
    "tenant_php_and_login",
    "three_errors_two_files",
    "unknown_api_version",
    "unknown_field",
    "unknown_kind",
    "wrong_type",
    "yaml_syntax",
    "zone_rules",
];

#[test]
fn zone_names_types_values_ttls_cname_rules_and_ownership_are_reported_at_each() {
    check("zone_rules");
}

#[test]
fn yaml_syntax_error_is_reported_at_the_broken_token() {
    check("yaml_syntax");
}

#[test]
fn unknown_kind_is_reported_at_its_value() {
    check("unknown_kind");
}

#[test]
fn unknown_api_version_is_reported_at_its_value() {
    check("unknown_api_version");
}

#[test]
fn unknown_field_is_reported_at_its_key_with_its_full_path() {
    check("unknown_field");
}

#[test]
fn value_of_the_wrong_type_is_reported_at_the_value() {
    check("wrong_type");
}

#[test]
fn missing_field_is_reported_at_the_key_of_the_mapping_that_lacks_it() {
    check("missing_field");
}

#[test]
fn tenant_name_outside_the_grammar_is_reported_at_the_name() {
    check("tenant_name_grammar");
}

#[test]
fn domain_name_or_alias_with_a_bad_label_is_reported_at_it() {
    check("domain_name_grammar");
}

#[test]
fn reserved_or_system_account_tenant_name_is_reported_at_the_name() {
    check("reserved_tenant_name");
}

#[test]
fn domain_of_an_unknown_tenant_is_reported_at_its_tenant_field() {
    check("missing_tenant_reference");
}

#[test]
fn tenant_of_an_unknown_package_is_reported_at_its_package_field() {
    check("missing_package_reference");
}

#[test]
fn duplicate_name_is_reported_with_where_it_was_first_declared() {
    check("duplicate_name");
}

#[test]
fn hostname_claimed_twice_is_reported_at_the_second_claim() {
    check("hostname_claimed_twice");
}

#[test]
fn redirects_that_would_never_match_or_double_the_query_are_reported() {
    check("redirect_rules");
}

#[test]
fn tenant_over_its_package_limits_is_reported() {
    check("over_package_limits");
}

#[test]
fn ini_key_off_the_allowlist_and_shell_off_the_allowlist_are_reported() {
    check("tenant_php_and_login");
}

#[test]
fn string_that_could_break_out_of_a_config_file_is_reported_at_the_value() {
    check("config_injection");
}

#[test]
fn ip_address_or_localhost_like_domain_or_alias_is_reported_at_it() {
    check("domain_ip_or_localhost");
}

#[test]
fn php_domain_of_a_tenant_without_php_is_reported_at_its_php_field() {
    check("php_domain_without_php");
}

#[test]
fn mixed_script_labels_and_bidi_controls_are_reported_at_the_value() {
    check("idn_homograph_and_bidi");
}

#[test]
fn cron_fields_out_of_range_zero_steps_and_empty_commands_are_reported() {
    check("cron_rules");
}

#[test]
fn label_keys_and_values_follow_the_config_string_grammar() {
    check("label_keys");
}

#[test]
fn three_errors_in_two_files_are_all_reported_sorted_by_file_then_line() {
    check("three_errors_two_files");
    let diagnostics = load_case(&fixtures().join("invalid/three_errors_two_files"));
    let spans: Vec<(String, u32)> = diagnostics
        .iter()
        .map(|d| (d.span.file.to_string(), d.span.line))
        .collect();
    assert_eq!(spans.len(), 3, "{diagnostics:#?}");
    let mut sorted = spans.clone();
    sorted.sort();
    assert_eq!(spans, sorted);
    let files: std::collections::BTreeSet<&str> = spans.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(files.len(), 2, "{spans:?}");
    let messages: std::collections::BTreeSet<&str> =
        diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages.len(), 3, "three different errors: {messages:?}");
}

#[test]
fn every_fixture_directory_is_checked_by_a_test() {
    let dirs: Vec<String> = cases()
        .iter()
        .map(|c| {
            c.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        dirs, CASES,
        "add a test for each new fixture directory (and to CASES)"
    );
}

#[test]
fn every_diagnostic_of_an_invalid_fixture_has_a_help_line() {
    for case in cases() {
        for d in load_case(&case) {
            assert!(
                !d.help.trim().is_empty(),
                "{}: no help for {d}",
                case.display()
            );
            assert!(
                d.span.line > 0 && d.span.col > 0,
                "{}: no position for {d}",
                case.display()
            );
            assert!(
                !d.message.trim().is_empty(),
                "{}: empty message in {d}",
                case.display()
            );
        }
    }
}

#[test]
fn every_diagnostic_names_its_resource_when_the_document_has_a_kind_and_name() {
    for case in cases() {
        for d in load_case(&case) {
            let text =
                fs::read_to_string(case.join(&*d.span.file)).expect("diagnostic file is readable");
            if let Some(resource) = resource_at_line(&text, d.span.line) {
                assert_eq!(
                    d.resource.as_deref(),
                    Some(resource.as_str()),
                    "{}: {d}",
                    case.display()
                );
            }
        }
    }
}

/// The catalog of `tests/fixtures/valid/<name>`, or a panic listing every diagnostic.
fn load_valid(name: &str) -> supercp_core::Catalog {
    load_repo(
        &fixtures().join("valid").join(name),
        &LoadOptions::default(),
    )
    .unwrap_or_else(|ds| {
        panic!(
            "{}",
            ds.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

#[test]
fn the_zone_of_issue_12_loads_as_written_with_canonical_rrsets() {
    let catalog = load_valid("zone-example");
    let (name, zone) = catalog.zones.iter().next().expect("one zone");
    assert_eq!(name.as_str(), "acme.test");
    assert_eq!(zone.tenant.as_str(), "acme");
    assert!(zone.resource.spec.dnssec);
    let rrsets: Vec<String> = zone
        .rrsets
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.name,
                r.record_type,
                r.ttl,
                r.contents.join(" | ")
            )
        })
        .collect();
    assert_eq!(
        rrsets,
        [
            "_sip._tcp.acme.test. SRV 3600 10 60 5060 sip.acme.test.",
            "acme.test. A 300 192.0.2.10",
            "acme.test. MX 3600 10 mail.acme.test.",
            "acme.test. TXT 3600 \"v=spf1 mx -all\"",
            "acme.test. CAA 3600 0 issue \"letsencrypt.org\"",
            "www.acme.test. CNAME 3600 acme.test.",
        ]
    );
}

#[test]
fn issue_example_loads_with_every_field_as_written() {
    let catalog = load_valid("issue-example");
    assert_eq!(catalog.len(), 3);

    let basic = &catalog.packages["basic"];
    assert_eq!(basic.spec.max_domains.as_ref().map(|v| v.value), Some(10));
    assert_eq!(
        basic.spec.max_php_workers.as_ref().map(|v| v.value),
        Some(8)
    );
    assert_eq!(basic.origin.to_string(), "resources.yaml:3:18");

    let (name, acme) = catalog.tenants.iter().next().expect("one tenant");
    assert_eq!(name.as_str(), "acme");
    assert_eq!(acme.resource.spec.package.value, "basic");
    assert!(!acme.resource.spec.suspended);
    let php = acme.resource.spec.php.as_ref().expect("php");
    assert_eq!(php.version.value, "8.2");
    assert_eq!(php.max_children.as_ref().map(|v| v.value), Some(4));
    assert_eq!(
        php.memory_limit.as_ref().map(|v| v.value.as_str()),
        Some("256M")
    );
    assert_eq!(
        php.memory_limit.as_ref().map(|v| (v.line, v.col)),
        Some((11, 54))
    );

    let (name, domain) = catalog.domains.iter().next().expect("one domain");
    assert_eq!(name.as_str(), "acme.test");
    assert_eq!(domain.tenant.as_str(), "acme");
    assert_eq!(
        domain
            .aliases
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        ["www.acme.test"]
    );
    let spec = &domain.resource.spec;
    assert!(spec.php);
    assert_eq!(spec.redirects.len(), 1);
    let redirect = &spec.redirects[0];
    assert_eq!(redirect.from.value, "/old");
    assert_eq!(redirect.to.value, "/new");
    assert_eq!(redirect.code.as_ref().map(|c| c.value), Some(301));
    assert_eq!((redirect.to.line, redirect.to.col), (21, 32));
}

/// Loads one case and compares the first line of every diagnostic with its `expected.txt`
/// (or rewrites that file under `UPDATE_EXPECT=1`).
fn check(case: &str) {
    let dir = fixtures().join("invalid").join(case);
    let actual: String = load_case(&dir)
        .iter()
        .map(|d| format!("{}\n", first_line(d)))
        .collect();
    let expected_path = dir.join("expected.txt");
    if std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v != "0") {
        fs::write(&expected_path, &actual).expect("write expected.txt");
        return;
    }
    let expected = fs::read_to_string(&expected_path).unwrap_or_default();
    assert!(
        expected == actual,
        "{}: diagnostics differ (UPDATE_EXPECT=1 rewrites expected.txt; review it)\n--- expected\n{expected}--- actual\n{actual}",
        dir.display()
    );
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn cases() -> Vec<PathBuf> {
    let dir = fixtures().join("invalid");
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("fixture entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

fn load_case(case: &Path) -> Vec<Diagnostic> {
    let system_accounts = fs::read_to_string(case.join("system-accounts.txt"))
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let options = LoadOptions { system_accounts };
    match load_repo(case, &options) {
        Ok(catalog) => panic!(
            "{}: loaded without error ({} resources)",
            case.display(),
            catalog.len()
        ),
        Err(diagnostics) => diagnostics,
    }
}

fn first_line(d: &Diagnostic) -> String {
    d.to_string().lines().next().unwrap_or_default().to_owned()
}

/// `Kind/name` of the YAML document holding `line` of `text`, when that document parses far
/// enough to tell (independently of the loader: any mapping with string `kind` and
/// `metadata.name`).
fn resource_at_line(text: &str, line: u32) -> Option<String> {
    #[derive(Deserialize)]
    struct Header {
        kind: String,
        metadata: Meta,
    }
    #[derive(Deserialize)]
    struct Meta {
        name: String,
    }
    let mut start = 0usize;
    let lines: Vec<&str> = text.lines().collect();
    let index = (line as usize).checked_sub(1)?;
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("---") && i > 0 {
            if i > index {
                break;
            }
            start = i;
        }
    }
    let end = lines
        .iter()
        .enumerate()
        .skip(start + 1)
        .find(|(_, l)| l.starts_with("---"))
        .map_or(lines.len(), |(i, _)| i);
    let doc = lines[start..end].join("\n");
    let header: Header = serde_saphyr::from_str(&doc).ok()?;
    Some(format!("{}/{}", header.kind, header.metadata.name))
}
