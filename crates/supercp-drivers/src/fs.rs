//! Files and directories: observe, write atomically, set mode and owner, delete — all through
//! `*at` calls on descriptors opened with `O_NOFOLLOW`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, unlinkat, Gid, Group, Uid, UnlinkatFlags, User};
use supercp_core::object::{join, Observed};
use supercp_core::{Location, Object, Owner};

/// Suffix of the temp file a write goes through (same directory, then `rename`).
pub const TEMP_SUFFIX: &str = ".supercp-tmp";

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("refusing to follow {what} at {path}: SuperCP never writes, chmods or chowns through a symlink")]
    SymlinkRefused { path: String, what: String },
    #[error("cannot open directory {path}: {source}")]
    OpenFailed { path: String, source: Errno },
    #[error("cannot write {path}: {source}")]
    WriteFailed {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot set mode or owner of {path}: {source}")]
    MetadataFailed { path: String, source: Errno },
    #[error("cannot delete {path}: {source}")]
    DeleteFailed { path: String, source: Errno },
    #[error("owner {user}:{group} of {path} does not exist on this node")]
    UnknownOwner {
        path: String,
        user: String,
        group: String,
    },
    #[error("cannot flush writes under {path} to disk: {source}")]
    SyncFailed { path: String, source: Errno },
    #[error("{path} is an account, not a file or directory (a bug)")]
    NotAFile { path: String },
    #[error("cannot observe {path}: {source}; nothing is planned for what cannot be seen (run as root, or fix the node)")]
    ObserveFailed {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Account(Box<crate::accounts::AccountError>),
    #[error(transparent)]
    Private(#[from] crate::private::PrivateError),
    #[error("cannot make the self-signed stand-in certificate for {path}: {detail}")]
    Placeholder { path: String, detail: String },
    /// A service a driver talks to (a DNS server's API) refused or could not be reached.
    /// `unreachable`: the service is down or timed out, not the object wrong; the engine
    /// goes on with the rest of the node.
    #[error("{what}: {detail}")]
    Service {
        what: String,
        detail: String,
        unreachable: bool,
    },
}

impl DriverError {
    /// Whether trying again unchanged may succeed: a symlink, a file too large or an owner
    /// that does not exist stays until someone acts; an I/O error (a full disk, EIO) may pass.
    pub fn is_transient(&self) -> bool {
        match self {
            DriverError::SymlinkRefused { .. }
            | DriverError::UnknownOwner { .. }
            | DriverError::NotAFile { .. }
            | DriverError::Private(
                crate::private::PrivateError::SymlinkRefused { .. }
                | crate::private::PrivateError::TooLarge { .. },
            ) => false,
            DriverError::OpenFailed { .. }
            | DriverError::WriteFailed { .. }
            | DriverError::MetadataFailed { .. }
            | DriverError::DeleteFailed { .. }
            | DriverError::SyncFailed { .. }
            | DriverError::ObserveFailed { .. }
            | DriverError::Account(_)
            | DriverError::Private(_)
            | DriverError::Placeholder { .. } => true,
            DriverError::Service { unreachable, .. } => *unreachable,
        }
    }

    /// Whether the service behind an object could not be reached: the object cannot be
    /// planned now, but the rest of the node can.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            DriverError::Service {
                unreachable: true,
                ..
            }
        )
    }
}

impl From<crate::accounts::AccountError> for DriverError {
    fn from(e: crate::accounts::AccountError) -> DriverError {
        DriverError::Account(Box::new(e))
    }
}

/// Handle on the node's filesystem with cached anchor descriptors and owner ids.
#[derive(Default)]
pub struct Node {
    anchors: HashMap<String, OwnedFd>,
    owners: HashMap<Owner, (Uid, Gid)>,
    /// The directories of the last walk (see `walk`).
    chain: Option<Chain>,
}

/// Directories opened (without following symlinks) below one anchor, outermost first.
struct Chain {
    anchor: String,
    dirs: Vec<(String, OwnedFd)>,
}

/// Where a walk to an object's parent directory ended.
enum Parent {
    /// The parent directory, held open by the walk cache (or the anchors) until the next walk.
    Open(RawFd),
    Missing,
    Blocked(Observed),
}

