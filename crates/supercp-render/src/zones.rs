//! The zones of a `dns` node: one `Object::Zone` per Zone resource, holding every rrset the
//! server should serve for it. Pure.
//!
//! What a zone holds: its own records (explicit), then the records its template fills in
//! from what the repo says, for names and types the Zone does not write itself (explicit
//! records win), and the apex NS set of the node's nameservers unless the Zone writes one.
//!
//! The `hosting` template (the default; `none` turns it off):
//! - A and AAAA for every Domain and alias inside the zone (and in no zone nested in it), to
//!   the addresses of the repo's `web` nodes;
//! - with a `mail` node that has addresses: `MX 10 mail.<zone>`, `mail.<zone>` A/AAAA to its
//!   addresses, SPF `v=spf1 mx -all`, DMARC `p=quarantine`; without one, a zone that sends no
//!   mail: SPF `v=spf1 -all`, DMARC `p=reject`;
//! - CAA `0 issue "letsencrypt.org"` when the web nodes take their certificates from Let's
//!   Encrypt (no CAA for another CA: SuperCP does not know the name it issues under).
//!
//! A template record never lands at a name the Zone gives a CNAME (or a CNAME beside data).

use std::collections::BTreeMap;

use supercp_core::catalog::{Catalog, ZoneEntry};
use supercp_core::object::{RrsetSource, Zone, ZoneRrset};
use supercp_core::resource::{DnsLayout, NodeSpec};
use supercp_core::{Desired, Object, ResourceKind, ResourceRef, Unit};

/// TTL of the apex NS set the node adds (a day: nameservers change rarely).
const NS_TTL: u32 = 86_400;

/// Default TTL of a zone that gives none.
const ZONE_TTL: u32 = 3600;

/// Every zone of the catalog, as the node's DNS server should hold it. `node` is the node
/// rendering (its spec resolved): one of the nodes the template reads, with the repo's.
pub fn zones(catalog: &Catalog, node: &crate::NodeRef<'_>, dns: &DnsLayout) -> Vec<Desired> {
    let facts = Facts::of(catalog, node);
    catalog
        .zones
        .values()
        .map(|z| zone(z, dns, &facts))
        .collect()
}

/// What the hosting template reads of the repo, once for every zone.
struct Facts<'a> {
    web: Vec<&'a str>,
    mail: Vec<&'a str>,
    letsencrypt: bool,
    /// Every Domain name and alias, with the zone that holds it (the longest zone name it
    /// ends in).
    hosts: BTreeMap<&'a str, Vec<String>>,
}

impl<'a> Facts<'a> {
    fn of(catalog: &'a Catalog, node: &crate::NodeRef<'a>) -> Facts<'a> {
        // The repo's nodes, with the node rendering in place of its own entry.
        let nodes: Vec<&'a NodeSpec> = catalog
            .nodes
            .values()
            .filter(|n| n.name != node.resource.name)
            .map(|n| &n.spec)
            .chain(std::iter::once(node.spec))
            .collect();
        let role = |r: &str| {
            let mut v: Vec<&'a str> = nodes
                .iter()
                .filter(|n| n.roles.iter().any(|x| x == r))
                .flat_map(|n| n.addresses.iter().map(String::as_str))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let web_nodes: Vec<&&NodeSpec> = nodes
            .iter()
            .filter(|n| n.roles.iter().any(|x| x == crate::ROLE_WEB))
            .collect();
        let letsencrypt = !web_nodes.is_empty()
            && web_nodes.iter().all(|n| {
                matches!(
                    n.tls.acme_directory.as_str(),
                    "letsencrypt" | "letsencrypt-staging"
                ) || n.tls.acme_directory.contains(".api.letsencrypt.org/")
            });
        let zone_names: Vec<&str> = catalog.zones.keys().map(|z| z.as_str()).collect();
        let mut hosts: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for d in catalog.domains.values() {
            for name in std::iter::once(&d.name).chain(&d.aliases) {
                let host = name.as_str();
                let holder = zone_names
                    .iter()
                    .filter(|z| host == **z || host.ends_with(&format!(".{z}")))
                    .max_by_key(|z| z.len());
                if let Some(z) = holder {
                    hosts.entry(z).or_default().push(format!("{host}."));
                }
            }
        }
        Facts {
            web: role(crate::ROLE_WEB),
            mail: role("mail"),
            letsencrypt,
            hosts,
        }
    }
}

