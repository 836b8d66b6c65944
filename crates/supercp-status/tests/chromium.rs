//! The pages in a real browser: headless Chromium (Debian package `chromium`) loads each page
//! from a real server on 127.0.0.1, and the tests read the DOM it built (`--dump-dom`), the
//! console messages it logged on stderr, and a screenshot of the overview.
//!
//! Chromium logs every console message of a page as a stderr line holding `CONSOLE` under
//! `--enable-logging=stderr --v=0`; a negative control page that calls `console.error` proves
//! the check can fail. Under `CI=true` a missing `chromium` fails the tests; elsewhere they skip
//! loudly (`supercp_testkit::services::require`).

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::response::Html;
use axum::routing::get;
use common::{percent, Server, COMMIT_APPLIED, COMMIT_CURRENT, EVIL, NODE};

/// One Chromium at a time: the machine is small and each instance starts several processes.
static BROWSER: Mutex<()> = Mutex::new(());

const NEGATIVE_CONTROL: &str = "/test-only/console-error";
const CONTROL_MARKER: &str = "supercp-negative-control-7f3a";

#[test]
fn chromium_renders_every_page_without_console_messages() {
    let Some(chromium) = supercp_testkit::services::require(
        "chromium",
        "chromium_renders_every_page_without_console_messages",
    ) else {
        return;
    };
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start_with(
        None,
        axum::Router::new().route(
            NEGATIVE_CONTROL,
            get(|| async {
                Html(format!(
                    "<!DOCTYPE html><title>control</title><script>console.error(\"{CONTROL_MARKER}\")</script><p>control</p>"
                ))
            }),
        ),
    );

    // The negative control: a page that logs an error must show up, or the check below is void.
    let control = load(&chromium, &server.url(NEGATIVE_CONTROL), &[]);
    assert!(
        control
            .console_lines()
            .iter()
            .any(|l| l.contains(CONTROL_MARKER)),
        "Chromium logged no CONSOLE line for the negative control, so the console check would \
         prove nothing:\n{}",
        control.report()
    );

    let r = server.runs;
    let pages: Vec<(String, Vec<String>)> = vec![
        (
            "/".into(),
            vec![
                NODE.into(),
                COMMIT_APPLIED.into(),
                COMMIT_CURRENT.into(),
                "Domain".into(),
                format!("#{}", r.failed),
            ],
        ),
        (
            "/runs".into(),
            vec![
                format!("#{}", r.applied),
                "drift".into(),
                "no changes".into(),
            ],
        ),
        (
            format!("/runs/{}", r.applied),
            vec![
                "Steps (5)".into(),
                "user:acme".into(),
                "file:/etc/nginx/sites-enabled/acme.test.conf".into(),
                "tenants/acme.yaml:9:1".into(),
                "applied step 3".into(),
                // The text a user reads: the markup shown, not run.
                "log line &lt;script&gt;alert(1)&lt;/script&gt;&amp;\"'".into(),
            ],
        ),
        (
            "/resources".into(),
            vec!["acme.test".into(), "3 of 3 resources".into()],
        ),
        (
            "/resources/Domain/acme.test".into(),
            vec![
                "Domain/acme.test".into(),
                "/srv/homes/acme/domains/acme.test".into(),
                "put back by the drift scan".into(),
            ],
        ),
        (
            format!("/resources/Tenant/{}", percent(EVIL)),
            vec!["Tenant/&lt;script&gt;".into()],
        ),
    ];
    let mut timings = Vec::new();
    for (path, expected) in &pages {
        let page = load(&chromium, &server.url(path), &[]);
        let dom = &page.stdout;
        assert!(
            dom.contains("</html>"),
            "{path}: no DOM dumped\n{}",
            page.report()
        );
        for text in expected {
            assert!(
                dom.contains(text.as_str()),
                "{path}: the DOM lacks `{text}`\n{}",
                page.report()
            );
        }
        assert!(
            !dom.to_ascii_lowercase().contains("<script"),
            "{path}: the browser built a script element\n{}",
            page.report()
        );
        assert!(
            page.console_lines().is_empty(),
            "{path}: the page logged to the console:\n{}",
            page.report()
        );
        timings.push(format!("{path}: {} ms", page.elapsed.as_millis()));
    }
    eprintln!("chromium --dump-dom per page: {}", timings.join(", "));
}

