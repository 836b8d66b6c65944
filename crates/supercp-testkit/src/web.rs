//! Real nginx and PHP-FPM 8.2 started in the foreground on configs SuperCP rendered under a
//! test prefix, real Linux users removed after the test, and a small HTTP client that talks to
//! the servers the way a browser would (a Host header per request).
//!
//! # Guarantees
//! Every service started here is stopped, and every user created through `Users` is removed,
//! when its guard is dropped (also when the test panics).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A service process the test started; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Service {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Starts `argv` with its output in `log`, then waits until `ready` holds (at most 20 s).
    ///
    /// # Panics
    /// When the program does not start, exits early, or never gets ready: the panic shows its log.
    pub fn start(name: &str, argv: &[&str], log: &Path, ready: impl Fn() -> bool) -> Service {
        let out = std::fs::File::create(log).expect("service log file");
        let err = out.try_clone().expect("service log file");
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({argv:?}): {e}"));
        let mut service = Service {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        };
        let start = Instant::now();
        while !ready() {
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!("{name} exited with {status}:\n{}", service.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{name} did not get ready in 20 s:\n{}",
                service.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        service
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{}: did not stop on SIGTERM, killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx on `conf` (which must set `pid` to `pid_file`), in the foreground.
pub fn start_nginx(nginx: &Path, conf: &Path, pid_file: &Path, port: u16, log: &Path) -> Service {
    let conf = conf.to_string_lossy();
    Service::start(
        "nginx",
        &[&nginx.to_string_lossy(), "-c", &conf, "-g", "daemon off;"],
        log,
        || pid_file_holds_pid(pid_file) && TcpStream::connect(("127.0.0.1", port)).is_ok(),
    )
}

/// php-fpm on `conf` (which must set `pid` to `pid_file`), in the foreground.
pub fn start_php_fpm(php_fpm: &Path, conf: &Path, pid_file: &Path, log: &Path) -> Service {
    let conf = conf.to_string_lossy();
    Service::start(
        "php-fpm",
        &[&php_fpm.to_string_lossy(), "-F", "-O", "-y", &conf],
        log,
        || pid_file_holds_pid(pid_file),
    )
}

fn pid_file_holds_pid(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .map(|t| t.trim().parse::<u32>().is_ok())
        .unwrap_or(false)
}

/// Linux users (and their groups) a test's apply creates; all removed on drop.
pub struct Users {
    pub names: Vec<String>,
}

impl Users {
    /// Names `<prefix><pid><suffix>` that no other test run uses at the same time.
    pub fn new(prefix: &str, suffixes: &[&str]) -> Users {
        let pid = std::process::id() % 100_000;
        let users = Users {
            names: suffixes
                .iter()
                .map(|s| format!("{prefix}{pid}{s}"))
                .collect(),
        };
        // A run killed before its cleanup may have left these behind.
        users.remove_all();
        users
    }

    fn remove_all(&self) {
        for name in &self.names {
            if let Ok(out) = Command::new("userdel").arg(name).output() {
                let err = String::from_utf8_lossy(&out.stderr);
                // A user that still runs processes stays: say so, the next run removes it.
                if !out.status.success() && !err.contains("does not exist") {
                    eprintln!("test users: userdel {name}: {}", err.trim());
                }
            }
            let _ = Command::new("groupdel").arg(name).output();
        }
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// An HTTP response as a client sees it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` with `Host: host` on 127.0.0.1:port over HTTP/1.0. `None` when the server closes
/// the connection without an answer (nginx's 444) or does not answer in 10 s.
pub fn http_get(port: u16, host: &str, path: &str) -> Option<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: supercp-test\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    if raw.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// Polls `check` until it returns `Some` (services reload asynchronously after a signal).
///
/// # Panics
/// After `seconds` without success, with `what` and the last value seen.
pub fn eventually<T: std::fmt::Debug>(
    what: &str,
    seconds: u64,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if start.elapsed() > Duration::from_secs(seconds) => {
                panic!("{what}: not true after {seconds} s; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
