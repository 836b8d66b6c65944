//! Web hosting on real services: SuperCP renders nginx's and PHP-FPM 8.2's configs under a
//! temp prefix, creates real Linux users, and the test talks to the real servers over HTTP.
//!
//! Needs root (users, chown, pools running as tenants), nginx and php-fpm8.2 (and php8.2 for
//! the socket check). Under `CI=true` a missing one fails the test; elsewhere it skips, loudly.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Run;
use supercp_testkit::services::{free_port, in_ci, is_root, require};
use supercp_testkit::web::{eventually, http_get, start_nginx, start_php_fpm, Service, Users};

/// Two tenants, four domains, on real nginx and PHP-FPM.
///
/// Fields drop in order: the services stop before the users are removed (`userdel` refuses a
/// user that still runs a pool's workers), and the temp dir goes last.
struct Web {
    services: Vec<Service>,
    users: Users,
    dir: tempfile::TempDir,
    /// The node's `root`: every rendered path is below it.
    root: PathBuf,
    repo: PathBuf,
    state: PathBuf,
    node: PathBuf,
    port: u16,
    nginx_bin: PathBuf,
    fpm_bin: PathBuf,
    /// Extra node spec lines (a template override).
    extra: String,
    uid_min: u32,
}

const DOMAINS_A: &[&str] = &["alpha.test", "beta.test"];
const DOMAINS_B: &[&str] = &["gamma.test", "delta.test"];
const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example";

impl Web {
    /// `None` (a loud skip) outside CI when not root or a service is missing.
    fn new(test: &str, index: u32) -> Option<Web> {
        if !is_root() {
            assert!(
                !in_ci(),
                "{test}: CI=true requires root (users, chown, pools)"
            );
            eprintln!("SKIPPED {test}: needs root");
            return None;
        }
        let nginx_bin = require("nginx", test)?;
        let fpm_bin = require("php-fpm8.2", test)?;
        let dir = tempfile::tempdir().expect("temp dir");
        // nginx's workers (www-data) and the tenants walk down to their homes from here.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let root = dir.path().join("root");
        fs::create_dir(&root).expect("root");
        let web = Web {
            root,
            repo: dir.path().join("repo"),
            state: dir.path().join("state"),
            node: dir.path().join("node.yaml"),
            port: free_port(),
            users: Users::new("scw", &[&format!("{index}a"), &format!("{index}b")]),
            nginx_bin,
            fpm_bin,
            services: Vec::new(),
            extra: String::new(),
            uid_min: 41_000 + index * 50,
            dir,
        };
        web.write_node();
        web.write_repo(false);
        Some(web)
    }

    fn a(&self) -> &str {
        &self.users.names[0]
    }

    fn b(&self) -> &str {
        &self.users.names[1]
    }

    fn write_node(&self) {
        let text = format!(
            r#"apiVersion: supercp/v1
kind: Node
metadata:
  name: webtest
spec:
  roles: [web]
  root: "{root}"
  manageOwnership: true
  homeDir: /home
  logDir: /var/log/supercp
  logrotate: /etc/logrotate.d/supercp
  accounts: {{ uidMin: {min}, uidMax: {max} }}
  cron: {{ spoolDir: /var/spool/cron/crontabs, group: root }}
{extra}  web:
    sitesDir: /etc/nginx/sites-enabled
    mainConfig: /etc/nginx/nginx.conf
    httpConfig: /etc/nginx/conf.d/supercp.conf
    listen: ["127.0.0.1:{port}"]
    user: www-data
    siteLogs: Domain
  php:
    versions: ["8.2"]
    poolDir: "/etc/php/{{version}}/fpm/pool.d"
    socketDir: /run/php
    mainConfig: "/etc/php/{{version}}/fpm/php-fpm.conf"
  gates:
    - name: nginx
      check: [nginx, -t, -q, -c, "{{root}}/etc/nginx/nginx.conf", -e, "{{root}}/var/log/nginx/error.log"]
      reloadSignal: {{ pidFile: "{{root}}/run/nginx.pid", signal: HUP }}
    - name: php-fpm
      check: [php-fpm8.2, -t, -y, "{{root}}/etc/php/8.2/fpm/php-fpm.conf"]
      reloadSignal: {{ pidFile: "{{root}}/run/php8.2-fpm.pid", signal: USR2 }}
"#,
            root = self.root.display(),
            min = self.uid_min,
            max = self.uid_min + 49,
            port = self.port,
            extra = self.extra,
        );
        common::write(&self.node, &text);
    }

