//! observe → diff → prune → `Plan`, in the order apply executes it.
//!
//! Two halves: `plan` asks the driver registry what is on the node for every desired object
//! (comparing each as soon as it is seen, chunk by chunk, so no file content outlives its
//! diff) and for every owned object that left the repo — the only I/O here; `compare` and
//! `finish` turn those observations into the plan and are pure. `decide` is the same two
//! steps over a whole `Observations` value, so plans are tested from data.
//!
//! Order: direct objects first (parents before children), then each commit unit's objects
//! together (so one check covers all of them), then deletes of direct objects, deepest first.

use std::collections::{BTreeMap, BTreeSet};

use supercp_audit::{OwnedObject, Unchecked};
use supercp_core::object::Observed;
use supercp_core::Unreached;
use supercp_core::{
    Action, Desired, Location, ObjectId, Observation, Owned, Plan, Reason, ResourceKind,
    ResourceRef, Snapshot, Span, Step, Target, Unit,
};
use supercp_drivers::{registry, Drivers, Seen, Settings};

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
    /// Resources (`Kind/name`) whose guarded changes go ahead (`--force-zone`): a change of
    /// more than a share of a zone's rrsets, or of its apex NS set.
    pub force: BTreeSet<String>,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            allow_destroy: false,
            max_delete_share: 25.0,
            force: BTreeSet::new(),
        }
    }
}

/// How much of the node a plan covers. Whatever it covers, the mass-deletion guard looks at
/// the whole node.
#[derive(Clone, Debug, Default)]
pub enum Scope<'a> {
    /// The desired objects are everything the repo renders for the node, the owned records
    /// everything the journal records for it.
    #[default]
    Whole,
    /// The desired objects are only those that may have changed since the last successful run,
    /// the owned records only theirs and those of the objects that left the repo (the agent's
    /// incremental reconcile); the rest of the node is as that run left it. Borrowed, so a
    /// part costs nothing to describe.
    Part {
        /// Every object the repo renders for the node, the part's among them, in slices (the
        /// render memory's parts).
        desired: Vec<&'a [Desired]>,
        /// Every object the journal records as owned on the node.
        owned: &'a BTreeMap<String, OwnedObject>,
    },
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

/// What a plan of the whole node reads from the journal: the owned objects, the writes a
/// killed run never checked, and each certificate's record (what the CA said last).
pub struct Journaled {
    pub owned: Vec<OwnedObject>,
    pub unchecked: Vec<Unchecked>,
    pub certificates: BTreeMap<String, supercp_audit::CertRecord>,
}

impl Journaled {
    /// Reads them for `node`.
    ///
    /// # Errors
    /// Journal errors.
    pub async fn read(
        journal: &supercp_audit::Journal,
        node: &str,
    ) -> Result<Journaled, supercp_audit::AuditError> {
        Ok(Journaled {
            owned: journal.owned(node).await?,
            unchecked: journal.unchecked(node).await?,
            certificates: journal.certificates(node).await?,
        })
    }
}

/// A dry run over the whole node: what an apply would do now, certificates due by what the CA
/// said last (a dry run asks the CA nothing). `supercp plan` and the agent's socket.
///
/// # Errors
/// As `plan`.
pub fn dry_run(
    inputs: &crate::Inputs,
    desired: Vec<Desired>,
    journaled: Journaled,
    options: &PlanOptions,
) -> Result<Planned, EngineError> {
    let certs = crate::certs::Policy::new(inputs, journaled.certificates, BTreeSet::new());
    plan(
        desired,
        journaled.owned,
        &Scope::Whole,
        &journaled.unchecked,
        &certs,
        &Settings::for_node(&inputs.spec),
        options,
    )
}

/// Everything observing found: each desired object as seen, in order, and each owned object
/// that no desired object stands for, with what is in its place.
pub struct Observations {
    pub desired: Vec<Seen>,
    pub leaving: Vec<(Owned, Observed)>,
}

