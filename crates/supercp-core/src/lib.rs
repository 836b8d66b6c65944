//! The pure core of SuperCP: resource kinds, validated names, source spans and diagnostics,
//! the objects a node holds, and the plan.
//!
//! Owns: the vocabulary every other crate speaks. Does not own: parsing files (supercp-load),
//! templates (supercp-render), or anything that touches the node (supercp-drivers). No I/O,
//! no tokio, no sqlx, no nix: a tidy test in supercp-cli keeps it that way.

pub mod catalog;
pub mod diagnostic;
pub mod dns;
pub mod names;
pub mod object;
pub mod par;
pub mod plan;
pub mod resource;
pub mod time;

pub use catalog::{Catalog, Resource};
pub use diagnostic::{Diagnostic, Loc, Span};
pub use names::{DomainName, NameError, TenantName};
pub use object::{
    Cert, CertFacts, CertState, Desired, KeyType, Kind, Location, Object, ObjectId, Observation,
    Owned, Owner, Renewal, ResourceKind, ResourceRef, Unit,
};
pub use plan::{Action, Found, Plan, Reason, Snapshot, Step, Target, Unreached};