    /// The repo: tenant A (PHP, SSH key, cron) with alpha.test (PHP, alias, redirect) and
    /// beta.test (static); tenant B (PHP) with gamma.test (PHP) and delta.test (static).
    fn write_repo(&self, a_suspended: bool) {
        let (a, b) = (self.a(), self.b());
        let text = format!(
            r#"apiVersion: supercp/v1
kind: Package
metadata: {{name: basic}}
spec: {{maxDomains: 4, maxPhpWorkers: 4, diskQuotaMb: 1}}
---
apiVersion: supercp/v1
kind: Tenant
metadata: {{name: {a}}}
spec:
  package: basic
  php: {{version: "8.2", maxChildren: 2}}
  shell: /bin/bash
  sshKeys: ["{SSH_KEY}"]
  cron: [{{schedule: "*/5 * * * *", command: "php -r 1"}}]
  suspended: {a_suspended}
---
apiVersion: supercp/v1
kind: Tenant
metadata: {{name: {b}}}
spec:
  package: basic
  php: {{version: "8.2", maxChildren: 2, pm: dynamic}}
---
apiVersion: supercp/v1
kind: Domain
metadata: {{name: alpha.test}}
spec:
  tenant: {a}
  aliases: [www.alpha.test]
  php: true
  redirects: [{{from: /old, to: /new, code: 301}}]
---
apiVersion: supercp/v1
kind: Domain
metadata: {{name: beta.test}}
spec: {{tenant: {a}}}
---
apiVersion: supercp/v1
kind: Domain
metadata: {{name: gamma.test}}
spec: {{tenant: {b}, php: true}}
---
apiVersion: supercp/v1
kind: Domain
metadata: {{name: delta.test}}
spec: {{tenant: {b}}}
"#
        );
        common::write(&self.repo.join("hosting.yaml"), &text);
    }

    fn supercp(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_supercp"));
        cmd.arg("--state").arg(&self.state).args(args);
        if matches!(args.first(), Some(&"validate" | &"plan" | &"apply")) {
            cmd.arg("--repo").arg(&self.repo);
        }
        cmd.arg("--node").arg(&self.node);
        let output = cmd.output().expect("the supercp binary runs");
        let described = common::describe(&cmd, &output, self.dir.path());
        Run { output, described }
    }

    fn home(&self, tenant: &str) -> PathBuf {
        self.root.join("home").join(tenant)
    }

    fn docroot(&self, tenant: &str, domain: &str) -> PathBuf {
        self.home(tenant)
            .join("domains")
            .join(domain)
            .join("public_html")
    }

    fn socket(&self, tenant: &str) -> PathBuf {
        self.root.join("run/php").join(format!("{tenant}.sock"))
    }

    /// A file written the way the tenant would: owned by it, 0644.
    fn tenant_file(&self, tenant: &str, path: &Path, content: &str) {
        fs::write(path, content).expect("write tenant file");
        let (uid, gid) = ids(tenant);
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("chown");
    }

    /// Every site gets an index.html naming it; PHP sites a whoami.php and a read.php.
    fn publish(&self) {
        for (tenant, domains) in [(self.a(), DOMAINS_A), (self.b(), DOMAINS_B)] {
            for domain in domains {
                let docroot = self.docroot(tenant, domain);
                self.tenant_file(
                    tenant,
                    &docroot.join("index.html"),
                    &format!("site {domain}\n"),
                );
                self.tenant_file(
                    tenant,
                    &docroot.join("whoami.php"),
                    "<?php echo posix_getpwuid(posix_geteuid())['name'];",
                );
                self.tenant_file(
                    tenant,
                    &docroot.join("read.php"),
                    "<?php $f = $_GET['f'];\n\
                     if (!str_starts_with($f, '/')) { $f = __DIR__ . '/' . $f; }\n\
                     $r = @file_get_contents($f);\n\
                     echo $r === false ? 'DENIED' : 'READ:' . $r;\n",
                );
            }
        }
    }