/// The hosting template's rrsets for one zone (before explicit records win).
fn hosting(zone: &str, apex: &str, ttl: u32, facts: &Facts<'_>) -> Vec<ZoneRrset> {
    let mut out = Vec::new();
    let rrset = |name: &str, t: &str, contents: Vec<String>| ZoneRrset {
        name: name.to_owned(),
        record_type: t.to_owned(),
        ttl,
        contents,
        source: RrsetSource::Template,
    };
    let split = |addrs: &[&str]| {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for a in addrs {
            match a.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(ip)) => v4.push(ip.to_string()),
                Ok(std::net::IpAddr::V6(ip)) => v6.push(ip.to_string()),
                Err(_) => {}
            }
        }
        v4.sort();
        v6.sort();
        (v4, v6)
    };
    let mut address = |name: &str, addrs: &[&str]| {
        let (v4, v6) = split(addrs);
        if !v4.is_empty() {
            out.push(rrset(name, "A", v4));
        }
        if !v6.is_empty() {
            out.push(rrset(name, "AAAA", v6));
        }
    };
    for host in facts.hosts.get(zone).into_iter().flatten() {
        address(host, &facts.web);
    }
    let mail_host = format!("mail.{apex}");
    let has_mail = !facts.mail.is_empty();
    if has_mail {
        address(&mail_host, &facts.mail);
    }
    if has_mail {
        out.push(rrset(apex, "MX", vec![format!("10 {mail_host}")]));
    }
    let spf = if has_mail {
        "v=spf1 mx -all"
    } else {
        "v=spf1 -all"
    };
    out.push(rrset(apex, "TXT", vec![format!("\"{spf}\"")]));
    let policy = if has_mail { "quarantine" } else { "reject" };
    out.push(rrset(
        &format!("_dmarc.{apex}"),
        "TXT",
        vec![format!("\"v=DMARC1; p={policy}\"")],
    ));
    if facts.letsencrypt {
        out.push(rrset(
            apex,
            "CAA",
            vec!["0 issue \"letsencrypt.org\"".to_owned()],
        ));
    }
    out
}

fn zone(entry: &ZoneEntry, dns: &DnsLayout, facts: &Facts<'_>) -> Desired {
    let name = supercp_core::dns::zone_fqdn(entry.name.as_str());
    let mut rrsets: BTreeMap<(String, String), ZoneRrset> = BTreeMap::new();
    for r in &entry.rrsets {
        let t = r.record_type.as_str().to_owned();
        rrsets.insert(
            (r.name.clone(), t.clone()),
            ZoneRrset {
                name: r.name.clone(),
                record_type: t,
                ttl: r.ttl,
                contents: r.contents.clone(),
                source: RrsetSource::Explicit,
            },
        );
    }
    let spec = &entry.resource.spec;
    let template = spec
        .template
        .as_ref()
        .map_or("hosting", |t| t.value.as_str());
    if template == "hosting" {
        let ttl = spec.ttl.as_ref().map_or(ZONE_TTL, |t| t.value);
        // A name the Zone gives a CNAME holds nothing else.
        let cnames: std::collections::BTreeSet<String> = rrsets
            .values()
            .filter(|r| r.record_type == "CNAME")
            .map(|r| r.name.clone())
            .collect();
        for r in hosting(entry.name.as_str(), &name, ttl, facts) {
            // …and nothing points at one (an MX at a CNAME breaks mail, RFC 2181 10.3).
            let at_cname = r.record_type == "MX"
                && r.contents
                    .iter()
                    .any(|c| c.split(' ').nth(1).is_some_and(|t| cnames.contains(t)));
            if cnames.contains(&r.name) || at_cname {
                continue;
            }
            rrsets
                .entry((r.name.clone(), r.record_type.clone()))
                .or_insert(r);
        }
    }
    rrsets
        .entry((name.clone(), "NS".to_owned()))
        .or_insert_with(|| ZoneRrset {
            name: name.clone(),
            record_type: "NS".to_owned(),
            ttl: NS_TTL,
            contents: {
                let mut ns: Vec<String> = dns
                    .nameservers
                    .iter()
                    .map(|n| n.to_ascii_lowercase())
                    .collect();
                ns.sort();
                ns.dedup();
                ns
            },
            source: RrsetSource::Template,
        });
    let primary = dns
        .nameservers
        .first()
        .map_or_else(|| name.clone(), |n| n.to_ascii_lowercase());
    let hostmaster = dns
        .hostmaster
        .as_deref()
        .map_or_else(|| format!("hostmaster.{name}"), str::to_ascii_lowercase);
    let secondaries = spec.secondaries.clone().unwrap_or_default();
    Desired {
        object: Object::Zone(Zone {
            soa: format!("{primary} {hostmaster} 1 10800 3600 604800 3600"),
            notify: secondaries.notify.into_iter().map(|n| n.value).collect(),
            allow_transfer: secondaries
                .allow_transfer
                .into_iter()
                .map(|n| n.value)
                .collect(),
            dnssec: spec.dnssec,
            rrsets: rrsets.into_values().collect(),
            name,
        }),
        resource: ResourceRef::new(ResourceKind::Zone, entry.name.as_str()),
        origin: entry.resource.origin.clone(),
        unit: Unit::Direct,
        // What the tenant's domains answer with: removed only under the zone's deletion
        // policy and `--allow-destroy`.
        tenant_data: true,
    }
}
