//! How the agent reaches its Git remote: which transport a URL names, and the credentials and
//! server checks each one needs.
//!
//! - `file://` and absolute paths: nothing to authenticate.
//! - `https://`: the server's certificate is checked by libgit2 (OpenSSL) against the system's
//!   CAs plus an optional `caFile`; a password or token from `tokenFile` is sent with the URL's
//!   user name.
//! - `ssh://` and `user@host:path`: the deploy key `sshKey` logs in; the server's host key must
//!   be listed in `knownHosts` (plain or hashed entries). An unknown or changed host key is
//!   refused, never learnt, and `@revoked` keys are refused too.
//!
//! Key and token files must be readable by their owner only, as ssh(1) demands of keys.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};
use hmac::{Hmac, Mac};
use ssh_key::known_hosts::{HostPatterns, KnownHosts, Marker};
use supercp_core::resource::GitSource;

/// Why a remote cannot be used as the node file describes it.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `agent.git` names something this agent cannot use (a URL, a missing or readable-by-all
    /// key file): the node file must change.
    #[error("{0}")]
    Config(String),
    /// The ssh server's host key is not one `knownHosts` trusts.
    #[error("{0}")]
    HostKey(String),
}

/// The transport a remote URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Local,
    Https,
    Ssh { host: String, port: u16 },
}

/// A remote's transport with what it needs, checked when the agent starts.
#[derive(Debug)]
pub struct Transport {
    pub kind: Kind,
    /// The user name the URL gives, if any.
    user: Option<String>,
    ssh_key: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    token_file: Option<PathBuf>,
    /// Why the last fetch's callbacks refused the server or gave up on credentials. libgit2
    /// replaces a callback's message with its own generic one, so the reason is kept here.
    refusal: std::sync::Mutex<Option<String>>,
}

impl Transport {
    /// Reads the node file's `agent.git` and checks that the URL names a supported transport
    /// and that its key, token and known_hosts files are there and private.
    ///
    /// # Errors
    /// What is wrong, naming the node file's field and what to do.
    pub fn new(git: &GitSource) -> Result<Transport, TransportError> {
        let (kind, user) = parse_url(&git.url)?;
        let path = |p: &Option<String>| p.as_deref().map(PathBuf::from);
        let transport = Transport {
            kind,
            user,
            ssh_key: path(&git.ssh_key),
            known_hosts: path(&git.known_hosts),
            token_file: path(&git.token_file),
            refusal: std::sync::Mutex::default(),
        };
        match transport.kind {
            Kind::Ssh { .. } => {
                let Some(known) = &transport.known_hosts else {
                    return Err(TransportError::Config(format!(
                        "agent.git.url {:?} is an ssh remote: set agent.git.knownHosts to a file \
                         listing the server's host key (`ssh-keyscan -p PORT HOST > FILE`, then \
                         check its fingerprint with the server's operator)",
                        git.url
                    )));
                };
                if !known.is_file() {
                    return Err(TransportError::Config(format!(
                        "agent.git.knownHosts {}: no such file",
                        known.display()
                    )));
                }
                let Some(key) = &transport.ssh_key else {
                    return Err(TransportError::Config(format!(
                        "agent.git.url {:?} is an ssh remote: set agent.git.sshKey to the deploy \
                         key's private key file",
                        git.url
                    )));
                };
                private_file("agent.git.sshKey", key)?;
            }
            Kind::Https => {
                if let Some(token) = &transport.token_file {
                    private_file("agent.git.tokenFile", token)?;
                }
            }
            Kind::Local => {}
        }
        if transport.kind != Kind::Https && (git.token_file.is_some() || git.ca_file.is_some()) {
            return Err(TransportError::Config(format!(
                "agent.git.tokenFile and agent.git.caFile are for https remotes; {:?} is not one",
                git.url
            )));
        }
        if !matches!(transport.kind, Kind::Ssh { .. })
            && (git.ssh_key.is_some() || git.known_hosts.is_some())
        {
            return Err(TransportError::Config(format!(
                "agent.git.sshKey and agent.git.knownHosts are for ssh remotes; {:?} is not one",
                git.url
            )));
        }
        if let Some(ca) = git.ca_file.as_deref() {
            if !Path::new(ca).is_file() {
                return Err(TransportError::Config(format!(
                    "agent.git.caFile {ca}: no such file"
                )));
            }
            // SAFETY: called once, at start, before any fetch (libgit2's TLS settings are
            // process-wide and read when a connection is made).
            unsafe { git2::opts::set_ssl_cert_file(ca) }.map_err(|e| {
                TransportError::Config(format!("agent.git.caFile {ca}: {}", e.message()))
            })?;
        }
        Ok(transport)
    }

