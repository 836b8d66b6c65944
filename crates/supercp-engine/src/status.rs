//! What each tenant uses against its package's limits: domains, PHP workers, disk.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use supercp_core::TenantName;

use crate::Inputs;

/// One tenant's usage. A limit is `None` when its package sets none.
#[derive(Clone, Debug, Serialize)]
pub struct TenantUsage {
    pub tenant: String,
    pub package: String,
    pub suspended: bool,
    pub domains: u32,
    pub max_domains: Option<u32>,
    /// `pm.max_children` of its pool (0 without a pool).
    pub php_workers: u32,
    pub max_php_workers: Option<u32>,
    /// Bytes its home takes on disk; `None` when the home does not exist yet.
    pub disk_bytes: Option<u64>,
    pub disk_quota_mb: Option<u64>,
}

impl TenantUsage {
    /// Over the package's disk quota (reported; enforced only where the filesystem has
    /// quotas, see docs/node-layout.md).
    pub fn over_quota(&self) -> bool {
        match (self.disk_bytes, self.disk_quota_mb) {
            (Some(bytes), Some(mb)) => bytes > mb.saturating_mul(1024 * 1024),
            _ => false,
        }
    }
}

/// Usage of every tenant, in name order. Homes are measured in parallel, one chunk per core.
pub fn tenant_usage(inputs: &Inputs) -> Vec<TenantUsage> {
    let homes = inputs.spec.path(&inputs.spec.home_dir);
    // Per tenant: its domains, and whether one of them runs PHP (a pool exists).
    let mut sites: BTreeMap<&TenantName, (usize, bool)> = BTreeMap::new();
    for d in inputs.catalog.domains.values() {
        let entry = sites.entry(&d.tenant).or_default();
        entry.0 += 1;
        entry.1 |= d.resource.spec.php;
    }
    let tenants: Vec<_> = inputs.catalog.tenants.values().collect();
    let parts = supercp_core::par::map_chunks(&tenants, |chunk| {
        chunk
            .iter()
            .map(|t| {
                let spec = &t.resource.spec;
                let package = inputs.catalog.packages.get(&spec.package.value);
                let limits = package.map(|p| &p.spec);
                let (domains, has_pool) = sites.get(&t.name).copied().unwrap_or_default();
                TenantUsage {
                    tenant: t.name.to_string(),
                    package: spec.package.value.clone(),
                    suspended: spec.suspended,
                    domains: u32::try_from(domains).unwrap_or(u32::MAX),
                    max_domains: limits.and_then(|l| l.max_domains.as_ref()).map(|m| m.value),
                    php_workers: match &spec.php {
                        Some(php) if has_pool && !spec.suspended => php.max_children(),
                        _ => 0,
                    },
                    max_php_workers: limits
                        .and_then(|l| l.max_php_workers.as_ref())
                        .map(|m| m.value),
                    disk_bytes: supercp_drivers::fs::disk_usage(
                        &Path::new(&homes).join(t.name.as_str()),
                    ),
                    disk_quota_mb: limits
                        .and_then(|l| l.disk_quota_mb.as_ref())
                        .map(|m| m.value),
                }
            })
            .collect::<Vec<_>>()
    });
    parts.into_iter().flatten().collect()
}