impl Node {
    pub fn new() -> Node {
        Node::default()
    }

    /// What is at `at` now. Never follows a symlink below the anchor.
    ///
    /// # Errors
    /// `ObserveFailed` (or `OpenFailed`) when the path cannot be seen (EACCES, EIO): what
    /// cannot be seen is never reported as absent.
    pub fn observe(&mut self, at: &Location) -> Result<Observed, DriverError> {
        let (anchor, rel) = (at.anchor.as_str(), at.rel.as_str());
        let (parent, name) = match self.walk_parent(anchor, rel)? {
            Parent::Open(fd) => (fd, last_component(rel)),
            Parent::Missing => return Ok(Observed::Absent),
            Parent::Blocked(b) => return Ok(b),
        };
        let path = join(anchor, rel);
        let failed = |source: Errno| DriverError::ObserveFailed {
            path: path.clone(),
            source: source.into(),
        };
        let stat = match fstatat(Some(parent), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(s) => s,
            Err(Errno::ENOENT) => return Ok(Observed::Absent),
            Err(e) => return Err(failed(e)),
        };
        let kind = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
        let mode = stat.st_mode & 0o7777;
        let observed = if kind == SFlag::S_IFDIR {
            Observed::Dir {
                mode,
                uid: stat.st_uid,
                gid: stat.st_gid,
            }
        } else if kind == SFlag::S_IFREG {
            // A file with other links may be a tenant's hard link to a file it cannot read
            // (the plan would print it); a huge one would exhaust memory. Neither is SuperCP's.
            if stat.st_nlink > 1 {
                return Ok(Observed::Blocked {
                    path,
                    what: "a file with other hard links".into(),
                });
            }
            if u64::try_from(stat.st_size).unwrap_or(u64::MAX) > MAX_OBSERVED_FILE {
                return Ok(Observed::Blocked {
                    path,
                    what: format!(
                        "a file of {} bytes (more than SuperCP writes)",
                        stat.st_size
                    ),
                });
            }
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
            let fd = match open_at(parent, name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => return Ok(Observed::Absent),
                Err(e) => return Err(failed(e)),
            };
            let mut content = Vec::with_capacity(usize::try_from(stat.st_size).unwrap_or(0));
            let file = std::fs::File::from(fd);
            // The size was checked on the path; `take` also bounds a file that grew since.
            if let Err(source) = file.take(MAX_OBSERVED_FILE + 1).read_to_end(&mut content) {
                return Err(DriverError::ObserveFailed { path, source });
            }
            Observed::File {
                content,
                mode,
                uid: stat.st_uid,
                gid: stat.st_gid,
            }
        } else if kind == SFlag::S_IFLNK {
            Observed::Blocked {
                path,
                what: "a symlink".into(),
            }
        } else {
            Observed::Blocked {
                path,
                what: "a special file".into(),
            }
        };
        Ok(observed)
    }

    /// Creates or updates one desired object: a file through a temp file and `rename`, a
    /// directory with `mkdirat`; then mode and owner on the open descriptor.
    ///
    /// Durability is per batch: call `sync` after a batch of writes.
    ///
    /// # Errors
    /// `SymlinkRefused` when a symlink sits at the path or a managed parent; I/O errors name
    /// the path.
    pub fn apply(&mut self, object: &Object) -> Result<(), DriverError> {
        let Some(at) = object.location() else {
            return Err(DriverError::NotAFile {
                path: object.id().to_string(),
            });
        };
        let path = at.path();
        let ids = match object.owner() {
            Some(owner) => Some(self.resolve_owner(owner, &path)?),
            None => None,
        };
        let parent = self.parent_to_write_in(at)?;
        let name = last_component(&at.rel);
        match object {
            Object::File { content, mode, .. } => {
                write_file(parent, name, &path, content, *mode, ids)
            }
            Object::Dir { mode, .. } => ensure_dir(parent, name, &path, *mode, ids),
            Object::Account(_) | Object::Cert(_) | Object::Zone(_) => {
                Err(DriverError::NotAFile { path })
            }
        }
    }

