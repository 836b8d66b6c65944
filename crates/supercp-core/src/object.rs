//! What a node holds: the objects SuperCP renders (`Desired`), owns (`Owned`) and what the
//! drivers find (`Observed`). A closed set of kinds: adding one is a deliberate change the
//! compiler walks through every `match`.

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::diagnostic::Span;
use crate::plan::Reason;

/// The kinds of object this version manages: a closed set. Adding one is a deliberate change
/// the compiler walks through: `Object`, `ObjectId::kind`, and the driver registry
/// (`supercp_drivers::registry`), the only `match` on the kind outside this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    /// A tenant's Linux user and the group of the same name.
    User,
    /// A TLS certificate issued by the node's CA and its private key: `fullchain.pem` and
    /// `privkey.pem` in a directory per domain (written `tls:<chain path>`).
    Cert,
    /// A DNS zone on the node's authoritative server with every rrset in it (written
    /// `zone:<name>`, without the trailing dot). SuperCP owns the whole zone: an rrset in it
    /// that the object does not hold is drift. One object per zone because the server's unit
    /// of write is the zone: every change to it goes out as one request.
    Zone,
}

/// What SuperCP wants one object to be.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Object {
    File {
        at: Location,
        content: Vec<u8>,
        mode: u32,
        owner: Option<Owner>,
    },
    Dir {
        at: Location,
        mode: u32,
        owner: Option<Owner>,
    },
    Account(Account),
    Cert(Cert),
    Zone(Zone),
}

/// A DNS zone as SuperCP wants it served.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Zone {
    /// Absolute and lower case, with the trailing dot: `acme.test.`.
    pub name: String,
    /// The SOA a new zone is created with; the server keeps its serial from then on (one
    /// increase per change), so the SOA is never compared.
    pub soa: String,
    /// Servers sent a NOTIFY on every change (`IP` or `IP:PORT`).
    pub notify: Vec<String>,
    /// Who may transfer the zone (`IP` or `IP/PREFIX`).
    pub allow_transfer: Vec<String>,
    /// Signed by the server (one CSK, ECDSAP256SHA256); the DS records go to the registrar.
    pub dnssec: bool,
    /// Every rrset but the SOA, sorted by name and type, each name and type once.
    pub rrsets: Vec<ZoneRrset>,
}

/// One rrset of a zone: an absolute owner name, a type, a TTL and the contents in the
/// server's canonical text, sorted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneRrset {
    pub name: String,
    pub record_type: String,
    pub ttl: u32,
    pub contents: Vec<String>,
    /// Where it comes from, for the plan: the Zone's own records, or its template.
    pub source: RrsetSource,
}

/// Where a desired rrset comes from (shown by `plan`; never compared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RrsetSource {
    /// Written in the Zone's `records`.
    Explicit,
    /// Filled in by the Zone's template from what the repo says.
    Template,
    /// Found on the server (an observed rrset).
    Server,
}

/// What the node's DNS server holds for a zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneState {
    Missing,
    Present(ZoneFacts),
}

/// A zone as the server holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneFacts {
    /// Every rrset but the SOA, sorted by name and type.
    pub rrsets: Vec<ZoneRrset>,
    pub serial: u32,
    pub notify: Vec<String>,
    pub allow_transfer: Vec<String>,
    /// The server's kind of zone (`Native`, `Master`).
    pub kind: String,
    /// Signed: the server holds an active key for it.
    pub dnssec: bool,
    /// The DS records of its keys, for the parent zone (the registrar), as the server gives
    /// them (`KEYTAG ALGORITHM DIGESTTYPE DIGEST`).
    pub ds: Vec<String>,
}

/// A certificate to be issued by the node's CA, with what decides when it is due again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cert {
    /// The chain's place (`<certDir>`, `<domain>/fullchain.pem`); the key is beside it.
    pub at: Location,
    /// The names it must cover: the domain, then its aliases.
    pub names: Vec<String>,
    pub key: KeyType,
    pub renewal: Renewal,
}

/// The key a certificate is issued for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    EcdsaP256,
    Rsa2048,
}

