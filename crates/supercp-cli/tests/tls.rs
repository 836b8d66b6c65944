//! HTTPS on real services: SuperCP's nginx (sandbox shape under a temp prefix) and a real ACME
//! CA (pebble, with pebble-challtestsrv answering 127.0.0.1 for every name). pebble validates
//! HTTP-01 against SuperCP's nginx; the test checks what a browser would: the certificate
//! verifies against pebble's root and names the site, plain HTTP redirects, HSTS only over
//! HTTPS. Then renewal, idempotence, a CA that is down, and a bring-your-own certificate whose
//! key does not match.
//!
//! Needs root (nginx's master and workers), nginx, pebble, pebble-challtestsrv, openssl and
//! curl. Under `CI=true` a missing one fails the test; elsewhere it skips, loudly.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::tls::{domain, needs_root, node, started, PACKAGE};
use common::Prefix;
use supercp_testkit::pebble::{Pebble, BLOCKED};
use supercp_testkit::services::free_port;
use supercp_testkit::web::eventually;
use supercp_tls::CertInfo;

/// `curl` for `url`, resolving every name to 127.0.0.1, trusting `ca` (when given); returns
/// (exit status, headers and body, the served certificate chain).
fn curl(url: &str, ca: Option<&Path>) -> (bool, String, String) {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("host");
    let (name, port) = host.split_once(':').expect("port");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "10", "--resolve"])
        .arg(format!("{name}:{port}:127.0.0.1"))
        .args(["-w", "\n--certs--\n%{certs}"]);
    match ca {
        Some(ca) => {
            cmd.arg("--cacert").arg(ca);
        }
        None => {
            cmd.arg("-k");
        }
    }
    let out = cmd.arg(url).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (answer, certs) = text.split_once("\n--certs--\n").unwrap_or((&text, ""));
    let mut answer = answer.to_owned();
    if !out.status.success() {
        answer.push_str(&format!("\ncurl: {}", String::from_utf8_lossy(&out.stderr)));
    }
    (out.status.success(), answer, certs.to_owned())
}

/// The leaf certificate nginx serves for `name`, read without verifying it.
fn served(name: &str, port: u16) -> CertInfo {
    serving(name, port).unwrap_or_else(|e| panic!("{e}"))
}

/// As `served`, or why nothing is served (yet).
fn serving(name: &str, port: u16) -> Result<CertInfo, String> {
    let (_, answer, certs) = curl(&format!("https://{name}:{port}/"), None);
    CertInfo::parse(&certs).map_err(|e| format!("{name}: no certificate served ({e}): {answer}"))
}

