//! Verifying SSH-signed commits for `agent.git.requireSignedCommits`, as
//! `git -c gpg.ssh.allowedSignersFile=FILE verify-commit` does with `gpg.format=ssh`: the
//! commit's `gpgsig` header must hold an SSH signature (`-----BEGIN SSH SIGNATURE-----`) in
//! namespace `git` over the commit without that header, made by a key that a line of the
//! allowed signers file lists for namespace `git` at the commit's committer time.
//!
//! libgit2 verifies no signatures; the SSHSIG format and the key types come from the `ssh-key`
//! crate (pure Rust, no `ssh-keygen` and no shell at run time).
//!
//! # Guarantees
//! - Accepts only what `git verify-commit` accepts for the same allowed signers file, except
//!   that lines this module cannot honour are refused when the file is parsed (see
//!   [`AllowedSigners::parse`]), never silently ignored.
//! - Key types: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa (signatures rsa-sha2-256 and
//!   rsa-sha2-512, as ssh-keygen makes them; SHA-1 RSA signatures are refused as ssh-keygen
//!   refuses them), and the FIDO variants sk-ssh-ed25519@openssh.com and
//!   sk-ecdsa-sha2-nistp256@openssh.com. DSA keys are refused.
//!
//! # Assumptions
//! The repository uses SHA-1 object ids: the `gpgsig` header is read, `gpgsig-sha256` is not,
//! and a commit carrying both (git's object-format interop) fails as a bad signature, because
//! libgit2 leaves the other header in the payload where git removes it.

use std::path::Path;

use git2::{Oid, Repository};
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, HashAlg, PublicKey, SshSig};

/// The SSHSIG namespace git signs and verifies commits in.
const GIT_NAMESPACE: &str = "git";

/// Who signed a commit: the allowed signers line that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signer {
    /// The first principal of that line (`alice@example.com` for `alice@example.com,alice@work`),
    /// as `git verify-commit` names the signer.
    pub principal: String,
    /// The key's fingerprint as `ssh-keygen -l` prints it (`SHA256:…`).
    pub fingerprint: String,
}

/// One problem on one line of an allowed signers file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("reading the allowed signers file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", invalid_signers(path, problems))]
    InvalidSigners {
        path: String,
        problems: Vec<LineError>,
    },
    #[error("commit {id}: {what}: {source}")]
    Git {
        id: Oid,
        what: &'static str,
        source: git2::Error,
    },
    #[error(
        "commit {id} is not signed; requireSignedCommits needs every commit signed with an SSH \
         key from the allowed signers file (git -c gpg.format=ssh commit -S)"
    )]
    Unsigned { id: Oid },
    #[error(
        "commit {id} has {kind} signature, not an SSH one; only SSH signatures (gpg.format=ssh) \
         are verified: sign the commit with an SSH key from the allowed signers file"
    )]
    NotSsh { id: Oid, kind: &'static str },
    #[error("commit {id}: its SSH signature cannot be read ({reason}); sign the commit again")]
    Malformed { id: Oid, reason: String },
    #[error(
        "commit {id} carries an SSH signature for namespace {namespace:?}, not \"git\", so it was \
         not made by git commit -S; sign the commit with git"
    )]
    WrongNamespace { id: Oid, namespace: String },
    #[error(
        "commit {id} is signed with a {algorithm} key ({fingerprint}), a type this agent cannot \
         verify; use an ed25519, ecdsa or rsa key"
    )]
    Unsupported {
        id: Oid,
        algorithm: String,
        fingerprint: String,
    },
    #[error(
        "commit {id}: the signature by key {fingerprint} does not match the commit ({reason}); \
         the commit or its signature was altered: do not apply it"
    )]
    BadSignature {
        id: Oid,
        fingerprint: String,
        reason: String,
    },
    #[error(
        "commit {id} is signed by key {fingerprint}, which {path} does not list; if the signer \
         is trusted, add a line `PRINCIPAL namespaces=\"git\" KEYTYPE BASE64KEY` for the key there"
    )]
    UnknownKey {
        id: Oid,
        fingerprint: String,
        path: String,
    },
    #[error(
        "commit {id} is signed by key {fingerprint}, which {path}:{line} lists but does not allow \
         here: {reason}"
    )]
    NotAllowed {
        id: Oid,
        fingerprint: String,
        path: String,
        line: usize,
        reason: String,
    },
}

