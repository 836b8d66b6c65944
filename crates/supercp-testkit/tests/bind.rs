//! The BIND harness as a secondary of the PowerDNS harness as a primary: a zone made through the
//! PowerDNS API reaches `named` over AXFR, a PATCH reaches it after a NOTIFY, and BIND's
//! `named-checkzone` accepts what PowerDNS hands out.
//!
//! These also pin down what PowerDNS 4.7 does, which the DNS driver's design rests on: a
//! PATCH bumps the serial (`soa_edit_api` DEFAULT) but sends no NOTIFY by itself; the
//! communicator sends one on its next `xfr-cycle-interval` tick, and `PUT …/notify` at once.

use std::net::SocketAddr;
use std::time::Duration;

use supercp_testkit::bind::{self, Bind};
use supercp_testkit::pdns::Pdns;
use supercp_testkit::services::require;

/// Long enough that the communicator never ticks during a test: NOTIFY only when asked.
const NO_CYCLE: Duration = Duration::from_secs(3600);
/// How long a secondary may take to catch up; generous, as a bound, never measured.
const CATCH_UP: Duration = Duration::from_secs(20);

#[test]
fn a_secondary_serves_a_patch_once_the_primary_is_told_to_notify() {
    let test = "a_secondary_serves_a_patch_once_the_primary_is_told_to_notify";
    let Some(pdns) = Pdns::start_primary(test, NO_CYCLE) else {
        return;
    };
    let zone = "notify.test.";
    let first = create_primary_zone(&pdns, zone);
    let Some(bind) = Bind::start_secondary(test, primary(&pdns), &[zone]) else {
        return;
    };
    bind.wait_for_serial(zone, first, CATCH_UP)
        .unwrap_or_else(|e| panic!("{e}\nPowerDNS log:\n{}", pdns.log()));
    assert_eq!(bind.dig("www.notify.test", "A"), ["192.0.2.1"]);
    set_also_notify(&pdns, zone, &bind);

    patch_www(&pdns, zone, "192.0.2.2");
    let after_patch = zone_json(&pdns, zone);
    let second = json_u32(&after_patch, "serial");
    assert!(
        second > first,
        "soa_edit_api DEFAULT bumps the serial on a PATCH: {after_patch}"
    );
    assert_ne!(
        json_u32(&after_patch, "notified_serial"),
        second,
        "a PATCH alone sends no NOTIFY: {after_patch}"
    );

    let (status, body) = pdns
        .api(
            "PUT",
            &format!("/api/v1/servers/localhost/zones/{zone}/notify"),
            None,
        )
        .expect("the API answers");
    assert_eq!(status, 200, "{body}\n{}", pdns.log());
    bind.wait_for_serial(zone, second, CATCH_UP)
        .unwrap_or_else(|e| panic!("{e}\nPowerDNS log:\n{}", pdns.log()));
    assert_eq!(bind.dig("www.notify.test", "A"), ["192.0.2.2"]);
    assert_eq!(json_u32(&zone_json(&pdns, zone), "notified_serial"), second);

    // The secondary holds the whole zone, record for record.
    let from_pdns = bind::axfr(primary(&pdns), zone).expect("AXFR from PowerDNS");
    let from_bind = bind::axfr(secondary(&bind), zone)
        .unwrap_or_else(|e| panic!("{e}\nnamed log:\n{}", bind.log()));
    assert_eq!(sorted_lines(&from_bind), sorted_lines(&from_pdns));
}

#[test]
fn a_patch_alone_reaches_the_secondary_on_the_next_xfr_cycle() {
    let test = "a_patch_alone_reaches_the_secondary_on_the_next_xfr_cycle";
    let Some(pdns) = Pdns::start_primary(test, Duration::from_secs(1)) else {
        return;
    };
    let zone = "cycle.test.";
    let first = create_primary_zone(&pdns, zone);
    let Some(bind) = Bind::start_secondary(test, primary(&pdns), &[zone]) else {
        return;
    };
    bind.wait_for_serial(zone, first, CATCH_UP)
        .unwrap_or_else(|e| panic!("{e}\nPowerDNS log:\n{}", pdns.log()));
    set_also_notify(&pdns, zone, &bind);

    patch_www(&pdns, zone, "192.0.2.3");
    let second = json_u32(&zone_json(&pdns, zone), "serial");
    assert!(second > first);
    bind.wait_for_serial(zone, second, CATCH_UP)
        .unwrap_or_else(|e| panic!("{e}\nPowerDNS log:\n{}", pdns.log()));
    assert_eq!(bind.dig("www.cycle.test", "A"), ["192.0.2.3"]);
}

