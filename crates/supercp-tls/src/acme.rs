//! Issuing certificates from an ACME CA (RFC 8555) with instant-acme: the account (created
//! once; the caller stores its credentials), one order per certificate, the challenge
//! answered by a `ChallengeSolver` the caller implements, and errors classified from the CA's
//! problem document (`ProblemKind`, `Class`).
//!
//! No node I/O here: credentials come in and go out as bytes, challenge answers through the
//! solver. (The one file read is instant-acme's of `AcmeConfig::ca_file`, the operator's.)

use std::path::PathBuf;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType,
    ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus, Problem, RetryPolicy,
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

/// Whether a failure may go away by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The CA or the network may answer differently later (a rate limit, a CA that is down, a
    /// validation that could not connect): retry with backoff.
    Transient,
    /// Nothing changes until someone changes something (the repo, DNS, the node file, the
    /// account): asking again the same way gets the same answer.
    Permanent,
}

/// The type of an ACME problem document (RFC 8555 §6.7, RFC 9773 §7.4), read from its `type`
/// field, never from its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    AccountDoesNotExist,
    AlreadyReplaced,
    AlreadyRevoked,
    BadCsr,
    BadNonce,
    BadPublicKey,
    BadRevocationReason,
    BadSignatureAlgorithm,
    Caa,
    Compound,
    Connection,
    Dns,
    ExternalAccountRequired,
    IncorrectResponse,
    InvalidContact,
    Malformed,
    OrderNotReady,
    RateLimited,
    RejectedIdentifier,
    ServerInternal,
    Tls,
    Unauthorized,
    UnsupportedContact,
    UnsupportedIdentifier,
    UserActionRequired,
    /// A type outside the ACME namespace (the CA's own), or none at all.
    Other(Option<String>),
}

/// The namespace of ACME's problem types.
const ACME_ERROR: &str = "urn:ietf:params:acme:error:";

impl ProblemKind {
    /// The kind a problem document's `type` names.
    pub fn of(problem_type: Option<&str>) -> ProblemKind {
        let Some(name) = problem_type.and_then(|t| t.strip_prefix(ACME_ERROR)) else {
            return ProblemKind::Other(problem_type.map(str::to_owned));
        };
        match name {
            "accountDoesNotExist" => ProblemKind::AccountDoesNotExist,
            "alreadyReplaced" => ProblemKind::AlreadyReplaced,
            "alreadyRevoked" => ProblemKind::AlreadyRevoked,
            "badCSR" => ProblemKind::BadCsr,
            "badNonce" => ProblemKind::BadNonce,
            "badPublicKey" => ProblemKind::BadPublicKey,
            "badRevocationReason" => ProblemKind::BadRevocationReason,
            "badSignatureAlgorithm" => ProblemKind::BadSignatureAlgorithm,
            "caa" => ProblemKind::Caa,
            "compound" => ProblemKind::Compound,
            "connection" => ProblemKind::Connection,
            "dns" => ProblemKind::Dns,
            "externalAccountRequired" => ProblemKind::ExternalAccountRequired,
            "incorrectResponse" => ProblemKind::IncorrectResponse,
            "invalidContact" => ProblemKind::InvalidContact,
            "malformed" => ProblemKind::Malformed,
            "orderNotReady" => ProblemKind::OrderNotReady,
            "rateLimited" => ProblemKind::RateLimited,
            "rejectedIdentifier" => ProblemKind::RejectedIdentifier,
            "serverInternal" => ProblemKind::ServerInternal,
            "tls" => ProblemKind::Tls,
            "unauthorized" => ProblemKind::Unauthorized,
            "unsupportedContact" => ProblemKind::UnsupportedContact,
            "unsupportedIdentifier" => ProblemKind::UnsupportedIdentifier,
            "userActionRequired" => ProblemKind::UserActionRequired,
            _ => ProblemKind::Other(problem_type.map(str::to_owned)),
        }
    }

