//! Issuing certificates from an ACME CA (RFC 8555) with instant-acme: the account (created
//! once, its key kept in the state directory, mode 0600), one order per certificate, and the
//! challenge answered by a `ChallengeSolver`.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType,
    ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};

use crate::cert::{csr, new_key, KeyAndChain, KeyKind};

/// Let's Encrypt's production directory: the default.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, generous rate limits).
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The directory URL a node file's `acme.directory` names: `letsencrypt`,
/// `letsencrypt-staging`, or any `https://` URL.
pub fn directory_url(directory: &str) -> &str {
    match directory {
        "letsencrypt" => LETSENCRYPT,
        "letsencrypt-staging" => LETSENCRYPT_STAGING,
        url => url,
    }
}

/// Where the CA is and who the account is.
#[derive(Clone, Debug)]
pub struct AcmeConfig {
    pub directory_url: String,
    /// `mailto:` contact, if any.
    pub email: Option<String>,
    /// External account binding: key id and the raw HMAC key.
    pub eab: Option<(String, Vec<u8>)>,
    /// A PEM CA certificate to trust for the CA's own HTTPS instead of the system's (a
    /// private CA, or a test CA).
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("ACME account file {path}: {what}")]
    AccountFile { path: String, what: String },
    #[error("the ACME CA at {url}: {what}")]
    Ca { url: String, what: String },
    #[error("answering the {kind} challenge for {name}: {what}")]
    Challenge {
        kind: &'static str,
        name: String,
        what: String,
    },
    #[error("{0}")]
    Cert(#[from] crate::cert::CertError),
    /// The account could not be opened (an earlier error, said again per certificate).
    #[error("{0}")]
    Unreachable(String),
}

/// Something that can make the CA's challenge answer visible (HTTP-01: a file nginx serves;
/// DNS-01, later: a TXT record).
pub trait ChallengeSolver: Sync {
    /// The ACME challenge type this solver answers.
    fn kind(&self) -> ChallengeType;

    /// Makes `key_authorization` visible for `token` on `name`.
    ///
    /// # Errors
    /// When it cannot.
    fn present(&self, name: &str, token: &str, key_authorization: &str) -> Result<(), String>;

    /// Takes the answer down again (best effort).
    fn cleanup(&self, token: &str);
}

/// HTTP-01: the answer is a file in a node-wide directory that every vhost serves at
/// `/.well-known/acme-challenge/` (so issuance needs no config change).
pub struct Http01 {
    pub dir: PathBuf,
}

/// ACME tokens are base64url (RFC 8555 §8.1): nothing else reaches a path.
fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty()
        || token.len() > 256
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "the CA sent a token that is not base64url: {token:?}"
        ));
    }
    Ok(())
}

impl ChallengeSolver for Http01 {
    fn kind(&self) -> ChallengeType {
        ChallengeType::Http01
    }

    fn present(&self, _name: &str, token: &str, key_authorization: &str) -> Result<(), String> {
        check_token(token)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        // Written aside and renamed: nginx never serves half an answer.
        let path = self.dir.join(token);
        write_atomic(&path, key_authorization.as_bytes(), 0o644)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn cleanup(&self, token: &str) {
        if check_token(token).is_ok() {
            let _ = std::fs::remove_file(self.dir.join(token));
        }
    }
}

/// The CA's suggested renewal window for a certificate (ACME renewal information, RFC 9773).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenewalWindow {
    /// Renew between `start` and `end` (unix seconds); ask again after `recheck_secs`.
    Window {
        start: i64,
        end: i64,
        recheck_secs: u64,
    },
    /// The CA offers no ARI: the node's `renewDays` decides.
    Unsupported,
}

/// The ARI id of the leaf of a PEM chain.
fn certificate_id(chain_pem: &str) -> Result<CertificateIdentifier<'static>, AcmeError> {
    let der = crate::cert::leaf_der(chain_pem)?;
    let der = rustls_pki_types::CertificateDer::from(der);
    CertificateIdentifier::try_from(&der)
        .map(CertificateIdentifier::into_owned)
        .map_err(|e| AcmeError::Cert(crate::cert::CertError::X509(e)))
}

