//! What the pages show, computed from journal records: resources grouped from owned objects,
//! each resource's tenant, counts by kind. Pure: the journal is read by the caller.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use supercp_audit::{OwnedObject, RunRecord, StepRecord};
use supercp_core::Observation;

use crate::AgentSnapshot;

/// One resource (`Kind/name`) and the objects SuperCP owns for it on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Resource {
    /// `Kind/name`, as the journal records it.
    pub resource: String,
    pub kind: String,
    pub name: String,
    /// The tenant the resource belongs to, when the owned objects tell (see [`group`]).
    pub tenant: Option<String>,
    pub objects: Vec<OwnedObject>,
}

/// A resource as listed: its objects counted, not listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ResourceRow<'a> {
    pub resource: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub tenant: Option<&'a str>,
    pub objects: usize,
    pub tenant_data_objects: usize,
    pub gates: BTreeSet<&'a str>,
}

/// How many resources of one kind the node holds, and how many objects they own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct KindCount {
    pub resources: usize,
    pub objects: usize,
}

/// Everything the overview shows; also the body of `/api/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Status {
    pub node: String,
    pub roles: Vec<String>,
    pub agent: AgentSnapshot,
    pub last_run: Option<RunRecord>,
    pub resources: BTreeMap<String, KindCount>,
    pub owned_objects: usize,
    /// Unix milliseconds when this status was read.
    pub generated_at: i64,
    /// Every node whose runs share this journal (a fleet on one PostgreSQL), with its newest
    /// run, this node included.
    pub fleet: Vec<FleetNode>,
    /// The node's certificates as the journal records them (issued, or failing with the CA's
    /// error and the next attempt).
    pub certificates: Vec<supercp_audit::CertRecord>,
}

/// One node of the fleet, as the shared journal shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FleetNode {
    pub node: String,
    pub last_run: RunRecord,
}

/// The newest run of each node among `runs` (newest first), by node name.
pub(crate) fn fleet(runs: &[RunRecord]) -> Vec<FleetNode> {
    let mut newest: BTreeMap<&str, &RunRecord> = BTreeMap::new();
    for run in runs {
        newest.entry(run.node.as_str()).or_insert(run);
    }
    newest
        .into_iter()
        .map(|(node, run)| FleetNode {
            node: node.to_owned(),
            last_run: run.clone(),
        })
        .collect()
}

/// The `?kind=` and `?tenant=` filters of the resource list; an empty value filters nothing.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct Filter {
    pub kind: Option<String>,
    pub tenant: Option<String>,
}

impl Resource {
    pub(crate) fn row(&self) -> ResourceRow<'_> {
        ResourceRow {
            resource: &self.resource,
            kind: &self.kind,
            name: &self.name,
            tenant: self.tenant.as_deref(),
            objects: self.objects.len(),
            tenant_data_objects: self.objects.iter().filter(|o| o.tenant_data).count(),
            gates: self
                .objects
                .iter()
                .filter_map(|o| o.gate.as_deref())
                .collect(),
        }
    }
}

impl Filter {
    pub(crate) fn kind(&self) -> Option<&str> {
        self.kind.as_deref().filter(|k| !k.is_empty())
    }

    pub(crate) fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref().filter(|t| !t.is_empty())
    }

    pub(crate) fn matches(&self, resource: &Resource) -> bool {
        self.kind().is_none_or(|k| resource.kind == k)
            && self
                .tenant()
                .is_none_or(|t| resource.tenant.as_deref() == Some(t))
    }
}

/// `("Domain", "acme.test")` for `Domain/acme.test`; a resource without `/` has an empty kind.
pub(crate) fn split_resource(resource: &str) -> (&str, &str) {
    resource.split_once('/').unwrap_or(("", resource))
}

/// Groups owned objects by resource, sorted by kind then name.
///
/// The journal does not record a resource's tenant, so it is inferred: a `Tenant/x` resource
/// belongs to `x`; another resource belongs to tenant `x` when one of its tenant-data objects
/// lies below its anchor at `x/…` and `x` is a tenant owned on the node (a domain's web root
/// `/srv/homes/acme/domains/acme.test` below the homes anchor `/srv/homes`).
pub(crate) fn group(owned: Vec<OwnedObject>) -> Vec<Resource> {
    let mut by_resource: BTreeMap<(String, String), Vec<OwnedObject>> = BTreeMap::new();
    for object in owned {
        let (kind, name) = split_resource(&object.resource);
        by_resource
            .entry((kind.to_owned(), name.to_owned()))
            .or_default()
            .push(object);
    }
    let tenants: BTreeSet<String> = by_resource
        .keys()
        .filter(|(kind, _)| kind == "Tenant")
        .map(|(_, name)| name.clone())
        .collect();
    by_resource
        .into_iter()
        .map(|((kind, name), objects)| {
            let tenant = if kind == "Tenant" {
                Some(name.clone())
            } else {
                objects
                    .iter()
                    .find_map(|o| tenant_below_anchor(o, &tenants))
            };
            Resource {
                resource: objects
                    .first()
                    .map_or_else(|| format!("{kind}/{name}"), |o| o.resource.clone()),
                kind,
                name,
                tenant,
                objects,
            }
        })
        .collect()
}

/// Resources and owned objects per kind.
pub(crate) fn count_by_kind(resources: &[Resource]) -> BTreeMap<String, KindCount> {
    let mut counts: BTreeMap<String, KindCount> = BTreeMap::new();
    for r in resources {
        let count = counts.entry(r.kind.clone()).or_default();
        count.resources += 1;
        count.objects += r.objects.len();
    }
    counts
}

