//! observe + diff + prune → `Plan`, in the order apply executes it.
//!
//! Order: directories and other ungated objects first (parents before children), then each
//! gate's objects together (so one check covers all of them), then deletes of ungated objects,
//! deepest first.

use std::collections::{BTreeMap, BTreeSet};

use supercp_audit::OwnedObject;
use supercp_core::object::Observed;
use supercp_core::{Action, Desired, Object, ObjectId, Observation, Plan, Reason, Span, Step};
use supercp_drivers::Node;

use crate::diff::{diff, text_diff};
use crate::progress::Progress;
use crate::EngineError;

/// What an operator allows a plan to do.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Delete tenant data whose resource left the repo with `deletionPolicy: Delete`.
    pub allow_destroy: bool,
    /// Refuse a plan that deletes more than this share (percent) of the owned resources of
    /// any kind (more than one resource).
    pub max_delete_share: f64,
    /// The caller ran `check_mass_delete` over the whole node itself: this plan covers only a
    /// subset of it (the agent's incremental reconcile), on which the share means nothing.
    pub guarded_by_caller: bool,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            allow_destroy: false,
            max_delete_share: 25.0,
            guarded_by_caller: false,
        }
    }
}

/// A plan together with what the journal knew when it was made.
pub struct Planned {
    pub plan: Plan,
    /// Objects owned before this plan, by id.
    pub owned: BTreeMap<String, OwnedObject>,
    pub desired: Vec<Desired>,
    /// What observing each desired object found, in the order of `desired`.
    pub observed: Vec<Observation>,
}

/// Observes every desired and every owned object and builds the plan. `owned` is what the
/// journal records as SuperCP's on this node (`Journal::owned`).
///
/// # Errors
/// `MassDelete` when the plan deletes too much.
pub fn plan(
    desired: Vec<Desired>,
    owned: Vec<OwnedObject>,
    options: &PlanOptions,
) -> Result<Planned, EngineError> {
    let owned: BTreeMap<String, OwnedObject> =
        owned.into_iter().map(|o| (o.object.clone(), o)).collect();
    Progress::announce("observing", desired.len());
    let at_ms = supercp_core::time::now_ms();
    // Objects are observed independently: one chunk per core, each with its own descriptors.
    let parts = supercp_core::par::map_chunks(&desired, |chunk| {
        let mut fs = Node::new();
        let mut steps = Vec::new();
        let mut seen = Vec::with_capacity(chunk.len());
        for d in chunk {
            let observed = observe(&mut fs, d);
            let ids = owner(&d.object).and_then(|o| fs.owner_ids(o));
            let step = diff(d, &observed, ids);
            let reason = step.as_ref().map(|s| &s.reason);
            seen.push(Observation::new(&d.object, &observed, reason, at_ms));
            steps.extend(step);
        }
        (steps, seen)
    });
    let mut steps: Vec<Step> = Vec::new();
    let mut seen = Vec::with_capacity(desired.len());
    for (chunk_steps, chunk_seen) in parts {
        steps.extend(chunk_steps);
        seen.extend(chunk_seen);
    }
    let mut fs = Node::new();
    let wanted: BTreeSet<ObjectId> = desired.iter().map(Desired::id).collect();
    let mut deletes = Vec::new();
    let mut retained = Vec::new();
    for o in owned.values() {
        let id = ObjectId(o.object.clone());
        if wanted.contains(&id) {
            continue;
        }
        let rel = id
            .path()
            .strip_prefix(o.anchor.trim_end_matches('/'))
            .unwrap_or(id.path())
            .trim_start_matches('/')
            .to_owned();
        let observed = if id.kind() == "user" {
            supercp_drivers::accounts::observe(&rel)
        } else {
            fs.observe(&o.anchor, &rel)
        };
        if observed == Observed::Absent {
            continue;
        }
        let previous = match &observed {
            Observed::File { content, .. } => Some(content.clone()),
            _ => None,
        };
        let step = Step {
            id: id.clone(),
            action: Action::Delete,
            reason: Reason::NotInRepo,
            resource: o.resource.clone(),
            origin: Span::default(),
            before: previous.as_deref().map(supercp_core::object::digest_bytes),
            after: None,
            diff: previous.as_deref().map(|p| text_diff(id.path(), p, b"")),
            desired: Some(Desired {
                anchor: o.anchor.clone(),
                rel,
                object: Object::Dir {
                    mode: 0,
                    owner: None,
                },
                resource: o.resource.clone(),
                origin: Span::default(),
                gate: o.gate.clone(),
                tenant_data: o.tenant_data,
            }),
            previous,
            gate: o.gate.clone(),
            tenant_data: o.tenant_data,
        };
        let deletable = !o.tenant_data
            || (options.allow_destroy && o.deletion_policy.as_deref() == Some("Delete"));
        if deletable {
            deletes.push(step);
        } else {
            retained.push(step);
        }
    }
    if !options.guarded_by_caller {
        check_mass_delete(&owned, &desired, options)?;
    }
    let plan = Plan {
        steps: order(steps, deletes),
        retained,
        objects: desired.len(),
    };
    Ok(Planned {
        plan,
        owned,
        desired,
        observed: seen,
    })
}