#[test]
fn named_checkzone_accepts_an_axfr_of_a_powerdns_zone() {
    let test = "named_checkzone_accepts_an_axfr_of_a_powerdns_zone";
    let Some(pdns) = Pdns::start_primary(test, NO_CYCLE) else {
        return;
    };
    let Some(ldns_verify_zone) = require("ldns-verify-zone", test) else {
        return;
    };
    let zone = "check.test.";
    create_primary_zone(&pdns, zone);
    let text = bind::axfr(primary(&pdns), zone)
        .unwrap_or_else(|e| panic!("{e}\nPowerDNS log:\n{}", pdns.log()));
    assert!(text.contains("192.0.2.1"), "{text}");
    let report = bind::check_zone(test, zone, &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.contains("OK"), "{report}");
    // Only its presence: DNSSEC checks of signed zones will stand on it.
    let version = std::process::Command::new(ldns_verify_zone)
        .arg("-v")
        .output()
        .expect("ldns-verify-zone runs");
    assert!(version.status.success(), "{version:?}");
}

/// Where the primary answers DNS.
fn primary(pdns: &Pdns) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], pdns.dns_port))
}

/// Where the secondary answers DNS.
fn secondary(bind: &Bind) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], bind.dns_port))
}

/// Creates `zone` through the API as a primary zone (kind Master, serial bumped on every API
/// change) with SOA, NS, the NS's address and `www` → 192.0.2.1. Returns its serial.
fn create_primary_zone(pdns: &Pdns, zone: &str) -> u32 {
    let body = format!(
        r#"{{"name": "{zone}", "kind": "Master", "soa_edit_api": "DEFAULT", "nameservers": [],
            "rrsets": [
              {{"name": "{zone}", "type": "SOA", "ttl": 3600, "changetype": "REPLACE",
                "records": [{{"content": "ns1.{zone} hostmaster.{zone} 1 10800 3600 604800 300",
                              "disabled": false}}]}},
              {{"name": "{zone}", "type": "NS", "ttl": 3600, "changetype": "REPLACE",
                "records": [{{"content": "ns1.{zone}", "disabled": false}}]}},
              {{"name": "ns1.{zone}", "type": "A", "ttl": 3600, "changetype": "REPLACE",
                "records": [{{"content": "127.0.0.1", "disabled": false}}]}},
              {{"name": "www.{zone}", "type": "A", "ttl": 300, "changetype": "REPLACE",
                "records": [{{"content": "192.0.2.1", "disabled": false}}]}}]}}"#
    );
    let (status, answer) = pdns
        .api("POST", "/api/v1/servers/localhost/zones", Some(&body))
        .expect("the API answers");
    assert_eq!(status, 201, "{answer}\n{}", pdns.log());
    assert!(answer.contains(r#""soa_edit_api": "DEFAULT""#), "{answer}");
    assert!(answer.contains(r#""kind": "Master""#), "{answer}");
    json_u32(&answer, "serial")
}

/// Points the zone's NOTIFY at the secondary (metadata ALSO-NOTIFY).
fn set_also_notify(pdns: &Pdns, zone: &str, bind: &Bind) {
    let body = format!(r#"{{"metadata": ["{}"]}}"#, bind.notify_target());
    let (status, answer) = pdns
        .api(
            "PUT",
            &format!("/api/v1/servers/localhost/zones/{zone}/metadata/ALSO-NOTIFY"),
            Some(&body),
        )
        .expect("the API answers");
    assert_eq!(status, 200, "{answer}\n{}", pdns.log());
}

/// Replaces `www.ZONE A` with `address` in one PATCH.
fn patch_www(pdns: &Pdns, zone: &str, address: &str) {
    let body = format!(
        r#"{{"rrsets": [{{"name": "www.{zone}", "type": "A", "ttl": 300, "changetype": "REPLACE",
             "records": [{{"content": "{address}", "disabled": false}}]}}]}}"#
    );
    let (status, answer) = pdns
        .api(
            "PATCH",
            &format!("/api/v1/servers/localhost/zones/{zone}"),
            Some(&body),
        )
        .expect("the API answers");
    assert_eq!(status, 204, "{answer}\n{}", pdns.log());
}

/// The zone as the API shows it (JSON text).
fn zone_json(pdns: &Pdns, zone: &str) -> String {
    let (status, body) = pdns
        .api(
            "GET",
            &format!("/api/v1/servers/localhost/zones/{zone}"),
            None,
        )
        .expect("the API answers");
    assert_eq!(status, 200, "{body}");
    body
}

/// The number under the top-level `"key": ` of PowerDNS's JSON (the testkit has no JSON
/// parser; the zone objects print each key once, as `"key": 123`).
fn json_u32(json: &str, key: &str) -> u32 {
    let pattern = format!("\"{key}\": ");
    let start = json
        .find(&pattern)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pattern.len();
    json[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{key} is not a number in {json}"))
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.sort_unstable();
    lines
}
