//! The PowerDNS launcher serves what its API is given: a zone made over HTTP answers over DNS
//! at once (the harness the DNS driver's tests stand on).

use supercp_testkit::pdns::Pdns;

#[test]
fn a_zone_made_through_the_api_is_served_over_dns() {
    let Some(pdns) = Pdns::start("a_zone_made_through_the_api_is_served_over_dns") else {
        return;
    };
    let zone = r#"{"name": "harness.test.", "kind": "Native", "nameservers": ["ns1.harness.test."],
        "rrsets": [{"name": "www.harness.test.", "type": "A", "ttl": 300, "changetype": "REPLACE",
                    "records": [{"content": "192.0.2.7", "disabled": false}]}]}"#;
    let (status, body) = pdns
        .api("POST", "/api/v1/servers/localhost/zones", Some(zone))
        .expect("the API answers");
    assert_eq!(status, 201, "{body}\n{}", pdns.log());
    assert_eq!(pdns.dig("www.harness.test", "A"), ["192.0.2.7"]);
    let (status, body) = pdns
        .api("GET", "/api/v1/servers/localhost/zones/harness.test.", None)
        .expect("the API answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"www.harness.test.\""), "{body}");
}
