//! Real Git servers on loopback for the agent's remote tests: OpenSSH's sshd (git-upload-pack
//! over ssh, one deploy key allowed) and nginx + fcgiwrap running git-http-backend over TLS with
//! basic auth (a private CA signs the server's certificate).
//!
//! # Guarantees
//! The servers listen on 127.0.0.1 only and stop when their guard is dropped. Under `CI=true` a
//! missing binary fails the test (see `services::require`).

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::services::{free_port, require};
use crate::web::Service;

/// git-http-backend as Debian's git package installs it.
const GIT_HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";

/// Runs a setup command (key and certificate generation), panicking with its output on failure.
fn run(program: &Path, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes, in `dir`, a private CA (`ca.pem`, `ca.key`) and a server certificate it signs for
/// 127.0.0.1 and localhost (`cert.pem`, `key.pem`), valid for two days, with openssl(1).
pub fn private_ca(openssl: &Path, dir: &Path) {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(new_key);
    let (ca_key, ca_pem) = (path("ca.key"), path("ca.pem"));
    ca.extend([
        "-days",
        "2",
        "-subj",
        "/CN=SuperCP test CA",
        "-keyout",
        &ca_key,
        "-out",
        &ca_pem,
    ]);
    run(openssl, &ca);
    let mut csr = vec!["req"];
    csr.extend(new_key);
    let (key, request) = (path("key.pem"), path("server.csr"));
    csr.extend(["-subj", "/CN=localhost", "-keyout", &key, "-out", &request]);
    run(openssl, &csr);
    fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("san");
    let (ext, cert) = (path("san.ext"), path("cert.pem"));
    run(
        openssl,
        &[
            "x509",
            "-req",
            "-in",
            &request,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
}

/// The name of the user the test runs as (sshd lets a key log in as this user only).
fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .expect("the test's user has a passwd entry")
}

/// sshd on 127.0.0.1 accepting one ed25519 deploy key for the current user.
pub struct SshServer {
    pub port: u16,
    pub user: String,
    /// The deploy key's private key (mode 0600).
    pub deploy_key: PathBuf,
    /// A known_hosts file listing the server's host key as `[127.0.0.1]:PORT`.
    pub known_hosts: PathBuf,
    _sshd: Service,
}

impl SshServer {
    /// Starts sshd with its keys and config under `dir`; `None` (skipped, loudly) when sshd or
    /// ssh-keygen is missing outside CI.
    pub fn start(dir: &Path, test: &str) -> Option<SshServer> {
        let sshd = require("sshd", test)?;
        let keygen = require("ssh-keygen", test)?;
        fs::create_dir_all(dir).expect("ssh dir");
        let host_key = dir.join("host_ed25519");
        let deploy_key = dir.join("deploy_ed25519");
        for (key, comment) in [(&host_key, "host"), (&deploy_key, "deploy")] {
            run(
                &keygen,
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    comment,
                    "-f",
                    &key.to_string_lossy(),
                ],
            );
        }
        let public = |key: &Path| {
            fs::read_to_string(key.with_extension("pub"))
                .expect("public key")
                .trim()
                .to_owned()
        };
        let port = free_port();
        let known_hosts = dir.join("known_hosts");
        fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{port} {}\n", public(&host_key)),
        )
        .expect("known_hosts");
        let authorized = dir.join("authorized_keys");
        fs::write(&authorized, format!("restrict {}\n", public(&deploy_key))).expect("keys");
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {authorized}\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nLogLevel VERBOSE\n",
                host = host_key.display(),
                dir = dir.display(),
                authorized = authorized.display(),
            ),
        )
        .expect("sshd_config");
        // sshd started as root wants its privilege separation directory.
        if crate::services::is_root() {
            fs::create_dir_all("/run/sshd").expect("/run/sshd");
        }
        let service = Service::start(
            "sshd",
            &[
                &sshd.to_string_lossy(),
                "-D",
                "-e",
                "-f",
                &config.to_string_lossy(),
            ],
            &dir.join("sshd.log"),
            || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        Some(SshServer {
            port,
            user: current_user(),
            deploy_key,
            known_hosts,
            _sshd: service,
        })
    }

    /// The ssh URL of a repository at an absolute path on this machine.
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }
}