    fn start_services(&mut self) {
        let nginx = start_nginx(
            &self.nginx_bin,
            &self.root.join("etc/nginx/nginx.conf"),
            &self.root.join("run/nginx.pid"),
            self.port,
            &self.dir.path().join("nginx.out"),
        );
        let fpm = start_php_fpm(
            &self.fpm_bin,
            &self.root.join("etc/php/8.2/fpm/php-fpm.conf"),
            &self.root.join("run/php8.2-fpm.pid"),
            &self.dir.path().join("php-fpm.out"),
        );
        self.services.push(nginx);
        self.services.push(fpm);
    }

    /// First apply, content, services: the state every test starts from.
    fn up(test: &str, index: u32) -> Option<Web> {
        let mut web = Web::new(test, index)?;
        web.supercp(&["apply"]).expect_code(0);
        web.publish();
        web.start_services();
        Some(web)
    }

    fn get(&self, host: &str, path: &str) -> Option<supercp_testkit::web::Response> {
        http_get(self.port, host, path)
    }

    /// Waits until `host` answers `path` with `status` and a body containing `text` (a reload
    /// by signal takes effect a moment after apply returns).
    fn expect_page(&self, host: &str, path: &str, status: u16, text: &str) {
        eventually(
            &format!("http://{host}{path} → {status} {text:?}"),
            15,
            || match self.get(host, path) {
                Some(r) if r.status == status && r.body.contains(text) => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
    }
}

fn ids(user: &str) -> (u32, u32) {
    let u = nix::unistd::User::from_name(user)
        .expect("getpwnam")
        .unwrap_or_else(|| panic!("user {user} exists"));
    (u.uid.as_raw(), u.gid.as_raw())
}

/// Runs `argv` as `user` (its uid, gid and no other groups).
fn run_as(user: &str, argv: &[&str]) -> std::process::Output {
    let (uid, gid) = ids(user);
    Command::new(argv[0])
        .args(&argv[1..])
        .uid(uid)
        .gid(gid)
        .output()
        .expect("command runs")
}

fn query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn two_tenants_four_domains_serve_static_php_aliases_and_redirects() {
    let Some(web) = Web::up("two_tenants_four_domains_serve", 0) else {
        return;
    };
    for (tenant, domains) in [(web.a(), DOMAINS_A), (web.b(), DOMAINS_B)] {
        for domain in domains {
            web.expect_page(domain, "/", 200, &format!("site {domain}"));
            let r = web.get(domain, "/index.html").expect("an answer");
            assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"), "{r:?}");
            assert_eq!(r.header("X-Frame-Options"), Some("SAMEORIGIN"), "{r:?}");
            assert!(r.header("Referrer-Policy").is_some(), "{r:?}");
            let php = web.get(domain, "/whoami.php").expect("an answer");
            if ["alpha.test", "gamma.test"].contains(domain) {
                assert_eq!(
                    (php.status, php.body.as_str()),
                    (200, tenant),
                    "{domain}: PHP runs as its own tenant"
                );
            } else {
                assert!(
                    !php.body.contains(tenant) && php.body.contains("posix_getpwuid"),
                    "{domain} has PHP off: the source is served as a file, never run: {php:?}"
                );
            }
        }
    }
    web.expect_page("www.alpha.test", "/", 200, "site alpha.test");
    let r = web.get("alpha.test", "/old?x=1&y=2").expect("an answer");
    assert_eq!(r.status, 301, "{r:?}");
    let location = format!("http://alpha.test:{}/new?x=1&y=2", web.port);
    assert_eq!(r.header("Location"), Some(location.as_str()), "{r:?}");
    assert!(
        web.get("unknown.test", "/").is_none(),
        "an unknown Host gets no site (444 closes the connection)"
    );
    // Hidden files are never served, nor hidden PHP run; /.well-known/ stays reachable.
    for (tenant, domain) in [(web.a(), "alpha.test"), (web.a(), "beta.test")] {
        let docroot = web.docroot(tenant, domain);
        web.tenant_file(tenant, &docroot.join(".env"), "SECRET=1\n");
        let git = docroot.join(".git");
        fs::create_dir(&git).expect("mkdir");
        web.tenant_file(tenant, &git.join("x.php"), "<?php echo 'RAN';");
        web.tenant_file(tenant, &git.join("config"), "SECRET=2\n");
        let known = docroot.join(".well-known");
        fs::create_dir(&known).expect("mkdir");
        web.tenant_file(tenant, &known.join("security.txt"), "Contact: ops\n");
        for path in [
            "/.env",
            "/.git/x.php",
            "/.git/config",
            "/sub/../.env",
            "/%2eenv",
        ] {
            let r = web.get(domain, path).expect("an answer");
            assert!(
                r.status >= 400 && !r.body.contains("SECRET") && !r.body.contains("RAN"),
                "{domain}{path} is not served: {r:?}"
            );
        }
        web.expect_page(domain, "/.well-known/security.txt", 200, "Contact: ops");
    }

    // The layout and modes on disk.
    let mode = |p: &Path| fs::metadata(p).expect("stat").mode() & 0o7777;
    let a = web.a();
    assert_eq!(mode(&web.home(a)), 0o750);
    assert_eq!(fs::metadata(web.home(a)).expect("stat").uid(), ids(a).0);
    let keys = web.home(a).join(".ssh/authorized_keys");
    assert_eq!(mode(&keys), 0o600);
    assert!(fs::read_to_string(&keys).expect("keys").contains(SSH_KEY));
    let crontab = web.root.join("var/spool/cron/crontabs").join(a);
    assert_eq!(fs::metadata(&crontab).expect("crontab").uid(), ids(a).0);
    assert!(fs::read_to_string(&crontab)
        .expect("crontab")
        .contains("\n*/5 * * * * php -r 1\n"));
    let logs = web.root.join("var/log/supercp").join(a);
    assert_eq!(
        (fs::metadata(&logs).expect("logs").uid(), mode(&logs)),
        (0, 0o750),
        "nginx's logs for a tenant live in a root-owned dir"
    );
    eventually("alpha.test's access log has the requests", 5, || {
        let log = fs::read_to_string(logs.join("alpha.test.access.log")).unwrap_or_default();
        if log.contains("GET /whoami.php") {
            Ok(())
        } else {
            Err(log)
        }
    });
    let passwd = nix::unistd::User::from_name(a)
        .expect("getpwnam")
        .expect("user");
    assert_eq!(passwd.shell, PathBuf::from("/bin/bash"));
    assert!(
        (web.uid_min..web.uid_min + 50).contains(&passwd.uid.as_raw()),
        "uid from the node's range"
    );

    // Usage against the package: A goes over its 1 MiB disk quota, B does not.
    let big = web.home(a).join("big.bin");
    web.tenant_file(a, &big, &"x".repeat(2 << 20));
    let repo = web.repo.to_string_lossy().into_owned();
    let status = web.supercp(&["status", "--repo", &repo]);
    status.expect_code(0);
    let text = status.stdout();
    let line = |t: &str| {
        text.lines()
            .find(|l| l.starts_with(t))
            .unwrap_or_else(|| panic!("a line for {t}\n{text}"))
            .to_owned()
    };
    assert!(
        line(a).contains(" 2/4 "),
        "domains and workers of 4: {text}"
    );
    assert!(line(a).ends_with("over disk quota"), "{text}");
    assert!(line(web.b()).ends_with("ok"), "{text}");
    let json = web.supercp(&["status", "--repo", &repo, "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&json.stdout()).expect("json");
    let tenant = &json["tenants"][0];
    assert_eq!(tenant["tenant"], a);
    assert_eq!(
        (&tenant["domains"], &tenant["php_workers"]),
        (&2.into(), &2.into())
    );
    assert!(
        tenant["disk_bytes"].as_u64().unwrap_or(0) > 2 << 20,
        "{json}"
    );
}

#[test]
fn tenants_cannot_read_each_other() {
    let Some(web) = Web::up("tenants_cannot_read_each_other", 1) else {
        return;
    };
    let Some(php_cli) = require("php8.2", "tenants_cannot_read_each_other") else {
        return;
    };
    let (a, b) = (web.a().to_owned(), web.b().to_owned());
    let secret = web.docroot(&b, "gamma.test").join("secret.txt");
    web.tenant_file(&b, &secret, "B's secret\n");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o640)).expect("chmod");
    web.expect_page("gamma.test", "/secret.txt", 200, "B's secret");

    let read = |path: &str| {
        web.get("alpha.test", &format!("/read.php?f={}", query(path)))
            .expect("an answer")
    };
    // The page works: A reads its own file.
    assert_eq!(read("index.html").body, "READ:site alpha.test\n");
    let absolute = read(&secret.to_string_lossy());
    assert_eq!(absolute.body, "DENIED", "by absolute path: {absolute:?}");
    let dotdot = format!("../../../../{b}/domains/gamma.test/public_html/secret.txt");
    assert_eq!(read(&dotdot).body, "DENIED", "through ..");
    let link = web.docroot(&a, "alpha.test").join("link.txt");
    std::os::unix::fs::symlink(&secret, &link).expect("symlink");
    let (uid, gid) = ids(&a);
    std::os::unix::fs::lchown(&link, Some(uid), Some(gid)).expect("lchown");
    assert_eq!(read("link.txt").body, "DENIED", "through A's own symlink");
    let served = web.get("alpha.test", "/link.txt").expect("an answer");
    assert!(
        served.status != 200 && !served.body.contains("B's secret"),
        "nginx does not serve A's symlink to B's file: {served:?}"
    );
    assert_eq!(read("/etc/shadow").body, "DENIED", "/etc/shadow");

    // A's Linux user cannot list or read B's home.
    let ls = run_as(&a, &["ls", &web.home(&b).to_string_lossy()]);
    assert!(!ls.status.success(), "A lists B's home: {ls:?}");
    let cat = run_as(&a, &["cat", &secret.to_string_lossy()]);
    assert!(!cat.status.success(), "A reads B's file: {cat:?}");

    // Only nginx's user may connect to a pool's socket.
    let connect = format!(
        "exit(@stream_socket_client('unix://{}', $e, $s, 2) ? 0 : 7);",
        web.socket(&a).display()
    );
    let php = php_cli.to_string_lossy().into_owned();
    let as_b = run_as(&b, &[&php, "-r", &connect]);
    assert_eq!(
        as_b.status.code(),
        Some(7),
        "B connects to A's pool: {as_b:?}"
    );
    let as_nginx = run_as("www-data", &[&php, "-r", &connect]);
    assert_eq!(
        as_nginx.status.code(),
        Some(0),
        "the check itself works: nginx's user connects: {as_nginx:?}"
    );
}

#[test]
fn suspension_stops_sites_pool_cron_and_ssh_and_lifting_it_restores_them() {
    let Some(web) = Web::up("suspension", 2) else {
        return;
    };
    let a = web.a().to_owned();
    web.expect_page("alpha.test", "/whoami.php", 200, &a);
    web.write_repo(true);
    web.supercp(&["apply"]).expect_code(0);
    // nginx's old worker may still answer for a moment after the reload signal: wait for one
    // sweep that only the new config answers, then every request must get the 503 page.
    let sweep = || -> Result<(), String> {
        for domain in DOMAINS_A {
            for path in ["/", "/index.html", "/whoami.php", "/read.php?f=index.html"] {
                let r = web.get(domain, path).ok_or("no answer")?;
                if r.status != 503 || r.body.contains(&format!("site {domain}")) {
                    return Err(format!("{domain}{path}: {r:?}"));
                }
            }
        }
        Ok(())
    };
    eventually("every page of A answers 503", 15, sweep);
    sweep().unwrap_or_else(|e| panic!("no tenant content once suspended: {e}"));
    web.expect_page("gamma.test", "/", 200, "site gamma.test");
    let pool = web
        .root
        .join("etc/php/8.2/fpm/pool.d")
        .join(format!("{a}.conf"));
    assert!(!pool.exists(), "the pool file is gone");
    eventually("A's pool socket is gone", 15, || {
        if web.socket(&a).exists() {
            Err("socket still there".to_owned())
        } else {
            Ok(())
        }
    });
    let passwd = nix::unistd::User::from_name(&a)
        .expect("getpwnam")
        .expect("user");
    assert_eq!(
        passwd.shell,
        PathBuf::from("/usr/sbin/nologin"),
        "SSH login off"
    );
    assert!(
        expiry(&a).is_some(),
        "the account is expired: PAM refuses SSH and cron"
    );
    let keys = fs::read_to_string(web.home(&a).join(".ssh/authorized_keys")).expect("keys");
    assert!(!keys.contains("ssh-ed25519"), "no key left: {keys}");
    let crontab =
        fs::read_to_string(web.root.join("var/spool/cron/crontabs").join(&a)).expect("crontab");
    assert!(
        crontab.lines().all(|l| l.is_empty() || l.starts_with('#')),
        "every job is commented out: {crontab}"
    );

    web.write_repo(false);
    web.supercp(&["apply"]).expect_code(0);
    web.expect_page("alpha.test", "/", 200, "site alpha.test");
    web.expect_page("alpha.test", "/whoami.php", 200, &a);
    let passwd = nix::unistd::User::from_name(&a)
        .expect("getpwnam")
        .expect("user");
    assert_eq!(passwd.shell, PathBuf::from("/bin/bash"));
    let keys = fs::read_to_string(web.home(&a).join(".ssh/authorized_keys")).expect("keys");
    assert!(keys.contains(SSH_KEY));
    assert_eq!(expiry(&a), None, "the expiry is lifted");
}

/// The expiry field of a user's `/etc/shadow` line, when set.
fn expiry(user: &str) -> Option<String> {
    let shadow = fs::read_to_string("/etc/shadow").expect("root reads /etc/shadow");
    let line = shadow
        .lines()
        .find(|l| l.split(':').next() == Some(user))
        .unwrap_or_else(|| panic!("{user} in /etc/shadow"));
    let expire = line.split(':').nth(7).unwrap_or("");
    (!expire.is_empty()).then(|| expire.to_owned())
}

#[test]
fn accounts_supercp_did_not_make_are_never_taken_over() {
    let Some(web) = Web::new("accounts_supercp_did_not_make", 8) else {
        return;
    };
    let b = web.b().to_owned();
    // A group of B's name that is not B's: applying would make B a member of someone's group.
    let gid = (web.uid_min + 45).to_string();
    let out = Command::new("groupadd")
        .args(["-g", &gid, &b])
        .output()
        .expect("groupadd");
    assert!(out.status.success(), "{out:?}");
    let run = web.supercp(&["apply"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "a group {b} (gid {gid}) already exists and is not a SuperCP tenant's"
        )),
        "{}",
        run.described
    );
    let group = nix::unistd::Group::from_name(&b)
        .expect("getgrnam")
        .expect("group");
    assert_eq!(
        group.gid.as_raw().to_string(),
        gid,
        "the group keeps its gid"
    );
    assert!(
        group.mem.is_empty(),
        "nobody was added to it: {:?}",
        group.mem
    );
    assert!(nix::unistd::User::from_name(&b)
        .expect("getpwnam")
        .is_none());
    let out = Command::new("groupdel").arg(&b).output().expect("groupdel");
    assert!(out.status.success(), "{out:?}");

    // A user of B's name made by someone else, even with a uid inside the tenant range.
    let uid = (web.uid_min + 46).to_string();
    let out = Command::new("useradd")
        .args([
            "-u",
            &uid,
            "-U",
            "-M",
            "-d",
            "/nonexistent",
            "-s",
            "/bin/sh",
            &b,
        ])
        .output()
        .expect("useradd");
    assert!(out.status.success(), "{out:?}");
    let run = web.supercp(&["apply"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!("user {b} already exists"))
            && run
                .stderr()
                .contains("is not this SuperCP tenant's account"),
        "{}",
        run.described
    );
    let user = nix::unistd::User::from_name(&b)
        .expect("getpwnam")
        .expect("user");
    assert_eq!(
        (user.shell, user.dir),
        (PathBuf::from("/bin/sh"), PathBuf::from("/nonexistent")),
        "the user is left as it was"
    );
    assert!(!web.home(&b).exists(), "no home was made for it");
}

#[test]
fn failed_nginx_check_keeps_the_old_site_serving() {
    let Some(mut web) = Web::new("failed_nginx_check_keeps_the_old_site_serving", 3) else {
        return;
    };
    let overrides = web.dir.path().join("templates");
    let vhost = fs::read_to_string(common::workspace().join("templates/vhost.conf.tera"))
        .expect("template");
    common::write(&overrides.join("vhost.conf.tera"), &vhost);
    web.extra = format!("  templateDir: {}\n", overrides.display());
    web.write_node();
    web.supercp(&["apply"]).expect_code(0);
    web.publish();
    web.start_services();
    web.expect_page("beta.test", "/", 200, "site beta.test");
    let sites = web.root.join("etc/nginx/sites-enabled");
    let before: BTreeMap<String, String> = fs::read_dir(&sites)
        .expect("sites")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read_to_string(e.path()).expect("read"),
            )
        })
        .collect();
    let broken = vhost.replacen(
        "server {",
        "server {\n{% if domain == \"beta.test\" %}    no_such_directive on;{% endif %}",
        1,
    );
    common::write(&overrides.join("vhost.conf.tera"), &broken);
    // A change to beta.test's site, so its vhost is rewritten with the broken template.
    let repo = fs::read_to_string(web.repo.join("hosting.yaml")).expect("repo");
    let a = web.a().to_owned();
    common::write(
        &web.repo.join("hosting.yaml"),
        &repo.replace(
            &format!("spec: {{tenant: {a}}}"),
            &format!("spec: {{tenant: {a}, aliases: [www.beta.test]}}"),
        ),
    );
    let run = web.supercp(&["apply"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("Domain/beta.test (") && run.stderr().contains("no_such_directive"),
        "names the domain and nginx's complaint\n{}",
        run.described
    );
    for (name, content) in &before {
        assert_eq!(
            &fs::read_to_string(sites.join(name)).expect("read"),
            content,
            "{name} is the previous file"
        );
    }
    assert_eq!(
        web.get("beta.test", "/").expect("an answer").body,
        "site beta.test\n"
    );
    assert!(
        web.get("www.beta.test", "/").is_none(),
        "the new alias is not live: the old config still serves"
    );
}