/// Observes every desired and every owned object and builds the plan. `owned` is what the
/// journal records as SuperCP's on this node (`Journal::owned`), `scope` whether `desired`
/// and `owned` are the whole node or a part of it, `unchecked` what a killed run wrote and
/// its commit unit never checked (`Journal::unchecked`), `certs` when each certificate is due
/// and which due ones this run holds back.
///
/// # Errors
/// `Unobservable` naming each object that could not be seen (nothing is planned then);
/// `BadRecord` for a journal record this version cannot read; `MassDelete` when the plan
/// deletes too much (of the whole node, whatever the scope).
pub fn plan(
    mut desired: Vec<Desired>,
    owned: Vec<OwnedObject>,
    scope: &Scope<'_>,
    unchecked: &[Unchecked],
    certs: &crate::certs::Policy,
    settings: &Settings,
    options: &PlanOptions,
) -> Result<Planned, EngineError> {
    let owned: BTreeMap<String, OwnedObject> =
        owned.into_iter().map(|o| (o.object.clone(), o)).collect();
    let at_ms = supercp_core::time::now_ms();
    crate::certs::annotate(&mut desired, certs);
    // Observed and compared chunk by chunk: a file's content is dropped as soon as it was
    // diffed, so a plan never holds every managed file at once.
    Progress::announce("observing", desired.len());
    let mut failures = Vec::new();
    let parts = supercp_core::par::map_chunks(&desired, |chunk| {
        let mut drivers = Drivers::new(settings);
        let mut steps = Vec::new();
        let mut observed = Vec::with_capacity(chunk.len());
        let mut failed = Vec::new();
        let mut unreached = Vec::new();
        for d in chunk {
            match drivers.observe(&d.object) {
                Ok(seen) => {
                    let (step, observation) = compare(d, &seen, at_ms);
                    steps.extend(step);
                    observed.push(observation);
                }
                // Its service is down: not planned, the rest of the node is.
                Err(e) if e.is_unreachable() => {
                    observed.push(Observation::unreached(at_ms, &e.to_string()));
                    unreached.push(Unreached {
                        id: d.id(),
                        resource: d.resource.clone(),
                        why: e.to_string(),
                    });
                }
                Err(e) => failed.push(unobservable(
                    &d.id(),
                    &d.resource,
                    &d.origin.to_string(),
                    &e,
                )),
            }
        }
        (steps, observed, failed, unreached)
    });
    let mut steps = Vec::new();
    let mut observed = Vec::with_capacity(desired.len());
    let mut unreached = Vec::new();
    for (chunk_steps, chunk_observed, failed, chunk_unreached) in parts {
        steps.extend(chunk_steps);
        observed.extend(chunk_observed);
        failures.extend(failed);
        unreached.extend(chunk_unreached);
    }
    let leaving = observe_leaving(&desired, &owned, settings, &mut failures, &mut unreached)?;
    fail_unobservable(failures)?;
    let mut plan = finish(&desired, steps, &leaving, &owned, scope, options)?;
    plan.unreached = unreached;
    resume(&mut plan, unchecked, &desired, scope)?;
    crate::certs::hold(&mut plan, certs);
    Ok(Planned {
        plan,
        owned,
        desired,
        observed,
    })
}

/// Each owned object no desired object stands for, with what is in its place; what cannot
/// be seen is added to `failures` (never "gone": neither deleted nor forgotten).
fn observe_leaving(
    desired: &[Desired],
    owned: &BTreeMap<String, OwnedObject>,
    settings: &Settings,
    failures: &mut Vec<String>,
    unreached: &mut Vec<Unreached>,
) -> Result<Vec<(Owned, Observed)>, EngineError> {
    let wanted: BTreeSet<String> = desired.iter().map(|d| d.id().to_string()).collect();
    let mut drivers = Drivers::new(settings);
    let mut leaving = Vec::new();
    for record in owned.values().filter(|o| !wanted.contains(&o.object)) {
        let owned = owned_record(record)?;
        match drivers.observe_owned(&owned) {
            Ok(observed) => leaving.push((owned, observed)),
            // Neither deleted nor forgotten: it stays owned until its service answers.
            Err(e) if e.is_unreachable() => unreached.push(Unreached {
                id: owned.id.clone(),
                resource: owned.resource.clone(),
                why: e.to_string(),
            }),
            Err(e) => failures.push(unobservable(&owned.id, &owned.resource, "", &e)),
        }
    }
    Ok(leaving)
}

