//! Service gates: run a node's check or reload command (argv, never a shell string), and the
//! one way every driver runs an external command: under a time limit.
//!
//! # Guarantees
//! Every command runs in a process group of its own and has [`command_timeout`] to finish and
//! close its output; past that the whole group is killed (SIGKILL) and the caller gets an error
//! that names the command and the limit. A hung check never holds an apply (and its lock)
//! forever, and nothing it started is left running.

use std::ffi::OsStr;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    /// False when it failed or did not finish in time.
    pub success: bool,
    /// stdout and stderr, joined; when it timed out, what it printed and then why it was killed.
    pub output: String,
    /// The limit it ran past (its process group was killed), if it did.
    pub timed_out: Option<Duration>,
}

/// The environment variable that sets [`command_timeout`], in whole seconds.
pub const TIMEOUT_ENV: &str = "SUPERCP_COMMAND_TIMEOUT_SECONDS";

/// How long an external command may run when nothing else is set: two minutes. That is
/// about a hundred times what `nginx -t` takes over 20,000 sites on a 2-core node (about 1 s,
/// docs/performance.md), so a slow but sound check passes on a loaded node; it is above
/// systemd's default job timeout (90 s), so a `systemctl reload` fails on systemd's terms
/// first; and it is short enough that a hung command costs one failed run, not the agent.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The time limit of every external command a driver runs (gate checks and reloads, the
/// account tools): `SUPERCP_COMMAND_TIMEOUT_SECONDS` when it holds a positive number of
/// seconds, else [`DEFAULT_TIMEOUT`]. Read once per process.
pub fn command_timeout() -> Duration {
    static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        let Some(value) = std::env::var_os(TIMEOUT_ENV) else {
            return DEFAULT_TIMEOUT;
        };
        match value.to_str().and_then(|v| v.trim().parse::<u64>().ok()) {
            Some(seconds) if seconds > 0 => Duration::from_secs(seconds),
            _ => {
                tracing::warn!(
                    value = %value.to_string_lossy(),
                    "{TIMEOUT_ENV} is not a positive number of seconds; using {}",
                    limit(DEFAULT_TIMEOUT)
                );
                DEFAULT_TIMEOUT
            }
        }
    })
}

/// A time limit as messages show it: `120 s`, or `250 ms` under a second.
pub fn limit(timeout: Duration) -> String {
    if timeout.subsec_millis() == 0 {
        format!("{} s", timeout.as_secs())
    } else {
        format!("{} ms", timeout.as_millis())
    }
}

/// What a command run under a time limit did.
#[derive(Debug)]
pub struct Bounded {
    /// `None` when it did not finish in time: its process group was killed.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Bounded {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs `program` with `args` (no shell, stdin from /dev/null) in a new process group and
/// collects its output. The command and whatever it started in its group have `timeout` to
/// exit and close stdout and stderr; past that the group is killed with SIGKILL and `status`
/// is `None` (with the output printed until then).
///
/// # Errors
/// When the program cannot be started (`NotFound` when it is not installed).
pub fn run_bounded(
    program: &str,
    args: &[impl AsRef<OsStr>],
    timeout: Duration,
) -> std::io::Result<Bounded> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let deadline = Instant::now() + timeout;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    // The group's id is the child's pid: it stays valid while any member lives.
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let (tx, exited) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    fn before<T>(rx: &mpsc::Receiver<T>, deadline: Instant) -> Option<T> {
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()
    }
    let status = before(&exited, deadline);
    let out = status.as_ref().and_then(|_| before(&stdout, deadline));
    let err = out.as_ref().and_then(|_| before(&stderr, deadline));
    let out = match (status, out, err) {
        (Some(status), Some(stdout), Some(stderr)) => {
            return Ok(Bounded {
                status: Some(status?),
                stdout,
                stderr,
            })
        }
        (_, out, _) => out,
    };
    // Too late: the whole group goes. Its pipes close with it; a process that left the group
    // and kept them open gets a second more, then its output is not waited for.
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let grace = Duration::from_secs(1);
    let _ = exited.recv_timeout(grace);
    Ok(Bounded {
        status: None,
        stdout: out
            .or_else(|| stdout.recv_timeout(grace).ok())
            .unwrap_or_default(),
        stderr: stderr.recv_timeout(grace).unwrap_or_default(),
    })
}