/// When a certificate that names the right names is due again. Rendered with `renew_days`
/// only; the engine's certificate policy fills in the rest from the journal before a plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Renewal {
    /// Renew this many days before expiry, when the CA offers no renewal window.
    pub renew_days: u32,
    /// The point in the CA's renewal window (ARI) from which it is due, unix seconds.
    pub from: Option<i64>,
    /// Issued again now even if it is not due (`supercp cert renew`).
    pub asked: bool,
    /// The time the plan is made for, unix seconds (set by the policy; a plan is pure).
    pub now: i64,
}

/// What sits at a certificate's place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertState {
    /// No chain, or no key beside it.
    Missing,
    /// A chain that does not parse.
    Unreadable(String),
    Present(CertFacts),
}

/// What a readable chain says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    /// SuperCP's self-signed stand-in until the CA issued one.
    pub placeholder: bool,
    pub names: Vec<String>,
    /// Expiry, unix seconds.
    pub not_after: i64,
    pub serial: String,
}

/// Where a file-like object lives: a directory of the node's layout (`anchor`, root-owned,
/// opened normally) and the path below it (`rel`), which the drivers walk one component at a
/// time without following symlinks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub anchor: String,
    pub rel: String,
}

/// What a tenant's Linux account should look like.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Account {
    /// The user's and the group's name (the tenant's).
    pub name: String,
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

/// A stable identifier of one object on a node: its kind and a key (the absolute path of a
/// file or directory, the name of an account). Written `kind:key` (`file:/etc/x.conf`,
/// `user:acme`) in the journal and on pages.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    kind: Kind,
    key: String,
}

/// An object id of the journal that this version cannot read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an object id of this version (kind:key, kind one of file, dir, user, tls, zone)"
)]
pub struct BadObjectId(pub String);

/// The kinds of resource a repo declares, as far as objects name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ResourceKind {
    Node,
    Package,
    Tenant,
    Domain,
    Zone,
}

/// The resource that asked for an object: `Kind/name` when written.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRef {
    pub kind: ResourceKind,
    pub name: String,
}

/// A resource reference of the journal that this version cannot read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a resource reference of this version (Kind/name)")]
pub struct BadResourceRef(pub String);

/// The commit unit an object's change belongs to: how a batch of changes goes live together.
/// A gate writes its batch, runs one check and one reload, or puts the batch back. Later
/// units (a SQL transaction, a DNS zone) join this enum.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unit {
    /// Applied on its own: nothing checks it after the write.
    #[default]
    Direct,
    /// A service gate of the node (its name: `nginx`, `php-fpm`).
    Gate(String),
    /// Issued by an outside authority (a certificate from the node's CA) once every other
    /// unit is live (HTTP-01 needs the vhosts that answer it): a stand-in is put in place
    /// before any unit runs, so the configs that refer to it pass their checks; then the due
    /// objects are issued (at most a capped number per run), the named gate checks them all
    /// once and reloads, or they are put back.
    Issue { gate: String },
}

/// One object SuperCP wants on the node, and who asked for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Desired {
    pub object: Object,
    /// The resource that asked for it.
    pub resource: ResourceRef,
    /// Where that resource is declared.
    pub origin: Span,
    /// How a change to it goes live.
    pub unit: Unit,
    /// Tenant data (homes, document roots): never deleted without the deletion policy and
    /// `--allow-destroy`.
    pub tenant_data: bool,
}

