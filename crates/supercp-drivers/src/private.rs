//! Root's own files outside the rendered tree: TLS keys and certificate chains, ACME account
//! credentials, and HTTP-01 challenge answers. They are not desired objects of the plan (the
//! engine's certificate policy decides when they change), but they are written with the same
//! rules as `fs`: below the anchor (a root-owned layout directory such as `tls.certDir`) no
//! symlink is followed, each component is opened with `O_NOFOLLOW` relative to its parent's
//! descriptor, a file goes through a temp file in its own directory and a `rename`, and its
//! mode is set on the open descriptor before the first byte is written.
//!
//! # Guarantees
//! - A symlink (or anything but a regular file) at the path, or a symlink at any directory
//!   between the anchor and the path, is refused: nothing is read, written or removed through it.
//! - A reader sees the previous file or the new one, never half of one.
//!
//! # Assumptions
//! The anchor itself is node layout, trusted like every anchor: it may be reached through
//! symlinks of the operator's (an `/etc` on another disk).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{fsync, unlinkat, UnlinkatFlags};

use crate::fs::TEMP_SUFFIX;

/// Largest file `read` returns: keys, chains and account files are a few kilobytes.
pub const MAX_PRIVATE_FILE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PrivateError {
    #[error("refusing {what} at {path}: SuperCP reads and writes keys, certificates and account files only as regular files in real directories, never through a symlink; remove it")]
    SymlinkRefused { path: String, what: String },
    #[error("cannot open directory {path}: {source}")]
    OpenFailed {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    ReadFailed {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    WriteFailed {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot delete {path}: {source}")]
    DeleteFailed {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is {what}, larger than SuperCP writes there; remove it")]
    TooLarge { path: String, what: String },
}

/// Who may read a file written here, and its directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Root only: the file 0600; directories made for it, and its own directory, 0700.
    Private,
    /// Everyone may read (an HTTP-01 answer nginx's workers serve): 0644, directories 0755.
    Public,
}

impl Access {
    fn file_mode(self) -> u32 {
        match self {
            Access::Private => 0o600,
            Access::Public => 0o644,
        }
    }

    fn dir_mode(self) -> u32 {
        match self {
            Access::Private => 0o700,
            Access::Public => 0o755,
        }
    }
}

/// Writes `anchor/rel` with `content`: directories below the anchor made as needed (mode of
/// `access`; with `Private` the file's own directory is set to 0700 also when it existed),
/// then a new temp file beside it (mode set on its descriptor, written, synced), renamed over
/// the path, and the directory synced.
///
/// # Errors
/// `SymlinkRefused` when a symlink or something that is not a regular file sits at the path,
/// or a symlink at a directory on the way; `WriteFailed` naming the path otherwise. The anchor
/// is created when missing.
pub fn write(anchor: &str, rel: &str, content: &[u8], access: Access) -> Result<(), PrivateError> {
    let path = full(anchor, rel);
    let write_failed = |source: std::io::Error| PrivateError::WriteFailed {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(anchor).map_err(write_failed)?;
    let (dir, name, created) = walk(anchor, rel, Some(access.dir_mode()))?;
    let dir = dir.ok_or_else(|| write_failed(Errno::ENOENT.into()))?;
    let dir_fd = dir.as_raw_fd();
    if access == Access::Private && !created && rel.contains('/') {
        fchmod(dir_fd, Mode::from_bits_truncate(access.dir_mode()))
            .map_err(|e| write_failed(e.into()))?;
    }
    // A rename replaces a symlink instead of following it; it is refused all the same, so
    // that a planted link is seen rather than silently replaced.
    match kind_at(dir_fd, name) {
        Ok(None) => {}
        Ok(Some(kind)) if kind == SFlag::S_IFREG => {}
        Ok(Some(kind)) => {
            return Err(PrivateError::SymlinkRefused {
                path,
                what: describe(kind).into(),
            })
        }
        Err(e) => return Err(write_failed(e.into())),
    }
    let temp = format!(".{name}{TEMP_SUFFIX}");
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let create = || open_at(dir_fd, &temp, flags, Mode::from_bits_truncate(0o600));
    // O_EXCL: a leftover temp (or a link planted under its name) is removed, never followed.
    let fd = match create() {
        Err(Errno::EEXIST) => {
            let _ = unlinkat(Some(dir_fd), temp.as_str(), UnlinkatFlags::NoRemoveDir);
            create()
        }
        other => other,
    }
    .map_err(|e| write_failed(e.into()))?;
    let written = fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(access.file_mode()))
        .map_err(std::io::Error::from)
        .and_then(|()| {
            let mut file = std::fs::File::from(fd);
            file.write_all(content)?;
            file.sync_all()
        })
        .and_then(|()| {
            renameat(Some(dir_fd), temp.as_str(), Some(dir_fd), name).map_err(Into::into)
        });
    if let Err(e) = written {
        let _ = unlinkat(Some(dir_fd), temp.as_str(), UnlinkatFlags::NoRemoveDir);
        return Err(write_failed(e));
    }
    fsync(dir_fd).map_err(|e| write_failed(e.into()))
}

/// The content of the regular file `anchor/rel`, `None` when it (or a directory on the way,
/// or the anchor) does not exist.
///
/// # Errors
/// `SymlinkRefused` for a symlink or special file at the path or a symlink on the way;
/// `TooLarge` over `MAX_PRIVATE_FILE`; `ReadFailed` naming the path otherwise.
pub fn read(anchor: &str, rel: &str) -> Result<Option<Vec<u8>>, PrivateError> {
    let path = full(anchor, rel);
    let read_failed = |source: std::io::Error| PrivateError::ReadFailed {
        path: path.clone(),
        source,
    };
    let (Some(dir), name, _) = walk(anchor, rel, None)? else {
        return Ok(None);
    };
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let fd = match open_at(dir.as_raw_fd(), name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => {
            return Err(PrivateError::SymlinkRefused {
                path,
                what: "a symlink".into(),
            })
        }
        Err(e) => return Err(read_failed(e.into())),
    };
    let stat = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| read_failed(e.into()))?;
    let kind = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
    if kind != SFlag::S_IFREG {
        return Err(PrivateError::SymlinkRefused {
            path,
            what: describe(kind).into(),
        });
    }
    let mut content = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_PRIVATE_FILE + 1)
        .read_to_end(&mut content)
        .map_err(read_failed)?;
    if content.len() as u64 > MAX_PRIVATE_FILE {
        return Err(PrivateError::TooLarge {
            path,
            what: format!("a file of more than {MAX_PRIVATE_FILE} bytes"),
        });
    }
    Ok(Some(content))
}

/// A file the operator names in the node file or the repo (a bring-your-own certificate or
/// key, the ACME EAB key), read where it points, as the service that uses it reads it: links
/// are followed (certbot's `live/` links work). Returns its text and permission bits.
///
/// # Errors
/// `ReadFailed` naming the path.
pub fn read_operator_file(path: &str) -> Result<(String, u32), PrivateError> {
    use std::os::unix::fs::MetadataExt;
    let failed = |source: std::io::Error| PrivateError::ReadFailed {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(failed)?;
    let mode = file.metadata().map_err(failed)?.mode() & 0o7777;
    let mut text = String::new();
    (&mut file)
        .take(MAX_PRIVATE_FILE)
        .read_to_string(&mut text)
        .map_err(failed)?;
    Ok((text, mode))
}

/// Whether `anchor/rel` is a regular file, seen without following a symlink (a symlink there
/// or on the way is not a file).
pub fn is_file(anchor: &str, rel: &str) -> bool {
    match walk(anchor, rel, None) {
        Ok((Some(dir), name, _)) => kind_at(dir.as_raw_fd(), name) == Ok(Some(SFlag::S_IFREG)),
        _ => false,
    }
}

/// Removes the file `anchor/rel` (a symlink there is unlinked, never followed). Gone already
/// is fine.
///
/// # Errors
/// `SymlinkRefused` for a symlink on the way; `DeleteFailed` naming the path (a directory in
/// the file's place is refused, not removed).
pub fn remove_file(anchor: &str, rel: &str) -> Result<(), PrivateError> {
    let path = full(anchor, rel);
    let (Some(dir), name, _) = walk(anchor, rel, None)? else {
        return Ok(());
    };
    match unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(PrivateError::DeleteFailed {
            path,
            source: e.into(),
        }),
    }
}

/// Removes the empty directory `anchor/rel`. Gone already is fine.
///
/// # Errors
/// `SymlinkRefused` for a symlink at the path or on the way; `DeleteFailed` naming the path
/// (a directory that is not empty stays).
pub fn remove_dir(anchor: &str, rel: &str) -> Result<(), PrivateError> {
    let path = full(anchor, rel);
    let (Some(dir), name, _) = walk(anchor, rel, None)? else {
        return Ok(());
    };
    match kind_at(dir.as_raw_fd(), name) {
        Ok(None) => return Ok(()),
        Ok(Some(kind)) if kind == SFlag::S_IFDIR => {}
        Ok(Some(kind)) => {
            return Err(PrivateError::SymlinkRefused {
                path,
                what: describe(kind).into(),
            })
        }
        Err(e) => {
            return Err(PrivateError::DeleteFailed {
                path,
                source: e.into(),
            })
        }
    }
    match unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(PrivateError::DeleteFailed {
            path,
            source: e.into(),
        }),
    }
}