/// The step that makes `seen`, the last observation of `object`, stale: the newest step among
/// `steps` (newest first) that touched `object` and started after the observation. A failed or
/// partial run changes objects (or fails to) without a newer observation: such an object is
/// not shown as its older observation says ("as desired"), but as that step left it.
/// `None` without an observation (nothing to make stale) or when no later step touched it.
pub(crate) fn superseding<'a>(
    object: &str,
    seen: Option<&Observation>,
    steps: &'a [StepRecord],
) -> Option<&'a StepRecord> {
    let seen = seen?;
    let step = steps
        .iter()
        .find(|s| s.object == object && s.started_at.is_some())?;
    (step.started_at? > seen.at_ms).then_some(step)
}

/// Run duration in milliseconds, when the run has finished.
pub(crate) fn run_duration_ms(run: &RunRecord) -> Option<i64> {
    run.finished_at.map(|f| (f - run.started_at).max(0))
}

/// The tenant whose directory holds `object`, when it is tenant data below its anchor.
fn tenant_below_anchor(object: &OwnedObject, tenants: &BTreeSet<String>) -> Option<String> {
    if !object.tenant_data || object.anchor.is_empty() {
        return None;
    }
    let (_, path) = object.object.split_once(':')?;
    let anchor = object.anchor.trim_end_matches('/');
    let below = path.strip_prefix(anchor)?.strip_prefix('/')?;
    let first = below.split('/').next()?;
    tenants.contains(first).then(|| first.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(object: &str, resource: &str, anchor: &str, tenant_data: bool) -> OwnedObject {
        OwnedObject {
            object: object.into(),
            resource: resource.into(),
            tenant_data,
            anchor: anchor.into(),
            deletion_policy: None,
            gate: None,
        }
    }

    #[test]
    fn a_domain_belongs_to_the_tenant_whose_home_holds_its_web_root() {
        let resources = group(vec![
            owned("user:acme", "Tenant/acme", "", true),
            owned("dir:/srv/homes/acme", "Tenant/acme", "/srv/homes", true),
            owned(
                "dir:/srv/homes/acme/domains/acme.test",
                "Domain/acme.test",
                "/srv/homes",
                true,
            ),
            owned(
                "file:/etc/nginx/sites-enabled/acme.test.conf",
                "Domain/acme.test",
                "/etc/nginx",
                false,
            ),
            owned(
                "file:/etc/nginx/nginx.conf",
                "Node/web1",
                "/etc/nginx",
                false,
            ),
        ]);
        let summary: Vec<(&str, Option<&str>, usize)> = resources
            .iter()
            .map(|r| (r.resource.as_str(), r.tenant.as_deref(), r.objects.len()))
            .collect();
        assert_eq!(
            summary,
            [
                ("Domain/acme.test", Some("acme"), 2),
                ("Node/web1", None, 1),
                ("Tenant/acme", Some("acme"), 2),
            ]
        );
        let counts = count_by_kind(&resources);
        assert_eq!(
            counts["Domain"],
            KindCount {
                resources: 1,
                objects: 2
            }
        );
    }

    #[test]
    fn a_directory_of_an_unknown_tenant_gives_no_tenant() {
        let resources = group(vec![owned(
            "dir:/srv/homes/ghost/domains/x.test",
            "Domain/x.test",
            "/srv/homes",
            true,
        )]);
        assert_eq!(resources[0].tenant, None);
    }

    #[test]
    fn a_step_started_after_the_observation_supersedes_it() {
        let step = |object: &str, started_at: Option<i64>| StepRecord {
            id: 1,
            run_id: 7,
            seq: 0,
            resource: "Domain/a.test".into(),
            origin: "tenants/a.yaml:1:1".into(),
            object: object.into(),
            action: "update".into(),
            status: supercp_audit::StepStatus::Failed,
            attempt: 1,
            started_at,
            finished_at: None,
            before_hash: None,
            after_hash: None,
            log: vec!["refused: a symlink".into()],
            has_before_content: false,
        };
        let seen = Observation {
            at_ms: 100,
            found: "dir",
            mode: Some(0o755),
            owner: None,
            content_matches: None,
            differs: None,
            notes: Vec::new(),
        };
        let dir = "dir:/srv/homes/a/public_html";
        // Newest first: a step of another object, one never started, then the newest started.
        let steps = [
            step("file:/x", Some(500)),
            step(dir, None),
            step(dir, Some(200)),
        ];
        let found = superseding(dir, Some(&seen), &steps).expect("superseded");
        assert_eq!(found.started_at, Some(200));
        // An observation after the step (the engine reporting a failed run's observations).
        let newer = Observation {
            at_ms: 300,
            ..seen.clone()
        };
        assert!(superseding(dir, Some(&newer), &steps).is_none());
        assert!(superseding(dir, None, &steps).is_none());
        assert!(superseding("file:/y", Some(&seen), &steps).is_none());
    }

    #[test]
    fn empty_filter_values_filter_nothing() {
        let r = &group(vec![owned("user:a", "Tenant/a", "", true)])[0];
        let filter = Filter {
            kind: Some(String::new()),
            tenant: Some(String::new()),
        };
        assert!(filter.matches(r));
        let filter = Filter {
            kind: Some("Domain".into()),
            tenant: None,
        };
        assert!(!filter.matches(r));
    }
}
