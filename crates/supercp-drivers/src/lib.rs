//! The only code that reads or changes the node: files and directories (`fs`), tenant accounts
//! (`accounts`), certificates issued by the node's CA (`cert`), service gates (`gate`), the apply lock (`lock`), and root's own key, certificate
//! and ACME account files (`private`). Rendered objects are reached through one registry
//! (`registry::Drivers`), the only dispatch on an object's kind outside core. Each kind's pure
//! diff (`diff`) sits beside its driver.
//!
//! # Guarantees
//! `observe` has no side effects: `supercp plan` runs it unprivileged.
//! Below an object's anchor (a root-owned layout directory) no symlink is ever followed, when
//! reading, creating, chmodding, chowning, writing or deleting: each path component is opened
//! with `O_NOFOLLOW` relative to its parent's descriptor.
//! # Assumptions
//! `apply` is idempotent and tolerates a previous run that stopped half-way (a leftover temp
//! file is replaced; a missing parent is created).

pub mod accounts;
pub mod cert;
pub mod diff;
pub mod dns;
pub mod fs;
pub mod gate;
pub mod lock;
pub mod private;
pub mod registry;

pub use fs::{DriverError, Node};
pub use registry::{Drivers, Seen, Settings};
