//! The plan is a value: ordered steps, each an action on one object with the reason a human
//! reads (apply never branches on the reason) and the resource that asked for it.

use std::fmt;

use crate::diagnostic::Span;
use crate::object::{Desired, ObjectId};

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
}

/// One change to one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub id: ObjectId,
    pub action: Action,
    pub reason: Reason,
    pub resource: String,
    pub origin: Span,
    pub before: Option<String>,
    pub after: Option<String>,
    /// Unified diff for text files.
    pub diff: Option<String>,
    /// The rendered object for create/update; `None` for deletes.
    pub desired: Option<Desired>,
    /// Previous file content (for rollback and the journal).
    pub previous: Option<Vec<u8>>,
    pub gate: Option<String>,
    pub tenant_data: bool,
}

/// Ordered steps plus what was held back and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Tenant data that left the repo but is kept (deletion policy `Retain`, or no
    /// `--allow-destroy`): shown to the operator, never deleted.
    pub retained: Vec<Step>,
    /// Objects rendered, for the summary.
    pub objects: usize,
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