/// An object SuperCP owns on a node, as the journal records it: what a delete targets (never
/// a made-up desired object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    pub id: ObjectId,
    /// For file-like kinds: the anchor the path is walked from.
    pub location: Option<Location>,
    pub resource: ResourceRef,
    pub tenant_data: bool,
    /// `Delete` or `Retain`, for tenant data, as declared when SuperCP last wrote it.
    pub deletion_policy: Option<String>,
    pub unit: Unit,
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
    Cert(CertState),
    Zone(ZoneState),
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
    /// What the operator must do outside the node about it: a signed zone's DS records, to
    /// give the registrar (`DS acme.test. 12345 13 2 …`). Public data, never a secret.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::File, Kind::Dir, Kind::User, Kind::Cert, Kind::Zone];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::User => "user",
            Kind::Cert => "tls",
            Kind::Zone => "zone",
        }
    }

    /// Whether objects of this kind live at a `Location` below an anchor.
    pub fn is_file_like(self) -> bool {
        match self {
            Kind::File | Kind::Dir | Kind::Cert => true,
            Kind::User | Kind::Zone => false,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::File { .. } => Kind::File,
            Object::Dir { .. } => Kind::Dir,
            Object::Account(_) => Kind::User,
            Object::Cert(_) => Kind::Cert,
            Object::Zone(_) => Kind::Zone,
        }
    }

    /// Where a file-like object lives; `None` for an account.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Object::File { at, .. } | Object::Dir { at, .. } => Some(at),
            Object::Cert(c) => Some(&c.at),
            Object::Account(_) | Object::Zone(_) => None,
        }
    }

    /// The owner a file-like object should have, when ownership is managed.
    pub fn owner(&self) -> Option<&Owner> {
        match self {
            Object::File { owner, .. } | Object::Dir { owner, .. } => owner.as_ref(),
            Object::Account(_) | Object::Cert(_) | Object::Zone(_) => None,
        }
    }

    /// The certificate, for the commit unit that issues it; `None` for other kinds.
    pub fn as_cert(&self) -> Option<&Cert> {
        match self {
            Object::Cert(c) => Some(c),
            Object::File { .. } | Object::Dir { .. } | Object::Account(_) | Object::Zone(_) => None,
        }
    }

    /// What decides when a certificate is due again; `None` for other kinds.
    pub fn renewal_mut(&mut self) -> Option<&mut Renewal> {
        match self {
            Object::Cert(c) => Some(&mut c.renewal),
            Object::File { .. } | Object::Dir { .. } | Object::Account(_) | Object::Zone(_) => None,
        }
    }

    pub fn id(&self) -> ObjectId {
        let key = match self {
            Object::File { at, .. } | Object::Dir { at, .. } => at.path(),
            Object::Cert(c) => c.at.path(),
            Object::Account(a) => a.name.clone(),
            Object::Zone(z) => z.name.trim_end_matches('.').to_owned(),
        };
        ObjectId::new(self.kind(), key)
    }

    /// Content hash of what this object would put on disk (files: content; dirs: mode/owner).
    pub fn digest(&self) -> String {
        match self {
            Object::File { content, .. } => digest_bytes(content),
            Object::Dir { mode, owner, .. } => {
                digest_bytes(format!("dir {mode:o} {owner:?}").as_bytes())
            }
            Object::Account(a) => {
                digest_bytes(format!("user {} {} {:?}", a.home, a.shell, a.members).as_bytes())
            }
            // What the certificate must be; not when it is due.
            Object::Cert(c) => digest_bytes(format!("tls {:?} {:?}", c.names, c.key).as_bytes()),
            // What the server should serve; not where each rrset came from.
            Object::Zone(z) => {
                let mut text = format!("zone {:?} {:?} {}", z.notify, z.allow_transfer, z.dnssec);
                for r in &z.rrsets {
                    text.push_str(&format!(
                        "\n{} {} {} {:?}",
                        r.name, r.ttl, r.record_type, r.contents
                    ));
                }
                digest_bytes(text.as_bytes())
            }
        }
    }
}

impl Location {
    pub fn new(anchor: impl Into<String>, rel: impl Into<String>) -> Location {
        Location {
            anchor: anchor.into(),
            rel: rel.into(),
        }
    }

    /// The absolute path on the node.
    pub fn path(&self) -> String {
        join(&self.anchor, &self.rel)
    }
}

impl Desired {
    pub fn id(&self) -> ObjectId {
        self.object.id()
    }

    pub fn location(&self) -> Option<&Location> {
        self.object.location()
    }
}

impl ObjectId {
    pub fn new(kind: Kind, key: impl Into<String>) -> ObjectId {
        ObjectId {
            kind,
            key: key.into(),
        }
    }