    /// Writes a file's earlier content back (a rollback), with the given mode and owner ids,
    /// through a temp file and a rename like any write.
    ///
    /// # Errors
    /// As for `apply`.
    pub fn write_back(
        &mut self,
        at: &Location,
        content: &[u8],
        mode: u32,
        ids: Option<(u32, u32)>,
    ) -> Result<(), DriverError> {
        let path = at.path();
        let parent = self.parent_to_write_in(at)?;
        let ids = ids.map(|(u, g)| (Uid::from_raw(u), Gid::from_raw(g)));
        write_file(parent, last_component(&at.rel), &path, content, mode, ids)
    }

    /// Deletes `at` (a directory with everything in it) without following symlinks.
    ///
    /// # Errors
    /// `DeleteFailed` naming the path.
    pub fn delete(&mut self, at: &Location) -> Result<(), DriverError> {
        let (anchor, rel) = (at.anchor.as_str(), at.rel.as_str());
        let path = at.path();
        // A cached directory may be the one deleted.
        self.chain = None;
        let Some(parent) = self.parent_to_delete_in(anchor, rel)? else {
            return Ok(());
        };
        remove_tree(parent, last_component(rel), &path, 0)
    }

    /// The parent directory of something to write, made when missing.
    fn parent_to_write_in(&mut self, at: &Location) -> Result<RawFd, DriverError> {
        match self.walk_parent_creating(&at.anchor, &at.rel)? {
            Parent::Open(fd) => Ok(fd),
            Parent::Blocked(Observed::Blocked { path, what }) => {
                Err(DriverError::SymlinkRefused { path, what })
            }
            // A parent removed between its mkdirat and its open (a race with someone else).
            Parent::Blocked(_) | Parent::Missing => Err(DriverError::OpenFailed {
                path: at.path(),
                source: Errno::ENOENT,
            }),
        }
    }

    /// The parent directory of something to delete; `None` when it is gone already.
    fn parent_to_delete_in(
        &mut self,
        anchor: &str,
        rel: &str,
    ) -> Result<Option<RawFd>, DriverError> {
        match self.walk_parent(anchor, rel)? {
            Parent::Open(fd) => Ok(Some(fd)),
            Parent::Blocked(Observed::Blocked { path, what }) => {
                Err(DriverError::SymlinkRefused { path, what })
            }
            Parent::Missing | Parent::Blocked(_) => Ok(None),
        }
    }

    /// Deletes the file `anchor/rel` (unlinks it; a symlink there is unlinked, never followed).
    /// Something else in its place (a directory a tenant made) is refused, not removed.
    ///
    /// # Errors
    /// `DeleteFailed` naming the path.
    pub fn delete_file(&mut self, at: &Location) -> Result<(), DriverError> {
        let (anchor, rel) = (at.anchor.as_str(), at.rel.as_str());
        let path = at.path();
        let Some(parent) = self.parent_to_delete_in(anchor, rel)? else {
            return Ok(());
        };
        match unlinkat(
            Some(parent),
            last_component(rel),
            UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(source) => Err(DriverError::DeleteFailed { path, source }),
        }
    }

