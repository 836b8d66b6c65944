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

pub use apply::{apply, prefetch, ApplyOptions, ApplyReport, Prefetched};
pub use inputs::{Inputs, SANDBOX_NODE};
pub use plan::{plan, PlanOptions};

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
    #[error("{failed} of {total} steps failed; see `supercp audit --run {run}`{details}")]
    StepsFailed {
        failed: usize,
        total: usize,
        run: i64,
        /// Lines that say more (certificates not issued), each starting with a newline.
        details: String,
    },
}
