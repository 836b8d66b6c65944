//! The zones of a `dns` node: one `Object::Zone` per Zone resource, holding every rrset the
//! server should serve for it. Pure.
//!
//! What a zone holds: its own records (explicit), then the records its template fills in
//! from what the repo says, for names and types the Zone does not write itself (explicit
//! records win), and the apex NS set of the node's nameservers unless the Zone writes one.

use std::collections::BTreeMap;

use supercp_core::catalog::{Catalog, ZoneEntry};
use supercp_core::object::{RrsetSource, Zone, ZoneRrset};
use supercp_core::resource::{DeletionPolicy, DnsLayout};
use supercp_core::{Desired, Object, ResourceKind, ResourceRef, Unit};

/// TTL of the apex NS set the node adds (a day: nameservers change rarely).
const NS_TTL: u32 = 86_400;

/// Every zone of the catalog, as the node's DNS server should hold it.
pub fn zones(catalog: &Catalog, dns: &DnsLayout) -> Vec<Desired> {
    catalog.zones.values().map(|z| zone(z, dns)).collect()
}

fn zone(entry: &ZoneEntry, dns: &DnsLayout) -> Desired {
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
    let spec = &entry.resource.spec;
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

/// A zone's deletion policy, as the journal records it.
pub fn deletion_policy(entry: &ZoneEntry) -> DeletionPolicy {
    entry.resource.spec.deletion_policy
}