/// Waits until nginx serves `name` a certificate that `ok` accepts on every connection for
/// half a second: after `supercp apply` returns, the reload is signalled, and nginx's old
/// workers still accept connections until the new ones are up and the old ones are told to
/// quit (nginx's own 100 ms and more), so a few good answers in a row are not enough.
fn settled(name: &str, port: u16, ok: impl Fn(&CertInfo) -> bool) -> CertInfo {
    eventually(
        &format!("{name} serves the expected certificate"),
        30,
        || {
            let mut last = None;
            for _ in 0..6 {
                let cert = serving(name, port)?;
                if !ok(&cert) {
                    return Err(format!("{cert:?}"));
                }
                last = Some(cert);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            last.ok_or_else(String::new)
        },
    )
}

/// The line of `supercp plan`'s text output about `domain`'s certificate (`tls:…/<domain>/
/// fullchain.pem`), if any.
fn plan_line(plan: &str, domain: &str) -> Option<String> {
    let object = format!("/{domain}/fullchain.pem  (Domain/{domain}");
    plan.lines()
        .find(|l| l.contains(" tls:") && l.contains(&object))
        .map(str::to_owned)
}

/// The newest run's certificate issuing steps (objects `tls:…` that are not placeholders), from
/// `supercp audit`.
fn tls_steps(p: &Prefix) -> Vec<serde_json::Value> {
    let runs = p.supercp(&["audit", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&runs.stdout()).expect("audit json");
    let run = json["runs"][0]["id"].as_i64().expect("a run");
    let detail = p.supercp(&["audit", "--format", "json", "--run", &run.to_string()]);
    let json: serde_json::Value = serde_json::from_str(&detail.stdout()).expect("run json");
    json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["object"].as_str().is_some_and(|o| o.starts_with("tls:")))
        .filter(|s| s["log"][0].as_str().is_some_and(|l| l.starts_with("due:")))
        .cloned()
        .collect()
}

#[test]
fn pebble_issues_certificates_through_supercps_nginx_renews_them_and_survives_a_ca_outage() {
    let test = "pebble_issues_certificates";
    if !needs_root(test) {
        return;
    }
    let (http, https) = (free_port(), free_port());
    let work = tempfile::tempdir().expect("temp dir");
    // Certificates valid for 10 days: "renew 30 days before expiry" would renew them at once,
    // so the node first renews 0 days before, then 20.
    let Some(mut pebble) = Pebble::start(&work.path().join("pebble"), http, 10 * 86_400, test)
    else {
        return;
    };
    // pebble requires an external account binding, as commercial CAs do.
    let base = pebble.node_tls();
    let tls = |renew: u32| format!("{base}    renewDays: {renew}\n");
    let Some(mut site) = started(test, &tls(0), http, https) else {
        return;
    };
    let p = &mut site.p;

    // Two TLS domains: one with an alias, HSTS and the default force-HTTPS; one without.
    let one = domain(
        "one.test",
        "  aliases: [www.one.test]\n  tls:\n    hsts: {maxAge: 600}\n",
    );
    let two = domain("two.test", "  tls: {forceHttps: false}\n");
    let repo = format!("{PACKAGE}{}{one}{two}", domain("plain.test", ""));
    common::write(&p.repo.join("sites.yaml"), &repo);
    let run = p.supercp(&["apply"]);
    run.expect_code(0);
    let steps = tls_steps(p);
    assert_eq!(steps.len(), 2, "two certificates issued: {steps:#?}");
    assert!(steps.iter().all(|s| s["status"] == "done"), "{steps:#?}");

    // HTTPS verifies against pebble's root and the certificate names the site.
    let root = pebble.issuing_root(&work.path().join("root.pem"));
    for name in ["one.test", "two.test"] {
        settled(name, https, |c| !c.placeholder);
    }
    for (name, names) in [
        ("one.test", vec!["one.test", "www.one.test"]),
        ("www.one.test", vec!["one.test", "www.one.test"]),
        ("two.test", vec!["two.test"]),
    ] {
        let (ok, answer, _) = curl(&format!("https://{name}:{https}/"), Some(&root));
        assert!(ok, "{name}: HTTPS verifies against pebble's root: {answer}");
        let cert = served(name, https);
        assert!(!cert.placeholder);
        assert_eq!(cert.names, names, "{name}");
    }
    let first_serial = served("one.test", https).serial;

    // Force HTTPS (path and query kept), HSTS over HTTPS only; ACME answers stay on HTTP.
    let (_, answer, _) = curl(&format!("http://one.test:{http}/a/b?c=d"), None);
    assert!(answer.starts_with("HTTP/1.1 301"), "{answer}");
    assert!(
        answer.contains(&format!("Location: https://one.test:{https}/a/b?c=d")),
        "{answer}"
    );
    assert!(
        !answer
            .to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{answer}"
    );
    let (_, answer, _) = curl(&format!("https://one.test:{https}/"), Some(&root));
    assert!(
        answer.starts_with("HTTP/2 "),
        "HTTP/2 over TLS (ALPN): {answer}"
    );
    assert!(
        answer.contains("strict-transport-security: max-age=600"),
        "{answer}"
    );
    assert!(
        answer.contains("x-content-type-options: nosniff"),
        "the other headers stay: {answer}"
    );
    let (_, answer, _) = curl(&format!("http://two.test:{http}/"), None);
    assert!(
        !answer.starts_with("HTTP/1.1 301"),
        "two.test does not force HTTPS: {answer}"
    );
    let (_, answer, _) = curl(&format!("https://two.test:{https}/"), Some(&root));
    assert!(
        !answer
            .to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{answer}"
    );

    // Idempotence: fresh certificates, nothing issued.
    p.supercp(&["apply"]).expect_code(0);
    assert!(tls_steps(p).is_empty(), "a second apply issues nothing");
    assert_eq!(served("one.test", https).serial, first_serial);
    let plan = p.supercp(&["plan", "--detailed-exitcode"]);
    plan.expect_code(0);
    assert!(plan.stdout().contains("No changes."), "{}", plan.described);

    // Renewal: 20 days before expiry, the 10-day certificates are due; nginx serves new ones.
    // The plan shows them as its only steps, and says so with exit code 2.
    node(p, http, https, &tls(20));
    let plan = p.supercp(&["plan", "--detailed-exitcode"]);
    plan.expect_code(2);
    let out = plan.stdout();
    for name in ["one.test", "two.test"] {
        let line = plan_line(&out, name).unwrap_or_else(|| panic!("{name}: {out}"));
        assert!(
            line.starts_with("~ tls:") && line.ends_with("): expires in 9 days"),
            "{line}"
        );
    }
    assert!(
        out.contains("0 to create, 2 to update, 0 to delete"),
        "only the certificates change: {out}"
    );
    p.supercp(&["apply"]).expect_code(0);
    let steps = tls_steps(p);
    assert_eq!(steps.len(), 2, "{steps:#?}");
    assert!(steps.iter().all(|s| s["action"] == "update"), "{steps:#?}");
    let renewed = settled("one.test", https, |c| c.serial != first_serial);
    assert!(!renewed.placeholder, "nginx serves the renewed certificate");
    node(p, http, https, &tls(0));

    // The CA is down: a new TLS domain gets its placeholder (HTTPS answers, nginx -t passed),
    // the run fails and says why, and the existing certificates keep serving.
    pebble.stop();
    let three = domain("three.test", "  tls: {}\n");
    common::write(&p.repo.join("sites.yaml"), &format!("{repo}{three}"));
    let plan = p.supercp(&["plan"]);
    assert!(
        plan_line(&plan.stdout(), "three.test")
            .is_some_and(|l| l.starts_with("+ tls:") && l.ends_with("): no certificate yet")),
        "plan says which certificate it would order and why: {}",
        plan.described
    );
    let run = p.supercp(&["apply"]);
    assert_ne!(run.code(), 0, "{}", run.described);
    assert!(
        run.stderr().contains("three.test") && run.stderr().contains("not issued"),
        "{}",
        run.described
    );
    let steps = tls_steps(p);
    let failed: Vec<_> = steps.iter().filter(|s| s["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{steps:#?}");
    // (Until the reload is done, the port's first server answers for three.test.)
    let placeholder = settled("three.test", https, |c| c.names == ["three.test"]);
    assert!(placeholder.placeholder, "three.test serves its placeholder");
    assert_eq!(placeholder.names, vec!["three.test"]);
    assert_eq!(
        served("one.test", https).serial,
        renewed.serial,
        "one.test keeps serving"
    );

    // The CA is back (a new pebble: new root, no accounts): the next run issues it.
    pebble.restart();
    p.supercp(&["apply"]).expect_code(0);
    let root = pebble.issuing_root(&work.path().join("root2.pem"));
    settled("three.test", https, |c| !c.placeholder);
    let (ok, answer, _) = curl(&format!("https://three.test:{https}/"), Some(&root));
    assert!(ok, "three.test verifies after the CA came back: {answer}");

    // `supercp cert renew`: a new certificate now, though it is not due.
    let before = served("one.test", https).serial;
    let (repo_dir, node_file) = (
        p.repo.display().to_string(),
        p.node.as_ref().expect("node").display().to_string(),
    );
    let renew = |name: &str| {
        p.supercp(&[
            "cert", "renew", name, "--repo", &repo_dir, "--node", &node_file,
        ])
    };
    renew("one.test").expect_code(0);
    let steps = tls_steps(p);
    assert_eq!(steps.len(), 1, "{steps:#?}");
    assert_eq!(steps[0]["log"][0], "due: renewal asked for");
    settled("one.test", https, |c| c.serial != before);
    let unknown = renew("plain.test");
    assert_ne!(unknown.code(), 0);
    assert!(
        unknown.stderr().contains("cannot renew plain.test"),
        "{}",
        unknown.described
    );

    // A name the CA refuses: the run fails with the CA's error, and the next runs do not ask
    // again until the backoff ends (no retry storm); the site keeps its placeholder.
    let blocked = domain(BLOCKED, "  tls: {}\n");
    common::write(
        &p.repo.join("sites.yaml"),
        &format!("{repo}{three}{blocked}"),
    );
    let run = p.supercp(&["apply"]);
    assert_ne!(run.code(), 0, "{}", run.described);
    let steps = tls_steps(p);
    assert_eq!(steps.len(), 1, "{steps:#?}");
    let log = steps[0]["log"].to_string();
    assert!(
        log.contains("rejectedIdentifier") && log.contains("next attempt after"),
        "{log}"
    );
    let run = p.supercp(&["apply"]);
    run.expect_code(0);
    assert!(
        run.stderr().contains(&format!(
            "certificate not ordered this run: {BLOCKED}: waiting until"
        )),
        "{}",
        run.described
    );
    assert!(
        tls_steps(p).is_empty(),
        "nothing ordered during the backoff"
    );
    // Its files go missing during the backoff: the stand-in comes back (the vhost that points
    // at them keeps passing nginx's check), and still nothing is ordered.
    let blocked_dir = p.sandbox().join("etc/supercp/tls").join(BLOCKED);
    fs::remove_file(blocked_dir.join("fullchain.pem")).expect("rm");
    fs::remove_file(blocked_dir.join("privkey.pem")).expect("rm");
    p.supercp(&["apply"]).expect_code(0);
    assert!(tls_steps(p).is_empty(), "still in its backoff");
    let chain = fs::read_to_string(blocked_dir.join("fullchain.pem")).expect("a stand-in");
    assert!(CertInfo::parse(&chain).expect("cert").placeholder);
    assert!(settled(BLOCKED, https, |c| c.names == [BLOCKED]).placeholder);
    let plan = p.supercp(&["plan", "--detailed-exitcode"]);
    plan.expect_code(0);
    assert!(
        plan_line(&plan.stdout(), BLOCKED).is_some_and(|l| l.starts_with("= tls:")
            && l.contains(
                "): serving the self-signed placeholder; not taken this run: waiting until"
            )),
        "plan shows the backoff, and a held certificate is no change: {}",
        plan.described
    );

    // The names change: an alias added to two.test gets a certificate that names it.
    let two_alias = domain(
        "two.test",
        "  aliases: [alt.two.test]\n  tls: {forceHttps: false}\n",
    );
    let renamed = repo.replace(&two, &two_alias);
    common::write(
        &p.repo.join("sites.yaml"),
        &format!("{renamed}{three}{blocked}"),
    );
    p.supercp(&["apply"]).expect_code(0);
    let steps = tls_steps(p);
    assert_eq!(steps.len(), 1, "{steps:#?}");
    assert_eq!(
        steps[0]["log"][0],
        "due: the certificate does not name alt.two.test"
    );
    settled("alt.two.test", https, |c| {
        c.names == ["two.test", "alt.two.test"]
    });

    // A domain leaves the repo: its key and certificate go with it (after the reload).
    let certs = p.sandbox().join("etc/supercp/tls");
    assert!(certs.join(BLOCKED).join("privkey.pem").is_file());
    common::write(&p.repo.join("sites.yaml"), &format!("{renamed}{three}"));
    p.supercp(&["apply"]).expect_code(0);
    assert!(!certs.join(BLOCKED).exists(), "{BLOCKED}'s key is removed");
    assert!(
        certs.join("three.test/privkey.pem").is_file(),
        "the others keep theirs"
    );
}

#[test]
fn the_agent_issues_a_tls_site_and_its_drift_scan_puts_a_deleted_certificate_back() {
    let test = "agent_tls_drift";
    if !needs_root(test) {
        return;
    }
    let (http, https) = (free_port(), free_port());
    let work = tempfile::tempdir().expect("temp dir");
    let Some(pebble) = Pebble::start(&work.path().join("pebble"), http, 10 * 86_400, test) else {
        return;
    };
    let Some(site) = started(test, &pebble.node_tls(), http, https) else {
        return;
    };
    let p = &site.p;
    // The agent follows the directory (local mode), scanning for drift every 2 s.
    let node = p.node.clone().expect("node");
    let text = fs::read_to_string(&node).expect("node");
    fs::write(
        &node,
        format!("{text}  agent:\n    driftScanSeconds: 2\n    statusBind: \"\"\n"),
    )
    .expect("node");
    common::write(
        &p.repo.join("sites.yaml"),
        &format!(
            "{PACKAGE}{}{}",
            domain("plain.test", ""),
            domain("agent.test", "  tls: {}\n")
        ),
    );
    let repo = [std::ffi::OsStr::new("--repo"), p.repo.as_os_str()];
    let _agent = common::agent::Agent::start(p, &node, &repo, &[]);
    let root = pebble.issuing_root(&work.path().join("root.pem"));
    let issued = settled("agent.test", https, |c| !c.placeholder);
    let (ok, answer, _) = curl(&format!("https://agent.test:{https}/"), Some(&root));
    assert!(ok, "the agent's certificate verifies: {answer}");

    // Someone deletes the certificate: the next drift scan notices (placeholder, then a new
    // certificate), with no commit and no signal.
    let dir = p.sandbox().join("etc/supercp/tls/agent.test");
    fs::remove_file(dir.join("fullchain.pem")).expect("rm");
    fs::remove_file(dir.join("privkey.pem")).expect("rm");
    let again = settled("agent.test", https, |c| {
        !c.placeholder && c.serial != issued.serial
    });
    assert_eq!(again.names, ["agent.test"]);
    let drift = common::agent::wait_for_run(p, "the drift scan that issued it", |r| {
        r["trigger"] == "drift" && r["outcome"] == "succeeded"
    });
    assert_eq!(drift["trigger"], "drift");
}

#[test]
fn a_byo_certificate_whose_key_does_not_match_and_an_eab_key_others_may_read_are_refused() {
    let test = "byo_key_mismatch";
    let mut p = Prefix::empty();
    let certs = p.dir.path().join("certs");
    fs::create_dir_all(&certs).expect("dir");
    let names = vec!["byo.test".to_owned()];
    let a = supercp_tls::placeholder(&names, supercp_core::time::now_ms() / 1000).expect("cert");
    let b = supercp_tls::placeholder(&names, supercp_core::time::now_ms() / 1000).expect("cert");
    fs::write(certs.join("fullchain.pem"), &a.chain_pem).expect("write");
    fs::write(certs.join("privkey.pem"), &b.key_pem).expect("write");
    node(&mut p, free_port(), free_port(), "");
    let byo = domain(
        "byo.test",
        &format!(
            "  tls:\n    certificate: files\n    certFile: {0}/fullchain.pem\n    keyFile: {0}/privkey.pem\n",
            certs.display()
        ),
    );
    common::write(&p.repo.join("sites.yaml"), &format!("{PACKAGE}{byo}"));
    let byo_repo = format!("{PACKAGE}{byo}");
    let run = p.supercp(&["apply"]);
    assert_ne!(run.code(), 0, "{test}: {}", run.described);
    let err = run.stderr();
    assert!(
        err.contains("Domain/byo.test")
            && err.contains("privkey.pem")
            && err.contains("does not match"),
        "{}",
        run.described
    );
    assert!(
        !p.sandbox()
            .join("etc/nginx/sites-enabled/byo.test.conf")
            .exists(),
        "nothing was applied"
    );
    // An EAB key others may read: refused, naming the field, before anything is applied.
    let eab = p.dir.path().join("eab.key");
    fs::write(&eab, "c2VjcmV0\n").expect("write");
    fs::set_permissions(&eab, fs::Permissions::from_mode(0o644)).expect("chmod");
    let (http, https) = (free_port(), free_port());
    let acme = domain("acme.test", "  tls: {}\n");
    node(
        &mut p,
        http,
        https,
        &format!(
            "    acmeEab: {{kid: k, hmacKeyFile: \"{}\"}}\n",
            eab.display()
        ),
    );
    common::write(&p.repo.join("sites.yaml"), &format!("{PACKAGE}{acme}"));
    let run = p.supercp(&["apply"]);
    assert_ne!(run.code(), 0, "{}", run.described);
    assert!(
        run.stderr().contains("tls.acmeEab.hmacKeyFile") && run.stderr().contains("chmod 600"),
        "{}",
        run.described
    );
    assert!(!p
        .sandbox()
        .join("etc/nginx/sites-enabled/acme.test.conf")
        .exists());
    node(&mut p, http, https, "");
    common::write(&p.repo.join("sites.yaml"), &byo_repo);

    // The right key: applied.
    fs::write(certs.join("privkey.pem"), &a.key_pem).expect("write");
    p.supercp(&["apply"]).expect_code(0);
    assert!(p
        .sandbox()
        .join("etc/nginx/sites-enabled/byo.test.conf")
        .is_file());
}

#[test]
fn a_symlinked_certificate_directory_or_key_is_refused_and_nothing_is_written_through_it() {
    let mut p = Prefix::empty();
    // A CA that is not there: no certificate is issued, the placeholder is what is written.
    let ca = format!("    acmeDirectory: https://127.0.0.1:{}/dir\n", free_port());
    node(&mut p, free_port(), free_port(), &ca);
    common::write(
        &p.repo.join("sites.yaml"),
        &format!("{PACKAGE}{}", domain("link.test", "  tls: {}\n")),
    );
    let certs = p.sandbox().join("etc/supercp/tls");
    fs::create_dir_all(&certs).expect("dir");
    let outside = p.dir.path().join("outside");
    fs::create_dir_all(&outside).expect("dir");
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).expect("chmod");
    let listing = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let vhost = p.sandbox().join("etc/nginx/sites-enabled/link.test.conf");

    // The domain's certificate directory is a symlink out of certDir.
    std::os::unix::fs::symlink(&outside, certs.join("link.test")).expect("symlink");
    let run = p.supercp(&["apply"]);
    assert_ne!(run.code(), 0, "{}", run.described);
    assert!(
        run.stderr().contains("link.test") && run.stderr().contains("symlink"),
        "{}",
        run.described
    );
    assert!(listing(&outside).is_empty(), "nothing written through it");
    assert_eq!(
        fs::metadata(&outside).expect("stat").permissions().mode() & 0o777,
        0o755,
        "not chmodded through it"
    );
    assert!(!vhost.exists(), "nothing applied: {}", run.described);

    // A real directory whose key path is a symlink to a file elsewhere.
    fs::remove_file(certs.join("link.test")).expect("rm");
    fs::create_dir(certs.join("link.test")).expect("dir");
    let target = outside.join("victim");
    fs::write(&target, "precious").expect("write");
    std::os::unix::fs::symlink(&target, certs.join("link.test/privkey.pem")).expect("symlink");
    let run = p.supercp(&["apply"]);
    assert_ne!(run.code(), 0, "{}", run.described);
    assert!(
        run.stderr().contains("privkey.pem") && run.stderr().contains("symlink"),
        "{}",
        run.described
    );
    assert_eq!(fs::read_to_string(&target).expect("read"), "precious");
    assert_eq!(listing(&outside), ["victim"]);
    assert_eq!(listing(&certs.join("link.test")), ["privkey.pem"]);
    assert!(!vhost.exists(), "nothing applied: {}", run.described);

    // The link removed: the placeholder is written, mode 0600 in a 0700 directory (the run
    // fails only because the CA does not answer).
    fs::remove_file(certs.join("link.test/privkey.pem")).expect("rm");
    let run = p.supercp(&["apply"]);
    assert!(
        run.stderr().contains("certificate not issued"),
        "{}",
        run.described
    );
    let key = certs.join("link.test/privkey.pem");
    assert_eq!(
        fs::metadata(&key).expect("key").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(certs.join("link.test"))
            .expect("dir")
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert!(
        CertInfo::parse(&fs::read_to_string(certs.join("link.test/fullchain.pem")).expect("chain"))
            .expect("cert")
            .placeholder
    );
}