    /// Rate limits, a busy or broken CA, and validations that could not reach the node (DNS,
    /// connection, TLS) are transient; refusals of what was asked (the name, the CSR, the
    /// answer, the account) are permanent. `Compound` and `Other` need the document: see
    /// `CaProblem::class`.
    fn class(&self) -> Option<Class> {
        use ProblemKind::*;
        match self {
            RateLimited | BadNonce | ServerInternal | Connection | Dns | Tls | OrderNotReady => {
                Some(Class::Transient)
            }
            AccountDoesNotExist
            | AlreadyReplaced
            | AlreadyRevoked
            | BadCsr
            | BadPublicKey
            | BadRevocationReason
            | BadSignatureAlgorithm
            | Caa
            | ExternalAccountRequired
            | IncorrectResponse
            | InvalidContact
            | Malformed
            | RejectedIdentifier
            | Unauthorized
            | UnsupportedContact
            | UnsupportedIdentifier
            | UserActionRequired => Some(Class::Permanent),
            Compound | Other(_) => None,
        }
    }
}

/// What the CA said: its problem document, classified.
#[derive(Clone, Debug)]
pub struct CaProblem {
    pub kind: ProblemKind,
    /// The kinds of its subproblems (one per identifier, RFC 8555 §6.7.1).
    pub subproblems: Vec<ProblemKind>,
    /// The HTTP status the CA answered with.
    pub status: Option<u16>,
    /// The CA's own words: detail, type and subproblems.
    pub text: String,
}