fn invalid_signers(path: &str, problems: &[LineError]) -> String {
    problems
        .iter()
        .map(|p| format!("{path}:{}: {}", p.line, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The keys trusted to sign commits, from a file in the ALLOWED SIGNERS format of
/// ssh-keygen(1): `principals [options] keytype base64key [comment]`.
#[derive(Clone, Debug)]
pub struct AllowedSigners {
    path: String,
    entries: Vec<Entry>,
}

#[derive(Clone, Debug)]
struct Entry {
    line: usize,
    principals: String,
    /// A pattern list; `None` allows every namespace.
    namespaces: Option<String>,
    /// Unix seconds, inclusive bounds as ssh-keygen checks them.
    valid_after: Option<i64>,
    valid_before: Option<i64>,
    key: KeyData,
}

impl AllowedSigners {
    /// Reads and parses the file at `path`.
    ///
    /// # Errors
    /// When the file cannot be read, or as [`AllowedSigners::parse`].
    pub fn read(path: &Path) -> Result<AllowedSigners, TrustError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TrustError::Read {
            path: shown.clone(),
            source,
        })?;
        AllowedSigners::parse(&text, &shown)
    }

    /// Parses allowed signers text; `shown_path` names the file in errors.
    ///
    /// Blank lines and lines starting with `#` are skipped. Options (comma-separated, names
    /// case-insensitive): `namespaces="…"` (a pattern list that must match `git` for the line to
    /// sign commits), `valid-after="…"` and `valid-before="…"` (checked against the committer
    /// time, as git does; only UTC times ending in `Z` are accepted, e.g. `20250101Z` or
    /// `20250101123000Z`). `cert-authority` is refused: this verifier does not check
    /// certificates.
    ///
    /// # Errors
    /// [`TrustError::InvalidSigners`] with every bad line (`file:line: message`).
    pub fn parse(text: &str, shown_path: &str) -> Result<AllowedSigners, TrustError> {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            match parse_line(trimmed, line) {
                Ok(entry) => entries.push(entry),
                Err(message) => problems.push(LineError { line, message }),
            }
        }
        if problems.is_empty() {
            Ok(AllowedSigners {
                path: shown_path.to_owned(),
                entries,
            })
        } else {
            Err(TrustError::InvalidSigners {
                path: shown_path.to_owned(),
                problems,
            })
        }
    }

    /// How many keys the file lists.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the file lists no key: every commit would be refused.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first line listing `key` that allows namespace `git` at `time` (Unix seconds), or
    /// why the lines listing it do not.
    fn find(&self, key: &KeyData, time: i64) -> Result<&Entry, Option<(usize, String)>> {
        let mut refusal = None;
        for entry in self.entries.iter().filter(|e| &e.key == key) {
            let reason = if entry
                .namespaces
                .as_deref()
                .is_some_and(|n| !pattern_list_matches(GIT_NAMESPACE, n))
            {
                format!(
                    "namespaces=\"{}\" does not include \"git\"",
                    entry.namespaces.as_deref().unwrap_or_default()
                )
            } else if entry.valid_after.is_some_and(|after| time < after) {
                format!(
                    "the commit's committer time {} is before valid-after",
                    show_time(time)
                )
            } else if entry.valid_before.is_some_and(|before| time > before) {
                format!(
                    "the commit's committer time {} is after valid-before (the key expired)",
                    show_time(time)
                )
            } else {
                return Ok(entry);
            };
            refusal.get_or_insert((entry.line, reason));
        }
        Err(refusal)
    }
}

