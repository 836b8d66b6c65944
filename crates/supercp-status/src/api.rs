//! The JSON of `/api/v1/…` (and of the agent's control socket, which serializes the same
//! runs and steps): serializable mirrors of the journal's records and of what the pages show,
//! so that changing `supercp-audit` or the model cannot silently change what a script reads.
//!
//! # Guarantees
//! - Every object answer carries [`FORMAT_VERSION`] as `format_version`; the lists
//!   (`/api/v1/runs`, `/api/v1/resources`) stay JSON arrays of the same versioned mirrors, and
//!   every JSON answer carries the version in the `SuperCP-Format-Version` header.
//! - A field is never renamed or removed within a format version; new fields may appear.
//! - The field names are those the API had before the mirrors (the records' own names).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use supercp_audit::{CertRecord, OwnedObject, RunRecord, StepRecord};
use supercp_core::Observation;

use crate::model;

/// The version of the JSON shapes below. Bumped when a field changes meaning, type or name.
pub const FORMAT_VERSION: u32 = 1;

/// A run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub id: i64,
    pub node: String,
    pub actor: String,
    pub repo: String,
    pub git_commit: Option<String>,
    pub git_author: Option<String>,
    pub git_dirty: Option<bool>,
    pub git_message: Option<String>,
    /// Committer time of the commit, unix seconds.
    pub git_time: Option<i64>,
    pub trigger: String,
    pub summary: String,
    /// `running`, `succeeded`, `failed` or `interrupted`.
    pub outcome: String,
    /// Unix milliseconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub pid: u32,
    pub error: Option<String>,
    pub gate_checks: i64,
    pub reloads: i64,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub id: i64,
    pub run_id: i64,
    /// Position in the run, from 0.
    pub seq: i64,
    pub resource: String,
    pub origin: String,
    pub object: String,
    pub action: String,
    /// `pending`, `running`, `done`, `failed` or `interrupted`.
    pub status: String,
    pub attempt: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub before_hash: Option<String>,
    pub after_hash: Option<String>,
    pub log: Vec<String>,
    pub has_before_content: bool,
}

/// `/api/v1/runs/{id}`, and the socket's `runs.get`.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    pub format_version: u32,
    pub run: Run,
    pub steps: Vec<Step>,
}

/// A certificate as the journal knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Certificate {
    pub domain: String,
    pub serial: Option<String>,
    /// Unix seconds, as in the certificate.
    pub not_after: Option<i64>,
    pub issued_at: Option<i64>,
    pub failures: i64,
    pub last_error: Option<String>,
    pub next_attempt: Option<i64>,
    pub ari_start: Option<i64>,
    pub ari_end: Option<i64>,
    pub ari_next_check: Option<i64>,
    pub updated_at: i64,
}

/// What the agent knows right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub current_commit: Option<String>,
    pub last_applied_commit: Option<String>,
    pub next_scan_unix_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// Resources and owned objects of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KindCount {
    pub resources: usize,
    pub objects: usize,
}

/// One node of the fleet and its newest run.
#[derive(Debug, Clone, Serialize)]
pub struct FleetNode {
    pub node: String,
    pub last_run: Run,
}

/// `/api/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub format_version: u32,
    pub node: String,
    pub roles: Vec<String>,
    pub agent: Agent,
    pub last_run: Option<Run>,
    pub resources: BTreeMap<String, KindCount>,
    pub owned_objects: usize,
    pub generated_at: i64,
    pub fleet: Vec<FleetNode>,
    pub certificates: Vec<Certificate>,
}

/// A resource as listed (`/api/v1/resources`).
#[derive(Debug, Clone, Serialize)]
pub struct ResourceRow {
    pub resource: String,
    pub kind: String,
    pub name: String,
    pub tenant: Option<String>,
    pub objects: usize,
    pub tenant_data_objects: usize,
    pub gates: BTreeSet<String>,
}

/// An object SuperCP owns.
#[derive(Debug, Clone, Serialize)]
pub struct Owned {
    pub object: String,
    pub resource: String,
    pub tenant_data: bool,
    pub anchor: String,
    pub deletion_policy: Option<String>,
    pub gate: Option<String>,
}

/// A resource and its owned objects.
#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    pub resource: String,
    pub kind: String,
    pub name: String,
    pub tenant: Option<String>,
    pub objects: Vec<Owned>,
}

/// What the agent last observed of one object (no file content).
#[derive(Debug, Clone, Serialize)]
pub struct Observed {
    pub at_ms: i64,
    /// `absent`, `file`, `dir`, `user` or `blocked`.
    pub found: String,
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
    pub content_matches: Option<bool>,
    /// How it differs from the desired object; `null` when it was as desired.
    pub differs: Option<String>,
}

/// The step that touched an object after its last observation: that observation no longer
/// shows the node (a failed or partial run changed or tried to change the object).
#[derive(Debug, Clone, Serialize)]
pub struct Superseded {
    pub run_id: i64,
    pub seq: i64,
    pub action: String,
    pub status: String,
    pub started_at: Option<i64>,
    /// The step's last log line (its error, for a failed step).
    pub last_log: Option<String>,
}