impl CaProblem {
    pub fn new(problem: &Problem) -> CaProblem {
        CaProblem {
            kind: ProblemKind::of(problem.r#type.as_deref()),
            subproblems: problem
                .subproblems
                .iter()
                .map(|s| ProblemKind::of(s.r#type.as_deref()))
                .collect(),
            status: problem.status,
            text: problem.to_string(),
        }
    }

    /// A compound problem is permanent when one of its subproblems is; a problem of a type
    /// outside ACME's is transient when the CA answered 5xx or 429.
    pub fn class(&self) -> Class {
        if let Some(class) = self.kind.class() {
            return class;
        }
        if self.kind == ProblemKind::Compound && !self.subproblems.is_empty() {
            let permanent = self
                .subproblems
                .iter()
                .any(|k| k.class().is_none_or(|c| c == Class::Permanent));
            return if permanent {
                Class::Permanent
            } else {
                Class::Transient
            };
        }
        match self.status {
            Some(status) if status >= 500 || status == 429 => Class::Transient,
            _ => Class::Permanent,
        }
    }

    /// The CA says this account or any of its subproblems is rate limited.
    pub fn is_rate_limited(&self) -> bool {
        self.kind == ProblemKind::RateLimited
            || self.subproblems.contains(&ProblemKind::RateLimited)
    }
}

impl std::fmt::Display for CaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error(
        "the stored ACME account cannot be read ({0}); remove the account file and the next run \
         creates a new account"
    )]
    Credentials(#[source] serde_json::Error),
    /// The CA answered with a problem document.
    #[error("the ACME CA at {url}: {problem}")]
    Refused {
        url: String,
        problem: Box<CaProblem>,
    },
    /// The CA could not be asked, or its answer made no sense.
    #[error("the ACME CA at {url}: {source}")]
    Client {
        url: String,
        #[source]
        source: instant_acme::Error,
    },
    #[error("the ACME CA at {url}: the authorization of {name} is {status}{}", suffix(.problem))]
    Authorization {
        url: String,
        name: String,
        status: String,
        problem: Option<Box<CaProblem>>,
    },
    #[error("the ACME CA at {url} offers no {kind} challenge for {name}")]
    NoChallenge {
        url: String,
        kind: String,
        name: String,
    },
    #[error("the ACME CA at {url}: the order is {status}{}", suffix(.problem))]
    Order {
        url: String,
        status: String,
        problem: Option<Box<CaProblem>>,
    },
    #[error("answering the {kind} challenge for {name}: {source}")]
    Challenge {
        kind: &'static str,
        name: String,
        #[source]
        source: ChallengeError,
    },
    #[error(transparent)]
    Cert(#[from] crate::cert::CertError),
    /// The account could not be opened: an earlier error, said again per certificate.
    #[error("{0}")]
    Account(std::sync::Arc<AcmeError>),
}

fn suffix(problem: &Option<Box<CaProblem>>) -> String {
    problem
        .as_ref()
        .map_or_else(String::new, |p| format!(": {p}"))
}

impl AcmeError {
    /// Whether asking again later, unchanged, may succeed.
    pub fn class(&self) -> Class {
        match self {
            AcmeError::Refused { problem, .. } => problem.class(),
            AcmeError::Authorization {
                problem, status, ..
            }
            | AcmeError::Order {
                problem, status, ..
            } => match problem {
                Some(problem) => problem.class(),
                None if status == "invalid" => Class::Permanent,
                None => Class::Transient,
            },
            AcmeError::Client { source, .. } => match source {
                instant_acme::Error::Api(problem) => CaProblem::new(problem).class(),
                instant_acme::Error::Crypto
                | instant_acme::Error::KeyRejected
                | instant_acme::Error::InvalidUri(_)
                | instant_acme::Error::Unsupported(_) => Class::Permanent,
                // Connections, TLS, timeouts, answers cut short.
                _ => Class::Transient,
            },
            AcmeError::Challenge { source, .. } => source.class(),
            AcmeError::Credentials(_) | AcmeError::NoChallenge { .. } | AcmeError::Cert(_) => {
                Class::Permanent
            }
            AcmeError::Account(inner) => inner.class(),
        }
    }

    /// The CA's problem document, when it sent one.
    pub fn problem(&self) -> Option<&CaProblem> {
        match self {
            AcmeError::Refused { problem, .. } => Some(problem),
            AcmeError::Authorization { problem, .. } | AcmeError::Order { problem, .. } => {
                problem.as_deref()
            }
            AcmeError::Account(inner) => inner.problem(),
            _ => None,
        }
    }

    /// The CA does not know the account (a reset test CA, a deactivated account).
    pub fn is_unknown_account(&self) -> bool {
        self.problem()
            .is_some_and(|p| p.kind == ProblemKind::AccountDoesNotExist)
    }

    /// The CA says it is rate limiting.
    pub fn is_rate_limited(&self) -> bool {
        self.problem().is_some_and(CaProblem::is_rate_limited)
    }

    fn ca(url: &str, source: instant_acme::Error) -> AcmeError {
        match source {
            instant_acme::Error::Api(problem) => AcmeError::Refused {
                url: url.to_owned(),
                problem: Box::new(CaProblem::new(&problem)),
            },
            source => AcmeError::Client {
                url: url.to_owned(),
                source,
            },
        }
    }
}

/// Why a challenge answer could not be presented.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    #[error("the CA sent a token that is not base64url: {0:?}")]
    BadToken(String),
    /// The solver could not make the answer visible (the caller's own error).
    #[error("{source}")]
    Present {
        class: Class,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ChallengeError {
    pub fn class(&self) -> Class {
        match self {
            ChallengeError::BadToken(_) => Class::Permanent,
            ChallengeError::Present { class, .. } => *class,
        }
    }
}

/// Something that can make the CA's challenge answer visible (HTTP-01: a file nginx serves;
/// DNS-01, later: a TXT record). Implemented by the caller, which owns the node's I/O.
pub trait ChallengeSolver: Sync {
    /// The ACME challenge type this solver answers.
    fn kind(&self) -> ChallengeType;

    /// Makes `key_authorization` visible for `token` on `name`.
    ///
    /// # Errors
    /// When it cannot.
    fn present(
        &self,
        name: &str,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), ChallengeError>;

    /// Takes the answer down again (best effort).
    fn cleanup(&self, token: &str);
}

/// ACME tokens are base64url (RFC 8555 §8.1): nothing else may reach a path.
///
/// # Errors
/// `BadToken` for anything else, or an empty or oversized token.
pub fn check_token(token: &str) -> Result<(), ChallengeError> {
    if token.is_empty()
        || token.len() > 256
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ChallengeError::BadToken(token.to_owned()));
    }
    Ok(())
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

/// An account opened by `AcmeClient::open`.
pub struct Opened {
    pub client: AcmeClient,
    /// The credentials of an account the CA just created: the caller stores them (root's
    /// eyes only) and hands them back next time.
    pub created: Option<Vec<u8>>,
}

fn builder(config: &AcmeConfig) -> Result<instant_acme::AccountBuilder, AcmeError> {
    let url = &config.directory_url;
    match &config.ca_file {
        Some(ca) => Account::builder_with_root(ca).map_err(|e| AcmeError::ca(url, e)),
        None => Account::builder().map_err(|e| AcmeError::ca(url, e)),
    }
}

impl AcmeClient {
    /// Opens the account whose credentials are `stored` (as `Opened::created` gave them), or
    /// creates one with the CA when there are none.
    ///
    /// # Errors
    /// `Credentials` when `stored` cannot be read; the CA's error when it cannot be reached or
    /// refuses the account.
    pub async fn open(config: &AcmeConfig, stored: Option<&[u8]>) -> Result<Opened, AcmeError> {
        let url = config.directory_url.clone();
        if let Some(stored) = stored {
            let credentials: AccountCredentials =
                serde_json::from_slice(stored).map_err(AcmeError::Credentials)?;
            let account = builder(config)?
                .from_credentials(credentials)
                .await
                .map_err(|e| AcmeError::ca(&url, e))?;
            return Ok(Opened {
                client: AcmeClient { account, url },
                created: None,
            });
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
            .map_err(|e| AcmeError::ca(&url, e))?;
        let created = serde_json::to_vec(&credentials).map_err(AcmeError::Credentials)?;
        Ok(Opened {
            client: AcmeClient { account, url },
            created: Some(created),
        })
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
            Err(e) => Err(AcmeError::ca(&self.url, e)),
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
        let url = self.url.as_str();
        let ca_err = |e: instant_acme::Error| AcmeError::ca(url, e);
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
                    presented = Err(AcmeError::Authorization {
                        url: url.to_owned(),
                        name: authorization.identifier().to_string(),
                        status: status_name(status),
                        problem: authorization
                            .challenges
                            .iter()
                            .find_map(|c| c.error.as_ref())
                            .map(|p| Box::new(CaProblem::new(p))),
                    });
                    break;
                }
            }
            let kind = solver.kind();
            let identifier = authorization.identifier().to_string();
            let Some(mut challenge) = authorization.challenge(kind.clone()) else {
                presented = Err(AcmeError::NoChallenge {
                    url: url.to_owned(),
                    kind: format!("{kind:?}"),
                    name: identifier,
                });
                break;
            };
            let name = challenge.identifier().to_string();
            let token = challenge.token.clone();
            let answer = challenge.key_authorization();
            if let Err(source) = solver.present(&name, &token, answer.as_str()) {
                presented = Err(AcmeError::Challenge {
                    kind: "http-01",
                    name,
                    source,
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
                return Err(AcmeError::Order {
                    url: url.to_owned(),
                    status: status_name(status),
                    problem: order
                        .state()
                        .error
                        .as_ref()
                        .map(|p| Box::new(CaProblem::new(p))),
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

/// An order's or authorization's status as RFC 8555 spells it (`invalid`, `pending` …).
fn status_name(status: impl std::fmt::Debug) -> String {
    let name = format!("{status:?}");
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_lowercase().to_string() + chars.as_str()
    })
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
            assert!(
                matches!(check_token(bad), Err(ChallengeError::BadToken(t)) if t == bad),
                "{bad:?}"
            );
        }
        assert_eq!(
            check_token("a/b").unwrap_err().class(),
            Class::Permanent,
            "a CA sending such tokens keeps sending them"
        );
    }

    /// A problem document as a CA sends it.
    fn problem(json: &str) -> CaProblem {
        CaProblem::new(&serde_json::from_str::<Problem>(json).expect("problem json"))
    }

    fn refused(json: &str) -> AcmeError {
        AcmeError::Refused {
            url: "https://ca.test/dir".into(),
            problem: Box::new(problem(json)),
        }
    }

    #[test]
    fn problem_types_are_read_from_the_type_field_not_the_text() {
        let p = problem(
            r#"{"type": "urn:ietf:params:acme:error:rateLimited", "status": 429,
                "detail": "too many certificates (5) already issued for this exact set of identifiers"}"#,
        );
        assert_eq!(p.kind, ProblemKind::RateLimited);
        assert_eq!(p.status, Some(429));
        assert!(p.is_rate_limited());
        // The words of the detail decide nothing.
        let p = problem(
            r#"{"type": "urn:ietf:params:acme:error:rejectedIdentifier", "status": 400,
                "detail": "not rateLimited: accountDoesNotExist"}"#,
        );
        assert_eq!(p.kind, ProblemKind::RejectedIdentifier);
        assert!(!p.is_rate_limited());
        assert!(
            p.text.contains("rejectedIdentifier"),
            "the CA's words stay: {p}"
        );
        assert_eq!(
            problem(r#"{"type": "urn:ietf:params:acme:error:badCSR"}"#).kind,
            ProblemKind::BadCsr
        );
        assert_eq!(
            problem(r#"{"type": "urn:example:ca:quota"}"#).kind,
            ProblemKind::Other(Some("urn:example:ca:quota".into()))
        );
        assert_eq!(problem(r#"{"detail": "?"}"#).kind, ProblemKind::Other(None));
    }

    #[test]
    fn rate_limits_and_unreachable_validations_are_transient_refusals_permanent() {
        let class = |t: &str, status: u16| {
            problem(&format!(
                r#"{{"type": "urn:ietf:params:acme:error:{t}", "status": {status}}}"#
            ))
            .class()
        };
        for t in [
            "rateLimited",
            "badNonce",
            "serverInternal",
            "connection",
            "dns",
            "tls",
        ] {
            assert_eq!(class(t, 400), Class::Transient, "{t}");
        }
        for t in [
            "unauthorized",
            "badCSR",
            "rejectedIdentifier",
            "caa",
            "incorrectResponse",
            "malformed",
            "externalAccountRequired",
            "accountDoesNotExist",
        ] {
            assert_eq!(class(t, 500), Class::Permanent, "{t}");
        }
        // A CA's own type: its HTTP status decides.
        let own = |status: u16| {
            problem(&format!(
                r#"{{"type": "urn:example:x", "status": {status}}}"#
            ))
            .class()
        };
        assert_eq!(own(503), Class::Transient);
        assert_eq!(own(429), Class::Transient);
        assert_eq!(own(403), Class::Permanent);
    }

    #[test]
    fn a_compound_problem_is_permanent_when_one_of_its_subproblems_is() {
        let compound = |a: &str, b: &str| {
            problem(&format!(
                r#"{{"type": "urn:ietf:params:acme:error:compound", "status": 403,
                    "subproblems": [
                      {{"type": "urn:ietf:params:acme:error:{a}", "identifier": {{"type": "dns", "value": "a.test"}}}},
                      {{"type": "urn:ietf:params:acme:error:{b}", "identifier": {{"type": "dns", "value": "b.test"}}}}]}}"#
            ))
        };
        let p = compound("dns", "connection");
        assert_eq!(p.subproblems, [ProblemKind::Dns, ProblemKind::Connection]);
        assert_eq!(p.class(), Class::Transient);
        assert_eq!(compound("dns", "caa").class(), Class::Permanent);
        assert!(compound("rateLimited", "dns").is_rate_limited());
    }

    #[test]
    fn acme_errors_carry_the_class_of_their_cause() {
        let limited =
            refused(r#"{"type": "urn:ietf:params:acme:error:rateLimited", "status": 429}"#);
        assert_eq!(limited.class(), Class::Transient);
        assert!(limited.is_rate_limited() && !limited.is_unknown_account());
        let gone = refused(r#"{"type": "urn:ietf:params:acme:error:accountDoesNotExist"}"#);
        assert!(gone.is_unknown_account());
        assert_eq!(gone.class(), Class::Permanent);
        // Said again per certificate: the same class and problem.
        let again = AcmeError::Account(std::sync::Arc::new(gone));
        assert!(again.is_unknown_account());
        assert_eq!(again.class(), Class::Permanent);
        let order = |status: &str, problem: Option<CaProblem>| AcmeError::Order {
            url: "u".into(),
            status: status.into(),
            problem: problem.map(Box::new),
        };
        assert_eq!(order("invalid", None).class(), Class::Permanent);
        assert_eq!(order("pending", None).class(), Class::Transient);
        let unauthorized = problem(r#"{"type": "urn:ietf:params:acme:error:unauthorized"}"#);
        let e = order("invalid", Some(unauthorized));
        assert_eq!(e.class(), Class::Permanent);
        assert!(
            e.to_string().contains("the order is invalid: API error"),
            "{e}"
        );
        let network = AcmeError::Client {
            url: "u".into(),
            source: instant_acme::Error::Timeout(None),
        };
        assert_eq!(network.class(), Class::Transient);
        assert!(network.problem().is_none());
        let present = AcmeError::Challenge {
            kind: "http-01",
            name: "a.test".into(),
            source: ChallengeError::Present {
                class: Class::Transient,
                source: "disk full".into(),
            },
        };
        assert_eq!(present.class(), Class::Transient);
        assert_eq!(
            present.to_string(),
            "answering the http-01 challenge for a.test: disk full"
        );
    }

    #[test]
    fn statuses_are_spelled_as_in_the_rfc() {
        assert_eq!(status_name(OrderStatus::Invalid), "invalid");
        assert_eq!(status_name(AuthorizationStatus::Deactivated), "deactivated");
    }
}