    /// Why the last fetch was refused by this side (host key, credentials), if it was.
    pub fn take_refusal(&self) -> Option<String> {
        self.refusal.lock().ok().and_then(|mut r| r.take())
    }

    fn refuse(&self, why: String) -> git2::Error {
        let error = git2::Error::from_str(&why);
        if let Ok(mut refusal) = self.refusal.lock() {
            *refusal = Some(why);
        }
        error
    }

    /// The callbacks of one fetch: credentials and the host key check. Each credential is
    /// offered once: a refused login fails the fetch instead of looping.
    pub fn callbacks(&self) -> RemoteCallbacks<'_> {
        let mut callbacks = RemoteCallbacks::new();
        let mut offered = false;
        self.take_refusal();
        callbacks.credentials(move |_url, user_from_url, allowed| {
            if offered {
                return Err(self.refuse(
                    "the remote refused the credentials (check the deploy key or token, and \
                     that it may read this repository)"
                        .into(),
                ));
            }
            offered = true;
            let user = user_from_url.or(self.user.as_deref()).unwrap_or("git");
            if allowed.contains(CredentialType::SSH_KEY) {
                if let Some(key) = &self.ssh_key {
                    return Cred::ssh_key(user, None, key, None);
                }
            }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                if let Some(file) = &self.token_file {
                    let token = std::fs::read_to_string(file).map_err(|e| {
                        git2::Error::from_str(&format!(
                            "agent.git.tokenFile {}: {e}",
                            file.display()
                        ))
                    })?;
                    return Cred::userpass_plaintext(user, token.trim_end_matches(['\n', '\r']));
                }
            }
            Err(self.refuse(
                "the remote asks for credentials the node file does not give (agent.git.sshKey \
                 for ssh, agent.git.tokenFile for https)"
                    .into(),
            ))
        });
        callbacks.certificate_check(move |cert, _host| {
            let Kind::Ssh { host, port } = &self.kind else {
                // https: libgit2 has checked the chain and the name against the trusted CAs.
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let Some(key) = cert.as_hostkey().and_then(git2::cert::CertHostkey::hostkey) else {
                return Err(self.refuse("the ssh server sent no host key".into()));
            };
            let known = self.known_hosts.as_deref().unwrap_or(Path::new(""));
            check_host_key(known, host, *port, key).map_err(|e| self.refuse(e.to_string()))?;
            Ok(CertificateCheckStatus::CertificateOk)
        });
        callbacks
    }
}

