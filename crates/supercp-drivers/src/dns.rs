//! Zones on a PowerDNS Authoritative server, through its HTTP API (`/api/v1`): observe one
//! zone with one GET, create it with one POST (all its rrsets in it), change it with one
//! PATCH (every rrset that changes: `REPLACE` or `DELETE`), remove it with one DELETE.
//!
//! PowerDNS has no compare-and-swap: two overlapping PATCHes can duplicate records. SuperCP
//! is the only writer of the zones it owns, and its writes are serialised by the apply lock:
//! one request per zone at a time, from one process.
//!
//! # Guarantees
//! - The API key is read from its file (mode 0600, as `private::read_operator_file` reads
//!   it) once per `PowerDns` and sent only in the `X-API-Key` header; no error, log line or
//!   plan ever holds it.
//! - Every name that reaches a URL or a body was checked by the loader's grammar; zone names
//!   in URLs are the absolute name, which has no character a URL would need to escape.
//! - A server that cannot be reached is `DriverError::Service { unreachable: true }`: the
//!   engine plans and applies the rest of the node and fails the run naming the zone.
//! - The SOA is created once and never compared: the server raises its serial once per
//!   change (`soa_edit_api: DEFAULT`), so a run that changes nothing leaves it as it is.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use supercp_core::object::{RrsetSource, Zone, ZoneFacts, ZoneRrset, ZoneState};
use supercp_core::resource::DnsLayout;

use crate::fs::DriverError;

/// What the engine calls the server in messages.
const SERVICE: &str = "PowerDNS";

/// Largest zone body read back (a zone of 50,000 rrsets is a few MiB).
const MAX_BODY: u64 = 64 << 20;

/// A client of one PowerDNS server, with its key read once.
pub struct PowerDns {
    agent: ureq::Agent,
    /// `<apiUrl>/api/v1/servers/<serverId>`.
    base: String,
    key: String,
}

/// A zone as the API writes it (`GET …/zones/<zone>?rrsets=true`).
#[derive(Deserialize)]
struct ApiZone {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    dnssec: bool,
    #[serde(default)]
    serial: u32,
    #[serde(default)]
    rrsets: Vec<ApiRrset>,
}

#[derive(Deserialize, Serialize)]
struct ApiRrset {
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<u32>,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    changetype: Option<&'static str>,
    #[serde(default)]
    records: Vec<ApiRecord>,
}

#[derive(Deserialize, Serialize)]
struct ApiRecord {
    content: String,
    #[serde(default)]
    disabled: bool,
}

/// One metadata kind of a zone (`GET …/zones/<zone>/metadata`).
#[derive(Deserialize)]
struct ApiMetadata {
    kind: String,
    #[serde(default)]
    metadata: Vec<String>,
}

/// One key of a zone (`GET …/zones/<zone>/cryptokeys`).
#[derive(Deserialize)]
struct ApiKey {
    id: u64,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    ds: Vec<String>,
}

/// The metadata kinds SuperCP manages: who is sent a NOTIFY, who may transfer the zone.
const ALSO_NOTIFY: &str = "ALSO-NOTIFY";
const ALLOW_AXFR: &str = "ALLOW-AXFR-FROM";

/// Values sorted and each once: how lists of addresses are compared.
pub(crate) fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values.dedup();
    values
}

/// The body of a zone's creation.
#[derive(Serialize)]
struct NewZone<'a> {
    name: &'a str,
    kind: &'a str,
    soa_edit_api: &'static str,
    nameservers: [&'static str; 0],
    rrsets: Vec<ApiRrset>,
}