    /// Removes temp files a killed run left in `dir` (non-recursive).
    pub fn remove_stale_temps(&mut self, dir: &str) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
                tracing::info!(path = %entry.path().display(), "removing a temp file left by an interrupted run");
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Flushes every write on the filesystem of `anchor` to disk (one `syncfs` per batch
    /// instead of one `fsync` per file).
    ///
    /// # Errors
    /// `SyncFailed` naming the anchor.
    pub fn sync(&mut self, anchor: &str) -> Result<(), DriverError> {
        let fd = self.anchor(anchor)?;
        nix::unistd::syncfs(fd).map_err(|source| DriverError::SyncFailed {
            path: anchor.to_owned(),
            source,
        })
    }

    /// Ensures a layout directory (an anchor) exists. Anchors are root-owned node layout, not
    /// tenant-writable, so the ordinary recursive create is safe here.
    ///
    /// # Errors
    /// `WriteFailed` naming the directory.
    pub fn ensure_anchor(&mut self, anchor: &str) -> Result<(), DriverError> {
        if self.anchors.contains_key(anchor) {
            return Ok(());
        }
        std::fs::create_dir_all(anchor).map_err(|source| DriverError::WriteFailed {
            path: anchor.to_owned(),
            source,
        })
    }

    fn anchor(&mut self, anchor: &str) -> Result<RawFd, DriverError> {
        if let Some(fd) = self.anchors.get(anchor) {
            return Ok(fd.as_raw_fd());
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = open_at(libc_cwd(), anchor, flags, Mode::empty()).map_err(|source| {
            DriverError::OpenFailed {
                path: anchor.to_owned(),
                source,
            }
        })?;
        let raw = fd.as_raw_fd();
        self.anchors.insert(anchor.to_owned(), fd);
        Ok(raw)
    }

    /// The parent of `anchor/rel` without creating anything: `Missing` when the anchor or a
    /// parent does not exist; an error when one cannot be opened (EACCES, EIO).
    fn walk_parent(&mut self, anchor: &str, rel: &str) -> Result<Parent, DriverError> {
        match self.anchor(anchor) {
            Ok(_) => {}
            Err(DriverError::OpenFailed {
                source: Errno::ENOENT | Errno::ENOTDIR,
                ..
            }) => return Ok(Parent::Missing),
            Err(e) => return Err(e),
        }
        self.walk(anchor, rel, false)
    }

    /// Like `walk_parent`, creating missing parents (mode 0755; a managed parent is itself a
    /// desired object and gets its mode and owner from its own step).
    fn walk_parent_creating(&mut self, anchor: &str, rel: &str) -> Result<Parent, DriverError> {
        self.ensure_anchor(anchor)?;
        self.walk(anchor, rel, true)
    }

    /// Opens the parent directory of `anchor/rel`, one component at a time with `O_NOFOLLOW`.
    /// Reuses the directories of the previous walk below the same anchor: objects come
    /// parent-first, so consecutive walks share most of their path.
    fn walk(&mut self, anchor: &str, rel: &str, create: bool) -> Result<Parent, DriverError> {
        let anchor_fd = self.anchor(anchor)?;
        let components: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let parents = &components[..components.len().saturating_sub(1)];
        let mut dirs = match self.chain.take() {
            Some(chain) if chain.anchor == anchor => chain.dirs,
            _ => Vec::new(),
        };
        let common = dirs
            .iter()
            .zip(parents)
            .take_while(|((name, _), c)| name == *c)
            .count();
        dirs.truncate(common);
        let mut path = anchor.trim_end_matches('/').to_owned();
        for component in &parents[..common] {
            path = format!("{path}/{component}");
        }
        let mut outcome = None;
        for component in &parents[common..] {
            path = format!("{path}/{component}");
            let parent = dirs.last().map_or(anchor_fd, |(_, fd)| fd.as_raw_fd());
            let opened = match open_dir_nofollow(parent, component) {
                Err(Errno::ENOENT) if create => {
                    match mkdirat(Some(parent), *component, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => open_dir_nofollow(parent, component),
                        Err(e) => Err(e),
                    }
                }
                other => other,
            };
            match opened {
                Ok(fd) => dirs.push(((*component).to_owned(), fd)),
                Err(Errno::ENOENT) => {
                    outcome = Some(Ok(Parent::Missing));
                    break;
                }
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    let what = describe(parent, component);
                    outcome = Some(Ok(Parent::Blocked(Observed::Blocked {
                        path: path.clone(),
                        what,
                    })));
                    break;
                }
                Err(source) => {
                    outcome = Some(Err(DriverError::OpenFailed {
                        path: path.clone(),
                        source,
                    }));
                    break;
                }
            }
        }
        let result = match outcome {
            Some(result) => result,
            None => {
                // No dup: the descriptor stays in the cache, valid until the next walk.
                Ok(Parent::Open(
                    dirs.last().map_or(anchor_fd, |(_, fd)| fd.as_raw_fd()),
                ))
            }
        };
        self.chain = Some(Chain {
            anchor: anchor.to_owned(),
            dirs,
        });
        result
    }

    /// Found ids are cached; a missing user is looked up again next time (an apply creates
    /// tenant accounts before it chowns their files).
    fn resolve_owner(&mut self, owner: &Owner, path: &str) -> Result<(Uid, Gid), DriverError> {
        let cached = self.owners.get(owner).copied();
        let ids = cached.or_else(|| {
            let uid = User::from_name(&owner.user).ok().flatten()?.uid;
            let gid = Group::from_name(&owner.group).ok().flatten()?.gid;
            self.owners.insert(owner.clone(), (uid, gid));
            Some((uid, gid))
        });
        ids.ok_or_else(|| DriverError::UnknownOwner {
            path: path.to_owned(),
            user: owner.user.clone(),
            group: owner.group.clone(),
        })
    }

    /// The uid and gid a desired owner maps to, if it exists on the node.
    pub fn owner_ids(&mut self, owner: &Owner) -> Option<(u32, u32)> {
        self.resolve_owner(owner, "")
            .ok()
            .map(|(u, g)| (u.as_raw(), g.as_raw()))
    }
}

fn write_file(
    parent: RawFd,
    name: &str,
    path: &str,
    content: &[u8],
    mode: u32,
    ids: Option<(Uid, Gid)>,
) -> Result<(), DriverError> {
    let temp = format!(".{name}{TEMP_SUFFIX}");
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let create = || open_at(parent, &temp, flags, Mode::from_bits_truncate(0o600));
    // O_EXCL: a leftover temp (or a link planted under its name) is removed, never followed.
    let fd = match create() {
        Err(Errno::EEXIST) => {
            let _ = unlinkat(Some(parent), temp.as_str(), UnlinkatFlags::NoRemoveDir);
            create()
        }
        other => other,
    }
    .map_err(|e| DriverError::WriteFailed {
        path: path.to_owned(),
        source: e.into(),
    })?;
    let written = fill_temp(fd, path, content, mode, ids).and_then(|()| {
        renameat(Some(parent), temp.as_str(), Some(parent), name).map_err(|e| {
            DriverError::WriteFailed {
                path: path.to_owned(),
                source: e.into(),
            }
        })
    });
    if written.is_err() {
        // A full disk (or any failure) leaves no temp file behind.
        let _ = unlinkat(Some(parent), temp.as_str(), UnlinkatFlags::NoRemoveDir);
    }
    written
}

/// Mode, owner and content of a new temp file, then its data flushed (so a full disk shows
/// here, not after the rename).
fn fill_temp(
    fd: OwnedFd,
    path: &str,
    content: &[u8],
    mode: u32,
    ids: Option<(Uid, Gid)>,
) -> Result<(), DriverError> {
    let meta = |source| DriverError::MetadataFailed {
        path: path.to_owned(),
        source,
    };
    fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode)).map_err(meta)?;
    if let Some((uid, gid)) = ids {
        fchown(fd.as_raw_fd(), Some(uid), Some(gid)).map_err(meta)?;
    }
    let mut file = std::fs::File::from(fd);
    let failed = |source| DriverError::WriteFailed {
        path: path.to_owned(),
        source,
    };
    file.write_all(content).map_err(failed)?;
    file.flush().map_err(failed)
}