/// The transport and user name of a remote URL.
fn parse_url(url: &str) -> Result<(Kind, Option<String>), TransportError> {
    if url.is_empty() || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(TransportError::Config(format!(
            "agent.git.url {url:?}: empty, or holds a space or control character"
        )));
    }
    if url.starts_with("file://") || url.starts_with('/') {
        return Ok((Kind::Local, None));
    }
    for (scheme, https) in [("https://", true), ("ssh://", false)] {
        let Some(rest) = url.strip_prefix(scheme) else {
            continue;
        };
        let authority = rest.split('/').next().unwrap_or("");
        if authority.is_empty() || rest.len() == authority.len() {
            return Err(TransportError::Config(format!(
                "agent.git.url {url:?}: expected {scheme}[user@]host[:port]/path"
            )));
        }
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, hp)) => (Some(user.split(':').next().unwrap_or(user)), hp),
            None => (None, authority),
        };
        let (host, port) = split_port(host_port, if https { 443 } else { 22 })
            .ok_or_else(|| TransportError::Config(format!("agent.git.url {url:?}: bad port")))?;
        if host.is_empty() {
            return Err(TransportError::Config(format!(
                "agent.git.url {url:?}: no host"
            )));
        }
        let user = user.filter(|u| !u.is_empty()).map(str::to_owned);
        let kind = if https {
            Kind::Https
        } else {
            Kind::Ssh { host, port }
        };
        return Ok((kind, user));
    }
    if url.starts_with("http://") || url.starts_with("git://") {
        return Err(TransportError::Config(format!(
            "agent.git.url {url:?}: plain http:// and git:// are refused (nothing would \
             authenticate the server); use https:// or ssh://"
        )));
    }
    // scp-like: [user@]host:path, with no scheme and a colon before any slash.
    if let Some((authority, path)) = url.split_once(':') {
        if !authority.contains('/') && !path.is_empty() && !authority.is_empty() {
            let (user, host) = match authority.rsplit_once('@') {
                Some((user, host)) => (Some(user.to_owned()), host),
                None => (None, authority),
            };
            if !host.is_empty() {
                let kind = Kind::Ssh {
                    host: host.to_owned(),
                    port: 22,
                };
                return Ok((kind, user.filter(|u| !u.is_empty())));
            }
        }
    }
    Err(TransportError::Config(format!(
        "agent.git.url {url:?}: not a remote this agent reaches; use https://, ssh://, \
         user@host:path, file:// or an absolute path"
    )))
}

/// `host[:port]` or `[v6]:port`.
fn split_port(host_port: &str, default: u16) -> Option<(String, u16)> {
    if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((host_port.to_owned(), default)),
    }
}

/// A key or token file: a regular file readable by its owner only.
fn private_file(field: &str, path: &Path) -> Result<(), TransportError> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| TransportError::Config(format!("{field} {}: {e}", path.display())))?;
    if !meta.file_type().is_file() {
        return Err(TransportError::Config(format!(
            "{field} {}: not a regular file",
            path.display()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(TransportError::Config(format!(
            "{field} {}: mode {:o} lets others read it; chmod 600 it",
            path.display(),
            meta.mode() & 0o777
        )));
    }
    Ok(())
}

/// Checks the host key an ssh server presented (`key`, SSH wire encoding) against the
/// known_hosts file: some entry for the host (`host` on port 22, `[host]:port` otherwise) must
/// hold exactly this key, and no `@revoked` entry may.
///
/// # Errors
/// Why the key is not trusted, with the fingerprint to compare against.
pub fn check_host_key(
    known_hosts: &Path,
    host: &str,
    port: u16,
    key: &[u8],
) -> Result<(), TransportError> {
    let name = if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    };
    let entries = KnownHosts::read_file(known_hosts).map_err(|e| {
        TransportError::HostKey(format!(
            "agent.git.knownHosts {}: {e}",
            known_hosts.display()
        ))
    })?;
    let presented = ssh_key::PublicKey::from_bytes(key).map_err(|e| {
        TransportError::HostKey(format!(
            "the ssh server {name} sent a host key this agent cannot read: {e}"
        ))
    })?;
    let mut listed = false;
    for entry in &entries {
        if !host_matches(entry.host_patterns(), &name) {
            continue;
        }
        let same = entry.public_key().key_data() == presented.key_data();
        match entry.marker() {
            Some(Marker::Revoked) if same => {
                return Err(TransportError::HostKey(format!(
                    "the host key of {name} ({}) is marked @revoked in {}",
                    presented.fingerprint(Default::default()),
                    known_hosts.display()
                )));
            }
            Some(_) => {}
            None if same => listed = true,
            None => {}
        }
    }
    if listed {
        return Ok(());
    }
    Err(TransportError::HostKey(format!(
        "the host key of {name} ({}) is not listed in {}: if the server's operator confirms this \
         fingerprint, add the key there (`ssh-keyscan -p {port} {host}`)",
        presented.fingerprint(Default::default()),
        known_hosts.display()
    )))
}

/// Whether a known_hosts entry's host patterns name `name`: a hashed name matches by its
/// HMAC-SHA1; patterns match with `*` and `?`, and a matching `!pattern` excludes the host.
fn host_matches(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => {
            let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                return false;
            };
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
        HostPatterns::Patterns(patterns) => {
            let mut matched = false;
            for pattern in patterns {
                match pattern.strip_prefix('!') {
                    Some(negated) if glob(negated.as_bytes(), name.as_bytes()) => return false,
                    Some(_) => {}
                    None => matched |= glob(pattern.as_bytes(), name.as_bytes()),
                }
            }
            matched
        }
    }
}

