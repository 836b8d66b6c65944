//! The rules of Zone resources: the zone's name and tenant, who owns the names in it, and each
//! rrset's name, type, TTL and values (the grammar of `supercp_core::dns`), then the rules
//! across rrsets: one rrset per name and type, a CNAME alone at its name and never at the
//! apex, and no MX, NS or SRV pointing at a CNAME the repo declares.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use supercp_core::catalog::{Rrset, ZoneEntry};
use supercp_core::dns::{self, RecordType, TTL_MAX, TTL_MIN};
use supercp_core::resource::{Document, ZoneSpec};
use supercp_core::{Catalog, Diagnostic, DomainName, Loc, Span, TenantName};

use crate::validate::{check_labels, resource, tenant_ref, Cx, Locate};

/// Templates a Zone may name.
const TEMPLATES: &[&str] = &["hosting", "none"];

/// Checks every Zone document and adds the valid ones to `catalog.zones`.
pub fn check_zones(
    docs: Vec<(Arc<str>, Span, Document<ZoneSpec>)>,
    catalog: &mut Catalog,
    declared: &BTreeSet<(String, String)>,
    locate: Locate,
    out: &mut Vec<Diagnostic>,
) {
    // Targets of MX, NS and SRV values, checked once every zone's CNAMEs are known.
    let mut targets: Vec<(Arc<str>, String, Target)> = Vec::new();
    let mut cnames: BTreeSet<String> = BTreeSet::new();
    let mut spfs: Vec<(Arc<str>, String, SpfAt)> = Vec::new();
    let mut entries = Vec::new();
    for (file, span, doc) in docs {
        let cx = Cx::new(&file, "Zone", &doc.metadata.name.value, locate, out);
        let zone = doc.metadata.name.value.clone();
        let checked = check_zone(&cx, span, doc, catalog, declared);
        // Also from a zone with other errors: each problem is reported in one go.
        cnames.extend(checked.cnames);
        spfs.extend(
            checked
                .spfs
                .into_iter()
                .map(|s| (file.clone(), zone.clone(), s)),
        );
        targets.extend(
            checked
                .targets
                .into_iter()
                .map(|t| (file.clone(), zone.clone(), t)),
        );
        entries.extend(checked.entry);
    }
    for (file, zone, (field, at, target)) in targets {
        if cnames.contains(&target) {
            let cx = Cx::new(&file, "Zone", &zone, locate, out);
            cx.error(
                &field,
                &at,
                format!(
                    "{:?} points at {target}, which is a CNAME in this repo",
                    at.value
                ),
                "MX, NS and SRV records must name the host itself (RFC 2181 10.3): point them at \
                 the name the CNAME points to",
            );
        }
    }
    spf_lookups(&spfs, locate, out);
    nested(&entries, locate, out);
    for entry in entries {
        catalog.zones.insert(entry.name.clone(), entry);
    }
}

/// What checking one Zone found: the zone when it is valid, the MX/NS/SRV targets (field,
/// value, target) and the names of its CNAMEs.
struct Checked {
    entry: Option<ZoneEntry>,
    targets: Vec<Target>,
    cnames: Vec<String>,
    spfs: Vec<SpfAt>,
}

/// An SPF record of a zone: its owner, what it asks, its field and the value as written.
type SpfAt = (String, dns::Spf, String, Loc<String>);

/// An MX, NS or SRV value: its field, the value as written, and the host it names.
type Target = (String, Loc<String>, String);