/// The names of the real directories (not symlinks to one) directly in `anchor`, sorted;
/// none when the anchor does not exist.
///
/// # Errors
/// `ReadFailed` when the anchor exists but cannot be listed.
pub fn dirs(anchor: &str) -> Result<Vec<String>, PrivateError> {
    let read_failed = |source: std::io::Error| PrivateError::ReadFailed {
        path: anchor.to_owned(),
        source,
    };
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let fd = match open_at(nix::libc::AT_FDCWD, anchor, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(Vec::new()),
        Err(e) => return Err(read_failed(e.into())),
    };
    let mut dir = nix::dir::Dir::from_fd(fd.into_raw_fd()).map_err(|e| read_failed(e.into()))?;
    let parent = dir.as_raw_fd();
    let names: Vec<String> = dir
        .iter()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    let mut out: Vec<String> = names
        .into_iter()
        .filter(|n| kind_at(parent, n) == Ok(Some(SFlag::S_IFDIR)))
        .collect();
    out.sort();
    Ok(out)
}

/// Opens the directory that holds `anchor/rel`, one component at a time with `O_NOFOLLOW`;
/// with `create`, missing directories are made with that mode. Returns it (`None` when
/// something on the way is missing), the last component, and whether the last directory was
/// made by this call.
fn walk<'r>(
    anchor: &str,
    rel: &'r str,
    create: Option<u32>,
) -> Result<(Option<OwnedFd>, &'r str, bool), PrivateError> {
    let components: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let Some((name, parents)) = components.split_last() else {
        return Err(PrivateError::OpenFailed {
            path: anchor.to_owned(),
            source: Errno::EINVAL.into(),
        });
    };
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut dir = match open_at(nix::libc::AT_FDCWD, anchor, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok((None, name, false)),
        Err(e) => {
            return Err(PrivateError::OpenFailed {
                path: anchor.to_owned(),
                source: e.into(),
            })
        }
    };
    let mut path = anchor.trim_end_matches('/').to_owned();
    let mut created = false;
    for component in parents {
        path = format!("{path}/{component}");
        created = false;
        let opened = match open_dir_nofollow(dir.as_raw_fd(), component) {
            Err(Errno::ENOENT) => match create {
                Some(mode) => {
                    match mkdirat(
                        Some(dir.as_raw_fd()),
                        *component,
                        Mode::from_bits_truncate(mode),
                    ) {
                        Ok(()) => {
                            created = true;
                            open_dir_nofollow(dir.as_raw_fd(), component).and_then(|fd| {
                                // Not left to the umask.
                                fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode))?;
                                Ok(fd)
                            })
                        }
                        Err(Errno::EEXIST) => open_dir_nofollow(dir.as_raw_fd(), component),
                        Err(e) => Err(e),
                    }
                }
                None => return Ok((None, name, false)),
            },
            other => other,
        };
        dir = match opened {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let what = match kind_at(dir.as_raw_fd(), component) {
                    Ok(Some(kind)) => describe(kind),
                    _ => "something unreadable",
                };
                return Err(PrivateError::SymlinkRefused {
                    path,
                    what: what.into(),
                });
            }
            Err(e) => {
                return Err(PrivateError::OpenFailed {
                    path,
                    source: e.into(),
                })
            }
        };
    }
    Ok((Some(dir), name, created))
}

/// The file type at `name` in `dir` (not following a symlink), `None` when nothing is there.
fn kind_at(dir: RawFd, name: &str) -> Result<Option<SFlag>, Errno> {
    match fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(SFlag::from_bits_truncate(
            stat.st_mode & SFlag::S_IFMT.bits(),
        ))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn describe(kind: SFlag) -> &'static str {
    if kind == SFlag::S_IFLNK {
        "a symlink"
    } else if kind == SFlag::S_IFDIR {
        "a directory"
    } else if kind == SFlag::S_IFREG {
        "a file where a directory belongs"
    } else {
        "a special file"
    }
}

fn full(anchor: &str, rel: &str) -> String {
    format!(
        "{}/{}",
        anchor.trim_end_matches('/'),
        rel.trim_start_matches('/')
    )
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
