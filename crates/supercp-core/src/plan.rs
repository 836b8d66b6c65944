//! The plan is a value: ordered steps, each an action on one object with the reason a human
//! reads (apply never branches on the reason) and the resource that asked for it.

use std::fmt;

use crate::diagnostic::Span;
use crate::object::{Desired, ObjectId, Owned, ResourceRef, Unit};

/// What a step does. A no-op never becomes a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// Why a step is in the plan (for humans only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The object is not on the node yet.
    Missing,
    /// The content on the node differs from the rendered content (drift or a repo change).
    Content,
    /// Mode or owner differ.
    Metadata { detail: String },
    /// A symlink or other object sits where a managed object goes: apply refuses the step.
    Blocked { path: String, what: String },
    /// SuperCP owns the object but no resource asks for it any more.
    NotInRepo,
    /// A run that was killed wrote it and its commit unit never checked it: the unit is
    /// checked (and reloaded) again, or the content before that run goes back.
    Unchecked { run: i64 },
    /// A certificate to issue now: why it is due (`no certificate yet`, `expires in 9
    /// days`…).
    Due { why: String },
    /// Some entries of an object that holds many differ (a zone's rrsets): what changes, and
    /// `guard` when the change is too large to make unasked (more than a share of a zone's
    /// rrsets, or its apex NS set): the plan is refused unless the operator forces it for
    /// that resource.
    Entries {
        detail: String,
        guard: Option<String>,
    },
}

/// One change to one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub id: ObjectId,
    pub action: Action,
    pub reason: Reason,
    pub resource: ResourceRef,
    pub origin: Span,
    pub before: Option<String>,
    pub after: Option<String>,
    /// Unified diff for text files.
    pub diff: Option<String>,
    /// What the step puts on the node, or the owned object it removes.
    pub target: Target,
    /// What putting the object back as it was needs (a failed gate check).
    pub snapshot: Snapshot,
    /// How the change goes live.
    pub unit: Unit,
    pub tenant_data: bool,
}

/// What a step acts on: the rendered object it creates or updates, or the journal's record of
/// an owned object it deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Put(Desired),
    Remove(Owned),
}

/// The state of an object before a step, as far as a rollback needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Snapshot {
    /// Nothing was there: undoing the step removes what it made.
    Absent,
    /// A file's previous content, with its mode and owner ids when they were seen (a
    /// snapshot read back from the journal has only the content: the desired object's mode
    /// and owner are used then).
    Content {
        content: Vec<u8>,
        meta: Option<FileMeta>,
    },
    /// Not put back by a rollback (directories, accounts: no gate checks them).
    Kept,
}

/// A file's mode and owner ids, as observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What a driver's diff found on the node for a step: the hash of what is there, a text diff
/// for humans, and what a rollback needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub before: Option<String>,
    pub diff: Option<String>,
    pub snapshot: Snapshot,
}

impl Found {
    /// Nothing was there (or nothing a rollback puts back): no hash, no text.
    pub fn nothing(snapshot: Snapshot) -> Found {
        Found {
            before: None,
            diff: None,
            snapshot,
        }
    }
}

/// Ordered steps plus what was held back and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Tenant data that left the repo but is kept (deletion policy `Retain`, or no
    /// `--allow-destroy`): shown to the operator, never deleted.
    pub retained: Vec<Step>,
    /// Owned objects that left the repo and are gone from the node already: the journal
    /// forgets them.
    pub gone: Vec<ObjectId>,
    /// Steps due but not taken by this run, each with why: an issuer that refused recently
    /// (until its backoff ends), or past the cap on issues per run. Shown, never applied, and
    /// not changes: `is_empty` ignores them.
    pub held: Vec<(Step, String)>,
    /// Objects whose service could not be reached (a DNS server down): not planned, neither
    /// changed nor deleted nor forgotten. An apply does the rest of the node and fails naming
    /// them.
    pub unreached: Vec<Unreached>,
    /// Objects rendered, for the summary.
    pub objects: usize,
}

/// An object this plan could not cover because its service did not answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreached {
    pub id: crate::object::ObjectId,
    pub resource: crate::object::ResourceRef,
    pub why: String,
}

/// Counts of a plan, for summaries and the journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
}

impl Plan {
    /// The one definition of "no changes".
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for step in &self.steps {
            match step.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Delete => s.delete += 1,
            }
        }
        s
    }
}

impl Step {
    /// A create or update of `desired`, with what diffing it found.
    pub fn put(desired: &Desired, action: Action, reason: Reason, found: Found) -> Step {
        Step {
            id: desired.id(),
            action,
            reason,
            resource: desired.resource.clone(),
            origin: desired.origin.clone(),
            before: found.before,
            after: Some(desired.object.digest()),
            diff: found.diff,
            target: Target::Put(desired.clone()),
            snapshot: found.snapshot,
            unit: desired.unit.clone(),
            tenant_data: desired.tenant_data,
        }
    }

    /// The resource that asked for the step and where it is declared, for messages:
    /// `Domain/a.test (sites/a.yaml:3:1)`; a step on an object no resource declares any more
    /// says so instead of a position.
    pub fn who(&self) -> String {
        if self.origin.line == 0 {
            format!("{} (no longer in the repo)", self.resource)
        } else {
            format!("{} ({})", self.resource, self.origin)
        }
    }

    /// The previous file content the journal keeps for this step, if any.
    pub fn previous(&self) -> Option<&[u8]> {
        match &self.snapshot {
            Snapshot::Content { content, .. } => Some(content),
            Snapshot::Absent | Snapshot::Kept => None,
        }
    }

    /// The rendered object a create or update puts on the node.
    pub fn desired(&self) -> Option<&Desired> {
        match &self.target {
            Target::Put(d) => Some(d),
            Target::Remove(_) => None,
        }
    }
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => f.write_str("missing on the node"),
            Reason::Content => f.write_str("content differs"),
            Reason::Metadata { detail } => write!(f, "{detail}"),
            Reason::Blocked { path, what } => write!(f, "refused: {what} at {path}"),
            Reason::NotInRepo => f.write_str("no longer in the repo"),
            Reason::Unchecked { run } => write!(
                f,
                "written by interrupted run {run} and never checked: check it again"
            ),
            Reason::Due { why } => f.write_str(why),
            Reason::Entries { detail, .. } => f.write_str(detail),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to create, {} to update, {} to delete",
            self.create, self.update, self.delete
        )
    }
}