/// `/api/v1/resources/{kind}/{name}`.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceDetail {
    pub format_version: u32,
    pub resource: String,
    pub owned: Option<Resource>,
    /// What the agent last observed of each owned object, by object id.
    pub observed: BTreeMap<String, Observed>,
    /// The objects whose observation above a later step made stale, by object id.
    pub superseded: BTreeMap<String, Superseded>,
    pub last_steps: Vec<Step>,
}

impl From<&RunRecord> for Run {
    fn from(r: &RunRecord) -> Self {
        Run {
            id: r.id,
            node: r.node.clone(),
            actor: r.actor.clone(),
            repo: r.repo.clone(),
            git_commit: r.git_commit.clone(),
            git_author: r.git_author.clone(),
            git_dirty: r.git_dirty,
            git_message: r.git_message.clone(),
            git_time: r.git_time,
            trigger: r.trigger.clone(),
            summary: r.summary.clone(),
            outcome: r.outcome.to_string(),
            started_at: r.started_at,
            finished_at: r.finished_at,
            pid: r.pid,
            error: r.error.clone(),
            gate_checks: r.gate_checks,
            reloads: r.reloads,
        }
    }
}

impl From<&StepRecord> for Step {
    fn from(s: &StepRecord) -> Self {
        Step {
            id: s.id,
            run_id: s.run_id,
            seq: s.seq,
            resource: s.resource.clone(),
            origin: s.origin.clone(),
            object: s.object.clone(),
            action: s.action.clone(),
            status: s.status.to_string(),
            attempt: s.attempt,
            started_at: s.started_at,
            finished_at: s.finished_at,
            before_hash: s.before_hash.clone(),
            after_hash: s.after_hash.clone(),
            log: s.log.clone(),
            has_before_content: s.has_before_content,
        }
    }
}

impl RunDetail {
    pub fn new(run: &RunRecord, steps: &[StepRecord]) -> RunDetail {
        RunDetail {
            format_version: FORMAT_VERSION,
            run: run.into(),
            steps: steps.iter().map(Step::from).collect(),
        }
    }
}

impl From<&CertRecord> for Certificate {
    fn from(c: &CertRecord) -> Self {
        Certificate {
            domain: c.domain.clone(),
            serial: c.serial.clone(),
            not_after: c.not_after,
            issued_at: c.issued_at,
            failures: c.failures,
            last_error: c.last_error.clone(),
            next_attempt: c.next_attempt,
            ari_start: c.ari_start,
            ari_end: c.ari_end,
            ari_next_check: c.ari_next_check,
            updated_at: c.updated_at,
        }
    }
}

impl From<&OwnedObject> for Owned {
    fn from(o: &OwnedObject) -> Self {
        Owned {
            object: o.object.clone(),
            resource: o.resource.clone(),
            tenant_data: o.tenant_data,
            anchor: o.anchor.clone(),
            deletion_policy: o.deletion_policy.clone(),
            gate: o.gate.clone(),
        }
    }
}

impl From<&Observation> for Observed {
    fn from(o: &Observation) -> Self {
        Observed {
            at_ms: o.at_ms,
            found: o.found.to_owned(),
            mode: o.mode,
            owner: o.owner,
            content_matches: o.content_matches,
            differs: o.differs.clone(),
        }
    }
}

impl From<&StepRecord> for Superseded {
    fn from(s: &StepRecord) -> Self {
        Superseded {
            run_id: s.run_id,
            seq: s.seq,
            action: s.action.clone(),
            status: s.status.to_string(),
            started_at: s.started_at,
            last_log: s.log.last().cloned(),
        }
    }
}

impl From<&model::Status> for Status {
    fn from(s: &model::Status) -> Self {
        Status {
            format_version: FORMAT_VERSION,
            node: s.node.clone(),
            roles: s.roles.clone(),
            agent: Agent {
                current_commit: s.agent.current_commit.clone(),
                last_applied_commit: s.agent.last_applied_commit.clone(),
                next_scan_unix_ms: s.agent.next_scan_unix_ms,
                last_error: s.agent.last_error.clone(),
            },
            last_run: s.last_run.as_ref().map(Run::from),
            resources: s
                .resources
                .iter()
                .map(|(kind, c)| {
                    (
                        kind.clone(),
                        KindCount {
                            resources: c.resources,
                            objects: c.objects,
                        },
                    )
                })
                .collect(),
            owned_objects: s.owned_objects,
            generated_at: s.generated_at,
            fleet: s
                .fleet
                .iter()
                .map(|f| FleetNode {
                    node: f.node.clone(),
                    last_run: (&f.last_run).into(),
                })
                .collect(),
            certificates: s.certificates.iter().map(Certificate::from).collect(),
        }
    }
}

impl From<&model::Resource> for ResourceRow {
    fn from(r: &model::Resource) -> Self {
        let row = r.row();
        ResourceRow {
            resource: row.resource.to_owned(),
            kind: row.kind.to_owned(),
            name: row.name.to_owned(),
            tenant: row.tenant.map(str::to_owned),
            objects: row.objects,
            tenant_data_objects: row.tenant_data_objects,
            gates: row.gates.into_iter().map(str::to_owned).collect(),
        }
    }
}

impl From<&model::Resource> for Resource {
    fn from(r: &model::Resource) -> Self {
        Resource {
            resource: r.resource.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            tenant: r.tenant.clone(),
            objects: r.objects.iter().map(Owned::from).collect(),
        }
    }
}