impl PowerDns {
    /// A client for the server a node's `dns:` block names; reads the API key.
    ///
    /// # Errors
    /// `Service` when the key file cannot be read or is readable by others.
    pub fn connect(layout: &DnsLayout) -> Result<PowerDns, DriverError> {
        let (text, mode) = crate::private::read_operator_file(&layout.api_key_file)?;
        if mode & 0o077 != 0 {
            return Err(service(
                &format!("API key file {}", layout.api_key_file),
                format!(
                    "mode {mode:o} lets others read the key; chmod 600 {}",
                    layout.api_key_file
                ),
                false,
            ));
        }
        let key = text.trim().to_owned();
        if key.is_empty() || key.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(service(
                &format!("API key file {}", layout.api_key_file),
                "holds no key, or one with characters a header cannot carry".into(),
                false,
            ));
        }
        let timeout = Duration::from_secs(u64::from(layout.timeout_seconds));
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(PowerDns {
            agent,
            base: format!(
                "{}/api/v1/servers/{}",
                layout.api_url.trim_end_matches('/'),
                layout.server_id
            ),
            key,
        })
    }

    /// What the server holds for `zone` (absolute name): one GET, and a second one for its
    /// secondaries' metadata when it has (or should have) any.
    ///
    /// # Errors
    /// `Service` when the server cannot be reached or answers with an error.
    pub fn observe(&self, zone: &str, secondaries: bool) -> Result<ZoneState, DriverError> {
        let url = format!("{}/zones/{zone}?rrsets=true", self.base);
        let (status, body) = self.call("GET", &url, None, zone)?;
        match status {
            200 => {}
            // 4.7 answers 404 for an unknown zone; older ones 422 "Could not find domain".
            404 => return Ok(ZoneState::Missing),
            422 if body.contains("Could not find domain") => return Ok(ZoneState::Missing),
            _ => return Err(answered(zone, "reading", status, &body)),
        }
        let api: ApiZone = serde_json::from_str(&body).map_err(|e| {
            service(
                &format!("zone {zone}"),
                format!("the API's answer is not a zone: {e}"),
                false,
            )
        })?;
        let mut rrsets: Vec<ZoneRrset> = api
            .rrsets
            .into_iter()
            .filter(|r| r.record_type != "SOA")
            .filter_map(|r| {
                let mut contents: Vec<String> = r
                    .records
                    .into_iter()
                    .filter(|rec| !rec.disabled)
                    .map(|rec| rec.content)
                    .collect();
                contents.sort();
                contents.dedup();
                // Only disabled records: nothing is served at that name and type.
                (!contents.is_empty()).then(|| ZoneRrset {
                    name: r.name.to_ascii_lowercase(),
                    record_type: r.record_type,
                    ttl: r.ttl.unwrap_or(0),
                    contents,
                    source: RrsetSource::Server,
                })
            })
            .collect();
        rrsets.sort_by(|a, b| (&a.name, &a.record_type).cmp(&(&b.name, &b.record_type)));
        let (mut notify, mut allow_transfer) = (Vec::new(), Vec::new());
        if secondaries || api.kind.eq_ignore_ascii_case("Master") {
            let url = format!("{}/zones/{zone}/metadata", self.base);
            let body = self.send("GET", &url, None, zone, "reading the metadata of")?;
            let items: Vec<ApiMetadata> = serde_json::from_str(&body).map_err(|e| {
                service(
                    &format!("zone {zone}"),
                    format!("the API's answer is not metadata: {e}"),
                    false,
                )
            })?;
            for item in items {
                match item.kind.as_str() {
                    ALSO_NOTIFY => notify = sorted(item.metadata),
                    ALLOW_AXFR => allow_transfer = sorted(item.metadata),
                    _ => {}
                }
            }
        }
        let ds = if api.dnssec {
            self.ds(zone)?
        } else {
            Vec::new()
        };
        Ok(ZoneState::Present(ZoneFacts {
            rrsets,
            serial: api.serial,
            notify,
            allow_transfer,
            kind: api.kind,
            dnssec: api.dnssec,
            ds,
        }))
    }

    /// The DS records of a signed zone's active keys (`GET …/cryptokeys`).
    fn ds(&self, zone: &str) -> Result<Vec<String>, DriverError> {
        let url = format!("{}/zones/{zone}/cryptokeys", self.base);
        let body = self.send("GET", &url, None, zone, "reading the keys of")?;
        let keys: Vec<ApiKey> = serde_json::from_str(&body).map_err(|e| {
            service(
                &format!("zone {zone}"),
                format!("the API's answer is not a list of keys: {e}"),
                false,
            )
        })?;
        let mut ds: Vec<String> = keys
            .into_iter()
            .filter(|k| k.active)
            .flat_map(|k| k.ds)
            .collect();
        ds.sort();
        Ok(ds)
    }

    /// Signs a zone (one active CSK, ECDSAP256SHA256, with the API rectifying the zone on
    /// every change from now on) or removes every key of it.
    fn set_dnssec(&self, zone: &str, on: bool) -> Result<(), DriverError> {
        let url = format!("{}/zones/{zone}", self.base);
        let body = serde_json::json!({ "api_rectify": on }).to_string();
        self.send("PUT", &url, Some(&body), zone, "setting api_rectify of")?;
        let keys_url = format!("{}/zones/{zone}/cryptokeys", self.base);
        if on {
            let body = serde_json::json!({
                "keytype": "csk",
                "active": true,
                "published": true,
                "algorithm": "ECDSAP256SHA256",
            })
            .to_string();
            self.send("POST", &keys_url, Some(&body), zone, "creating a key for")?;
        } else {
            let body = self.send("GET", &keys_url, None, zone, "reading the keys of")?;
            let keys: Vec<ApiKey> = serde_json::from_str(&body).unwrap_or_default();
            for key in keys {
                let url = format!("{keys_url}/{}", key.id);
                self.send("DELETE", &url, None, zone, "removing a key of")?;
            }
        }
        let url = format!("{}/zones/{zone}/rectify", self.base);
        self.send("PUT", &url, Some(""), zone, "rectifying")?;
        // A key change does not purge the packet cache (a PATCH does): without this the old
        // signatures, or none, are served until the cache expires.
        let url = format!("{}/cache/flush?domain={zone}", self.base);
        self.send("PUT", &url, Some(""), zone, "flushing the cache of")?;
        Ok(())
    }

    /// Sets one metadata kind of a zone to `values` (removes it when empty): one request,
    /// made only when it differs.
    fn set_metadata(&self, zone: &str, kind: &str, values: &[String]) -> Result<(), DriverError> {
        let url = format!("{}/zones/{zone}/metadata/{kind}", self.base);
        let doing = format!("setting {kind} of");
        if values.is_empty() {
            self.send("DELETE", &url, None, zone, &doing)?;
        } else {
            let body = serde_json::json!({ "kind": kind, "metadata": values }).to_string();
            self.send("PUT", &url, Some(&body), zone, &doing)?;
        }
        Ok(())
    }

    /// The secondaries' metadata of a zone as desired, and a NOTIFY to them when anything of
    /// the zone changed: PowerDNS would otherwise notify only on its next check of its
    /// primaries (`xfr-cycle-interval`, a minute by default), never on a PATCH.
    fn secondaries(
        &self,
        zone: &Zone,
        found: Option<&ZoneFacts>,
        changed: bool,
    ) -> Result<(), DriverError> {
        let (notify, allow) = found.map_or((&[][..], &[][..]), |f| {
            (f.notify.as_slice(), f.allow_transfer.as_slice())
        });
        let want_notify = sorted(zone.notify.clone());
        let want_allow = sorted(zone.allow_transfer.clone());
        if want_notify != notify {
            self.set_metadata(&zone.name, ALSO_NOTIFY, &want_notify)?;
        }
        if want_allow != allow {
            self.set_metadata(&zone.name, ALLOW_AXFR, &want_allow)?;
        }
        if !want_notify.is_empty() && (changed || want_notify != notify) {
            let url = format!("{}/zones/{}/notify", self.base, zone.name);
            self.send(
                "PUT",
                &url,
                Some(""),
                &zone.name,
                "notifying the secondaries of",
            )?;
        }
        Ok(())
    }

    /// Makes the server hold `zone` as desired, from what `observe` found: one POST for a new
    /// zone, one PATCH of the rrsets that differ for an existing one, nothing when none do.
    ///
    /// # Errors
    /// `Service` naming the zone when the server cannot be reached or refuses the change.
    pub fn apply(&self, zone: &Zone, found: &ZoneState) -> Result<(), DriverError> {
        match found {
            ZoneState::Missing => {
                let mut rrsets: Vec<ApiRrset> = zone.rrsets.iter().map(replace).collect();
                rrsets.push(ApiRrset {
                    name: zone.name.clone(),
                    record_type: "SOA".into(),
                    ttl: Some(3600),
                    changetype: None,
                    records: vec![ApiRecord {
                        content: zone.soa.clone(),
                        disabled: false,
                    }],
                });
                for r in &mut rrsets {
                    r.changetype = None;
                }
                let body = NewZone {
                    name: &zone.name,
                    kind: zone_kind(zone),
                    soa_edit_api: "DEFAULT",
                    nameservers: [],
                    rrsets,
                };
                let body = serde_json::to_string(&body).map_err(|e| encode(&zone.name, &e))?;
                let url = format!("{}/zones", self.base);
                self.send("POST", &url, Some(&body), &zone.name, "creating")?;
                if zone.dnssec {
                    self.set_dnssec(&zone.name, true)?;
                }
                self.secondaries(zone, None, true)
            }
            ZoneState::Present(facts) => {
                let kind = zone_kind(zone);
                if !facts.kind.eq_ignore_ascii_case(kind) {
                    // Not a part of the PATCH: the zone's own fields go by PUT.
                    let body = serde_json::json!({ "kind": kind }).to_string();
                    let url = format!("{}/zones/{}", self.base, zone.name);
                    self.send("PUT", &url, Some(&body), &zone.name, "changing the kind of")?;
                }
                let changes = changes(zone, facts);
                if !changes.is_empty() {
                    let body = serde_json::json!({ "rrsets": changes });
                    let url = format!("{}/zones/{}", self.base, zone.name);
                    let body = body.to_string();
                    self.send("PATCH", &url, Some(&body), &zone.name, "changing")?;
                }
                let signing = zone.dnssec != facts.dnssec;
                if signing {
                    self.set_dnssec(&zone.name, zone.dnssec)?;
                }
                self.secondaries(zone, Some(facts), !changes.is_empty() || signing)
            }
        }
    }

    /// Removes a zone and everything in it: one DELETE. A zone already gone is fine.
    ///
    /// # Errors
    /// `Service` naming the zone.
    pub fn delete(&self, zone: &str) -> Result<(), DriverError> {
        let url = format!("{}/zones/{zone}", self.base);
        let (status, text) = self.call("DELETE", &url, None, zone)?;
        match status {
            200 | 204 | 404 => Ok(()),
            _ => Err(answered(zone, "deleting", status, &text)),
        }
    }

    /// One request that must succeed (any 2xx): its body, or the server's refusal naming
    /// what was being done (`doing`) to the zone.
    fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&str>,
        zone: &str,
        doing: &str,
    ) -> Result<String, DriverError> {
        let (status, text) = self.call(method, url, body, zone)?;
        if !(200..300).contains(&status) {
            return Err(answered(zone, doing, status, &text));
        }
        Ok(text)
    }

    /// One request: its status and body. The key goes in a header and nowhere else.
    fn call(
        &self,
        method: &str,
        url: &str,
        body: Option<&str>,
        zone: &str,
    ) -> Result<(u16, String), DriverError> {
        let unreachable = |e: ureq::Error| {
            service(
                &format!("zone {zone}"),
                format!("{SERVICE} API unreachable ({method} {}): {e}", redact(url)),
                true,
            )
        };
        let response = match (method, body) {
            ("GET", _) => self.agent.get(url).header("X-API-Key", &self.key).call(),
            ("DELETE", _) => self.agent.delete(url).header("X-API-Key", &self.key).call(),
            ("POST", Some(b)) => self
                .agent
                .post(url)
                .header("X-API-Key", &self.key)
                .content_type("application/json")
                .send(b),
            ("PUT", Some(b)) => self
                .agent
                .put(url)
                .header("X-API-Key", &self.key)
                .content_type("application/json")
                .send(b),
            ("PATCH", Some(b)) => self
                .agent
                .patch(url)
                .header("X-API-Key", &self.key)
                .content_type("application/json")
                .send(b),
            _ => unreachable!("a request of this driver has a known method and its body"),
        };
        let mut response = response.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(unreachable)?;
        Ok((status, text))
    }
}

