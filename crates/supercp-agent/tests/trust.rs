//! `supercp_agent::trust` against the real tools: keys made by `ssh-keygen`, commits signed by
//! `git commit -S` with `gpg.format=ssh`, and every verdict compared with
//! `git -c gpg.ssh.allowedSignersFile=FILE verify-commit`.
//!
//! Needs `ssh-keygen` (Debian: openssh-client) and `git`; without them the tests skip loudly,
//! and fail under `CI=true`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use git2::{Oid, Repository};
use supercp_agent::trust::{verify_commit, AllowedSigners, TrustError};
use supercp_testkit::services::require;

/// The tools, and a temporary HOME so no user or system git configuration leaks in.
struct Tools {
    git: PathBuf,
    ssh_keygen: PathBuf,
    home: PathBuf,
}

impl Tools {
    fn find(test: &str, dir: &Path) -> Option<Tools> {
        let ssh_keygen = require("ssh-keygen", test)?;
        let git = require("git", test)?;
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        Some(Tools {
            git,
            ssh_keygen,
            home,
        })
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GNUPGHOME", self.home.join(".gnupg"))
            .env("LC_ALL", "C")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_CONFIG_GLOBAL")
            .env_remove("GIT_CONFIG_PARAMETERS")
            .env_remove("SSH_AUTH_SOCK");
        command
    }

    fn git(&self, repo: &Path) -> Command {
        let mut command = self.command(&self.git);
        command.arg("-C").arg(repo);
        command
    }

    /// `ssh-keygen -q -t TYPE [-b BITS] -N "" -f DIR/NAME`; returns the private key's path.
    fn key(&self, dir: &Path, name: &str, key_type: &str, bits: Option<&str>) -> PathBuf {
        let path = dir.join(name);
        let mut command = self.command(&self.ssh_keygen);
        command.args(["-q", "-t", key_type]);
        if let Some(bits) = bits {
            command.args(["-b", bits]);
        }
        command.args(["-N", "", "-C", name, "-f"]).arg(&path);
        run(&mut command, None);
        path
    }

    /// A commit on HEAD of `repo`, signed with `key` (its private key's path) when given.
    fn commit(&self, repo: &Path, key: Option<&Path>, message: &str) -> Oid {
        let file = repo.join("file.txt");
        let mut text = std::fs::read_to_string(&file).unwrap_or_default();
        text.push_str(message);
        text.push('\n');
        std::fs::write(&file, text).unwrap();
        run(self.git(repo).args(["add", "file.txt"]), None);
        let mut command = self.git(repo);
        command.args([
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.test",
            "-c",
            "gpg.format=ssh",
            "-c",
            "commit.gpgsign=false",
        ]);
        if let Some(key) = key {
            let public = key.with_extension("pub");
            command
                .arg("-c")
                .arg(format!("user.signingkey={}", public.display()));
        }
        command.arg("commit").arg("-q");
        if key.is_some() {
            command.arg("-S");
        }
        command.args(["-m", message]);
        run(&mut command, None);
        self.head(repo)
    }

    fn head(&self, repo: &Path) -> Oid {
        let out = run(self.git(repo).args(["rev-parse", "HEAD"]), None);
        Oid::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
    }

    /// The raw commit object, as `git cat-file commit` prints it.
    fn raw(&self, repo: &Path, id: Oid) -> Vec<u8> {
        run(
            self.git(repo).args(["cat-file", "commit", &id.to_string()]),
            None,
        )
        .stdout
    }

    /// Writes `raw` as a commit object (`git hash-object -t commit -w --stdin`).
    fn write_commit(&self, repo: &Path, raw: &[u8]) -> Oid {
        let out = run(
            self.git(repo)
                .args(["hash-object", "-t", "commit", "-w", "--stdin"]),
            Some(raw),
        );
        Oid::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
    }