fn check_zone(
    cx: &Cx,
    span: Span,
    doc: Document<ZoneSpec>,
    catalog: &Catalog,
    declared: &BTreeSet<(String, String)>,
) -> Checked {
    check_labels(cx, &doc);
    let spec = &doc.spec;
    let name = match DomainName::parse(&doc.metadata.name.value) {
        Ok(n) => Some(n),
        Err(e) => {
            cx.name_error("metadata.name", &doc.metadata.name, e);
            None
        }
    };
    let tenant = tenant_ref(cx, &spec.tenant, catalog, declared);
    if let (Some(zone), Some(tenant)) = (&name, &tenant) {
        owned_names(cx, &doc.metadata.name, zone, tenant, catalog);
    }
    let ttl_ok = |field: &str, ttl: &Loc<u32>| {
        if !(TTL_MIN..=TTL_MAX).contains(&ttl.value) {
            cx.error(
                field,
                ttl,
                format!(
                    "TTL {} is outside {TTL_MIN} to {TTL_MAX} seconds",
                    ttl.value
                ),
                "give a TTL from one minute (60) to one week (604800)",
            );
        }
    };
    if let Some(ttl) = &spec.ttl {
        ttl_ok("spec.ttl", ttl);
    }
    if let Some(t) = &spec.template {
        if !TEMPLATES.contains(&t.value.as_str()) {
            cx.error(
                "spec.template",
                t,
                format!("template {:?} does not exist", t.value),
                "use `hosting` (the default) or `none`",
            );
        }
    }
    if let Some(sec) = &spec.secondaries {
        for (i, n) in sec.notify.iter().enumerate() {
            if !is_ip_port(&n.value) {
                cx.error(
                    &format!("spec.secondaries.notify[{i}]"),
                    n,
                    format!("{:?} is not IP or IP:PORT", n.value),
                    "write a secondary's address like 192.0.2.53 or 192.0.2.53:5300",
                );
            }
        }
        for (i, a) in sec.allow_transfer.iter().enumerate() {
            if !is_ip_prefix(&a.value) {
                cx.error(
                    &format!("spec.secondaries.allowTransfer[{i}]"),
                    a,
                    format!("{:?} is not an IP address or IP/PREFIX", a.value),
                    "write an address like 192.0.2.53 or a network like 192.0.2.0/24",
                );
            }
        }
    }
    let zone = name
        .as_ref()
        .map_or(doc.metadata.name.value.as_str(), |n| n.as_str())
        .to_owned();
    let apex = dns::zone_fqdn(&zone);
    let default_ttl = spec.ttl.as_ref().map_or(3600, |t| t.value);
    let mut rrsets: BTreeMap<(String, RecordType), (Rrset, Loc<String>)> = BTreeMap::new();
    let mut targets = Vec::new();
    let mut spfs = Vec::new();
    let mut ok = true;
    for (i, r) in spec.records.iter().enumerate() {
        let field = |f: &str| format!("spec.records[{i}].{f}");
        let owner = match dns::owner(&r.name.value, &zone) {
            Ok(o) => o,
            Err(e) => {
                cx.error(&field("name"), &r.name, e.message, e.help);
                ok = false;
                continue;
            }
        };
        let Some(t) = RecordType::parse(&r.record_type.value) else {
            cx.error(
                &field("type"),
                &r.record_type,
                format!(
                    "record type {:?} is not one SuperCP manages",
                    r.record_type.value
                ),
                "use A, AAAA, CNAME, MX, TXT, SRV, CAA, NS, PTR, TLSA or SSHFP (upper case)",
            );
            ok = false;
            continue;
        };
        if let Some(ttl) = &r.ttl {
            ttl_ok(&field("ttl"), ttl);
        }
        if r.values.is_empty() {
            cx.error(
                &field("values"),
                &r.name,
                format!("{t} {} has no values", r.name.value),
                "give at least one value, or remove the record",
            );
            ok = false;
            continue;
        }
        let mut contents = Vec::new();
        let mut spf_here = 0;
        for (j, v) in r.values.iter().enumerate() {
            match dns::value(t, &v.value, &zone) {
                Ok(c) => {
                    if t == RecordType::Txt {
                        let text = dns::txt_text(&v.value);
                        let checked = if text.starts_with("v=spf1") {
                            spf_here += 1;
                            dns::spf(text).map(|spf| {
                                spfs.push((
                                    owner.clone(),
                                    spf,
                                    field(&format!("values[{j}]")),
                                    v.clone(),
                                ))
                            })
                        } else if owner.starts_with("_dmarc.") {
                            dns::dmarc(text)
                        } else {
                            Ok(())
                        };
                        if let Err(e) = checked {
                            cx.error(&field(&format!("values[{j}]")), v, e.message, e.help);
                            ok = false;
                        }
                    }
                    if matches!(t, RecordType::Mx | RecordType::Ns | RecordType::Srv) {
                        let target = c.rsplit(' ').next().unwrap_or_default().to_owned();
                        targets.push((field(&format!("values[{j}]")), v.clone(), target));
                    }
                    contents.push(c);
                }
                Err(e) => {
                    cx.error(&field(&format!("values[{j}]")), v, e.message, e.help);
                    ok = false;
                }
            }
        }
        if spf_here > 1 {
            cx.error(
                &field("values"),
                &r.name,
                format!("{owner} has {spf_here} SPF records"),
                "a name may have one SPF record (RFC 7208 4.5: more is a permanent error): merge them",
            );
            ok = false;
        }
        if t == RecordType::Cname && owner == apex {
            cx.error(
                &field("name"),
                &r.name,
                "a CNAME at the zone's apex".into(),
                "the apex holds SOA and NS records, and a CNAME may not share its name (RFC 1034): \
                 use A/AAAA records there",
            );
            ok = false;
        }
        if t == RecordType::Cname && contents.len() > 1 {
            cx.error(
                &field("values"),
                &r.name,
                format!("CNAME {} has {} values", r.name.value, contents.len()),
                "a CNAME points at one name",
            );
            ok = false;
        }
        contents.sort();
        contents.dedup();
        let rrset = Rrset {
            name: owner.clone(),
            record_type: t,
            ttl: r.ttl.as_ref().map_or(default_ttl, |t| t.value),
            contents,
        };
        if let Some((_, first)) = rrsets.get(&(owner.clone(), t)) {
            cx.error(
                &field("name"),
                &r.name,
                format!(
                    "a second {t} rrset for {owner}; the first is at line {}",
                    first.line
                ),
                "give each name and type one entry with all its values",
            );
            ok = false;
            continue;
        }
        rrsets.insert((owner, t), (rrset, r.name.clone()));
    }
    // A CNAME shares its name with nothing else.
    let by_name: BTreeMap<&str, Vec<RecordType>> =
        rrsets.keys().fold(BTreeMap::new(), |mut m, (n, t)| {
            m.entry(n.as_str()).or_default().push(*t);
            m
        });
    for ((owner, t), (_, at)) in &rrsets {
        if *t == RecordType::Cname && by_name.get(owner.as_str()).is_some_and(|ts| ts.len() > 1) {
            cx.error(
                "spec.records",
                at,
                format!("{owner} has a CNAME and other records"),
                "a CNAME may not share its name with other data (RFC 1034): keep one or the other",
            );
            ok = false;
        }
    }
    let cnames = rrsets
        .keys()
        .filter(|(_, t)| *t == RecordType::Cname)
        .map(|(n, _)| n.clone())
        .collect();
    let entry = match (name, tenant) {
        (Some(name), Some(tenant)) if ok => Some(ZoneEntry {
            resource: resource(span, doc),
            name,
            tenant,
            rrsets: rrsets.into_values().map(|(r, _)| r).collect(),
        }),
        _ => None,
    };
    Checked {
        entry,
        targets,
        cnames,
        spfs,
    }
}

