//! A throwaway PostgreSQL server per test: Debian's `initdb` and `pg_ctl` under a temp dir,
//! listening on 127.0.0.1 and a socket in that dir, trusting every local connection.
//!
//! It owns only that server and its files; it knows nothing of SuperCP's schema.
//!
//! # Guarantees
//! The server is stopped (`pg_ctl stop -m immediate`) and its files removed when the
//! [`Postgres`] is dropped, also when the test panics.
//!
//! # Assumptions
//! As root, a `postgres` system user exists (Debian's `postgresql` package creates it): `initdb`
//! and `pg_ctl` refuse to run as root, so they run as that user through `runuser`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::services::{free_port, in_ci, is_root, require};

/// A running PostgreSQL server, stopped on drop.
#[derive(Debug)]
pub struct Postgres {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`: the superuser, no password.
    pub url: String,
    pub port: u16,
    dir: TempDir,
    pg_ctl: PathBuf,
    psql: PathBuf,
    /// Run server commands as the `postgres` user (we are root).
    as_postgres: bool,
    started: bool,
}

impl Postgres {
    /// Starts a fresh server for `test`.
    ///
    /// Returns `None` (after a loud line on stderr) when the PostgreSQL binaries or, as root,
    /// the `postgres` user are missing, so the test can return early; under `CI=true` that
    /// panics instead.
    ///
    /// # Panics
    /// When a command fails: the message holds the command, its output and the server log.
    pub fn start(test: &str) -> Option<Postgres> {
        let initdb = require("initdb", test)?;
        let pg_ctl = require("pg_ctl", test)?;
        let psql = require("psql", test)?;
        let as_postgres = is_root();
        let owner = if as_postgres {
            require("runuser", test)?;
            Some(postgres_user(test)?)
        } else {
            None
        };

        let dir = tempfile::Builder::new()
            .prefix("supercp-pg-")
            .tempdir()
            .expect("creating a temp dir must work on any test machine");
        let sock = dir.path().join("sock");
        fs::create_dir(&sock).expect("creating a dir inside a fresh temp dir");
        // The postgres user must be able to reach its data dir, socket dir and log.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .expect("chmod of a fresh temp dir");
        if let Some(user) = &owner {
            for path in [dir.path(), sock.as_path()] {
                nix::unistd::chown(path, Some(user.uid), Some(user.gid))
                    .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", path.display()));
            }
        }

        let mut pg = Postgres {
            url: String::new(),
            port: 0,
            dir,
            pg_ctl,
            psql,
            as_postgres,
            started: false,
        };
        let data = pg.data_dir();
        let mut initdb = pg.server_command(&initdb);
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            // Test data need not survive a power cut.
            .arg("--no-sync");
        pg.check(&mut initdb);

        // free_port() can race with another test taking the same port; retry on that only.
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off",
                sock.display()
            );
            let mut start = pg.server_command(&pg.pg_ctl);
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(pg.log_path())
                .arg("-w")
                .arg("-o")
                .arg(options)
                .arg("start");
            let output = run(&mut start);
            if output.status.success() {
                pg.started = true;
                pg.port = port;
                pg.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
                return Some(pg);
            }
            if attempt == ATTEMPTS || !pg.log().contains("could not bind") {
                // pg_ctl may have given up waiting on a server that is still starting.
                pg.started = true;
                pg.fail(&start, &output);
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    /// Creates database `name` and returns its URL.
    ///
    /// # Panics
    /// When `name` is not a plain lowercase identifier (`[a-z_][a-z0-9_]*`), or `psql` fails.
    pub fn create_database(&self, name: &str) -> String {
        let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        assert!(plain, "database name `{name}` must match [a-z_][a-z0-9_]*");
        let mut psql = Command::new(&self.psql);
        psql.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .arg("-p")
        .arg(self.port.to_string())
        .args(["-d", "postgres", "-c"])
        .arg(format!("CREATE DATABASE {name}"));
        self.check(&mut psql);
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The server log so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(no server log: {e})"))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// A command for a server binary, as the `postgres` user when we are root.
    fn server_command(&self, program: &Path) -> Command {
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        // The postgres user may not be allowed into the test's working directory.
        command.current_dir(self.dir.path());
        command
    }

    fn check(&self, command: &mut Command) -> Output {
        let output = run(command);
        if !output.status.success() {
            self.fail(command, &output);
        }
        output
    }

    fn fail(&self, command: &Command, output: &Output) -> ! {
        panic!(
            "{command:?} failed with {}\n--- stdout\n{}\n--- stderr\n{}\n--- server log {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log_path().display(),
            self.log(),
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        let mut stop = self.server_command(&self.pg_ctl);
        stop.arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"]);
        // No panic in drop: it may run while a failing test unwinds.
        match stop.output() {
            Ok(output) if output.status.success() => {}
            Ok(output) => eprintln!(
                "{stop:?} failed with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(e) => eprintln!("cannot run {stop:?}: {e}"),
        }
    }
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// The `postgres` system user, or `None` (skip) when it is missing outside CI.
fn postgres_user(test: &str) -> Option<nix::unistd::User> {
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(user)) => Some(user),
        _ if in_ci() => panic!(
            "{test}: running as root needs the `postgres` system user and CI=true requires \
             every service; install the `postgresql` package"
        ),
        _ => {
            eprintln!("SKIPPED {test}: running as root needs the `postgres` system user");
            None
        }
    }
}