    /// Whether `git verify-commit` accepts `id` with this allowed signers file.
    fn git_accepts(&self, repo: &Path, signers: &Path, id: Oid) -> bool {
        let out = self
            .git(repo)
            .arg("-c")
            .arg(format!("gpg.ssh.allowedSignersFile={}", signers.display()))
            .args(["verify-commit", &id.to_string()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        out.status.success()
    }

    /// `ssh-keygen -Y sign -n NAMESPACE -f KEY` over `data`: the armored signature.
    fn sign(&self, dir: &Path, key: &Path, namespace: &str, data: &[u8]) -> String {
        let file = dir.join("to-sign");
        std::fs::write(&file, data).unwrap();
        let _ = std::fs::remove_file(dir.join("to-sign.sig"));
        run(
            self.command(&self.ssh_keygen)
                .args(["-q", "-Y", "sign", "-n", namespace, "-f"])
                .arg(key)
                .arg(&file),
            None,
        );
        std::fs::read_to_string(dir.join("to-sign.sig")).unwrap()
    }
}

fn run(command: &mut Command, stdin: Option<&[u8]>) -> Output {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn public_key(key: &Path) -> String {
    std::fs::read_to_string(key.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned()
}

/// The commit object without its `gpgsig` header (and that header's continuation lines):
/// what git signs.
fn strip_gpgsig(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let (headers, message) = text.split_once("\n\n").unwrap();
    let mut out = String::new();
    let mut in_sig = false;
    for line in headers.lines() {
        if line.starts_with("gpgsig ") {
            in_sig = true;
            continue;
        }
        if in_sig && line.starts_with(' ') {
            continue;
        }
        in_sig = false;
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(message);
    out.into_bytes()
}

/// `raw` (unsigned) with a `gpgsig` header holding `signature`, after the committer line.
fn with_gpgsig(raw: &[u8], signature: &str) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let (headers, message) = text.split_once("\n\n").unwrap();
    let header = format!("gpgsig {}", signature.trim_end().replace('\n', "\n "));
    format!("{headers}\n{header}\n\n{message}").into_bytes()
}

#[test]
fn verdicts_match_git_verify_commit() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let Some(tools) = Tools::find("verdicts_match_git_verify_commit", dir.path()) else {
        return;
    };
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let trusted = tools.key(&keys, "trusted", "ed25519", None);
    let stranger = tools.key(&keys, "stranger", "ed25519", None);
    let rsa = tools.key(&keys, "trusted-rsa", "rsa", Some("2048"));
    let ecdsa = tools.key(&keys, "trusted-ecdsa", "ecdsa", Some("256"));

    let repo_dir = dir.path().join("repo");
    run(
        tools
            .command(&tools.git)
            .args(["init", "-q", "-b", "main"])
            .arg(&repo_dir),
        None,
    );
    let by_trusted = tools.commit(&repo_dir, Some(&trusted), "signed by trusted");
    let by_stranger = tools.commit(&repo_dir, Some(&stranger), "signed by stranger");
    let unsigned = tools.commit(&repo_dir, None, "not signed");
    let by_rsa = tools.commit(&repo_dir, Some(&rsa), "signed by the trusted rsa key");
    let by_ecdsa = tools.commit(&repo_dir, Some(&ecdsa), "signed by the trusted ecdsa key");

    // The trusted commit with its message changed: the signature no longer matches.
    let tampered = {
        let raw = String::from_utf8(tools.raw(&repo_dir, by_trusted)).unwrap();
        let raw = raw.replace("signed by trusted", "signed by trusted, honest");
        tools.write_commit(&repo_dir, raw.as_bytes())
    };
    // A valid signature by the trusted key, but for namespace "file", not "git".
    let wrong_namespace = {
        let raw = tools.raw(&repo_dir, unsigned);
        let signature = tools.sign(&keys, &trusted, "file", &raw);
        tools.write_commit(&repo_dir, &with_gpgsig(&raw, &signature))
    };
    // A (fake) OpenPGP signature.
    let pgp = {
        let raw = tools.raw(&repo_dir, unsigned);
        let signature = "-----BEGIN PGP SIGNATURE-----\n\niHUEABYKAB0WIQQ=\n=abcd\n-----END PGP SIGNATURE-----\n";
        tools.write_commit(&repo_dir, &with_gpgsig(&raw, signature))
    };

    let repo = Repository::open(&repo_dir).unwrap();

    // What extract_signature returns is what git signs: the object without the gpgsig header.
    for id in [by_trusted, by_rsa, by_ecdsa] {
        let (signature, payload) = repo.extract_signature(&id, None).unwrap();
        let raw = tools.raw(&repo_dir, id);
        assert_eq!(&payload[..], strip_gpgsig(&raw).as_slice(), "{id}");
        let signature = signature.as_str().unwrap();
        assert!(
            signature.starts_with("-----BEGIN SSH SIGNATURE-----\n"),
            "{signature:?}"
        );
        assert!(
            signature.ends_with("-----END SSH SIGNATURE-----"),
            "{signature:?}"
        );
    }

    let line = |principal: &str, options: &str, key: &Path| {
        format!("{principal} {options} {}\n", public_key(key))
    };
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let files = [
        // The brief's file: only the trusted ed25519 key.
        write(
            "allowed_signers",
            line("t@example.test", "namespaces=\"git\"", &trusted),
        ),
        // Every trusted key, with comments, a blank line and no namespaces option on one.
        write(
            "allowed_signers_all",
            format!(
                "# the team\n\n{}{}ecdsa@example.test {}\n",
                line("t@example.test", "namespaces=\"git\"", &trusted),
                line(
                    "rsa@example.test,ops@example.test",
                    "namespaces=\"file,git\"",
                    &rsa,
                ),
                public_key(&ecdsa),
            ),
        ),
        // The trusted key, but not for git.
        write(
            "allowed_signers_file_only",
            line("t@example.test", "namespaces=\"file\"", &trusted),
        ),
        // The trusted key, expired long before the commits were made.
        write(
            "allowed_signers_expired",
            line("t@example.test", "valid-before=\"20000101Z\"", &trusted),
        ),
        // The trusted key, valid only from far in the future.
        write(
            "allowed_signers_future",
            line(
                "t@example.test",
                "valid-after=\"20991231235959Z\"",
                &trusted,
            ),
        ),
    ];
    let commits = [
        ("by_trusted", by_trusted),
        ("by_stranger", by_stranger),
        ("unsigned", unsigned),
        ("by_rsa", by_rsa),
        ("by_ecdsa", by_ecdsa),
        ("tampered", tampered),
        ("wrong_namespace", wrong_namespace),
        ("pgp", pgp),
    ];

    let mut accepted = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let signers = AllowedSigners::read(file).unwrap();
        for (what, id) in commits {
            let ours = verify_commit(&repo, id, &signers);
            let git = tools.git_accepts(&repo_dir, file, id);
            assert_eq!(
                ours.is_ok(),
                git,
                "{name} / {what}: git verify-commit says {git}, trust says {ours:?}"
            );
            if let Ok(signer) = &ours {
                accepted.push((name.clone(), what, signer.principal.clone()));
            }
        }
    }
    let accepted: Vec<(&str, &str, &str)> = accepted
        .iter()
        .map(|(f, c, p)| (f.as_str(), *c, p.as_str()))
        .collect();
    assert_eq!(
        accepted,
        [
            ("allowed_signers", "by_trusted", "t@example.test"),
            ("allowed_signers_all", "by_trusted", "t@example.test"),
            ("allowed_signers_all", "by_rsa", "rsa@example.test"),
            ("allowed_signers_all", "by_ecdsa", "ecdsa@example.test"),
        ]
    );

    // The variants, with the brief's file.
    let signers = AllowedSigners::read(&files[0]).unwrap();
    let check = |id| verify_commit(&repo, id, &signers);
    let signer = check(by_trusted).unwrap();
    assert!(signer.fingerprint.starts_with("SHA256:"), "{signer:?}");
    let fingerprint = |key: &Path| {
        let out = run(
            tools
                .command(&tools.ssh_keygen)
                .arg("-lf")
                .arg(key.with_extension("pub")),
            None,
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    assert_eq!(signer.fingerprint, fingerprint(&trusted));

    let err = check(by_stranger).unwrap_err();
    match &err {
        TrustError::UnknownKey {
            id, fingerprint: f, ..
        } => {
            assert_eq!(*id, by_stranger);
            assert_eq!(*f, fingerprint(&stranger));
        }
        other => panic!("stranger: {other}"),
    }
    let message = err.to_string();
    assert!(message.contains(&by_stranger.to_string()), "{message}");
    assert!(message.contains("allowed_signers"), "{message}");

    assert!(
        matches!(check(unsigned), Err(TrustError::Unsigned { id }) if id == unsigned),
        "{:?}",
        check(unsigned)
    );
    assert!(check(unsigned)
        .unwrap_err()
        .to_string()
        .contains(&unsigned.to_string()));
    assert!(matches!(check(by_rsa), Err(TrustError::UnknownKey { .. })));
    assert!(
        matches!(check(tampered), Err(TrustError::BadSignature { id, .. }) if id == tampered),
        "{:?}",
        check(tampered)
    );
    assert!(
        matches!(
            check(wrong_namespace),
            Err(TrustError::WrongNamespace { ref namespace, .. }) if namespace == "file"
        ),
        "{:?}",
        check(wrong_namespace)
    );
    assert!(
        matches!(check(pgp), Err(TrustError::NotSsh { id, .. }) if id == pgp),
        "{:?}",
        check(pgp)
    );
    let expired = AllowedSigners::read(&files[3]).unwrap();
    let err = verify_commit(&repo, by_trusted, &expired).unwrap_err();
    assert!(
        matches!(err, TrustError::NotAllowed { line: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("valid-before"), "{err}");
    let file_only = AllowedSigners::read(&files[2]).unwrap();
    let err = verify_commit(&repo, by_trusted, &file_only).unwrap_err();
    assert!(
        err.to_string().contains("does not include \"git\""),
        "{err}"
    );

    eprintln!(
        "verdicts_match_git_verify_commit: {} commits x {} files in {:?}",
        commits.len(),
        files.len(),
        started.elapsed()
    );
}

#[test]
fn a_bad_line_is_reported_with_file_and_line() {
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";
    let text = format!(
        "# trusted signers\nt@example.test namespaces=\"git\" {key}\n\nbad@example.test ssh-ed25519\n\
         ca@example.test cert-authority {key}\n"
    );
    let err = AllowedSigners::parse(&text, "/etc/supercp/allowed_signers").unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("/etc/supercp/allowed_signers:4: "),
        "{message}"
    );
    assert!(
        message.contains("\n/etc/supercp/allowed_signers:5: cert-authority is not supported"),
        "{message}"
    );
    let TrustError::InvalidSigners { problems, .. } = err else {
        panic!("{message}")
    };
    assert_eq!(problems.len(), 2);

    let ok = AllowedSigners::parse(&format!("t@example.test {key} laptop\n"), "f").unwrap();
    assert_eq!(ok.len(), 1);
}
