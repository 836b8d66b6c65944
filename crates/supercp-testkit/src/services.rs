//! Finding service binaries and free ports.
//!
//! # Guarantees
//! `require` never returns `None` when `CI=true`: a missing binary panics there, so a test that
//! needs a real service fails instead of passing without it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// Where Debian puts binaries that are not on root's `PATH` by default.
const EXTRA_DIRS: &[&str] = &[
    "/usr/sbin",
    "/sbin",
    "/usr/lib/postgresql/15/bin",
    "/usr/local/bin",
];

/// True when running under CI (`CI=true`), where a missing service is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Finds `name` on `PATH` or in the usual Debian locations.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Finds a service binary a test needs.
///
/// Returns `None` (after a loud line on stderr) when it is missing outside CI, so the test can
/// return early. Under `CI=true` a missing binary panics: CI must install every service.
pub fn require(name: &str, test: &str) -> Option<PathBuf> {
    match find_binary(name) {
        Some(path) => Some(path),
        None if in_ci() => panic!(
            "{test}: `{name}` is not installed and CI=true requires every service; \
             run the README's test command, which installs it"
        ),
        None => {
            eprintln!("SKIPPED {test}: `{name}` is not installed (under CI=true this fails)");
            None
        }
    }
}

/// True when the test runs as root (needed for chown and for starting services as other users).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    // Binding port 0 asks the kernel for a free port; the listener closes when dropped.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 must work on any test machine")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
