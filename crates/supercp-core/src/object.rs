//! What a node holds: the objects SuperCP renders (`Desired`) and what the drivers find
//! (`Observed`). A closed set of kinds: adding one is a deliberate change the compiler walks
//! through every `match`.

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::diagnostic::Span;
use crate::plan::Reason;

/// The kinds of object this version manages.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Object {
    File {
        content: Vec<u8>,
        mode: u32,
        owner: Option<Owner>,
    },
    Dir {
        mode: u32,
        owner: Option<Owner>,
    },
    /// A tenant's Linux user and the group of the same name (`anchor` is empty, `rel` the name).
    Account(Account),
}

/// What a tenant's Linux account should look like.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Account {
    /// The user and group id: assigned once by the engine and recorded in the journal, never
    /// reused for another tenant. `None` only before the engine has assigned it.
    pub uid: Option<u32>,
    pub home: String,
    pub shell: String,
    /// Users that must belong to the account's group (nginx's worker user, so it can traverse
    /// the 0750 home and serve static files).
    pub members: Vec<String>,
    /// Suspended: the password is locked and the account expired, so PAM refuses every login
    /// (SSH keys included) and cron runs none of its jobs.
    pub locked: bool,
}

/// The passwd comment SuperCP gives the accounts it makes; an existing user without it is not
/// a tenant and is never taken over.
pub const ACCOUNT_COMMENT: &str = "SuperCP tenant";

/// A Linux user and group, by name (resolved to ids by the drivers).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    pub user: String,
    pub group: String,
}

/// A stable identifier of one object on a node: `file:/abs/path` or `dir:/abs/path`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId(pub String);

/// One object SuperCP wants on the node, and who asked for it.
///
/// `anchor` is a directory of the node's layout (root-owned, opened normally); `rel` is the
/// path below it, which the drivers walk one component at a time without following symlinks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Desired {
    pub anchor: String,
    pub rel: String,
    pub object: Object,
    /// `Kind/name` of the resource that asked for it.
    pub resource: String,
    /// Where that resource is declared.
    pub origin: Span,
    /// The service gate (`nginx`, `php-fpm`) that must check this object after a write.
    pub gate: Option<String>,
    /// Tenant data (homes, document roots): never deleted without the deletion policy and
    /// `--allow-destroy`.
    pub tenant_data: bool,
}

/// What a driver found at a path. `Blocked` means a symlink (or non-directory) sits at the path
/// or at one of its managed ancestors: nothing below it may be touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    Absent,
    File {
        content: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Blocked {
        path: String,
        what: String,
    },
    Account {
        uid: u32,
        gid: u32,
        home: String,
        shell: String,
        /// The passwd comment (GECOS): `SuperCP tenant` on the accounts SuperCP made.
        comment: String,
        /// Members of the group named after the user.
        members: Vec<String>,
        /// Locked and expired (a suspended tenant: no SSH login, no cron job runs).
        locked: bool,
    },
}

/// What observing one desired object found, summarised for the status page: what sits at its
/// path, with mode and owner ids, and how it differs from the desired object.
///
/// # Guarantees
/// It holds no file content, not even a hash of it: a file's content is only said to match the
/// desired content or not, so a secret in a file never reaches a page through it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Observation {
    /// When it was observed, unix milliseconds.
    pub at_ms: i64,
    /// What is at the path: `absent`, `file`, `dir`, `user` or `blocked` (a symlink or an
    /// object of another kind in the way).
    pub found: &'static str,
    /// The permission bits of a file or directory.
    pub mode: Option<u32>,
    /// The uid and gid of a file, directory or user.
    pub owner: Option<(u32, u32)>,
    /// Whether a file holds the desired content; `None` unless a file was desired and found.
    pub content_matches: Option<bool>,
    /// How it differs from the desired object, in the plan's words (`missing on the node`,
    /// `content differs`, `mode 644 → 640`); `None` when it is as desired.
    pub differs: Option<String>,
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::File { .. } => "file",
            Object::Dir { .. } => "dir",
            Object::Account(_) => "user",
        }
    }

    /// Content hash of what this object would put on disk (files: content; dirs: mode/owner).
    pub fn digest(&self) -> String {
        match self {
            Object::File { content, .. } => digest_bytes(content),
            Object::Dir { mode, owner } => {
                digest_bytes(format!("dir {mode:o} {owner:?}").as_bytes())
            }
            Object::Account(a) => {
                digest_bytes(format!("user {} {} {:?}", a.home, a.shell, a.members).as_bytes())
            }
        }
    }
}

