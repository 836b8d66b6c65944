//! The catalog: every resource of a repo, loaded and validated, with where it was declared.

use std::collections::BTreeMap;

use crate::diagnostic::Span;
use crate::dns::RecordType;
use crate::names::{DomainName, TenantName};
use crate::resource::{DomainSpec, NodeSpec, PackageSpec, TenantSpec, ZoneSpec};

/// One validated resource and its declaration site (the span of `metadata.name`).
#[derive(Clone, Debug)]
pub struct Resource<S> {
    pub name: String,
    pub origin: Span,
    pub spec: S,
}

/// A validated domain: its typed name, its tenant and its aliases, all checked.
#[derive(Clone, Debug)]
pub struct DomainEntry {
    pub resource: Resource<DomainSpec>,
    pub name: DomainName,
    pub tenant: TenantName,
    pub aliases: Vec<DomainName>,
}

/// A validated tenant.
#[derive(Clone, Debug)]
pub struct TenantEntry {
    pub resource: Resource<TenantSpec>,
    pub name: TenantName,
}

/// A validated zone: its name, its tenant, and its rrsets made canonical.
#[derive(Clone, Debug)]
pub struct ZoneEntry {
    pub resource: Resource<ZoneSpec>,
    pub name: DomainName,
    pub tenant: TenantName,
    pub rrsets: Vec<Rrset>,
}

/// One rrset as PowerDNS holds it: an absolute owner name, a type, a TTL and the contents in
/// canonical form, sorted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rrset {
    pub name: String,
    pub record_type: RecordType,
    pub ttl: u32,
    pub contents: Vec<String>,
}

/// Everything a repo declares, keyed by name. Built only by the loader, only when valid.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub nodes: BTreeMap<String, Resource<NodeSpec>>,
    pub packages: BTreeMap<String, Resource<PackageSpec>>,
    pub tenants: BTreeMap<TenantName, TenantEntry>,
    pub domains: BTreeMap<DomainName, DomainEntry>,
    pub zones: BTreeMap<DomainName, ZoneEntry>,
}

impl Catalog {
    /// Number of resources of every kind.
    pub fn len(&self) -> usize {
        self.nodes.len()
            + self.packages.len()
            + self.tenants.len()
            + self.domains.len()
            + self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