/// Every SPF record's DNS lookups, its own and those of the SPF records it includes or
/// redirects to that the repo declares, must stay within RFC 7208's ten. (Lookups of records
/// outside the repo count one each: their own are not known here.)
fn spf_lookups(spfs: &[(Arc<str>, String, SpfAt)], locate: Locate, out: &mut Vec<Diagnostic>) {
    let by_owner: BTreeMap<&str, &dns::Spf> = spfs
        .iter()
        .map(|(_, _, (o, spf, ..))| (o.as_str(), spf))
        .collect();
    fn total(
        spf: &dns::Spf,
        by_owner: &BTreeMap<&str, &dns::Spf>,
        seen: &mut BTreeSet<String>,
    ) -> u32 {
        let mut n = spf.lookups;
        for pulled in &spf.pulls {
            if let Some(inner) = by_owner.get(pulled.as_str()) {
                if seen.insert(pulled.clone()) {
                    n += total(inner, by_owner, seen);
                } else {
                    // A loop never ends: count it as over the limit.
                    n += dns::SPF_MAX_LOOKUPS + 1;
                }
            }
        }
        n
    }
    for (file, zone, (owner, spf, field, at)) in spfs {
        let mut seen = BTreeSet::from([owner.clone()]);
        let n = total(spf, &by_owner, &mut seen);
        if n > dns::SPF_MAX_LOOKUPS {
            let cx = Cx::new(file, "Zone", zone, locate, out);
            cx.error(
                field,
                at,
                format!(
                    "the SPF record of {owner} needs {n} DNS lookups (with what it includes), over {}",
                    dns::SPF_MAX_LOOKUPS
                ),
                "receivers fail SPF past 10 lookups (RFC 7208 4.6.4): replace includes and a/mx                  terms by ip4:/ip6: ranges, or flatten the included records",
            );
        }
    }
}