pub(crate) fn owner(object: &Object) -> Option<&supercp_core::Owner> {
    match object {
        Object::File { owner, .. } | Object::Dir { owner, .. } => owner.as_ref(),
        Object::Account(_) => None,
    }
}

/// What is on the node for one desired object: files and directories through the file driver,
/// accounts through the account databases.
pub(crate) fn observe(fs: &mut Node, d: &Desired) -> Observed {
    match &d.object {
        Object::Account(_) => supercp_drivers::accounts::observe(&d.rel),
        _ => fs.observe(&d.anchor, &d.rel),
    }
}

/// Execution order: ungated creates/updates, gate groups by name, ungated deletes deepest first.
fn order(steps: Vec<Step>, deletes: Vec<Step>) -> Vec<Step> {
    let mut ungated = Vec::new();
    let mut gated: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    let mut ungated_deletes = Vec::new();
    for step in steps.into_iter().chain(deletes) {
        match (&step.gate, step.action) {
            (Some(g), _) => gated.entry(g.clone()).or_default().push(step),
            (None, Action::Delete) => ungated_deletes.push(step),
            (None, _) => ungated.push(step),
        }
    }
    ungated_deletes.sort_by(|a, b| {
        b.id.path()
            .len()
            .cmp(&a.id.path().len())
            .then_with(|| a.id.cmp(&b.id))
    });
    ungated
        .into_iter()
        .chain(gated.into_values().flatten())
        .chain(ungated_deletes)
        .collect()
}

/// Refuses a plan that removes more than the allowed share of any kind of resource (a
/// resource is removed when SuperCP owns objects of it and the repo no longer declares it).
/// Removing a single resource is always allowed.
///
/// # Errors
/// `MassDelete` naming the kind, the share and the flag that allows it.
pub fn check_mass_delete(
    owned: &BTreeMap<String, OwnedObject>,
    desired: &[Desired],
    options: &PlanOptions,
) -> Result<(), EngineError> {
    let kind = |resource: &str| resource.split('/').next().unwrap_or("").to_owned();
    let declared: BTreeSet<&str> = desired.iter().map(|d| d.resource.as_str()).collect();
    let owned_resources: BTreeSet<&str> = owned.values().map(|o| o.resource.as_str()).collect();
    let mut per_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in owned_resources {
        let entry = per_kind.entry(kind(r)).or_default();
        entry.1 += 1;
        if !declared.contains(r) {
            entry.0 += 1;
        }
    }
    for (k, (removed, total)) in per_kind {
        if removed <= 1 {
            continue;
        }
        #[allow(clippy::cast_precision_loss)]
        let share = removed as f64 * 100.0 / total as f64;
        if share > options.max_delete_share {
            return Err(EngineError::MassDelete {
                kind: k,
                deleted: removed,
                owned: total,
                share,
                limit: options.max_delete_share,
                needed: share.ceil(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn file(anchor: &std::path::Path, rel: &str) -> Desired {
        Desired {
            anchor: anchor.display().to_string(),
            rel: rel.into(),
            object: Object::File {
                content: b"listen 80;\n".to_vec(),
                mode: 0o644,
                owner: None,
            },
            resource: "Domain/a.test".into(),
            origin: Span::default(),
            gate: None,
            tenant_data: false,
        }
    }

    #[test]
    fn every_desired_object_is_observed_in_order() {
        let dir =
            std::env::temp_dir().join(format!("supercp-plan-observed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let same = dir.join("same.conf");
        std::fs::write(&same, "listen 80;\n").expect("write a file");
        std::fs::set_permissions(&same, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let planned = plan(
            vec![file(&dir, "same.conf"), file(&dir, "missing.conf")],
            Vec::new(),
            &PlanOptions::default(),
        );
        let _ = std::fs::remove_dir_all(&dir);
        let planned = planned.expect("a plan");
        assert_eq!(planned.plan.steps.len(), 1);
        let [same, missing] = planned.observed.as_slice() else {
            panic!("two observations: {:?}", planned.observed);
        };
        assert_eq!(
            (
                same.found,
                same.mode,
                same.content_matches,
                same.differs.as_deref()
            ),
            ("file", Some(0o644), Some(true), None)
        );
        assert_eq!(
            (missing.found, missing.differs.as_deref()),
            ("absent", Some("missing on the node"))
        );
    }
}