#[test]
fn tenant_symlinks_at_public_html_or_logs_are_never_followed() {
    let Some(web) = Web::up("tenant_symlinks_are_never_followed", 4) else {
        return;
    };
    let a = web.a().to_owned();
    let site = web.home(&a).join("domains/alpha.test");
    let etc = Path::new("/etc");
    let before = fs::metadata(etc).expect("stat /etc");
    let listing = |p: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(p)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let etc_before = listing(etc);
    for dir in ["public_html", "logs"] {
        fs::rename(site.join(dir), site.join(format!("{dir}.moved"))).expect("move");
        std::os::unix::fs::symlink(etc, site.join(dir)).expect("symlink");
        let (uid, gid) = ids(&a);
        std::os::unix::fs::lchown(site.join(dir), Some(uid), Some(gid)).expect("lchown");
    }
    let run = web.supercp(&["apply"]);
    run.expect_code(1);
    for dir in ["public_html", "logs"] {
        let path = site.join(dir);
        assert!(
            run.stderr().contains(&format!("{}", path.display()))
                && run.stderr().contains("symlink"),
            "reports the symlink at {dir}\n{}",
            run.described
        );
    }
    let after = fs::metadata(etc).expect("stat /etc");
    assert_eq!(
        (after.uid(), after.gid(), after.mode()),
        (before.uid(), before.gid(), before.mode()),
        "/etc keeps its owner and mode"
    );
    // Other tests add users meanwhile: the account tools' lock and backup files come and go.
    let churn = |n: &String| n.ends_with(".lock") || n.ends_with('+') || n.ends_with('-');
    let new: Vec<String> = listing(etc)
        .into_iter()
        .filter(|n| !etc_before.contains(n) && !churn(n))
        .collect();
    assert!(new.is_empty(), "nothing was written into /etc: {new:?}");
    let served = web.get("alpha.test", "/passwd").expect("an answer");
    assert!(
        !served.body.contains("root:"),
        "nginx does not serve /etc through the tenant's symlink: {served:?}"
    );
}