/// ssh_config(5) patterns: `*` any run of characters, `?` one character, case-insensitive.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            glob(rest, name) || name.split_first().is_some_and(|(_, n)| glob(pattern, n))
        }
        (Some((b'?', rest)), Some((_, n))) => glob(rest, n),
        (Some((p, rest)), Some((c, n))) => p.eq_ignore_ascii_case(c) && glob(rest, n),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(url: &str) -> Result<(Kind, Option<String>), TransportError> {
        parse_url(url)
    }

    #[test]
    fn urls_name_their_transport() {
        assert_eq!(kind("file:///srv/hosting.git").unwrap().0, Kind::Local);
        assert_eq!(kind("/srv/hosting.git").unwrap().0, Kind::Local);
        assert_eq!(
            kind("https://deploy@git.example.com/ops/hosting.git").unwrap(),
            (Kind::Https, Some("deploy".into()))
        );
        assert_eq!(
            kind("ssh://git@git.example.com:2222/ops/hosting.git").unwrap(),
            (
                Kind::Ssh {
                    host: "git.example.com".into(),
                    port: 2222
                },
                Some("git".into())
            )
        );
        assert_eq!(
            kind("git@github.com:ops/hosting.git").unwrap(),
            (
                Kind::Ssh {
                    host: "github.com".into(),
                    port: 22
                },
                Some("git".into())
            )
        );
        assert_eq!(
            kind("ssh://[::1]:2200/srv/repo").unwrap().0,
            Kind::Ssh {
                host: "::1".into(),
                port: 2200
            }
        );
    }

    #[test]
    fn unauthenticated_and_malformed_urls_are_refused() {
        for url in [
            "http://git.example.com/repo.git",
            "git://git.example.com/repo.git",
            "relative/dir",
            "https://",
            "https://host",
            "ssh://host:notaport/x",
            "https://host/a b",
            "https://host/a\nb",
            "",
        ] {
            assert!(kind(url).is_err(), "{url:?} should be refused");
        }
        let why = kind("http://git.example.com/repo.git")
            .unwrap_err()
            .to_string();
        assert!(why.contains("use https:// or ssh://"), "{why}");
    }

    #[test]
    fn host_patterns_glob_negate_and_hash() {
        let p = |v: &[&str]| HostPatterns::Patterns(v.iter().map(|s| (*s).to_owned()).collect());
        assert!(host_matches(&p(&["git.example.com"]), "git.example.com"));
        assert!(host_matches(&p(&["*.example.com"]), "git.example.com"));
        assert!(host_matches(&p(&["[127.0.0.1]:2222"]), "[127.0.0.1]:2222"));
        assert!(!host_matches(&p(&["127.0.0.1"]), "[127.0.0.1]:2222"));
        assert!(!host_matches(
            &p(&["*.example.com", "!git.example.com"]),
            "git.example.com"
        ));
        assert!(host_matches(&p(&["g?t.EXAMPLE.com"]), "git.example.com"));
        // `|1|salt|hash` for "git.example.com", made the way ssh-keygen -H does.
        let salt = b"0123456789abcdefghij".to_vec();
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"git.example.com");
        let hash: [u8; 20] = mac.finalize().into_bytes().into();
        let hashed = HostPatterns::HashedName { salt, hash };
        assert!(host_matches(&hashed, "git.example.com"));
        assert!(!host_matches(&hashed, "other.example.com"));
    }
}