/// Git's smart HTTP protocol over TLS: nginx (basic auth, a certificate from a private CA) in
/// front of fcgiwrap running git-http-backend on every repository below `root`.
pub struct HttpsServer {
    pub port: u16,
    /// The private CA's certificate (PEM), which clients must be told to trust.
    pub ca: PathBuf,
    _nginx: Service,
    _fcgiwrap: Service,
}

impl HttpsServer {
    /// Starts the server with its files under `dir`, serving the repositories below `root` to
    /// `user` with `password`; `None` (skipped, loudly) when a binary is missing outside CI.
    pub fn start(
        dir: &Path,
        root: &Path,
        user: &str,
        password: &str,
        test: &str,
    ) -> Option<HttpsServer> {
        let nginx = require("nginx", test)?;
        let fcgiwrap = require("fcgiwrap", test)?;
        let openssl = require("openssl", test)?;
        if !Path::new(GIT_HTTP_BACKEND).is_file() {
            assert!(
                !crate::services::in_ci(),
                "{test}: {GIT_HTTP_BACKEND} is missing (Debian's git package)"
            );
            eprintln!("SKIPPED {test}: {GIT_HTTP_BACKEND} is missing");
            return None;
        }
        fs::create_dir_all(dir.join("tmp")).expect("https dir");
        // A private CA, and a server certificate it signs for 127.0.0.1 and localhost.
        private_ca(&openssl, dir);
        fs::write(
            dir.join("htpasswd"),
            format!("{user}:{{PLAIN}}{password}\n"),
        )
        .expect("htpasswd");
        // fcgiwrap runs git-http-backend as the test's user; nginx's workers must reach its socket.
        let socket = dir.join("fcgiwrap.sock");
        let fcgi = Service::start(
            "fcgiwrap",
            &[
                &fcgiwrap.to_string_lossy(),
                "-s",
                &format!("unix:{}", socket.display()),
            ],
            &dir.join("fcgiwrap.log"),
            || socket.exists(),
        );
        fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).expect("chmod socket");
        let port = free_port();
        let conf = dir.join("nginx.conf");
        fs::write(
            &conf,
            format!(
                "pid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\nevents {{}}\nhttp {{\n\
                 access_log off;\nclient_body_temp_path {d}/tmp/body;\n\
                 fastcgi_temp_path {d}/tmp/fastcgi;\nproxy_temp_path {d}/tmp/proxy;\n\
                 uwsgi_temp_path {d}/tmp/uwsgi;\nscgi_temp_path {d}/tmp/scgi;\n\
                 server {{\n  listen 127.0.0.1:{port} ssl;\n  server_name localhost;\n\
                 ssl_certificate {d}/cert.pem;\n  ssl_certificate_key {d}/key.pem;\n\
                 auth_basic \"git\";\n  auth_basic_user_file {d}/htpasswd;\n\
                 location / {{\n    fastcgi_pass unix:{sock};\n\
                 fastcgi_param SCRIPT_FILENAME {GIT_HTTP_BACKEND};\n\
                 fastcgi_param GIT_PROJECT_ROOT {root};\n\
                 fastcgi_param GIT_HTTP_EXPORT_ALL \"\";\n\
                 fastcgi_param PATH_INFO $uri;\n\
                 fastcgi_param REMOTE_USER $remote_user;\n\
                 fastcgi_param QUERY_STRING $query_string;\n\
                 fastcgi_param REQUEST_METHOD $request_method;\n\
                 fastcgi_param CONTENT_TYPE $content_type;\n\
                 fastcgi_param CONTENT_LENGTH $content_length;\n\
                 fastcgi_param GIT_CONFIG_NOSYSTEM 1;\n  }}\n}}\n}}\n",
                d = dir.display(),
                sock = socket.display(),
                root = root.display(),
            ),
        )
        .expect("nginx.conf");
        let nginx = crate::web::start_nginx(
            &nginx,
            &conf,
            &dir.join("nginx.pid"),
            port,
            &dir.join("nginx.log"),
        );
        Some(HttpsServer {
            port,
            ca: dir.join("ca.pem"),
            _nginx: nginx,
            _fcgiwrap: fcgi,
        })
    }

    /// The https URL of the repository `name` below the server's root, with a user name.
    pub fn url(&self, user: &str, name: &str) -> String {
        format!("https://{user}@127.0.0.1:{}/{name}", self.port)
    }
}