/// An ACME account, ready to order certificates.
pub struct AcmeClient {
    account: Account,
    url: String,
}

fn builder(config: &AcmeConfig) -> Result<instant_acme::AccountBuilder, AcmeError> {
    let ca_err = |e: instant_acme::Error| AcmeError::Ca {
        url: config.directory_url.clone(),
        what: e.to_string(),
    };
    match &config.ca_file {
        Some(ca) => Account::builder_with_root(ca).map_err(ca_err),
        None => Account::builder().map_err(ca_err),
    }
}

impl AcmeClient {
    /// Opens the account recorded in `account_file`, or creates one with the CA and records
    /// it there (mode 0600, in a 0700 directory).
    ///
    /// # Errors
    /// When the CA cannot be reached or refuses the account, or the file cannot be read or
    /// written.
    pub async fn open(config: &AcmeConfig, account_file: &Path) -> Result<AcmeClient, AcmeError> {
        let url = config.directory_url.clone();
        let file_err = |what: String| AcmeError::AccountFile {
            path: account_file.display().to_string(),
            what,
        };
        let ca_err = |e: instant_acme::Error| AcmeError::Ca {
            url: url.clone(),
            what: e.to_string(),
        };
        if let Ok(text) = std::fs::read_to_string(account_file) {
            let credentials: AccountCredentials =
                serde_json::from_str(&text).map_err(|e| file_err(e.to_string()))?;
            let account = builder(config)?
                .from_credentials(credentials)
                .await
                .map_err(ca_err)?;
            return Ok(AcmeClient { account, url });
        }
        let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let eab = config
            .eab
            .as_ref()
            .map(|(kid, key)| ExternalAccountKey::new(kid.clone(), key));
        let (account, credentials) = builder(config)?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                url.clone(),
                eab.as_ref(),
            )
            .await
            .map_err(ca_err)?;
        let text = serde_json::to_string(&credentials).map_err(|e| file_err(e.to_string()))?;
        write_private(account_file, text.as_bytes()).map_err(|e| file_err(e.to_string()))?;
        Ok(AcmeClient { account, url })
    }

    /// The CA's suggested renewal window for the certificate `chain_pem`.
    ///
    /// # Errors
    /// When the CA cannot be asked, or the certificate has no authority key identifier.
    pub async fn renewal_window(&self, chain_pem: &str) -> Result<RenewalWindow, AcmeError> {
        let id = certificate_id(chain_pem)?;
        match self.account.renewal_info(&id).await {
            Ok((info, recheck)) => Ok(RenewalWindow::Window {
                start: info.suggested_window.start.unix_timestamp(),
                end: info.suggested_window.end.unix_timestamp(),
                recheck_secs: recheck.as_secs(),
            }),
            Err(instant_acme::Error::Unsupported(_)) => Ok(RenewalWindow::Unsupported),
            Err(e) => Err(AcmeError::Ca {
                url: self.url.clone(),
                what: e.to_string(),
            }),
        }
    }

    /// Orders a certificate for `names` (the first is the leaf's main name), answers each
    /// pending authorization with `solver`, and returns the new key and chain.
    ///
    /// # Errors
    /// The CA's own error (its problem document) when an order, a challenge or the
    /// finalization fails; the solver's when it cannot present an answer.
    ///
    /// `replaces`: the chain this order replaces, for a CA with ARI (RFC 9773 §5), which then
    /// knows the renewal was planned and does not count it against rate limits.
    pub async fn issue(
        &self,
        names: &[String],
        key_kind: KeyKind,
        solver: &dyn ChallengeSolver,
        replaces: Option<&str>,
    ) -> Result<KeyAndChain, AcmeError> {
        let ca_err = |e: instant_acme::Error| AcmeError::Ca {
            url: self.url.clone(),
            what: e.to_string(),
        };
        let identifiers: Vec<Identifier> =
            names.iter().map(|n| Identifier::Dns(n.clone())).collect();
        let mut new_order = NewOrder::new(&identifiers);
        if let Some(old) = replaces {
            new_order = new_order.replaces(certificate_id(old)?);
        }
        let mut order = self.account.new_order(&new_order).await.map_err(ca_err)?;
        let mut tokens = Vec::new();
        let mut authorizations = order.authorizations();
        let mut presented = Ok(());
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(ca_err)?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => {
                    presented = Err(AcmeError::Ca {
                        url: self.url.clone(),
                        what: format!("authorization is {status:?}"),
                    });
                    break;
                }
            }
            let kind = solver.kind();
            let Some(mut challenge) = authorization.challenge(kind.clone()) else {
                presented = Err(AcmeError::Ca {
                    url: self.url.clone(),
                    what: format!("the CA offers no {kind:?} challenge"),
                });
                break;
            };
            let name = challenge.identifier().to_string();
            let token = challenge.token.clone();
            let answer = challenge.key_authorization();
            if let Err(what) = solver.present(&name, &token, answer.as_str()) {
                presented = Err(AcmeError::Challenge {
                    kind: "http-01",
                    name,
                    what,
                });
                break;
            }
            tokens.push(token);
            if let Err(e) = challenge.set_ready().await {
                presented = Err(ca_err(e));
                break;
            }
        }
        let result = async {
            presented?;
            let retry = RetryPolicy::new()
                .initial_delay(Duration::from_millis(250))
                .backoff(1.5)
                .timeout(Duration::from_secs(90));
            let status = order.poll_ready(&retry).await.map_err(ca_err)?;
            if status != OrderStatus::Ready {
                let why = order
                    .state()
                    .error
                    .as_ref()
                    .map_or_else(|| format!("the order is {status:?}"), |p| p.to_string());
                return Err(AcmeError::Ca {
                    url: self.url.clone(),
                    what: why,
                });
            }
            let key = new_key(key_kind)?;
            order
                .finalize_csr(&csr(names, &key)?)
                .await
                .map_err(ca_err)?;
            let chain_pem = order.poll_certificate(&retry).await.map_err(ca_err)?;
            Ok(KeyAndChain {
                key_pem: key.serialize_pem(),
                chain_pem,
            })
        }
        .await;
        for token in &tokens {
            solver.cleanup(token);
        }
        result
    }
}

