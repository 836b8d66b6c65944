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

/// Sends `signal` to the pid in `pid_file` (a service's reload: nginx HUP, php-fpm USR2).
///
/// # Errors
/// `BadPidFile` for a file that holds no pid, `Signal` when the kill is refused.
pub fn signal(
    gate: &str,
    reload: &supercp_core::resource::ReloadSignal,
) -> Result<Signalled, GateError> {
    use nix::sys::signal::{kill, Signal};
    use supercp_core::resource::Signal as S;
    let text = match std::fs::read_to_string(&reload.pid_file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Signalled::NotRunning),
        Err(e) => {
            return Err(GateError::BadPidFile {
                gate: gate.to_owned(),
                path: reload.pid_file.clone(),
                detail: e.to_string(),
            })
        }
    };
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