fn ensure_dir(
    parent: RawFd,
    name: &str,
    path: &str,
    mode: u32,
    ids: Option<(Uid, Gid)>,
) -> Result<(), DriverError> {
    match mkdirat(Some(parent), name, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(source) => {
            return Err(DriverError::OpenFailed {
                path: path.to_owned(),
                source,
            })
        }
    }
    let fd = match open_dir_nofollow(parent, name) {
        Ok(fd) => fd,
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            return Err(DriverError::SymlinkRefused {
                path: path.to_owned(),
                what: describe(parent, name),
            })
        }
        Err(source) => {
            return Err(DriverError::OpenFailed {
                path: path.to_owned(),
                source,
            })
        }
    };
    let meta = |source| DriverError::MetadataFailed {
        path: path.to_owned(),
        source,
    };
    fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode)).map_err(meta)?;
    if let Some((uid, gid)) = ids {
        fchown(fd.as_raw_fd(), Some(uid), Some(gid)).map_err(meta)?;
    }
    Ok(())
}

/// Removes `name` under `parent`: a file or symlink is unlinked (never followed); a directory
/// is emptied through its own descriptor, then removed.
/// Largest file `observe` reads. SuperCP's own files are far smaller; a bigger one in a managed
/// place is reported, not read.
const MAX_OBSERVED_FILE: u64 = 16 << 20;