    /// Reads an id as the journal writes it (`kind:key`).
    ///
    /// # Errors
    /// `BadObjectId` for an unknown kind or a missing key.
    pub fn parse(text: &str) -> Result<ObjectId, BadObjectId> {
        let bad = || BadObjectId(text.to_owned());
        let (kind, key) = text.split_once(':').ok_or_else(bad)?;
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(bad)?;
        if key.is_empty() {
            return Err(bad());
        }
        Ok(ObjectId::new(kind, key))
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The path of a file or directory, the name of an account.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.key)
    }
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 5] = [
        ResourceKind::Node,
        ResourceKind::Package,
        ResourceKind::Tenant,
        ResourceKind::Domain,
        ResourceKind::Zone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Node => "Node",
            ResourceKind::Package => "Package",
            ResourceKind::Tenant => "Tenant",
            ResourceKind::Domain => "Domain",
            ResourceKind::Zone => "Zone",
        }
    }
}

impl ResourceRef {
    pub fn new(kind: ResourceKind, name: impl Into<String>) -> ResourceRef {
        ResourceRef {
            kind,
            name: name.into(),
        }
    }

    /// Reads a reference as the journal writes it (`Kind/name`).
    ///
    /// # Errors
    /// `BadResourceRef` for an unknown kind or a missing name.
    pub fn parse(text: &str) -> Result<ResourceRef, BadResourceRef> {
        let bad = || BadResourceRef(text.to_owned());
        let (kind, name) = text.split_once('/').ok_or_else(bad)?;
        let kind = ResourceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        Ok(ResourceRef::new(kind, name))
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

impl Unit {
    /// The gate's name, for a gate.
    pub fn gate(&self) -> Option<&str> {
        match self {
            Unit::Direct => None,
            Unit::Gate(name) | Unit::Issue { gate: name } => Some(name),
        }
    }

    /// Whether objects of this unit are issued by an outside authority (`Unit::Issue`).
    pub fn is_issue(&self) -> bool {
        matches!(self, Unit::Issue { .. })
    }

    /// As the journal's `gate` column holds it: a gate's name, `issue:<gate>`, or nothing.
    pub fn journal_name(&self) -> Option<String> {
        match self {
            Unit::Direct => None,
            Unit::Gate(name) => Some(name.clone()),
            Unit::Issue { gate } => Some(format!("issue:{gate}")),
        }
    }

    /// From the journal's `gate` column (`journal_name`).
    pub fn from_gate(gate: Option<&str>) -> Unit {
        match gate {
            None => Unit::Direct,
            Some(g) => match g.strip_prefix("issue:") {
                Some(gate) => Unit::Issue {
                    gate: gate.to_owned(),
                },
                None => Unit::Gate(g.to_owned()),
            },
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unit::Direct => f.write_str("direct"),
            Unit::Gate(name) => write!(f, "gate {name}"),
            Unit::Issue { gate } => write!(f, "issued, then gate {gate}"),
        }
    }
}

impl Observation {
    /// An object whose service could not be reached: nothing is known of it.
    pub fn unreached(at_ms: i64, why: &str) -> Observation {
        Observation {
            at_ms,
            found: "unreachable",
            mode: None,
            owner: None,
            content_matches: None,
            differs: Some(why.to_owned()),
            notes: Vec::new(),
        }
    }

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
            Observed::Cert(CertState::Missing) => ("absent", None, None),
            Observed::Cert(_) => ("tls", None, None),
            Observed::Zone(ZoneState::Missing) => ("absent", None, None),
            Observed::Zone(ZoneState::Present(_)) => ("zone", None, None),
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
        let notes = match (desired, observed) {
            (Object::Zone(z), Observed::Zone(ZoneState::Present(f))) if z.dnssec => {
                f.ds.iter()
                    .map(|ds| format!("DS {} {ds}", z.name))
                    .collect()
            }
            _ => Vec::new(),
        };
        Observation {
            at_ms,
            found,
            mode,
            owner,
            content_matches,
            differs: differs.map(ToString::to_string),
            notes,
        }
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
            at: Location::new("/etc", "x.conf"),
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
