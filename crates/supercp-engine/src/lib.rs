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
pub use plan::{dry_run, plan, Journaled, PlanOptions, Scope};
pub use supercp_drivers::Settings;

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
    #[error("the plan makes {count} change(s) too large to make unasked, so nothing was applied:{changes}\ncheck them with `supercp plan`, then pass --force-zone NAME for each zone to let its change through")]
    Guarded {
        count: usize,
        /// One line per change (at most ten), each starting with a newline.
        changes: String,
    },
    #[error("cannot observe {count} object(s), so nothing was planned or applied:{objects}")]
    Unobservable {
        count: usize,
        /// One line per object (at most ten), each starting with a newline.
        objects: String,
    },
    #[error("the journal records {object}, which this version cannot read: {detail}")]
    BadRecord { object: String, detail: String },
    /// A commit unit's check refused its batch (put back), could not run, or its service did
    /// not reload: recorded on the run.
    #[error(transparent)]
    Gate(#[from] GateFailure),
    /// A required gate's check could not pass in this process (too few open files), found
    /// before anything was written.
    #[error("gate {gate}: {why}")]
    OpenFiles { gate: String, why: String },
    #[error("tenant accounts: {0}")]
    Accounts(Box<AccountsError>),
    #[error("tls: {0}")]
    Certificates(#[from] CertCheck),
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

impl From<AccountsError> for EngineError {
    fn from(e: AccountsError) -> EngineError {
        EngineError::Accounts(Box::new(e))
    }
}

/// How a commit unit failed after its batch was written.
#[derive(Debug, thiserror::Error)]
pub enum GateFailure {
    /// The check failed, ran out of time or could not run, or a write of the batch failed:
    /// the batch was put back and the previous config stays live.
    #[error("{message}")]
    PutBack { gate: String, message: String },
    /// The check passed but the reload command failed.
    #[error("gate {gate}: reload `{command}` failed: {output}")]
    ReloadFailed {
        gate: String,
        command: String,
        output: String,
    },
    /// The reload signal or command could not be sent or run.
    #[error(transparent)]
    Reload(#[from] supercp_drivers::gate::GateError),
}

/// Why the tenants' accounts could not be given their ids.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("{resource} ({origin}): {source}")]
    Observe {
        resource: String,
        origin: Span,
        #[source]
        source: supercp_drivers::accounts::AccountError,
    },
    #[error(
        "{resource}: user {tenant} already exists (uid {uid}, gid {gid}, comment {comment:?}) \
             and is not this SuperCP tenant's account (made by SuperCP: comment {expected:?}, its \
             own group, a uid in {min}..={max} recorded for no other tenant). Rename the tenant, \
             or remove or rename that user"
    )]
    NotOurs {
        resource: String,
        tenant: String,
        uid: u32,
        gid: u32,
        comment: String,
        expected: &'static str,
        min: u32,
        max: u32,
    },
    #[error(
        "{resource}: no free uid left in {min}..={max}; widen accounts.uidMax in the node file"
    )]
    NoFreeUid {
        resource: String,
        min: u32,
        max: u32,
    },
}

/// A certificate setting or file refused before anything is written.
#[derive(Debug, thiserror::Error)]
pub enum CertCheck {
    /// Bring-your-own certificates that do not pass (one line per Domain).
    #[error("bring-your-own certificates refused, nothing applied:{lines}")]
    Byo { lines: String },
    /// The EAB key file of the node's ACME settings.
    #[error("tls.acmeEab.hmacKeyFile {file}: {problem}")]
    Eab { file: String, problem: String },
    #[error(
        "cannot renew {domain}: no Domain of that name with `tls` and `certificate: acme` in \
             the repo (check the name; bring-your-own certificates are renewed by their owner)"
    )]
    RenewUnknown { domain: String },
}

impl EngineError {
    /// Whether the run was recorded in the journal with this error (a caller records the
    /// others itself, as a run without steps).
    pub fn run_recorded(&self) -> bool {
        matches!(
            self,
            EngineError::Gate(_) | EngineError::StepsFailed { .. } | EngineError::StandIn { .. }
        )
    }

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
            // A journal record this version cannot read stays unreadable until an upgrade;
            // a limit of this process or of the node file changes only when someone acts.
            EngineError::MassDelete { .. }
            | EngineError::Guarded { .. }
            | EngineError::BadRecord { .. }
            | EngineError::OpenFiles { .. }
            | EngineError::Certificates(CertCheck::RenewUnknown { .. }) => false,
            EngineError::Accounts(a) => !matches!(**a, AccountsError::NoFreeUid { .. }),
            EngineError::StandIn { transient, .. } => *transient,
            EngineError::Driver { source, .. } => source.is_transient(),
            // What cannot be seen now (permissions, a service down) may be seen later; files
            // outside the repo (bring-your-own certificates, the EAB key) may be fixed on the
            // node.
            EngineError::Unobservable { .. }
            | EngineError::StateDir { .. }
            | EngineError::Lock(_)
            | EngineError::Audit(_)
            | EngineError::Gate(_)
            | EngineError::Certificates(_)
            | EngineError::StepsFailed { .. } => true,
        }
    }
}

#[cfg(test)]
mod error_class_tests {
    use super::{CertCheck, EngineError, GateFailure};

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
        for permanent in [
            EngineError::OpenFiles {
                gate: "nginx".into(),
                why: "nginx opens two log files per site".into(),
            },
            super::AccountsError::NoFreeUid {
                resource: "Tenant/acme".into(),
                min: 20000,
                max: 20001,
            }
            .into(),
            EngineError::Driver {
                resource: "Domain/a.test".into(),
                origin: supercp_core::Span::default(),
                source: supercp_drivers::DriverError::SymlinkRefused {
                    path: "/home/acme/domains/a.test/public_html".into(),
                    what: "a symlink".into(),
                },
            },
        ] {
            assert!(!permanent.is_transient(), "{permanent}");
        }
        for transient in [
            EngineError::Gate(GateFailure::PutBack {
                gate: "nginx".into(),
                message: "gate nginx: `nginx -t` did not finish within 120 s".into(),
            }),
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
            EngineError::Certificates(CertCheck::Eab {
                file: "/etc/supercp/eab.key".into(),
                problem: "Permission denied (os error 13)".into(),
            }),
        ] {
            assert!(transient.is_transient(), "{transient}");
        }
    }
}