/// The PATCH entries that make `facts` what `zone` wants (`diff::zone_changes`): a
/// `REPLACE` for each rrset missing or different, a `DELETE` for each rrset the zone does not
/// hold. Pure.
fn changes(zone: &Zone, facts: &ZoneFacts) -> Vec<ApiRrset> {
    let c = crate::diff::zone_changes(zone, facts);
    let deletes = c.remove.iter().map(|f| ApiRrset {
        name: f.name.clone(),
        record_type: f.record_type.clone(),
        ttl: None,
        changetype: Some("DELETE"),
        records: Vec::new(),
    });
    c.add
        .iter()
        .copied()
        .chain(c.change.iter().map(|(_, new)| *new))
        .map(replace)
        .chain(deletes)
        .collect()
}

fn replace(r: &ZoneRrset) -> ApiRrset {
    ApiRrset {
        name: r.name.clone(),
        record_type: r.record_type.clone(),
        ttl: Some(r.ttl),
        changetype: Some("REPLACE"),
        records: r
            .contents
            .iter()
            .map(|c| ApiRecord {
                content: c.clone(),
                disabled: false,
            })
            .collect(),
    }
}

/// `Master` for a zone with secondaries (PowerDNS sends NOTIFY only for those), `Native`
/// otherwise.
pub fn zone_kind(zone: &Zone) -> &'static str {
    if zone.notify.is_empty() && zone.allow_transfer.is_empty() {
        "Native"
    } else {
        "Master"
    }
}