#[test]
fn second_apply_on_real_services_changes_and_reloads_nothing() {
    let Some(web) = Web::up("second_apply_changes_nothing", 5) else {
        return;
    };
    web.expect_page("alpha.test", "/", 200, "site alpha.test");
    let nginx_before = fs::read_to_string(web.root.join("run/nginx.pid")).expect("pid");
    let run = web.supercp(&["apply"]);
    run.expect_code(0);
    assert!(run.stderr().contains("no changes"), "{}", run.described);
    let runs: serde_json::Value =
        serde_json::from_str(&web.supercp(&["audit", "--format", "json"]).stdout()).expect("json");
    let last = &runs["runs"][0];
    assert_eq!(
        (&last["summary"], &last["gate_checks"], &last["reloads"]),
        (
            &serde_json::json!("no changes"),
            &serde_json::json!(0),
            &serde_json::json!(0)
        ),
        "{runs}"
    );
    assert_eq!(
        fs::read_to_string(web.root.join("run/nginx.pid")).expect("pid"),
        nginx_before
    );
    web.expect_page("alpha.test", "/whoami.php", 200, web.a());
    let plan = web.supercp(&["plan", "--detailed-exitcode"]);
    plan.expect_code(0);
}

#[test]
fn uids_are_stable_and_never_reused() {
    let Some(web) = Web::new("uids_are_stable_and_never_reused", 6) else {
        return;
    };
    web.supercp(&["apply"]).expect_code(0);
    let (a, b) = (web.a().to_owned(), web.b().to_owned());
    let uid_b = ids(&b).0;
    // B leaves the repo with deletion policy Delete: its account goes with --allow-destroy.
    let repo = fs::read_to_string(web.repo.join("hosting.yaml")).expect("repo");
    let without_b: String = repo
        .split("---\n")
        .filter(|doc| {
            !doc.contains(&format!("tenant: {b}")) && !doc.contains(&format!("name: {b}}}"))
        })
        .collect::<Vec<_>>()
        .join("---\n");
    let with_policy = repo.replace(
        &format!("metadata: {{name: {b}}}\nspec:\n"),
        &format!("metadata: {{name: {b}}}\nspec:\n  deletionPolicy: Delete\n"),
    );
    common::write(&web.repo.join("hosting.yaml"), &with_policy);
    web.supercp(&["apply"]).expect_code(0);
    common::write(&web.repo.join("hosting.yaml"), &without_b);
    web.supercp(&["apply", "--allow-destroy", "--max-delete-share", "100"])
        .expect_code(0);
    assert!(
        nix::unistd::User::from_name(&b)
            .expect("getpwnam")
            .is_none(),
        "B's account is deleted"
    );
    // A new tenant takes a new uid, not B's; B coming back gets its own again.
    let c = format!("{}c", &b[..b.len() - 1]);
    let _cleanup = Users {
        names: vec![c.clone()],
    };
    let with_c = format!(
        "{without_b}---\napiVersion: supercp/v1\nkind: Tenant\nmetadata: {{name: {c}}}\nspec: {{package: basic}}\n"
    );
    common::write(&web.repo.join("hosting.yaml"), &with_c);
    web.supercp(&["apply"]).expect_code(0);
    assert_ne!(ids(&c).0, uid_b, "B's uid is never given to another tenant");
    common::write(&web.repo.join("hosting.yaml"), &format!("{repo}---\napiVersion: supercp/v1\nkind: Tenant\nmetadata: {{name: {c}}}\nspec: {{package: basic}}\n"));
    web.supercp(&["apply"]).expect_code(0);
    assert_eq!(ids(&b).0, uid_b, "B gets its recorded uid back");
    assert!(ids(&a).0 >= web.uid_min);
}

