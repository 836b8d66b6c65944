//! Service gates: run a node's check or reload command (argv, never a shell string).

use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("gate {gate}: `{program}` is not installed")]
    Missing { gate: String, program: String },
    #[error("gate {gate}: cannot run `{program}`: {source}")]
    Spawn {
        gate: String,
        program: String,
        source: std::io::Error,
    },
    #[error("gate {gate}: empty command")]
    Empty { gate: String },
    #[error("gate {gate}: pid file {path} holds no process id: {detail}")]
    BadPidFile {
        gate: String,
        path: String,
        detail: String,
    },
    #[error("gate {gate}: cannot signal process {pid} from {path}: {source}")]
    Signal {
        gate: String,
        path: String,
        pid: i32,
        source: nix::errno::Errno,
    },
}

/// What a reload by signal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signalled {
    /// The service's master process got the signal.
    Sent { pid: i32 },
    /// No pid file, an empty one, or no such process: the service is not running, so there is nothing to
    /// reload (it reads the new files when it starts).
    NotRunning,
}

/// Sends `signal` to the pid in `pid_file` (a service's reload: nginx HUP, php-fpm USR2), but
/// only to the service's master: the pid file must be a regular file owned by this process's
/// user (root on a node) that no one else may write, and the process must run as that user
/// with `program` as its name. A pid that now names another process (a stale file) is not
/// signalled.
///
/// # Errors
/// `BadPidFile` for a file that holds no pid or that someone else could have written, `Signal`
/// when the kill is refused.
pub fn signal(
    gate: &str,
    reload: &supercp_core::resource::ReloadSignal,
    program: &str,
) -> Result<Signalled, GateError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

    use nix::sys::signal::{kill, Signal};
    use supercp_core::resource::Signal as S;
    let bad = |detail: String| GateError::BadPidFile {
        gate: gate.to_owned(),
        path: reload.pid_file.clone(),
        detail,
    };
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nofollow())
        .open(&reload.pid_file);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Signalled::NotRunning),
        Err(e) => return Err(bad(e.to_string())),
    };
    let me = nix::unistd::geteuid().as_raw();
    let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(bad(format!(
            "not a regular file of uid {me} that only its owner may write (uid {}, mode {:o})",
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    let mut text = String::new();
    file.take(64)
        .read_to_string(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    // `nginx -t` leaves an empty pid file behind when no nginx runs.
    if text.trim().is_empty() {
        return Ok(Signalled::NotRunning);
    }
    let pid: i32 =
        text.trim()
            .parse()
            .ok()
            .filter(|p| *p > 1)
            .ok_or_else(|| GateError::BadPidFile {
                gate: gate.to_owned(),
                path: reload.pid_file.clone(),
                detail: format!("{:?}", text.trim()),
            })?;
    if !is_master(pid, me, program) {
        return Ok(Signalled::NotRunning);
    }
    let sig = match reload.signal {
        S::HUP => Signal::SIGHUP,
        S::USR1 => Signal::SIGUSR1,
        S::USR2 => Signal::SIGUSR2,
    };
    match kill(nix::unistd::Pid::from_raw(pid), sig) {
        Ok(()) => Ok(Signalled::Sent { pid }),
        Err(nix::errno::Errno::ESRCH) => Ok(Signalled::NotRunning),
        Err(source) => Err(GateError::Signal {
            gate: gate.to_owned(),
            path: reload.pid_file.clone(),
            pid,
            source,
        }),
    }
}

/// What a check or reload printed and whether it succeeded.
#[derive(Debug, Clone)]
pub struct GateRun {
    pub success: bool,
    /// stdout and stderr, joined.
    pub output: String,
}

/// Runs `argv` and waits for it.
///
/// # Errors
/// `Missing` when the program is not installed (callers may skip an optional gate), `Spawn`
/// for any other failure to start it.
pub fn run(gate: &str, argv: &[String]) -> Result<GateRun, GateError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(GateError::Empty {
            gate: gate.to_owned(),
        });
    };
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                GateError::Missing {
                    gate: gate.to_owned(),
                    program: program.clone(),
                }
            } else {
                GateError::Spawn {
                    gate: gate.to_owned(),
                    program: program.clone(),
                    source,
                }
            }
        })?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(GateRun {
        success: output.status.success(),
        output: text,
    })
}

/// Raises this process's open-files limit as far as it may go, so the checks it runs inherit
/// it: `nginx -t` opens every vhost's log files, two per domain, which is past a default limit
/// of 1,024 (or even 20,000) on a node with thousands of sites. Root may raise the hard limit
/// up to the kernel's `fs.nr_open`; anyone else up to the hard limit. Returns the limit now
/// in force.
pub fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(hard);
    for limit in [nr_open.max(hard), hard] {
        if limit > soft && setrlimit(Resource::RLIMIT_NOFILE, limit, limit.max(hard)).is_ok() {
            return limit;
        }
    }
    soft
}

/// `O_NOFOLLOW` for `OpenOptions::custom_flags`.
fn libc_o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

/// Whether `pid` runs as `uid` under the name `program` (the kernel keeps 15 bytes of it).
fn is_master(pid: i32, uid: u32, program: &str) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let runs_as = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|real| real.parse::<u32>().ok());
    let name = status
        .lines()
        .find_map(|l| l.strip_prefix("Name:"))
        .map(str::trim)
        .unwrap_or_default();
    let expected: String = program.chars().take(15).collect();
    runs_as == Some(uid) && !name.is_empty() && name == expected
}