fn fail_unobservable(failures: Vec<String>) -> Result<(), EngineError> {
    if failures.is_empty() {
        return Ok(());
    }
    Err(EngineError::Unobservable {
        count: failures.len(),
        objects: failures
            .iter()
            .take(10)
            .map(|l| format!("\n  {l}"))
            .collect(),
    })
}

/// One desired object against what was seen: its step, if any, and its observation. Pure.
pub fn compare(desired: &Desired, seen: &Seen, at_ms: i64) -> (Option<Step>, Observation) {
    let step = registry::diff(desired, seen);
    let reason = step.as_ref().map(|s| &s.reason);
    let observation = Observation::new(&desired.object, &seen.observed, reason, at_ms);
    (step, observation)
}

/// The plan from what was observed, and an `Observation` of each desired object for the
/// status page. Pure: the same observations give the same plan.
///
/// # Errors
/// `MassDelete` when the plan deletes too much (of the whole node, whatever the scope).
pub fn decide(
    desired: &[Desired],
    seen: Observations,
    owned: &BTreeMap<String, OwnedObject>,
    scope: &Scope<'_>,
    options: &PlanOptions,
    at_ms: i64,
) -> Result<(Plan, Vec<Observation>), EngineError> {
    let mut steps = Vec::new();
    let mut observed = Vec::with_capacity(desired.len());
    for (d, s) in desired.iter().zip(&seen.desired) {
        let (step, observation) = compare(d, s, at_ms);
        steps.extend(step);
        observed.push(observation);
    }
    let plan = finish(desired, steps, &seen.leaving, owned, scope, options)?;
    Ok((plan, observed))
}

/// The rest of a plan once every desired object was compared: prune what left the repo
/// (deletion policy, retained tenant data, forgotten records), the mass-deletion guard over
/// the whole node, the order. Pure.
///
/// # Errors
/// `MassDelete` when the plan deletes too much.
fn finish(
    desired: &[Desired],
    steps: Vec<Step>,
    leaving: &[(Owned, Observed)],
    owned: &BTreeMap<String, OwnedObject>,
    scope: &Scope<'_>,
    options: &PlanOptions,
) -> Result<Plan, EngineError> {
    let mut deletes = Vec::new();
    let mut retained = Vec::new();
    let mut gone = Vec::new();
    for (o, what) in leaving {
        let Some(step) = registry::removal(o, what) else {
            gone.push(o.id.clone());
            continue;
        };
        let deletable = !o.tenant_data
            || (options.allow_destroy && o.deletion_policy.as_deref() == Some("Delete"));
        if deletable {
            deletes.push(step);
        } else {
            retained.push(step);
        }
    }
    guard(scope, desired, leaving, owned, options)?;
    guard_changes(&steps, options)?;
    Ok(Plan {
        steps: order(steps, deletes),
        retained,
        gone,
        held: Vec::new(),
        unreached: Vec::new(),
        objects: desired.len(),
    })
}

/// Refuses a plan with a change its driver marked as too large to make unasked (a zone's
/// rrsets or apex NS set) unless the operator forced it for that resource.
///
/// # Errors
/// `Guarded` naming each such change and why.
fn guard_changes(steps: &[Step], options: &PlanOptions) -> Result<(), EngineError> {
    let refused: Vec<String> = steps
        .iter()
        .filter_map(|s| match &s.reason {
            Reason::Entries {
                guard: Some(why), ..
            } if !options.force.contains(&s.resource.to_string()) => {
                Some(format!("\n  {}: {why}", s.who()))
            }
            _ => None,
        })
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(EngineError::Guarded {
        count: refused.len(),
        changes: refused.iter().take(10).cloned().collect(),
    })
}