/// Verifies the SSH signature of commit `id` against `signers`.
///
/// # Errors
/// See [`TrustError`]: unsigned, not SSH, unreadable, wrong namespace, unsupported key type,
/// bad signature, unknown key, key not allowed for `git` at the commit's time; or the commit is
/// not in `repo`.
pub fn verify_commit(
    repo: &Repository,
    id: Oid,
    signers: &AllowedSigners,
) -> Result<Signer, TrustError> {
    let commit = repo.find_commit(id).map_err(|source| TrustError::Git {
        id,
        what: "finding the commit",
        source,
    })?;
    // The gpgsig header (continuation lines joined) and the commit object without it: the
    // bytes git signs.
    let (signature, payload) = match repo.extract_signature(&id, None) {
        Ok(pair) => pair,
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            return Err(TrustError::Unsigned { id });
        }
        Err(source) => {
            return Err(TrustError::Git {
                id,
                what: "reading the signature",
                source,
            })
        }
    };
    let armored = String::from_utf8_lossy(&signature);
    let armored = armored.trim();
    if !armored.starts_with("-----BEGIN SSH SIGNATURE-----") {
        let kind = if armored.starts_with("-----BEGIN PGP") {
            "an OpenPGP (gpg)"
        } else if armored.starts_with("-----BEGIN SIGNED MESSAGE-----") {
            "an X.509 (gpgsm)"
        } else {
            "an unknown kind of"
        };
        return Err(TrustError::NotSsh { id, kind });
    }
    let sshsig = SshSig::from_pem(armored).map_err(|e| TrustError::Malformed {
        id,
        reason: e.to_string(),
    })?;
    if sshsig.namespace() != GIT_NAMESPACE {
        return Err(TrustError::WrongNamespace {
            id,
            namespace: sshsig.namespace().to_owned(),
        });
    }
    let key = PublicKey::from(sshsig.public_key().clone());
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    if !supported(&key.algorithm()) {
        return Err(TrustError::Unsupported {
            id,
            algorithm: key.algorithm().to_string(),
            fingerprint,
        });
    }
    // As ssh-keygen -Y verify: the signature first, then whether its key is trusted.
    key.verify(GIT_NAMESPACE, &payload[..], &sshsig)
        .map_err(|e| TrustError::BadSignature {
            id,
            fingerprint: fingerprint.clone(),
            reason: e.to_string(),
        })?;
    let time = commit.committer().when().seconds();
    match signers.find(key.key_data(), time) {
        Ok(entry) => Ok(Signer {
            principal: entry
                .principals
                .split(',')
                .next()
                .unwrap_or_default()
                .to_owned(),
            fingerprint,
        }),
        Err(None) => Err(TrustError::UnknownKey {
            id,
            fingerprint,
            path: signers.path.clone(),
        }),
        Err(Some((line, reason))) => Err(TrustError::NotAllowed {
            id,
            fingerprint,
            path: signers.path.clone(),
            line,
            reason,
        }),
    }
}

fn supported(algorithm: &Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::Ed25519
            | Algorithm::Ecdsa { .. }
            | Algorithm::Rsa { .. }
            | Algorithm::SkEd25519
            | Algorithm::SkEcdsaSha2NistP256
    )
}