/// Runs `argv` and waits for it, at most [`command_timeout`].
///
/// # Errors
/// `Missing` when the program is not installed (callers may skip an optional gate), `Spawn`
/// for any other failure to start it. A command that runs past its limit is not an error: it
/// is a failed run whose output says so (a check that does not finish did not pass).
pub fn run(gate: &str, argv: &[String]) -> Result<GateRun, GateError> {
    run_with_timeout(gate, argv, command_timeout())
}

/// One of `gate`'s commands (its check or reload) within the gate's `timeoutSeconds`, else
/// the default limit of [`run`].
///
/// # Errors
/// As [`run`].
pub fn run_for(gate: &supercp_core::resource::Gate, argv: &[String]) -> Result<GateRun, GateError> {
    match gate.timeout_seconds {
        Some(secs) => run_with_timeout(&gate.name, argv, Duration::from_secs(secs.into())),
        None => run(&gate.name, argv),
    }
}

/// [`run`] with its own time limit (a gate that sets one).
///
/// # Errors
/// As [`run`].
pub fn run_with_timeout(
    gate: &str,
    argv: &[String],
    timeout: Duration,
) -> Result<GateRun, GateError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(GateError::Empty {
            gate: gate.to_owned(),
        });
    };
    let output = run_bounded(program, args, timeout).map_err(|source| {
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
    let timed_out = output.status.is_none().then_some(timeout);
    if timed_out.is_some() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "gate {gate}: `{}` did not finish within {}; its process group was killed (find \
             what it waits for, or raise {TIMEOUT_ENV})",
            argv.join(" "),
            limit(timeout)
        ));
    }
    Ok(GateRun {
        success: output.success(),
        output: text,
        timed_out,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    fn alive(pid: i32) -> bool {
        // A killed process whose parent is gone is reaped by init; a zombie counts as gone.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    }

    #[test]
    fn a_command_that_finishes_in_time_gives_its_status_and_output() {
        let run = run_with_timeout(
            "t",
            &sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(10),
        )
        .expect("runs");
        assert!(!run.success);
        assert_eq!(run.timed_out, None);
        assert_eq!(run.output, "out\nerr\n");
        let run = run_with_timeout("t", &sh("true"), Duration::from_secs(10)).expect("runs");
        assert!(run.success);
    }

    #[test]
    fn a_command_past_its_limit_is_killed_with_everything_it_started_and_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let pid_file = dir.path().join("child.pid");
        let script = format!(
            "echo started; sleep 30 & echo $! > {}; wait",
            pid_file.display()
        );
        let started = Instant::now();
        let run =
            run_with_timeout("nginx", &sh(&script), Duration::from_millis(500)).expect("runs");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "returned at its limit, not when the sleep ended: {:?}",
            started.elapsed()
        );
        assert!(!run.success);
        assert_eq!(run.timed_out, Some(Duration::from_millis(500)));
        assert!(run.output.starts_with("started\n"), "{}", run.output);
        assert!(
            run.output.contains(&format!(
                "gate nginx: `sh -c {script}` did not finish within 500 ms"
            )),
            "{}",
            run.output
        );
        let child: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid")
            .trim()
            .parse()
            .expect("a pid");
        let gone = Instant::now();
        while alive(child) && gone.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(child), "the sleep it started was killed too");
    }

    #[test]
    fn a_command_whose_child_keeps_its_output_open_is_killed_at_the_limit() {
        // The shell exits at once; the sleep it left behind holds stdout open.
        let started = Instant::now();
        let ran =
            run_bounded("sh", &["-c", "sleep 30 &"], Duration::from_millis(300)).expect("runs");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(ran.status.is_none() && !ran.success());
    }

    #[test]
    fn a_missing_program_is_missing_not_a_timeout() {
        let err = run("php", &["/nonexistent/supercp-no-such-tool".to_owned()]).unwrap_err();
        assert!(matches!(err, GateError::Missing { .. }), "{err}");
    }

    #[test]
    fn limits_read_as_seconds_or_milliseconds() {
        assert_eq!(limit(Duration::from_secs(120)), "120 s");
        assert_eq!(limit(Duration::from_millis(250)), "250 ms");
    }
}
