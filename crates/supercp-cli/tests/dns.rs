//! Zones converged into a real PowerDNS (gsqlite3, HTTP API) by the real `supercp` binary,
//! checked as a resolver sees them (`dig`), by an independent checker of what is served
//! (`named-checkzone` on an AXFR), and by what the server's own log says was sent.

mod common;

use common::Prefix;
use supercp_testkit::bind;
use supercp_testkit::pdns::Pdns;

/// A repo of two tenants and their zones; `acme.test` holds every record type.
fn repo(acme_extra: &str) -> Vec<(&'static str, String)> {
    let base = "apiVersion: supercp/v1
kind: Package
metadata: {name: basic}
spec: {maxDomains: 10}
---
apiVersion: supercp/v1
kind: Tenant
metadata: {name: acme}
spec: {package: basic}
---
apiVersion: supercp/v1
kind: Tenant
metadata: {name: globex}
spec: {package: basic}
"
    .to_owned();
    let acme = format!(
        "apiVersion: supercp/v1
kind: Zone
metadata: {{name: acme.test}}
spec:
  tenant: acme
  ttl: 3600
  template: none
  records:
    - {{name: \"@\", type: A, ttl: 300, values: [\"192.0.2.10\"]}}
    - {{name: \"@\", type: AAAA, values: [\"2001:DB8:0::10\"]}}
    - {{name: www, type: CNAME, values: [\"acme.test.\"]}}
    - {{name: \"@\", type: MX, values: [\"10 mail.acme.test.\", \"20 mx2\"]}}
    - {{name: mail, type: A, values: [\"192.0.2.25\"]}}
    - {{name: mx2, type: A, values: [\"192.0.2.26\"]}}
    - {{name: \"@\", type: TXT, values: [\"v=spf1 mx -all\"]}}
    - {{name: long, type: TXT, values: [\"{long}\"]}}
    - {{name: _sip._tcp, type: SRV, values: [\"10 60 5060 sip.acme.test.\"]}}
    - {{name: sip, type: A, values: [\"192.0.2.50\"]}}
    - {{name: \"@\", type: CAA, values: ['0 issue \"letsencrypt.org\"']}}
    - {{name: 10.2.0.192.in-addr, type: PTR, values: [\"acme.test.\"]}}
    - {{name: _25._tcp.mail, type: TLSA, values: [\"3 1 1 ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789\"]}}
    - {{name: \"@\", type: SSHFP, values: [\"4 2 ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789\"]}}
    - {{name: sub, type: NS, values: [\"ns.elsewhere.example.\"]}}
{acme_extra}",
        long = "k".repeat(300)
    );
    let globex = "apiVersion: supercp/v1
kind: Zone
metadata: {name: globex.test}
spec:
  tenant: globex
  template: none
  records:
    - {name: \"@\", type: A, values: [\"198.51.100.7\"]}
"
    .to_owned();
    vec![
        ("base.yaml", base),
        ("acme.yaml", acme),
        ("globex.yaml", globex),
    ]
}

/// A prefix with the repo and a node of role `dns` pointing at `pdns`.
fn prefix(pdns_url: &str, key_file: &str, files: &[(&'static str, String)]) -> Prefix {
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let mut p = Prefix::with_files(&files);
    p.node_with(&dns_block(
        pdns_url,
        key_file,
        "[ns1.example.net., ns2.example.net.]",
    ));
    dns_role(&p);
    p
}

fn dns_block(url: &str, key_file: &str, nameservers: &str) -> String {
    format!(
        "  dns:\n    apiUrl: {url}\n    apiKeyFile: {key_file}\n    nameservers: {nameservers}\n"
    )
}

/// Turns the node file's `web` role into `dns`.
fn dns_role(p: &Prefix) {
    let node = p.node.as_ref().expect("a node file");
    let text = std::fs::read_to_string(node).expect("node file");
    std::fs::write(node, text.replace("roles: [web]", "roles: [dns]")).expect("node file");
}

fn serial(pdns: &Pdns, zone: &str) -> u32 {
    let soa = pdns.dig(zone, "SOA");
    soa.first()
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no SOA for {zone}: {soa:?}"))
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

#[test]
fn zones_are_served_as_declared_drift_is_put_back_and_a_second_apply_writes_nothing() {
    let test = "zones_are_served_as_declared_drift_is_put_back_and_a_second_apply_writes_nothing";
    let Some(pdns) = Pdns::start(test) else {
        return;
    };
    let key = pdns.api_key_file.display().to_string();
    let p = prefix(&pdns.api_url(), &key, &repo(""));
    let run = p.supercp(&["apply"]);
    run.expect_code(0);
    assert!(
        !run.stdout().contains(&pdns.api_key) && !run.stderr().contains(&pdns.api_key),
        "the API key never reaches the output\n{}",
        run.described
    );

    // Exactly the declared answers, type by type.
    let answers = [
        ("acme.test", "A", vec!["192.0.2.10"]),
        ("acme.test", "AAAA", vec!["2001:db8::10"]),
        ("www.acme.test", "CNAME", vec!["acme.test."]),
        (
            "acme.test",
            "MX",
            vec!["10 mail.acme.test.", "20 mx2.acme.test."],
        ),
        ("acme.test", "TXT", vec!["\"v=spf1 mx -all\""]),
        (
            "_sip._tcp.acme.test",
            "SRV",
            vec!["10 60 5060 sip.acme.test."],
        ),
        ("acme.test", "CAA", vec!["0 issue \"letsencrypt.org\""]),
        ("10.2.0.192.in-addr.acme.test", "PTR", vec!["acme.test."]),
        (
            "acme.test",
            "NS",
            vec!["ns1.example.net.", "ns2.example.net."],
        ),
        ("globex.test", "A", vec!["198.51.100.7"]),
    ];
    for (name, t, want) in &answers {
        let want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(sorted(pdns.dig(name, t)), sorted(want), "{name} {t}");
    }
    // A TXT longer than 255 bytes is served as two strings.
    assert_eq!(
        pdns.dig("long.acme.test", "TXT"),
        vec![format!("\"{}\" \"{}\"", "k".repeat(255), "k".repeat(45))]
    );
    let tlsa = pdns.dig("_25._tcp.mail.acme.test", "TLSA").join(" ");
    assert!(
        tlsa.replace(' ', "")
            .to_ascii_lowercase()
            .contains("311abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"),
        "{tlsa}"
    );
    assert_eq!(pdns.dig("acme.test", "SSHFP").len(), 1);

    // What is served passes a checker that is not SuperCP's.
    for zone in ["acme.test", "globex.test"] {
        let server = std::net::SocketAddr::from(([127, 0, 0, 1], pdns.dns_port));
        let text = bind::axfr(server, zone).expect("an AXFR");
        bind::check_zone(test, zone, &text)
            .unwrap_or_else(|e| panic!("named-checkzone refused {zone}: {e}\n{text}"));
    }

    // A second apply sends nothing that writes and leaves the serials as they are.
    let (acme_serial, globex_serial) = (serial(&pdns, "acme.test"), serial(&pdns, "globex.test"));
    let before = pdns.requests().len();
    let plan = p.supercp(&["plan"]);
    plan.expect_code(0);
    assert!(plan.stdout().contains("No changes"), "{}", plan.described);
    p.supercp(&["apply"]).expect_code(0);
    assert_eq!(pdns.writes_since(before), Vec::<String>::new());
    assert_eq!(serial(&pdns, "acme.test"), acme_serial);
    assert_eq!(serial(&pdns, "globex.test"), globex_serial);

    // Changed and added by hand: drift, shown by plan and put back by one PATCH.
    let patch = r#"{"rrsets": [
        {"name": "acme.test.", "type": "A", "ttl": 300, "changetype": "REPLACE",
         "records": [{"content": "192.0.2.99", "disabled": false}]},
        {"name": "extra.acme.test.", "type": "TXT", "ttl": 60, "changetype": "REPLACE",
         "records": [{"content": "\"by hand\"", "disabled": false}]}]}"#;
    let (status, body) = pdns
        .api(
            "PATCH",
            "/api/v1/servers/localhost/zones/acme.test.",
            Some(patch),
        )
        .expect("the API answers");
    assert_eq!(status, 204, "{body}");
    assert_eq!(pdns.dig("acme.test", "A"), vec!["192.0.2.99"]);
    let drifted = serial(&pdns, "acme.test");
    let plan = p.supercp(&["plan"]);
    plan.expect_code(0);
    let out = plan.stdout();
    assert!(
        out.contains("~ zone:acme.test")
            && out.contains("- acme.test. 300 A 192.0.2.99")
            && out.contains("+ acme.test. 300 A 192.0.2.10  (explicit)")
            && out.contains("- extra.acme.test. 60 TXT \"by hand\""),
        "{}",
        plan.described
    );
    assert!(!out.contains("zone:globex.test"), "{out}");
    let before = pdns.requests().len();
    p.supercp(&["apply"]).expect_code(0);
    let writes = pdns.writes_since(before);
    assert_eq!(
        writes,
        vec!["PATCH /api/v1/servers/localhost/zones/acme.test. 204".to_owned()],
        "one PATCH for the drifted zone, nothing for the other"
    );
    assert_eq!(pdns.dig("acme.test", "A"), vec!["192.0.2.10"]);
    assert_eq!(pdns.dig("extra.acme.test", "TXT"), Vec::<String>::new());
    assert_eq!(
        serial(&pdns, "acme.test"),
        drifted + 1,
        "one serial step per change"
    );
    assert_eq!(serial(&pdns, "globex.test"), globex_serial);
}

#[test]
fn a_large_change_or_a_new_apex_ns_set_is_refused_until_forced_and_nothing_is_written() {
    let test = "a_large_change_or_a_new_apex_ns_set_is_refused_until_forced_and_nothing_is_written";
    let Some(pdns) = Pdns::start(test) else {
        return;
    };
    let key = pdns.api_key_file.display().to_string();
    let p = prefix(&pdns.api_url(), &key, &repo(""));
    p.supercp(&["apply"]).expect_code(0);

    // Five of the zone's sixteen rrsets change (31 %): over the 30 % share.
    let changed: Vec<(&'static str, String)> = repo("")
        .into_iter()
        .map(|(name, text)| {
            let text = text
                .replace("192.0.2.10\"", "192.0.2.11\"")
                .replace("192.0.2.25", "192.0.2.35")
                .replace("192.0.2.26", "192.0.2.36")
                .replace("192.0.2.50", "192.0.2.60")
                .replace("v=spf1 mx -all", "v=spf1 a mx -all");
            (name, text)
        })
        .collect();
    for (name, text) in &changed {
        common::write(&p.repo.join(name), text);
    }
    let before = pdns.requests().len();
    for command in ["plan", "apply"] {
        let run = p.supercp(&[command]);
        run.expect_code(1);
        assert!(
            run.stderr().contains("Zone/acme.test")
                && run.stderr().contains("more than 30 %")
                && run.stderr().contains("--force-zone"),
            "{}",
            run.described
        );
    }
    assert_eq!(pdns.writes_since(before), Vec::<String>::new());
    assert_eq!(pdns.dig("acme.test", "A"), vec!["192.0.2.10"]);
    p.supercp(&["apply", "--force-zone", "acme.test"])
        .expect_code(0);
    assert_eq!(pdns.dig("acme.test", "A"), vec!["192.0.2.11"]);

    // New nameservers for every zone: refused for each, forced one zone at a time.
    let node = p.node.clone().expect("node file");
    let text = std::fs::read_to_string(&node).expect("node");
    std::fs::write(&node, text.replace("ns2.example.net.", "ns3.example.org.")).expect("node");
    let before = pdns.requests().len();
    let run = p.supercp(&["apply"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("apex NS set") && run.stderr().contains("Zone/globex.test"),
        "{}",
        run.described
    );
    assert_eq!(pdns.writes_since(before), Vec::<String>::new());
    p.supercp(&["apply", "--force-zone", "acme.test"])
        .expect_code(1);
    p.supercp(&[
        "apply",
        "--force-zone",
        "acme.test",
        "--force-zone",
        "globex.test.",
    ])
    .expect_code(0);
    assert_eq!(
        sorted(pdns.dig("globex.test", "NS")),
        vec!["ns1.example.net.", "ns3.example.org."]
    );
}

#[test]
fn with_powerdns_down_the_zones_fail_and_the_rest_of_the_node_is_applied() {
    // A port nothing listens on: the server is down for the whole run.
    let port = supercp_testkit::services::free_port();
    let mut files = repo("");
    files.push((
        "site.yaml",
        "apiVersion: supercp/v1
kind: Domain
metadata: {name: acme.test}
spec: {tenant: acme}
"
        .to_owned(),
    ));
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let mut p = Prefix::with_files(&files);
    let key = p.dir.path().join("pdns.key");
    common::write(&key, "secret-key");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let url = format!("http://127.0.0.1:{port}");
    p.node_with(&dns_block(
        &url,
        &key.display().to_string(),
        "[ns1.example.net.]",
    ));
    let node = p.node.clone().expect("node");
    let text = std::fs::read_to_string(&node).expect("node");
    std::fs::write(&node, text.replace("roles: [web]", "roles: [web, dns]")).expect("node");

    let plan = p.supercp(&["plan"]);
    plan.expect_code(1);
    assert!(
        plan.stdout().contains("? zone:acme.test") && plan.stderr().contains("did not answer"),
        "{}",
        plan.described
    );
    let run = p.supercp(&["apply"]);
    run.expect_code(1);
    let err = run.stderr();
    assert!(
        err.contains("zone:acme.test")
            && err.contains("zone:globex.test")
            && err.contains("PowerDNS API unreachable")
            && err.contains("the rest of the node was applied"),
        "{}",
        run.described
    );
    assert!(!err.contains("secret-key"), "{err}");
    // The web side of the node converged anyway.
    let vhost = p.sandbox().join("etc/nginx/sites-enabled/acme.test.conf");
    assert!(vhost.is_file(), "{}\n{}", vhost.display(), run.described);
}

#[test]
fn a_secondary_is_notified_and_serves_each_new_serial_shortly_after_an_apply() {
    let test = "a_secondary_is_notified_and_serves_each_new_serial_shortly_after_an_apply";
    // PowerDNS's own check of its primaries runs hourly here: only SuperCP's NOTIFY can bring
    // the secondary up to date within the test.
    let Some(pdns) = Pdns::start_primary(test, std::time::Duration::from_secs(3600)) else {
        return;
    };
    let primary = std::net::SocketAddr::from(([127, 0, 0, 1], pdns.dns_port));
    let Some(secondary) = bind::Bind::start_secondary(test, primary, &["globex.test"]) else {
        return;
    };
    let files = |ip: &str| -> Vec<(&'static str, String)> {
        repo("")
            .into_iter()
            .map(|(name, text)| {
                let text = text.replace("198.51.100.7", ip).replace(
                    "  template: none\n",
                    &format!(
                        "  template: none\n  secondaries: {{notify: [\"{}\"], allowTransfer: [\"127.0.0.1/32\"]}}\n",
                        secondary.notify_target()
                    ),
                );
                (name, text)
            })
            .collect()
    };
    let key = pdns.api_key_file.display().to_string();
    let p = prefix(&pdns.api_url(), &key, &files("198.51.100.7"));
    p.supercp(&["apply"]).expect_code(0);
    let first = serial(&pdns, "globex.test");
    secondary
        .wait_for_serial("globex.test", first, std::time::Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\nprimary log:\n{}", pdns.log()));
    assert_eq!(secondary.dig("globex.test", "A"), vec!["198.51.100.7"]);
    let (status, meta) = pdns
        .api(
            "GET",
            "/api/v1/servers/localhost/zones/globex.test./metadata/ALSO-NOTIFY",
            None,
        )
        .expect("the API answers");
    assert!(
        status == 200 && meta.contains(&secondary.notify_target()),
        "{meta}"
    );

    for (name, text) in files("198.51.100.8") {
        common::write(&p.repo.join(name), &text);
    }
    p.supercp(&["apply"]).expect_code(0);
    let second = serial(&pdns, "globex.test");
    assert_eq!(second, first + 1);
    secondary
        .wait_for_serial("globex.test", second, std::time::Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\nprimary log:\n{}", pdns.log()));
    assert_eq!(secondary.dig("globex.test", "A"), vec!["198.51.100.8"]);
    // Nothing changed: no write, no NOTIFY, the same serial.
    let before = pdns.requests().len();
    p.supercp(&["apply"]).expect_code(0);
    assert_eq!(pdns.writes_since(before), Vec::<String>::new());
    assert_eq!(serial(&pdns, "globex.test"), second);
}

#[test]
fn a_zone_that_leaves_the_repo_is_deleted_only_under_policy_delete_with_allow_destroy() {
    let test = "a_zone_that_leaves_the_repo_is_deleted_only_under_policy_delete_with_allow_destroy";
    let Some(pdns) = Pdns::start(test) else {
        return;
    };
    let key = pdns.api_key_file.display().to_string();
    let files: Vec<(&'static str, String)> = repo("")
        .into_iter()
        .map(|(name, text)| {
            let text = text.replace(
                "  tenant: globex\n",
                "  tenant: globex\n  deletionPolicy: Delete\n",
            );
            (name, text)
        })
        .collect();
    let p = prefix(&pdns.api_url(), &key, &files);
    p.supercp(&["apply"]).expect_code(0);
    std::fs::remove_file(p.repo.join("acme.yaml")).expect("rm");
    std::fs::remove_file(p.repo.join("globex.yaml")).expect("rm");
    // Two of two zones leaving is a mass deletion, and tenant data needs --allow-destroy.
    p.supercp(&["apply"]).expect_code(1);
    p.supercp(&["apply", "--max-delete-share", "100"])
        .expect_code(0);
    assert_eq!(pdns.dig("globex.test", "A"), vec!["198.51.100.7"]);
    assert_eq!(pdns.dig("acme.test", "A"), vec!["192.0.2.10"]);
    let run = p.supercp(&["apply", "--max-delete-share", "100", "--allow-destroy"]);
    run.expect_code(0);
    let (status, _) = pdns
        .api("GET", "/api/v1/servers/localhost/zones/globex.test.", None)
        .expect("the API answers");
    assert_eq!(status, 404, "policy Delete: gone\n{}", run.described);
    // Policy Retain: still served, and no longer SuperCP's to change.
    assert_eq!(pdns.dig("acme.test", "A"), vec!["192.0.2.10"]);
    let before = pdns.requests().len();
    p.supercp(&["apply", "--allow-destroy"]).expect_code(0);
    assert_eq!(pdns.writes_since(before), Vec::<String>::new());
}

/// Runs a program of the DNS tool packages (bind9-utils, ldnsutils) and returns its output.
fn tool(test: &str, program: &str, args: &[&str]) -> Option<(bool, String)> {
    let path = supercp_testkit::services::require(program, test)?;
    let out = std::process::Command::new(path)
        .args(args)
        .output()
        .expect("the tool runs");
    Some((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[test]
fn a_signed_zone_is_served_with_signatures_its_ds_matches_the_served_key_and_going_unsigned_is_forced(
) {
    let test = "a_signed_zone_is_served_with_signatures_its_ds_matches_the_served_key_and_going_unsigned_is_forced";
    let Some(pdns) = Pdns::start(test) else {
        return;
    };
    let key = pdns.api_key_file.display().to_string();
    let signed = |on: bool| -> Vec<(&'static str, String)> {
        repo("")
            .into_iter()
            .map(|(name, text)| {
                let text = text.replace(
                    "  tenant: globex\n",
                    &format!("  tenant: globex\n  dnssec: {on}\n"),
                );
                (name, text)
            })
            .collect()
    };
    let p = prefix(&pdns.api_url(), &key, &signed(true));
    p.supercp(&["apply"]).expect_code(0);
    let port = pdns.dns_port.to_string();
    let Some((ok, answer)) = tool(
        test,
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "+dnssec",
            "+short",
            "globex.test",
            "A",
        ],
    ) else {
        return;
    };
    assert!(
        ok && answer.contains("A 13 2 "),
        "an RRSIG over A: {answer}"
    );
    // The DS the plan shows is the one computed outside SuperCP from the served DNSKEY.
    let plan = p.supercp(&["plan"]);
    plan.expect_code(0);
    let shown: Vec<String> = plan
        .stdout()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("DS globex.test. "))
        .map(|ds| ds.to_ascii_lowercase())
        .collect();
    assert!(!shown.is_empty(), "{}", plan.described);
    let Some((_, dnskey)) = tool(
        test,
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "+noall",
            "+answer",
            "globex.test",
            "DNSKEY",
        ],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let keyfile = dir.path().join("globex.key");
    std::fs::write(&keyfile, &dnskey).expect("write");
    let Some((ok, from_key)) = tool(
        test,
        "dnssec-dsfromkey",
        &["-2", "-f", &keyfile.display().to_string(), "globex.test"],
    ) else {
        return;
    };
    assert!(ok, "{from_key}");
    let computed = from_key
        .lines()
        .filter_map(|l| l.split_once(" DS "))
        .map(|(_, ds)| ds.trim().to_ascii_lowercase())
        .collect::<Vec<_>>();
    assert!(
        shown.iter().any(|ds| computed.contains(ds)),
        "shown {shown:?}, computed from the served DNSKEY {computed:?}"
    );
    // The signed zone passes an independent verifier.
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], pdns.dns_port));
    let zone = bind::axfr(server, "globex.test").expect("an AXFR");
    let file = dir.path().join("globex.zone");
    std::fs::write(&file, &zone).expect("write");
    let Some((ok, verified)) = tool(test, "ldns-verify-zone", &[&file.display().to_string()])
    else {
        return;
    };
    assert!(ok, "ldns-verify-zone: {verified}\n{zone}");
    // Nothing changes on a second run; the signature is not drift.
    let before = pdns.requests().len();
    p.supercp(&["apply"]).expect_code(0);
    assert_eq!(pdns.writes_since(before), Vec::<String>::new());

    // Going unsigned is refused until forced (a DS may still be at the parent).
    for (name, text) in signed(false) {
        common::write(&p.repo.join(name), &text);
    }
    let before = pdns.requests().len();
    let run = p.supercp(&["apply"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("turns DNSSEC off"),
        "{}",
        run.described
    );
    assert_eq!(pdns.writes_since(before), Vec::<String>::new());
    p.supercp(&["apply", "--force-zone", "globex.test"])
        .expect_code(0);
    let Some((_, answer)) = tool(
        test,
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "+dnssec",
            "+short",
            "globex.test",
            "A",
        ],
    ) else {
        return;
    };
    assert_eq!(answer.trim(), "198.51.100.7", "no signature any more");
}