/// `principals [options] keytype base64key [comment]`, already trimmed and not a comment.
fn parse_line(text: &str, line: usize) -> Result<Entry, String> {
    let (principals, rest) = split_token(text)?;
    if principals.is_empty() {
        return Err("the principals field is empty".to_owned());
    }
    let rest = rest.trim_start();
    let first = rest.split_whitespace().next().unwrap_or_default();
    let (options, key_text) = if is_key_type(first) {
        (Options::default(), rest)
    } else {
        let (options, key_text) = split_token(rest)?;
        (parse_options(&options)?, key_text.trim_start())
    };
    if key_text.is_empty() {
        return Err(format!(
            "no public key after the principals {principals:?}; write \
             `PRINCIPALS [OPTIONS] KEYTYPE BASE64KEY`"
        ));
    }
    let key_type = key_text.split_whitespace().next().unwrap_or_default();
    if !is_key_type(key_type) {
        return Err(format!(
            "{key_type:?} is not an SSH public key type (ssh-ed25519, ecdsa-sha2-nistp256, \
             ssh-rsa, …); write `PRINCIPALS [OPTIONS] KEYTYPE BASE64KEY`"
        ));
    }
    let key = PublicKey::from_openssh(key_text)
        .map_err(|e| format!("the {key_type} public key cannot be read: {e}"))?;
    if !supported(&key.algorithm()) {
        return Err(format!(
            "{} keys cannot be verified by the agent; use an ed25519, ecdsa or rsa key",
            key.algorithm()
        ));
    }
    if let (Some(after), Some(before)) = (options.valid_after, options.valid_before) {
        if after > before {
            return Err("valid-after is later than valid-before: no time is valid".to_owned());
        }
    }
    Ok(Entry {
        line,
        principals,
        namespaces: options.namespaces,
        valid_after: options.valid_after,
        valid_before: options.valid_before,
        key: key.key_data().clone(),
    })
}

fn is_key_type(token: &str) -> bool {
    !token.is_empty()
        && Algorithm::new(token).is_ok_and(|a| !matches!(a, Algorithm::Other(_)))
        && !token.contains('=')
}

/// Splits off one field that ends at unquoted whitespace; double quotes group (and are kept,
/// as ssh-keygen keeps them until an option value is read).
fn split_token(text: &str) -> Result<(String, &str), String> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Ok((text[..i].to_owned(), &text[i..])),
            _ => {}
        }
    }
    if quoted {
        return Err("a double quote is not closed".to_owned());
    }
    Ok((text.to_owned(), ""))
}

#[derive(Default)]
struct Options {
    namespaces: Option<String>,
    valid_after: Option<i64>,
    valid_before: Option<i64>,
}

fn parse_options(text: &str) -> Result<Options, String> {
    let mut options = Options::default();
    for option in split_options(text)? {
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name.to_ascii_lowercase(), Some(dequote(value)?)),
            None => (option.to_ascii_lowercase(), None),
        };
        match (name.as_str(), value) {
            ("cert-authority", None) => {
                return Err(
                    "cert-authority is not supported: the agent does not verify \
                     signatures made with SSH certificates; list the signing keys themselves"
                        .to_owned(),
                )
            }
            ("namespaces", Some(v)) => options.namespaces = Some(v),
            ("valid-after", Some(v)) => options.valid_after = Some(parse_time("valid-after", &v)?),
            ("valid-before", Some(v)) => {
                options.valid_before = Some(parse_time("valid-before", &v)?);
            }
            ("namespaces" | "valid-after" | "valid-before", None) => {
                return Err(format!("option {name} needs a value: {name}=\"…\""));
            }
            ("cert-authority", Some(_)) => {
                return Err("option cert-authority takes no value".to_owned());
            }
            _ => {
                return Err(format!(
                    "unknown option {name:?}; allowed signers options are namespaces, \
                     valid-after, valid-before and cert-authority"
                ))
            }
        }
    }
    Ok(options)
}

/// Options are separated by commas outside double quotes.
fn split_options(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("empty option in {text:?}"));
    }
    Ok(parts)
}

/// `"value"` → `value` (with `\"` unescaped); an unquoted value is taken as it is.
fn dequote(value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(value.to_owned());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err(format!(
            "option value {value} is not closed by a double quote"
        ));
    };
    Ok(inner.replace("\\\"", "\""))
}