/// Writes a file only root can read, through a temp file and a rename, in a 0700 directory.
///
/// # Errors
/// I/O errors.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    write_atomic(path, bytes, 0o600)
}

/// Writes `path` with `mode` through a new temp file beside it (never through a symlink),
/// synced, then renamed over it: readers see the old file or the new one, never half.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".supercp-tmp");
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)?;
    std::io::Write::write_all(&mut f, bytes)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_and_urls() {
        assert_eq!(directory_url("letsencrypt"), LETSENCRYPT);
        assert_eq!(directory_url("letsencrypt-staging"), LETSENCRYPT_STAGING);
        assert_eq!(
            directory_url("https://ca.example/dir"),
            "https://ca.example/dir"
        );
    }

    #[test]
    fn tokens_are_base64url_only() {
        assert!(check_token("abc-DEF_123").is_ok());
        for bad in ["", "../x", "a/b", "a.b", "a\nb", "a b"] {
            assert!(check_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn http01_writes_the_answer_and_cleans_it_up() {
        let dir = tempfile::tempdir().unwrap();
        let solver = Http01 {
            dir: dir.path().join("challenges"),
        };
        solver.present("a.test", "tok_1", "tok_1.thumb").unwrap();
        let path = dir.path().join("challenges/tok_1");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "tok_1.thumb");
        assert!(solver.present("a.test", "../escape", "x").is_err());
        solver.cleanup("tok_1");
        assert!(!path.exists());
    }
}
