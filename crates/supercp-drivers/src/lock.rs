//! One apply at a time per state directory: an exclusive `flock` on `<state>/apply.lock`,
//! holding the holder's pid and start time so a second apply can say who has it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another apply holds {path} ({holder}); wait for it to finish")]
    Busy { path: String, holder: String },
    #[error("cannot open the lock file {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
}

/// Held for the whole apply; released when dropped (or when the process dies).
pub struct ApplyLock {
    _lock: Flock<File>,
}

/// Creates the state directory (root's own: the operator names it, no tenant writes there).
///
/// # Errors
/// The I/O error of creating it.
pub fn ensure_state_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}

/// Takes the lock at once or fails naming the holder.
///
/// # Errors
/// `Busy` with the holder's pid and start time; `Open` when the file cannot be opened.
pub fn acquire(path: &Path, started_unix_ms: i64) -> Result<ApplyLock, LockError> {
    let shown = path.display().to_string();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| LockError::Open {
            path: shown.clone(),
            source,
        })?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let note = format!(
                "pid {} started at {}\n",
                std::process::id(),
                supercp_core::time::utc(started_unix_ms)
            );
            let _ = lock.set_len(0);
            let _ = lock.rewind();
            let _ = lock.write_all(note.as_bytes());
            Ok(ApplyLock { _lock: lock })
        }
        Err((mut file, _)) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "holder unknown".to_owned()
            } else {
                holder.to_owned()
            };
            Err(LockError::Busy {
                path: shown,
                holder,
            })
        }
    }
}
