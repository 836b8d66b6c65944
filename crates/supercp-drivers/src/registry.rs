//! The registry of drivers: the one place outside `supercp-core` that dispatches on an
//! object's kind. The engine observes, diffs, applies, deletes and restores through it and
//! never learns what a kind is or which service it belongs to.
//!
//! Adding a kind: a variant of `supercp_core::Kind` and `Object`, then every `match` here
//! (the compiler names them), the kind's driver module and its pure diff in `diff.rs`.
//!
//! # Guarantees
//! - `observe` has no side effects, and an object it cannot see is an error naming it, never
//!   "absent".
//! - One `Drivers` per run (or per observing thread): clients and descriptors are opened once
//!   and reused for every object, never one per object.

use supercp_core::object::{CertState, Observed};
use supercp_core::plan::{FileMeta, Found};
use supercp_core::{
    Action, Desired, Kind, Location, Object, Owned, Reason, Snapshot, Span, Step, Target,
};

use crate::fs::{DriverError, Node};

/// What observing one desired object found: the object in its place, and the ids its desired
/// owner has on this node (`None` when no owner is managed or it does not exist yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub observed: Observed,
    pub owner_ids: Option<(u32, u32)>,
}

/// What the drivers need to know of the node beyond each object: where its services' APIs
/// are. Built once per run from the node's spec; the engine passes it on without looking.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    dns: Option<supercp_core::resource::DnsLayout>,
}

impl Settings {
    /// The settings of a node (its spec with `{state}` resolved).
    pub fn for_node(spec: &supercp_core::resource::NodeSpec) -> Settings {
        Settings {
            dns: spec.dns.clone(),
        }
    }
}

/// Every driver of this version, with what they keep open for a run.
#[derive(Default)]
pub struct Drivers {
    settings: Settings,
    files: Node,
    /// The DNS server's client, connected on first use (or why it could not be).
    dns: Option<Result<crate::dns::PowerDns, String>>,
}

impl Drivers {
    pub fn new(settings: &Settings) -> Drivers {
        Drivers {
            settings: settings.clone(),
            ..Drivers::default()
        }
    }

    /// The DNS server's client; one per `Drivers`, its key read once.
    fn dns(&mut self) -> Result<&crate::dns::PowerDns, DriverError> {
        if self.dns.is_none() {
            let client = match &self.settings.dns {
                Some(layout) => crate::dns::PowerDns::connect(layout).map_err(|e| e.to_string()),
                None => Err("this node has no `dns:` block: it serves no zones".to_owned()),
            };
            self.dns = Some(client);
        }
        match self.dns.as_ref() {
            Some(Ok(client)) => Ok(client),
            Some(Err(why)) => Err(DriverError::Service {
                what: "DNS server".into(),
                detail: why.clone(),
                // A key that cannot be read keeps the zones from being planned, not the node.
                unreachable: true,
            }),
            None => unreachable!("set just above"),
        }
    }

    /// What is on the node for one desired object.
    ///
    /// # Errors
    /// What the kind's driver could not see (EACCES, EIO, an unreadable account database).
    pub fn observe(&mut self, object: &Object) -> Result<Seen, DriverError> {
        let observed = match object {
            Object::File { at, .. } | Object::Dir { at, .. } => self.files.observe(at)?,
            Object::Account(a) => crate::accounts::observe(&a.name)?,
            Object::Cert(c) => crate::cert::observe(&c.at)?,
            Object::Zone(z) => Observed::Zone(self.dns()?.observe(&z.name, has_secondaries(z))?),
        };
        let owner_ids = object.owner().and_then(|o| self.files.owner_ids(o));
        Ok(Seen {
            observed,
            owner_ids,
        })
    }

    /// What is on the node for an object SuperCP owns.
    ///
    /// # Errors
    /// As for `observe`; a file-like record without its anchor is refused.
    pub fn observe_owned(&mut self, owned: &Owned) -> Result<Observed, DriverError> {
        match owned.id.kind() {
            Kind::File | Kind::Dir => self.files.observe(location(owned)?),
            Kind::User => Ok(crate::accounts::observe(owned.id.key())?),
            Kind::Cert => crate::cert::observe(location(owned)?),
            Kind::Zone => Ok(Observed::Zone(
                self.dns()?.observe(&zone_name(owned), false)?,
            )),
        }
    }

    /// Creates or updates one object so it matches `object`. For a certificate: a
    /// self-signed stand-in where there is none (its commit unit issues the real one).
    ///
    /// # Errors
    /// The kind's driver error, naming the object.
    pub fn apply(&mut self, object: &Object) -> Result<(), DriverError> {
        match object {
            Object::File { .. } | Object::Dir { .. } => self.files.apply(object),
            Object::Account(a) => Ok(crate::accounts::apply(a)?),
            Object::Cert(c) => crate::cert::apply(c),
            // Seen again just before the write: the request carries only what differs now.
            Object::Zone(z) => {
                let dns = self.dns()?;
                let found = dns.observe(&z.name, has_secondaries(z))?;
                dns.apply(z, &found)
            }
        }
    }