/// Makes the plan finish what a killed run left unchecked: every object a commit unit wrote
/// and never checked is a step of that unit again (so the unit checks and reloads, or puts
/// back), and its snapshot is the content before that run, the last one that passed a check.
/// An object the node still desires is written again, one it no longer desires is deleted:
/// with a part, "desired" is the whole node's (an object outside the part is not gone). Pure.
///
/// # Errors
/// `BadRecord` for a record this version cannot read.
pub fn resume(
    plan: &mut Plan,
    unchecked: &[Unchecked],
    desired: &[Desired],
    scope: &Scope<'_>,
) -> Result<(), EngineError> {
    if unchecked.is_empty() {
        return Ok(());
    }
    let wanted: BTreeSet<&str> = unchecked.iter().map(|u| u.object.as_str()).collect();
    let whole: Vec<&Desired> = match scope {
        Scope::Whole => desired.iter().collect(),
        Scope::Part { desired, .. } => desired.iter().copied().flatten().collect(),
    };
    let by_id: BTreeMap<String, &Desired> = whole
        .into_iter()
        .map(|d| (d.id().to_string(), d))
        .filter(|(id, _)| wanted.contains(id.as_str()))
        .collect();
    let mut extra = Vec::new();
    for u in unchecked {
        let snapshot = match &u.before_content {
            Some(content) => Snapshot::Content {
                content: content.clone(),
                meta: None,
            },
            None => Snapshot::Absent,
        };
        let unit = Unit::Gate(u.gate.clone());
        if let Some(step) = plan.steps.iter_mut().find(|s| s.id.to_string() == u.object) {
            step.snapshot = snapshot;
            step.unit = unit;
            continue;
        }
        let bad = |detail: String| EngineError::BadRecord {
            object: u.object.clone(),
            detail,
        };
        let id = ObjectId::parse(&u.object).map_err(|e| bad(e.to_string()))?;
        let resource = ResourceRef::parse(&u.resource).map_err(|e| bad(e.to_string()))?;
        let (action, target, after, origin) = match by_id.get(&u.object) {
            Some(d) => (
                Action::Update,
                Target::Put((*d).clone()),
                Some(d.object.digest()),
                d.origin.clone(),
            ),
            None => {
                let record = OwnedObject {
                    object: u.object.clone(),
                    resource: u.resource.clone(),
                    tenant_data: false,
                    anchor: u.anchor.clone(),
                    deletion_policy: None,
                    gate: Some(u.gate.clone()),
                };
                (
                    Action::Delete,
                    Target::Remove(owned_record(&record)?),
                    None,
                    Span::default(),
                )
            }
        };
        extra.push(Step {
            id,
            action,
            reason: Reason::Unchecked { run: u.run },
            resource,
            origin,
            before: None,
            after,
            diff: None,
            target,
            snapshot,
            unit,
            tenant_data: false,
        });
    }
    let steps = std::mem::take(&mut plan.steps);
    plan.steps = order(steps, extra);
    Ok(())
}

/// The journal's record of an owned object, typed.
///
/// # Errors
/// `BadRecord` when its id or resource is not one this version knows.
pub fn owned_record(o: &OwnedObject) -> Result<Owned, EngineError> {
    let bad = |detail: String| EngineError::BadRecord {
        object: o.object.clone(),
        detail,
    };
    let id = ObjectId::parse(&o.object).map_err(|e| bad(e.to_string()))?;
    let resource = ResourceRef::parse(&o.resource).map_err(|e| bad(e.to_string()))?;
    let location = id.kind().is_file_like().then(|| {
        let rel = id
            .key()
            .strip_prefix(o.anchor.trim_end_matches('/'))
            .unwrap_or(id.key())
            .trim_start_matches('/');
        Location::new(o.anchor.clone(), rel)
    });
    Ok(Owned {
        id,
        location,
        resource,
        tenant_data: o.tenant_data,
        deletion_policy: o.deletion_policy.clone(),
        unit: Unit::from_gate(o.gate.as_deref()),
    })
}

/// One line of an `Unobservable` error.
fn unobservable(
    id: &ObjectId,
    resource: &ResourceRef,
    origin: &str,
    error: &supercp_drivers::DriverError,
) -> String {
    let at = if origin.is_empty() || origin.ends_with(":0:0") {
        String::new()
    } else {
        format!(", {origin}")
    };
    format!("{id} ({resource}{at}): {error}")
}