#[test]
fn rendered_logrotate_file_rotates_site_logs_and_nginx_reopens_them() {
    let Some(web) = Web::up("logrotate_rotates_site_logs", 7) else {
        return;
    };
    let Some(logrotate) = require("logrotate", "logrotate_rotates_site_logs") else {
        return;
    };
    let logs = web.root.join("var/log/supercp").join(web.a());
    web.expect_page("alpha.test", "/?before", 200, "site alpha.test");
    eventually("the request is logged", 5, || {
        let log = fs::read_to_string(logs.join("alpha.test.access.log")).unwrap_or_default();
        if log.contains("GET /?before") {
            Ok(())
        } else {
            Err(log)
        }
    });
    let out = Command::new(logrotate)
        .arg("--force")
        .arg("--state")
        .arg(web.dir.path().join("logrotate.state"))
        .arg(web.root.join("etc/logrotate.d/supercp"))
        .output()
        .expect("logrotate runs");
    assert!(out.status.success(), "logrotate: {out:?}");
    let rotated = fs::read_to_string(logs.join("alpha.test.access.log.1")).expect("rotated log");
    assert!(rotated.contains("GET /?before"), "{rotated}");
    // nginx reopens its logs a moment after the signal: keep asking until a request lands in
    // the new file.
    eventually("nginx writes to the new log after USR1", 10, || {
        web.expect_page("alpha.test", "/?after", 200, "site alpha.test");
        let log = fs::read_to_string(logs.join("alpha.test.access.log")).unwrap_or_default();
        if log.contains("GET /?after") {
            Ok(())
        } else {
            Err(log)
        }
    });
}