    /// Removes an owned object: a file is unlinked, a directory removed with everything in
    /// it, an account's user and group removed (its files stay: they are objects of their
    /// own).
    ///
    /// # Errors
    /// The kind's driver error, naming the object.
    pub fn delete(&mut self, owned: &Owned) -> Result<(), DriverError> {
        match owned.id.kind() {
            Kind::File => self.files.delete_file(location(owned)?),
            Kind::Dir => self.files.delete(location(owned)?),
            Kind::User => Ok(crate::accounts::delete(owned.id.key())?),
            Kind::Cert => crate::cert::delete(location(owned)?),
            Kind::Zone => {
                let name = zone_name(owned);
                self.dns()?.delete(&name)
            }
        }
    }

    /// Undoes a step whose commit unit failed: puts back what its snapshot holds (a file's
    /// previous content, or no file where there was none). Directories and accounts are
    /// kept: no commit unit checks them. Certificates are put back by their unit, which
    /// reads the pair just before it writes the issued one.
    ///
    /// # Errors
    /// The kind's driver error, naming the object.
    pub fn restore(&mut self, step: &Step) -> Result<(), DriverError> {
        let (kind, at) = match &step.target {
            Target::Put(d) => (d.object.kind(), d.location()),
            Target::Remove(owned) => (owned.id.kind(), owned.location.as_ref()),
        };
        let at = match (kind, at) {
            (Kind::File, Some(at)) => at,
            (Kind::File, None) => {
                return Err(DriverError::NotAFile {
                    path: step.id.to_string(),
                })
            }
            (Kind::Dir | Kind::User | Kind::Cert | Kind::Zone, _) => return Ok(()),
        };
        match &step.snapshot {
            Snapshot::Kept => Ok(()),
            Snapshot::Absent => self.files.delete_file(at),
            Snapshot::Content { content, meta } => {
                let (mode, owner) = match (meta, step.desired().map(|d| &d.object)) {
                    (Some(m), _) => (m.mode, Some((m.uid, m.gid))),
                    (None, Some(Object::File { mode, owner, .. })) => {
                        let ids = match owner {
                            Some(o) => Some(self.files.owner_ids(o).ok_or_else(|| {
                                DriverError::UnknownOwner {
                                    path: at.path(),
                                    user: o.user.clone(),
                                    group: o.group.clone(),
                                }
                            })?),
                            None => None,
                        };
                        (*mode, ids)
                    }
                    (None, _) => (0o644, None),
                };
                self.files.write_back(at, content, mode, owner)
            }
        }
    }

    /// Flushes the writes of a batch under these anchors to disk.
    ///
    /// # Errors
    /// `SyncFailed` naming the anchor.
    pub fn sync<'a>(
        &mut self,
        anchors: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), DriverError> {
        for anchor in anchors {
            if let Err(e) = self.files.sync(anchor) {
                // A deleted anchor cannot be synced; its filesystem was synced with the others.
                if std::path::Path::new(anchor).exists() {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Removes temp files a killed run left in `dir`.
    pub fn remove_stale_temps(&mut self, dir: &str) {
        self.files.remove_stale_temps(dir);
    }
}

/// A step removing an owned object, from what observing it found; `None` when it is gone.
/// Pure.
pub fn removal(owned: &Owned, observed: &Observed) -> Option<Step> {
    let snapshot = match (owned.id.kind(), observed) {
        (
            _,
            Observed::Absent
            | Observed::Cert(CertState::Missing)
            | Observed::Zone(supercp_core::object::ZoneState::Missing),
        ) => return None,
        (
            Kind::File,
            Observed::File {
                content,
                mode,
                uid,
                gid,
            },
        ) => Snapshot::Content {
            content: content.clone(),
            meta: Some(FileMeta {
                mode: *mode,
                uid: *uid,
                gid: *gid,
            }),
        },
        _ => Snapshot::Kept,
    };
    let found = match &snapshot {
        Snapshot::Content { content, .. } => Found {
            before: Some(supercp_core::object::digest_bytes(content)),
            diff: Some(crate::diff::text_diff(owned.id.key(), content, b"")),
            snapshot,
        },
        _ => Found::nothing(snapshot),
    };
    Some(Step {
        id: owned.id.clone(),
        action: Action::Delete,
        reason: Reason::NotInRepo,
        resource: owned.resource.clone(),
        origin: Span::default(),
        before: found.before,
        after: None,
        diff: found.diff,
        target: Target::Remove(owned.clone()),
        snapshot: found.snapshot,
        unit: owned.unit.clone(),
        tenant_data: owned.tenant_data,
    })
}

/// Compares a desired object with what was seen (pure; see `diff.rs`).
pub fn diff(desired: &Desired, seen: &Seen) -> Option<Step> {
    crate::diff::diff(desired, seen)
}

fn has_secondaries(z: &supercp_core::object::Zone) -> bool {
    !z.notify.is_empty() || !z.allow_transfer.is_empty()
}

/// An owned zone's absolute name (its id's key has no trailing dot).
fn zone_name(owned: &Owned) -> String {
    format!("{}.", owned.id.key())
}

fn location(owned: &Owned) -> Result<&Location, DriverError> {
    owned
        .location
        .as_ref()
        .ok_or_else(|| DriverError::NotAFile {
            path: owned.id.to_string(),
        })
}