/// Deepest directory tree `delete` removes; deeper is refused (a tenant could nest directories
/// until a recursive walk runs out of stack).
const MAX_DELETE_DEPTH: usize = 256;

fn remove_tree(parent: RawFd, name: &str, path: &str, depth: usize) -> Result<(), DriverError> {
    let failed = |source| DriverError::DeleteFailed {
        path: path.to_owned(),
        source,
    };
    if depth > MAX_DELETE_DEPTH {
        return Err(failed(Errno::ELOOP));
    }
    match unlinkat(Some(parent), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR | Errno::EPERM) => {}
        Err(e) => return Err(failed(e)),
    }
    let dir_fd = open_dir_nofollow(parent, name).map_err(failed)?;
    // The Dir owns (and closes) the descriptor from here on, also when from_fd fails.
    let mut dir = nix::dir::Dir::from_fd(dir_fd.into_raw_fd()).map_err(failed)?;
    let dir_raw = dir.as_raw_fd();
    let names: Vec<String> = dir
        .iter()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.as_str() != "." && n.as_str() != "..")
        .collect();
    for child in names {
        remove_tree(dir_raw, &child, &format!("{path}/{child}"), depth + 1)?;
    }
    drop(dir);
    unlinkat(Some(parent), name, UnlinkatFlags::RemoveDir).map_err(failed)
}

fn open_dir_nofollow(parent: RawFd, name: &str) -> Result<OwnedFd, Errno> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    open_at(parent, name, flags, Mode::empty())
}

fn open_at(dir: RawFd, name: &str, flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
    let fd = openat(Some(dir), name, flags, mode)?;
    // SAFETY: openat just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn describe(parent: RawFd, name: &str) -> String {
    match fstatat(Some(parent), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(s) if SFlag::from_bits_truncate(s.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK => {
            "a symlink".into()
        }
        Ok(_) => "a file where a directory belongs".into(),
        Err(_) => "something unreadable".into(),
    }
}

fn last_component(rel: &str) -> &str {
    rel.trim_end_matches('/').rsplit('/').next().unwrap_or(rel)
}

fn libc_cwd() -> RawFd {
    nix::libc::AT_FDCWD
}

/// Bytes of disk a directory tree takes (allocated blocks, like `du -x`), walked with
/// descriptors opened without following symlinks, on the tree's own filesystem only, at most
/// 256 levels deep; each inode is counted once. `None` when `path` is not a directory.
pub fn disk_usage(path: &Path) -> Option<u64> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let top = open_at(libc_cwd(), &path.to_string_lossy(), flags, Mode::empty()).ok()?;
    let stat = nix::sys::stat::fstat(top.as_raw_fd()).ok()?;
    let mut seen = std::collections::HashSet::new();
    let below = usage_below(top, stat.st_dev, &mut seen, 0);
    Some(u64::try_from(stat.st_blocks).unwrap_or(0) * 512 + below)
}

fn usage_below(
    dir_fd: OwnedFd,
    device: u64,
    seen: &mut std::collections::HashSet<u64>,
    depth: usize,
) -> u64 {
    let Ok(mut dir) = nix::dir::Dir::from_fd(dir_fd.into_raw_fd()) else {
        return 0;
    };
    let parent = dir.as_raw_fd();
    let names: Vec<String> = dir
        .iter()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    let mut total = 0;
    for name in names {
        let at = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
        let Ok(stat) = fstatat(Some(parent), name.as_str(), at) else {
            continue;
        };
        if stat.st_dev != device || !seen.insert(stat.st_ino) {
            continue;
        }
        total += u64::try_from(stat.st_blocks).unwrap_or(0) * 512;
        let kind = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
        if kind == SFlag::S_IFDIR && depth < MAX_DELETE_DEPTH {
            if let Ok(child) = open_dir_nofollow(parent, &name) {
                total += usage_below(child, device, seen, depth + 1);
            }
        }
    }
    total
}