/// The zone and every Domain inside it must be the zone tenant's: a tenant cannot publish
/// records for a name another tenant serves.
fn owned_names(
    cx: &Cx,
    at: &Loc<String>,
    zone: &DomainName,
    tenant: &TenantName,
    catalog: &Catalog,
) {
    let suffix = format!(".{}", zone.as_str());
    for d in catalog.domains.values() {
        let names = std::iter::once(&d.name).chain(&d.aliases);
        for n in names {
            let inside = n == zone || n.as_str().ends_with(&suffix);
            if inside && &d.tenant != tenant {
                cx.error(
                    "metadata.name",
                    at,
                    format!(
                        "zone {} holds {}, a name of Domain/{} of tenant {}",
                        zone.as_str(),
                        n.as_str(),
                        d.name.as_str(),
                        d.tenant.as_str()
                    ),
                    "a zone belongs to the tenant that owns its domains: give the zone to that \
                     tenant, or move the domain",
                );
                return;
            }
        }
    }
}

/// A zone inside another zone of another tenant (`shop.acme.test` of tenant b inside
/// `acme.test` of tenant a) is refused: a tenant cannot take over part of another's zone.
fn nested(entries: &[ZoneEntry], locate: Locate, out: &mut Vec<Diagnostic>) {
    for inner in entries {
        for outer in entries {
            let inside = inner
                .name
                .as_str()
                .ends_with(&format!(".{}", outer.name.as_str()));
            if inside && inner.tenant != outer.tenant {
                let file = inner.resource.origin.file.clone();
                let cx = Cx::new(&file, "Zone", &inner.resource.name, locate, out);
                let at = Loc::new((), inner.resource.origin.line, inner.resource.origin.col);
                cx.error(
                    "metadata.name",
                    &at,
                    format!(
                        "zone {} lies inside zone {} of tenant {}",
                        inner.name.as_str(),
                        outer.name.as_str(),
                        outer.tenant.as_str()
                    ),
                    "a sub-zone belongs to the tenant of its parent zone",
                );
            }
        }
    }
}

fn is_ip_port(text: &str) -> bool {
    text.parse::<std::net::IpAddr>().is_ok() || text.parse::<std::net::SocketAddr>().is_ok()
}

fn is_ip_prefix(text: &str) -> bool {
    match text.split_once('/') {
        None => text.parse::<std::net::IpAddr>().is_ok(),
        Some((ip, prefix)) => match (ip.parse::<std::net::IpAddr>(), prefix.parse::<u8>()) {
            (Ok(std::net::IpAddr::V4(_)), Ok(p)) => p <= 32,
            (Ok(std::net::IpAddr::V6(_)), Ok(p)) => p <= 128,
            _ => false,
        },
    }
}