#[test]
fn chromium_screenshots_the_overview() {
    let Some(chromium) =
        supercp_testkit::services::require("chromium", "chromium_screenshots_the_overview")
    else {
        return;
    };
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(None);
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    // The overview is the one asked for; the run page comes along for whoever reviews CI.
    for (path, file) in [
        ("/".to_owned(), "status-overview.png"),
        (format!("/runs/{}", server.runs.applied), "status-run.png"),
    ] {
        let png = dir.join(file);
        let _ = std::fs::remove_file(&png);
        let shot = load(
            &chromium,
            &server.url(&path),
            &[
                &format!("--screenshot={}", png.display()),
                "--window-size=1200,900",
                "--hide-scrollbars",
            ],
        );
        let bytes = std::fs::read(&png)
            .unwrap_or_else(|e| panic!("read {}: {e}\n{}", png.display(), shot.report()));
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            png.display()
        );
        let width = u32::from_be_bytes(bytes[16..20].try_into().expect("four bytes"));
        let height = u32::from_be_bytes(bytes[20..24].try_into().expect("four bytes"));
        assert_eq!((width, height), (1200, 900), "{}", png.display());
        // A blank 1200×900 page compresses to a few KB; text, tables and colours take far more.
        assert!(
            bytes.len() > 20_000,
            "{} is only {} bytes: the page looks blank",
            png.display(),
            bytes.len()
        );
        assert!(
            shot.console_lines().is_empty(),
            "{path} logged to the console:\n{}",
            shot.report()
        );
        eprintln!(
            "screenshot of {path}: {} ({} bytes) in {} ms",
            png.display(),
            bytes.len(),
            shot.elapsed.as_millis()
        );
    }
}

/// What one Chromium run left.
struct Load {
    command: String,
    status: String,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Load {
    /// The console messages the page logged.
    fn console_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.contains("CONSOLE"))
            .collect()
    }

    fn report(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs headless Chromium on `url` with a fresh profile and HOME, `--dump-dom` unless `extra`
/// asks for a screenshot; kills it after a minute.
fn load(chromium: &Path, url: &str, extra: &[&str]) -> Load {
    let temp = tempfile::tempdir().expect("a temp dir");
    let home = temp.path().join("home");
    let profile = temp.path().join("profile");
    std::fs::create_dir_all(&home).expect("create HOME");
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend(extra.iter().map(|s| s.to_string()));
    if !extra.iter().any(|a| a.starts_with("--screenshot")) {
        args.push("--dump-dom".into());
    }
    args.push(url.into());
    let command = format!(
        "HOME={} {} {}",
        home.display(),
        chromium.display(),
        args.join(" ")
    );

    let out_path = temp.path().join("stdout");
    let err_path = temp.path().join("stderr");
    let started = Instant::now();
    let mut child = Command::new(chromium)
        .args(&args)
        .env("HOME", &home)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create the stdout file"))
        .stderr(File::create(&err_path).expect("create the stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("start {command}: {e}"));
    let deadline = started + Duration::from_secs(60);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.to_string(),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break "killed after 60 s".to_owned();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("wait for {command}: {e}"),
        }
    };
    let elapsed = started.elapsed();
    let load = Load {
        command,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        status,
        elapsed,
    };
    assert!(
        load.status.contains("exit status: 0"),
        "Chromium failed:\n{}",
        load.report()
    );
    load
}

/// `<target>/test-artifacts`, beside the `tmp` directory Cargo gives integration tests.
fn artifacts_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("test-artifacts")
}