/// `YYYYMMDD[HHMM[SS]]Z` → Unix seconds. Times without `Z` are local time for ssh-keygen;
/// the agent refuses them rather than guess the node's time zone.
fn parse_time(option: &str, value: &str) -> Result<i64, String> {
    let help = || {
        format!(
            "{option}=\"{value}\" is not a UTC time; write YYYYMMDD[HHMM[SS]]Z, e.g. \
             {option}=\"20250101Z\" (times without Z are refused: they mean the node's local time)"
        )
    };
    let digits = value.strip_suffix(['Z', 'z']).ok_or_else(help)?;
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(help());
    }
    let field = |range: std::ops::Range<usize>| digits.get(range).map_or(Ok(0), str::parse::<i64>);
    let parsed = (|| -> Result<[i64; 6], std::num::ParseIntError> {
        Ok([
            field(0..4)?,
            field(4..6)?,
            field(6..8)?,
            field(8..10)?,
            field(10..12)?,
            field(12..14)?,
        ])
    })()
    .map_err(|_| help())?;
    let [year, month, day, hour, minute, second] = parsed;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(help());
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
fn show_time(unix: i64) -> String {
    supercp_core::time::utc(unix.saturating_mul(1000))
}

/// OpenSSH's `match_pattern_list`: comma-separated patterns with `*` and `?`; a pattern
/// starting with `!` that matches refuses, otherwise any matching pattern accepts.
fn pattern_list_matches(text: &str, list: &str) -> bool {
    let mut matched = false;
    for pattern in list.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if glob(text.as_bytes(), pattern.as_bytes()) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

fn glob(text: &[u8], pattern: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(&text[i..], rest)),
        Some((&p, rest)) => text
            .split_first()
            .is_some_and(|(&t, text)| (p == b'?' || p == t) && glob(text, rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    #[test]
    fn parses_options_comments_and_blank_lines() {
        let text = format!(
            "# trusted\n\n  a@x,b@x namespaces=\"git,file\",valid-after=\"20200101Z\" {KEY} laptop\n\
             c@x {KEY}\n"
        );
        let signers = AllowedSigners::parse(&text, "allowed_signers").unwrap();
        assert_eq!(signers.len(), 2);
        let first = &signers.entries[0];
        assert_eq!(first.line, 3);
        assert_eq!(first.principals, "a@x,b@x");
        assert_eq!(first.namespaces.as_deref(), Some("git,file"));
        assert_eq!(first.valid_after, Some(1_577_836_800));
        assert_eq!(signers.entries[1].namespaces, None);
    }

    #[test]
    fn refuses_what_it_cannot_honour_with_every_line() {
        let text = format!(
            "a@x cert-authority {KEY}\nb@x valid-before=\"20300101\" {KEY}\nc@x foo=\"1\" {KEY}\n\
             d@x\ne@x ssh-ed25519 AAAAnotbase64\n"
        );
        let err = AllowedSigners::parse(&text, "signers").unwrap_err();
        let TrustError::InvalidSigners { problems, .. } = &err else {
            panic!("{err}")
        };
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5], "{err}");
        assert!(
            err.to_string().contains("signers:1: cert-authority"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("signers:2: valid-before=\"20300101\" is not a UTC time"),
            "{err}"
        );
    }

    #[test]
    fn times_and_patterns() {
        assert_eq!(parse_time("t", "19700101Z"), Ok(0));
        assert_eq!(parse_time("t", "20240229123456Z"), Ok(1_709_210_096));
        assert_eq!(show_time(1_709_210_096).to_string(), "2024-02-29T12:34:56Z");
        assert!(pattern_list_matches("git", "file,git"));
        assert!(pattern_list_matches("git", "g*"));
        assert!(!pattern_list_matches("git", "*,!git"));
        assert!(!pattern_list_matches("git", "file"));
        assert!(pattern_list_matches("git", "g?t"));
    }
}