fn service(what: &str, detail: String, unreachable: bool) -> DriverError {
    DriverError::Service {
        what: what.to_owned(),
        detail,
        unreachable,
    }
}

fn answered(zone: &str, doing: &str, status: u16, body: &str) -> DriverError {
    // PowerDNS's errors are JSON `{"error": "..."}`; the body never holds the key.
    let error = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect());
    service(
        &format!("zone {zone}"),
        format!("{SERVICE} refused {doing} it (HTTP {status}): {error}"),
        status >= 500,
    )
}

fn encode(zone: &str, e: &serde_json::Error) -> DriverError {
    service(
        &format!("zone {zone}"),
        format!("cannot encode the request: {e}"),
        false,
    )
}

/// A URL for a message: scheme, host and path, never a query.
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrset(name: &str, t: &str, ttl: u32, contents: &[&str]) -> ZoneRrset {
        ZoneRrset {
            name: name.into(),
            record_type: t.into(),
            ttl,
            contents: contents.iter().map(|c| (*c).to_owned()).collect(),
            source: RrsetSource::Explicit,
        }
    }

    fn zone(rrsets: Vec<ZoneRrset>) -> Zone {
        Zone {
            name: "a.test.".into(),
            soa: "ns1.a.test. hostmaster.a.test. 1 10800 3600 604800 3600".into(),
            notify: Vec::new(),
            allow_transfer: Vec::new(),
            dnssec: false,
            rrsets,
        }
    }

    fn facts(rrsets: Vec<ZoneRrset>) -> ZoneFacts {
        ZoneFacts {
            rrsets,
            serial: 1,
            notify: Vec::new(),
            allow_transfer: Vec::new(),
            kind: "Native".into(),
            dnssec: false,
            ds: Vec::new(),
        }
    }

    #[test]
    fn only_what_differs_goes_into_the_patch() {
        let want = zone(vec![
            rrset("a.test.", "A", 300, &["192.0.2.1"]),
            rrset("www.a.test.", "CNAME", 300, &["a.test."]),
        ]);
        let have = facts(vec![
            rrset("a.test.", "A", 300, &["192.0.2.1"]),
            rrset("www.a.test.", "CNAME", 60, &["a.test."]),
            rrset("extra.a.test.", "TXT", 60, &["\"by hand\""]),
        ]);
        let patch = changes(&want, &have);
        let summary: Vec<(String, &str)> = patch
            .iter()
            .map(|r| {
                (
                    format!("{} {}", r.name, r.record_type),
                    r.changetype.unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("www.a.test. CNAME".to_owned(), "REPLACE"),
                ("extra.a.test. TXT".to_owned(), "DELETE")
            ]
        );
        assert!(changes(&want, &facts(want.rrsets.clone())).is_empty());
    }
}
