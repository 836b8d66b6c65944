//! plan() and apply(): the pipeline `load → render → observe → diff → plan → apply → verify →
//! record`, and the inputs it needs (`Inputs`: catalog, node, templates).
//!
//! Owns: ordering steps, gates (all writes of a gate, one check, one reload, or roll back),
//! prune with the deletion policy and the mass-deletion guard, the journal records of a run.
//! Does not own: parsing (supercp-load), templates (supercp-render), syscalls
//! (supercp-drivers), SQL (supercp-audit), output formats (supercp-cli).
//!
//! # Guarantees
//! The reconciler is never told why it runs: every run recomputes desired against observed, so
//! resuming an interrupted run is just running again.

pub mod accounts;
pub mod apply;
pub mod certs;
pub mod git;
pub mod inputs;
pub mod plan;
mod progress;
pub mod status;

pub use apply::{apply, apply_observed, prefetch, ApplyOptions, ApplyReport, Prefetched};
pub use inputs::{Inputs, SANDBOX_NODE};
pub use plan::{plan, PlanOptions, Scope};

use supercp_core::Span;

/// Everything that can stop a plan or an apply; each names what failed and where.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] supercp_drivers::lock::LockError),
    #[error("audit journal: {0}")]
    Audit(#[from] supercp_audit::AuditError),
    #[error("{resource} ({origin}): {source}")]
    Driver {
        resource: String,
        origin: Span,
        #[source]
        source: supercp_drivers::DriverError,
    },
    #[error("the plan would delete {deleted} of {owned} {kind} resources ({share:.0} %), over the limit of {limit:.0} %; \
             check the repo, then pass --max-delete-share {needed:.0} to allow it")]
    MassDelete {
        kind: String,
        deleted: usize,
        owned: usize,
        share: f64,
        limit: f64,
        needed: f64,
    },
    #[error("cannot observe {count} object(s), so nothing was planned or applied:{objects}")]
    Unobservable {
        count: usize,
        /// One line per object (at most ten), each starting with a newline.
        objects: String,
    },
    #[error("the journal records {object}, which this version cannot read: {detail}")]
    BadRecord { object: String, detail: String },
    #[error("{0}")]
    Gate(String),
    #[error("tenant accounts: {0}")]
    Accounts(String),
    #[error("tls: {0}")]
    Tls(String),
    /// Objects of an issue unit that could not be put in place before the run (a symlink in
    /// the way, a full disk): nothing was applied.
    #[error("certificates not in place, nothing applied:{details}")]
    StandIn {
        /// One line per object, each starting with a newline.
        details: String,
        /// False when something in the way (a symlink) stays until someone removes it.
        transient: bool,
    },
    #[error("{failed} of {total} steps failed; see `supercp audit --run {run}`{details}")]
    StepsFailed {
        failed: usize,
        total: usize,
        run: i64,
        /// Lines that say more (certificates not issued), each starting with a newline.
        details: String,
    },
}

impl EngineError {
    /// Whether running again without a change may succeed: true for what the node or a
    /// service can change on its own (the lock, the journal, I/O, a driver, a gate, failed
    /// steps, certificates, accounts), which a caller retries with backoff; false for what
    /// only a new commit or node file changes (a mass delete over the limit), which a caller
    /// records once and then waits for that change.
    ///
    /// When unsure an error is transient: a permanent error wrongly called transient costs
    /// retries, a transient one wrongly called permanent leaves the node unconverged until
    /// someone commits.
    pub fn is_transient(&self) -> bool {
        match self {
            // A journal record this version cannot read stays unreadable until an upgrade.
            EngineError::MassDelete { .. } | EngineError::BadRecord { .. } => false,
            EngineError::StandIn { transient, .. } => *transient,
            // What cannot be seen now (permissions, a service down) may be seen later.
            EngineError::Unobservable { .. }
            | EngineError::StateDir { .. }
            | EngineError::Lock(_)
            | EngineError::Audit(_)
            | EngineError::Driver { .. }
            | EngineError::Gate(_)
            | EngineError::Accounts(_)
            | EngineError::Tls(_)
            | EngineError::StepsFailed { .. } => true,
        }
    }
}

#[cfg(test)]
mod error_class_tests {
    use super::EngineError;

    #[test]
    fn a_mass_delete_is_permanent_and_what_the_node_can_change_is_transient() {
        let mass = EngineError::MassDelete {
            kind: "Tenant".into(),
            deleted: 9,
            owned: 10,
            share: 90.0,
            limit: 50.0,
            needed: 90.0,
        };
        assert!(!mass.is_transient());
        for transient in [
            EngineError::Gate("gate nginx: `nginx -t` did not finish within 120 s".into()),
            EngineError::StepsFailed {
                failed: 1,
                total: 2,
                run: 3,
                details: String::new(),
            },
            EngineError::StateDir {
                path: "/state".into(),
                source: std::io::Error::from_raw_os_error(28),
            },
            EngineError::Tls("placeholder: no space left on device".into()),
        ] {
            assert!(transient.is_transient(), "{transient}");
        }
    }
}