/// Execution order: direct creates/updates, commit units in order, direct deletes deepest
/// first.
fn order(steps: Vec<Step>, deletes: Vec<Step>) -> Vec<Step> {
    let mut direct = Vec::new();
    let mut units: BTreeMap<Unit, Vec<Step>> = BTreeMap::new();
    let mut direct_deletes = Vec::new();
    for step in steps.into_iter().chain(deletes) {
        match (&step.unit, step.action) {
            (Unit::Direct, Action::Delete) => direct_deletes.push(step),
            (Unit::Direct, _) => direct.push(step),
            (unit, _) => units.entry(unit.clone()).or_default().push(step),
        }
    }
    direct_deletes.sort_by(|a, b| {
        b.id.key()
            .len()
            .cmp(&a.id.key().len())
            .then_with(|| a.id.cmp(&b.id))
    });
    direct
        .into_iter()
        .chain(units.into_values().flatten())
        .chain(direct_deletes)
        .collect()
}

/// The mass-deletion guard, over the whole node whatever the scope. A part is guarded with
/// the resources of every object of the node, unless nothing leaves it: then it only creates
/// and updates, and there is nothing to guard (which spares an incremental run the pass over
/// the whole node).
///
/// # Errors
/// `MassDelete` when the node would lose too much.
fn guard(
    scope: &Scope<'_>,
    desired: &[Desired],
    leaving: &[(Owned, Observed)],
    owned: &BTreeMap<String, OwnedObject>,
    options: &PlanOptions,
) -> Result<(), EngineError> {
    let (declared, owned) = match scope {
        Scope::Whole => (declared(desired), owned),
        Scope::Part { .. } if leaving.is_empty() => return Ok(()),
        Scope::Part { desired, owned } => (declared(desired.iter().copied().flatten()), *owned),
    };
    let owned = distinct(owned.values().map(|o| o.resource.as_str()));
    check_mass_delete(&declared, owned, options)
}

/// Refuses a plan that removes more than the allowed share of any kind of resource (a
/// resource is removed when SuperCP owns objects of it and the repo no longer declares it).
/// Removing a single resource is always allowed. `declared` is the resource of every object
/// the repo renders for the node, `owned` that of every object the journal records (each
/// once).
///
/// # Errors
/// `MassDelete` naming the kind, the share and the flag that allows it.
fn check_mass_delete<'a>(
    declared: &BTreeSet<String>,
    owned: impl IntoIterator<Item = &'a str>,
    options: &PlanOptions,
) -> Result<(), EngineError> {
    let mut per_kind: BTreeMap<Option<ResourceKind>, (usize, usize)> = BTreeMap::new();
    for r in owned {
        let kind = ResourceRef::parse(r).ok().map(|r| r.kind);
        let entry = per_kind.entry(kind).or_default();
        entry.1 += 1;
        if !declared.contains(r) {
            entry.0 += 1;
        }
    }
    for (kind, (removed, total)) in per_kind {
        if removed <= 1 {
            continue;
        }
        #[allow(clippy::cast_precision_loss)]
        let share = removed as f64 * 100.0 / total as f64;
        if share > options.max_delete_share {
            return Err(EngineError::MassDelete {
                kind: kind.map_or("unknown", ResourceKind::as_str).to_owned(),
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

/// The resources of `desired`, as the journal writes them (`Kind/name`).
fn declared<'a>(desired: impl IntoIterator<Item = &'a Desired>) -> BTreeSet<String> {
    distinct(desired.into_iter().map(|d| &d.resource))
        .into_iter()
        .map(ToString::to_string)
        .collect()
}

/// The distinct items of `items`, which come grouped (a tenant's objects, or records sorted
/// by path): a repeat of the previous one is skipped before the set sees it.
fn distinct<T: Ord + Copy>(items: impl IntoIterator<Item = T>) -> BTreeSet<T> {
    let mut set = BTreeSet::new();
    let mut last = None;
    for item in items {
        if last != Some(item) {
            set.insert(item);
            last = Some(item);
        }
    }
    set
}

#[cfg(test)]
mod tests;