impl Desired {
    /// The absolute path on the node.
    pub fn path(&self) -> String {
        join(&self.anchor, &self.rel)
    }

    pub fn id(&self) -> ObjectId {
        ObjectId(format!("{}:{}", self.object.kind(), self.path()))
    }
}

impl Observation {
    /// Summarises what was observed for `desired`; `differs` is the reason of the plan's step
    /// for the object, `None` when diffing gave no step.
    pub fn new(
        desired: &Object,
        observed: &Observed,
        differs: Option<&Reason>,
        at_ms: i64,
    ) -> Observation {
        let (found, mode, owner) = match observed {
            Observed::Absent => ("absent", None, None),
            Observed::File { mode, uid, gid, .. } => ("file", Some(*mode), Some((*uid, *gid))),
            Observed::Dir { mode, uid, gid } => ("dir", Some(*mode), Some((*uid, *gid))),
            Observed::Account { uid, gid, .. } => ("user", None, Some((*uid, *gid))),
            Observed::Blocked { .. } => ("blocked", None, None),
        };
        // The diff compares a file's content first: `Content` is its answer, any other
        // reason (or none) means the bytes are equal.
        let content_matches = match (desired, observed) {
            (Object::File { .. }, Observed::File { .. }) => {
                Some(!matches!(differs, Some(Reason::Content)))
            }
            _ => None,
        };
        Observation {
            at_ms,
            found,
            mode,
            owner,
            content_matches,
            differs: differs.map(ToString::to_string),
        }
    }
}

impl ObjectId {
    /// The path part of the id.
    pub fn path(&self) -> &str {
        self.0.split_once(':').map_or(self.0.as_str(), |(_, p)| p)
    }

    pub fn kind(&self) -> &str {
        self.0.split_once(':').map_or("", |(k, _)| k)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hex SHA-256 of some bytes: the hash recorded before and after every step.
pub fn digest_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Joins an anchor directory and a relative path with exactly one `/`.
pub fn join(anchor: &str, rel: &str) -> String {
    if anchor.is_empty() {
        rel.to_owned()
    } else if rel.is_empty() {
        anchor.to_owned()
    } else {
        format!(
            "{}/{}",
            anchor.trim_end_matches('/'),
            rel.trim_start_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &str) -> Object {
        Object::File {
            content: content.as_bytes().to_vec(),
            mode: 0o640,
            owner: None,
        }
    }

    #[test]
    fn an_observation_of_a_file_never_carries_its_content() {
        let observed = Observed::File {
            content: b"password = hunter2\n".to_vec(),
            mode: 0o600,
            uid: 0,
            gid: 33,
        };
        let seen = Observation::new(
            &file("password = s3cret\n"),
            &observed,
            Some(&Reason::Content),
            7,
        );
        assert_eq!(seen.found, "file");
        assert_eq!((seen.mode, seen.owner), (Some(0o600), Some((0, 33))));
        assert_eq!(seen.content_matches, Some(false));
        assert_eq!(seen.differs.as_deref(), Some("content differs"));
        let text = format!(
            "{seen:?} {}",
            serde_json::to_string(&seen).unwrap_or_default()
        );
        assert!(
            !text.contains("hunter2") && !text.contains("s3cret"),
            "{text}"
        );
    }

    #[test]
    fn a_metadata_difference_means_the_content_matches() {
        let observed = Observed::File {
            content: b"x".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let reason = Reason::Metadata {
            detail: "mode 644 → 640".into(),
        };
        let seen = Observation::new(&file("x"), &observed, Some(&reason), 7);
        assert_eq!(seen.content_matches, Some(true));
        assert_eq!(seen.differs.as_deref(), Some("mode 644 → 640"));
        let same = Observation::new(&file("x"), &observed, None, 7);
        assert_eq!((same.content_matches, same.differs), (Some(true), None));
    }

    #[test]
    fn an_absent_object_has_no_mode_owner_or_content() {
        let seen = Observation::new(&file("x"), &Observed::Absent, Some(&Reason::Missing), 7);
        assert_eq!(
            (seen.found, seen.mode, seen.owner, seen.content_matches),
            ("absent", None, None, None)
        );
        assert_eq!(seen.differs.as_deref(), Some("missing on the node"));
    }
}
