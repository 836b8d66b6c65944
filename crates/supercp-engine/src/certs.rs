//! Certificates of the Domains with `tls`, around the rest of an apply:
//!
//! 1. before anything is written: every bring-your-own certificate is checked (key matches,
//!    chain complete, names covered; a failure stops the run with nothing applied), and every
//!    ACME site without a certificate gets a self-signed placeholder, so its `listen … ssl`
//!    server passes `nginx -t` from its first render;
//! 2. after the configs are live (every vhost answers ACME HTTP-01 challenges from the
//!    node-wide challenge directory): the certificates that are due (placeholder, missing,
//!    names changed, within `renewDays` of expiry, or asked for with `supercp cert renew`)
//!    are issued one by one; each is written aside and renamed into place (key, then chain);
//!    then one `nginx -t` and one reload for all of them. A failure keeps the current
//!    certificate serving and is a failed step with the CA's error.
//!
//! # Guarantees
//! - Nothing here reads or writes below a tenant's home: certificates live in `tls.certDir`
//!   and challenge answers in `tls.challengeDir`, both root-owned node directories.
//! - Keys, chains, account credentials and challenge answers are read, written and removed
//!   only through the file driver (`supercp_drivers::private`): never through a symlink, a file
//!   through a temp file and a rename with its mode set first. (Bring-your-own files and the
//!   EAB key are the operator's, read where the node file points, as nginx reads them.)
//! - A certificate that fails `nginx -t` after it was written is put back as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use supercp_audit::{CertRecord, Journal, NewStep, StepResult, StepStatus};
use supercp_core::resource::{CertSource, TlsProfile};
use supercp_core::time::now_ms;
use supercp_core::Span;
use supercp_drivers::private::{self, Access, PrivateError};
use supercp_tls::{
    AcmeClient, AcmeConfig, AcmeError, CertInfo, ChallengeError, ChallengeSolver, ChallengeType,
    Class, KeyKind,
};
use tracing::{info, warn};

use crate::inputs::Inputs;
use crate::EngineError;

/// One Domain with `tls`.
#[derive(Clone, Debug)]
pub struct TlsSite {
    pub resource: String,
    pub origin: Span,
    pub domain: String,
    /// The domain, then its aliases: the names its certificate must cover.
    pub names: Vec<String>,
    pub key_kind: KeyKind,
    pub source: Source,
}

#[derive(Clone, Debug)]
pub enum Source {
    /// Issued by the node's ACME CA into `<root>/<domain>/` (`fullchain.pem`, `privkey.pem`);
    /// `root` is `tls.certDir`, the file driver's anchor.
    Acme { root: String },
    /// The operator's files.
    Files { cert: PathBuf, key: PathBuf },
}

impl TlsSite {
    fn chain_path(&self) -> PathBuf {
        match &self.source {
            Source::Acme { root } => Path::new(root).join(self.chain_rel()),
            Source::Files { cert, .. } => cert.clone(),
        }
    }

    /// Below `Source::Acme`'s root.
    fn chain_rel(&self) -> String {
        format!("{}/fullchain.pem", self.domain)
    }

    fn key_rel(&self) -> String {
        format!("{}/privkey.pem", self.domain)
    }

    /// The chain of an ACME site, read without following a symlink; `None` when there is
    /// none (or the site brings its own).
    fn read_chain(&self) -> Result<Option<String>, PrivateError> {
        let Source::Acme { root } = &self.source else {
            return Ok(None);
        };
        Ok(private::read(root, &self.chain_rel())?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// The key and the chain of an ACME site as they are now (to put back), each if any.
    fn read_pair(&self) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let Source::Acme { root } = &self.source else {
            return (None, None);
        };
        (
            private::read(root, &self.key_rel()).ok().flatten(),
            private::read(root, &self.chain_rel()).ok().flatten(),
        )
    }

    /// A step on this certificate (the journal's object is `tls:<chain path>`).
    fn step(&self, action: &str) -> NewStep {
        NewStep {
            resource: self.resource.clone(),
            origin: self.origin.to_string(),
            object: format!("tls:{}", self.chain_path().display()),
            action: action.to_owned(),
            before_hash: None,
            after_hash: None,
            before_content: None,
        }
    }
}

/// Records steps that are already done (placeholders written, certificates removed) in `run`,
/// each with `log`.
async fn record_done(
    journal: &Journal,
    run: i64,
    steps: &[NewStep],
    log: &str,
) -> Result<(), EngineError> {
    if steps.is_empty() {
        return Ok(());
    }
    let ids = journal.add_steps(run, steps).await?;
    let at = now_ms();
    let results: Vec<StepResult> = ids
        .into_iter()
        .map(|id| StepResult {
            id,
            status: StepStatus::Done,
            after_hash: None,
            log: vec![log.to_owned()],
            started_at: at,
            finished_at: at,
        })
        .collect();
    journal.finish_steps(&results).await?;
    Ok(())
}

/// The Domains with `tls`, those named in `only` when it is given (an incremental run looks
/// only at the domains it changes).
pub fn sites(inputs: &Inputs, only: Option<&BTreeSet<String>>) -> Vec<TlsSite> {
    if !inputs
        .spec
        .roles
        .iter()
        .any(|r| r == supercp_render::ROLE_WEB)
    {
        return Vec::new();
    }
    inputs
        .catalog
        .domains
        .values()
        .filter(|d| only.is_none_or(|o| o.contains(d.name.as_str())))
        .filter_map(|d| {
            let tls = d.resource.spec.tls.as_ref()?;
            let domain = d.name.as_str().to_owned();
            let mut names = vec![domain.clone()];
            names.extend(d.aliases.iter().map(|a| a.as_str().to_owned()));
            let source = match tls.certificate {
                CertSource::Acme => Source::Acme {
                    root: inputs.spec.path(&inputs.spec.tls.cert_dir),
                },
                CertSource::Files => Source::Files {
                    cert: PathBuf::from(tls.cert_file.as_ref()?.value.clone()),
                    key: PathBuf::from(tls.key_file.as_ref()?.value.clone()),
                },
            };
            Some(TlsSite {
                resource: format!("Domain/{domain}"),
                origin: d.resource.origin.clone(),
                domain,
                names,
                key_kind: match tls.profile {
                    TlsProfile::Intermediate => KeyKind::EcdsaP256,
                    TlsProfile::Old => KeyKind::Rsa2048,
                },
                source,
            })
        })
        .collect()
}

/// Everything about certificates that must hold before anything is written: the
/// bring-your-own ones, the ACME settings, and the domains asked for renewal.
///
/// # Errors
/// `EngineError::Tls` naming what is wrong.
pub fn check(
    inputs: &Inputs,
    sites: &[TlsSite],
    renew: &BTreeSet<String>,
) -> Result<(), EngineError> {
    check_files(sites)?;
    check_acme(inputs, sites)?;
    for domain in renew {
        let acme = sites
            .iter()
            .any(|s| &s.domain == domain && matches!(s.source, Source::Acme { .. }));
        if !acme {
            return Err(EngineError::Tls(format!(
                "cannot renew {domain}: no Domain of that name with `tls` and `certificate: acme` \
                 in the repo (check the name; bring-your-own certificates are renewed by their owner)"
            )));
        }
    }
    Ok(())
}

/// What an apply now would do about certificates, for `supercp plan`: each due domain with
/// why, and those it would not order yet with the reason (a CA's recent refusal, or the cap
/// on orders per run).
pub fn preview(inputs: &Inputs, records: &BTreeMap<String, CertRecord>) -> Vec<(String, String)> {
    let schedule = schedule(
        sites(inputs, None),
        records,
        inputs.spec.tls.renew_days,
        inputs.spec.tls.max_orders_per_run as usize,
        &BTreeSet::new(),
        now_ms(),
    );
    let mut out: Vec<(String, String)> = schedule
        .due
        .iter()
        .map(|(site, why)| (site.domain.clone(), why.to_string()))
        .collect();
    out.extend(schedule.waiting.into_iter().map(|(domain, next, why)| {
        let reason = match next {
            Some(next) => format!(
                "not ordered yet: waiting until {} after the CA refused: {why}",
                supercp_core::time::utc(next)
            ),
            None => format!("not ordered yet: {why}"),
        };
        (domain, reason)
    }));
    out
}

/// What the certificate phase of a run did.
#[derive(Debug, Default)]
pub struct Converged {
    /// Orders made (issued or failed).
    pub ordered: usize,
    pub issued: Issued,
    /// Due certificates not ordered this run, and why.
    pub waiting: Vec<String>,
}

/// The certificate phase, once the configs are live: the CA's renewal windows refreshed,
/// due certificates scheduled and issued, and (on a run over every domain) the certificates
/// nothing asks for removed.
///
/// # Errors
/// Journal errors; `Gate` when nginx refuses the new certificates (put back first).
pub async fn converge(
    inputs: &Inputs,
    sites: Vec<TlsSite>,
    renew: &BTreeSet<String>,
    all_domains: bool,
    journal: &Journal,
    run: i64,
) -> Result<Converged, EngineError> {
    let mut records = if sites.is_empty() {
        BTreeMap::new()
    } else {
        journal.certificates(inputs.node_name()).await?
    };
    refresh_ari(inputs, &sites, &mut records, journal).await?;
    let schedule = schedule(
        sites,
        &records,
        inputs.spec.tls.renew_days,
        inputs.spec.tls.max_orders_per_run as usize,
        renew,
        now_ms(),
    );
    for (domain, next, why) in &schedule.waiting {
        warn!(%domain, next_attempt = ?next, "certificate due but waiting: {why}");
    }
    let waiting = schedule
        .waiting
        .iter()
        .map(|(domain, next, why)| match next {
            Some(next) => format!(
                "{domain}: waiting until {} after the CA refused: {why}",
                supercp_core::time::utc(*next)
            ),
            None => format!("{domain}: {why}"),
        })
        .collect();
    let ordered = schedule.due.len();
    let issued = issue(inputs, schedule.due, &records, journal, run).await?;
    if all_domains {
        prune(inputs, journal, run).await?;
    }
    Ok(Converged {
        ordered,
        issued,
        waiting,
    })
}

/// Checks every bring-your-own certificate. Called before anything is written.
///
/// # Errors
/// `EngineError::Tls` naming the Domain, where it is declared, the file and what is wrong.
fn check_files(sites: &[TlsSite]) -> Result<(), EngineError> {
    let mut problems = Vec::new();
    for site in sites {
        let Source::Files { cert, key } = &site.source else {
            continue;
        };
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
        };
        let checked = read(cert).and_then(|chain| {
            let key_text = read(key)?;
            supercp_tls::check_byo(&chain, &key_text, &site.names).map_err(|e| {
                if e.is_about_key() {
                    format!("{}: {e} ({})", key.display(), cert.display())
                } else {
                    format!("{}: {e}", cert.display())
                }
            })
        });
        if let Err(e) = checked {
            problems.push(format!("{} ({}): {e}", site.resource, site.origin));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Tls(format!(
            "bring-your-own certificates refused, nothing applied:\n  {}",
            problems.join("\n  ")
        )))
    }
}

/// Writes the placeholders (`placeholders`) and records each as a `create` step of `run`.
///
/// # Errors
/// As `placeholders`, and journal errors.
pub async fn place(sites: &[TlsSite], journal: &Journal, run: i64) -> Result<(), EngineError> {
    let steps: Vec<NewStep> = placeholders(sites)?
        .into_iter()
        .map(|site| site.step("create"))
        .collect();
    record_done(
        journal,
        run,
        &steps,
        "self-signed placeholder until the certificate is issued",
    )
    .await
}

/// Writes a self-signed placeholder for every ACME site that has no certificate yet.
/// Returns the sites that got one.
///
/// # Errors
/// `EngineError::Tls` when a placeholder cannot be made or written.
fn placeholders(sites: &[TlsSite]) -> Result<Vec<&TlsSite>, EngineError> {
    let now = now_ms() / 1000;
    let mut written = Vec::new();
    for site in sites {
        let Source::Acme { root } = &site.source else {
            continue;
        };
        // Seen without following a symlink: a link planted there is no certificate, and the
        // write below refuses it.
        if private::is_file(root, &site.chain_rel()) && private::is_file(root, &site.key_rel()) {
            continue;
        }
        let fail = |e: String| {
            EngineError::Tls(format!(
                "{} ({}): placeholder: {e}",
                site.resource, site.origin
            ))
        };
        let p = supercp_tls::placeholder(&site.names, now).map_err(|e| fail(e.to_string()))?;
        write_pair(site, p.key_pem.as_bytes(), p.chain_pem.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        info!(domain = %site.domain, "self-signed placeholder written until the certificate is issued");
        written.push(site);
    }
    Ok(written)
}

/// Removes the certificates (and keys) of domains that no longer take theirs from ACME: the
/// Domain left the repo, dropped `tls`, or brings its own now. A private key must not outlive
/// its site. Called after the configs that pointed at them are live without them, and only by
/// a run that covers every domain (an incremental run does not know the others). Each removal
/// is a `delete` step of `run`.
///
/// # Errors
/// Journal errors. A directory that cannot be removed is logged and left.
async fn prune(inputs: &Inputs, journal: &Journal, run: i64) -> Result<usize, EngineError> {
    let root = inputs.spec.path(&inputs.spec.tls.cert_dir);
    let entries = match private::dirs(&root) {
        Ok(entries) => entries,
        Err(e) => {
            warn!(error = %e, "certificates of removed domains not looked for");
            return Ok(0);
        }
    };
    let keep: BTreeSet<String> = sites(inputs, None)
        .into_iter()
        .filter(|s| matches!(s.source, Source::Acme { .. }))
        .map(|s| s.domain)
        .collect();
    let mut gone = Vec::new();
    for name in entries {
        // Only what SuperCP made here: a real directory (never a symlink to one) named after
        // a domain.
        let ours = supercp_core::DomainName::parse(&name).is_ok_and(|d| d.as_str() == name);
        if !ours || keep.contains(&name) {
            continue;
        }
        let removed = [
            "privkey.pem",
            "fullchain.pem",
            ".privkey.pem.supercp-tmp",
            ".fullchain.pem.supercp-tmp",
            // Temp names of earlier versions.
            "privkey.pem.supercp-tmp",
            "fullchain.pem.supercp-tmp",
        ]
        .iter()
        .try_for_each(|f| private::remove_file(&root, &format!("{name}/{f}")))
        .and_then(|()| private::remove_dir(&root, &name));
        match removed {
            Ok(()) => {
                info!(domain = %name, "certificate removed: the domain no longer takes it from ACME");
                gone.push(name);
            }
            Err(e) => {
                warn!(domain = %name, error = %e, "certificate directory left in place")
            }
        }
    }
    if gone.is_empty() {
        return Ok(0);
    }
    let steps: Vec<NewStep> = gone
        .iter()
        .map(|domain| NewStep {
            resource: format!("Domain/{domain}"),
            origin: String::new(),
            object: format!("tls:{root}/{domain}/fullchain.pem"),
            action: "delete".into(),
            before_hash: None,
            after_hash: None,
            before_content: None,
        })
        .collect();
    record_done(
        journal,
        run,
        &steps,
        "the domain no longer takes its certificate from ACME: key and chain removed",
    )
    .await?;
    journal
        .forget_certificates(inputs.node_name(), &gone)
        .await?;
    Ok(gone.len())
}

/// The key, then the chain, each written aside and renamed into place by the file driver
/// (mode 0600 in a 0700 directory; a symlink at either, or at the directory, is refused).
fn write_pair(site: &TlsSite, key_pem: &[u8], chain_pem: &[u8]) -> Result<(), PrivateError> {
    let Source::Acme { root } = &site.source else {
        return Ok(());
    };
    private::write(root, &site.key_rel(), key_pem, Access::Private)?;
    private::write(root, &site.chain_rel(), chain_pem, Access::Private)
}

/// Why a certificate was not issued (or not written), with its class.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(transparent)]
    Acme(#[from] AcmeError),
    #[error(transparent)]
    File(#[from] PrivateError),
    /// The account could not be opened or stored: one error, said again per certificate.
    #[error("{0}")]
    Account(Arc<CertError>),
}

impl CertError {
    /// Whether asking again later, unchanged, may succeed.
    pub fn class(&self) -> Class {
        match self {
            CertError::Acme(e) => e.class(),
            CertError::File(e) => file_class(e),
            CertError::Account(inner) => inner.class(),
        }
    }

    fn acme(&self) -> Option<&AcmeError> {
        match self {
            CertError::Acme(e) => Some(e),
            CertError::Account(inner) => inner.acme(),
            CertError::File(_) => None,
        }
    }
}

/// A symlink or a file too large stays until someone removes it; an I/O error (a full disk)
/// may pass.
fn file_class(e: &PrivateError) -> Class {
    match e {
        PrivateError::SymlinkRefused { .. } | PrivateError::TooLarge { .. } => Class::Permanent,
        _ => Class::Transient,
    }
}

/// A certificate not issued this run: what happened, and whether it may pass by itself.
#[derive(Debug)]
pub struct NotIssued {
    /// The Domain and the error.
    pub what: String,
    pub class: Class,
}

impl std::fmt::Display for NotIssued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

/// HTTP-01 through the file driver: the answer is a file (0644) in the node-wide challenge
/// directory that every vhost serves at `/.well-known/acme-challenge/`, so issuance needs no
/// config change; written aside and renamed, nginx never serves half an answer.
struct Http01 {
    dir: String,
}

impl ChallengeSolver for Http01 {
    fn kind(&self) -> ChallengeType {
        ChallengeType::Http01
    }

    fn present(&self, _name: &str, token: &str, answer: &str) -> Result<(), ChallengeError> {
        supercp_tls::check_token(token)?;
        private::write(&self.dir, token, answer.as_bytes(), Access::Public).map_err(|e| {
            ChallengeError::Present {
                class: file_class(&e),
                source: Box::new(e),
            }
        })
    }

    fn cleanup(&self, token: &str) {
        if supercp_tls::check_token(token).is_ok() {
            if let Err(e) = private::remove_file(&self.dir, token) {
                warn!(error = %e, "challenge answer left in place");
            }
        }
    }
}

/// Where the account of the node's CA is kept: below the state directory.
struct AccountFile {
    anchor: String,
    rel: String,
}

impl AccountFile {
    fn path(&self) -> String {
        format!("{}/{}", self.anchor, self.rel)
    }

    /// Opens the account recorded here, or creates one with the CA and records it (mode 0600,
    /// in 0700 directories).
    async fn open(&self, config: &AcmeConfig) -> Result<AcmeClient, CertError> {
        let stored = private::read(&self.anchor, &self.rel)?;
        let opened = AcmeClient::open(config, stored.as_deref()).await?;
        if let Some(created) = &opened.created {
            private::write(&self.anchor, &self.rel, created, Access::Private)?;
        }
        Ok(opened.client)
    }
}

/// Why a certificate must be issued now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Due {
    Missing,
    Placeholder,
    /// Names the certificate lacks.
    Names(Vec<String>),
    /// Days left before it expires.
    Expiring(i64),
    /// `supercp cert renew`.
    Asked,
    /// Inside the CA's suggested renewal window (ARI), past this domain's point in it.
    Window(i64),
    Unreadable(String),
}

impl std::fmt::Display for Due {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Due::Missing => write!(f, "no certificate yet"),
            Due::Placeholder => write!(f, "serving the self-signed placeholder"),
            Due::Names(n) => write!(f, "the certificate does not name {}", n.join(", ")),
            Due::Expiring(days) => write!(f, "expires in {days} days"),
            Due::Asked => write!(f, "renewal asked for"),
            Due::Window(at) => write!(
                f,
                "the CA's renewal window (ARI) says renew from {}",
                supercp_core::time::utc(at * 1000)
            ),
            Due::Unreadable(e) => write!(f, "the certificate cannot be read ({e})"),
        }
    }
}

/// Whether `site`'s certificate must be issued, and why.
///
/// `ari`: the CA's suggested renewal window (unix seconds), when it offers one: the
/// certificate is due from a point in it that is the same for the domain on every run (RFC
/// 9773 asks clients to spread renewals over the window), instead of `renew_days` before
/// expiry.
pub fn due(
    site: &TlsSite,
    renew_days: u32,
    now_unix: i64,
    asked: bool,
    ari: Option<(i64, i64)>,
) -> Option<Due> {
    if !matches!(site.source, Source::Acme { .. }) {
        return None;
    }
    let text = match site.read_chain() {
        Ok(Some(text)) => text,
        Ok(None) => return Some(Due::Missing),
        Err(e) => return Some(Due::Unreadable(e.to_string())),
    };
    let info = match CertInfo::parse(&text) {
        Ok(info) => info,
        Err(e) => return Some(Due::Unreadable(e.to_string())),
    };
    if info.placeholder {
        return Some(Due::Placeholder);
    }
    let missing = info.missing(&site.names);
    if !missing.is_empty() {
        return Some(Due::Names(missing));
    }
    let left = (info.not_after - now_unix) / 86_400;
    match ari {
        Some((start, end)) => {
            let at = ari_time(&site.domain, start, end);
            if now_unix >= at {
                return Some(Due::Window(at));
            }
        }
        None if info.not_after - now_unix < i64::from(renew_days) * 86_400 => {
            return Some(Due::Expiring(left));
        }
        None => {}
    }
    asked.then_some(Due::Asked)
}

/// A point in `[start, end]` picked by the domain's name: spread, but stable across runs.
fn ari_time(domain: &str, start: i64, end: i64) -> i64 {
    use std::hash::{Hash, Hasher};
    if end <= start {
        return start;
    }
    let mut h = std::hash::DefaultHasher::new();
    domain.hash(&mut h);
    let span = u64::try_from(end - start).unwrap_or(0);
    start + i64::try_from(h.finish() % (span + 1)).unwrap_or(0)
}

/// What this run does about certificates.
#[derive(Debug, Default)]
struct Schedule {
    /// Due now, in order.
    due: Vec<(TlsSite, Due)>,
    /// Due but waiting: a recent refusal by the CA (domain, next attempt in unix ms, the CA's
    /// last error), or past this run's cap on new orders (next attempt `None`).
    waiting: Vec<(String, Option<i64>, String)>,
}

/// Which due certificates this run orders: not those the CA refused recently (until their
/// backoff ends; `asked` ones always), and at most `max_orders` in all, so thousands of due
/// certificates never become thousands of orders at once.
fn schedule(
    sites: Vec<TlsSite>,
    records: &BTreeMap<String, CertRecord>,
    renew_days: u32,
    max_orders: usize,
    asked: &BTreeSet<String>,
    now_ms: i64,
) -> Schedule {
    let mut out = Schedule::default();
    for site in sites {
        let asked_for = asked.contains(&site.domain);
        let record = records.get(&site.domain);
        let ari = record.and_then(|r| r.ari_start.zip(r.ari_end));
        let Some(why) = due(&site, renew_days, now_ms / 1000, asked_for, ari) else {
            continue;
        };
        if let Some(r) = record.filter(|r| !asked_for && r.next_attempt.is_some_and(|t| t > now_ms))
        {
            out.waiting.push((
                site.domain.clone(),
                r.next_attempt,
                r.last_error.clone().unwrap_or_default(),
            ));
        } else if out.due.len() >= max_orders {
            out.waiting.push((
                site.domain.clone(),
                None,
                format!("more than {max_orders} certificates are due: ordered on a later run"),
            ));
        } else {
            out.due.push((site, why));
        }
    }
    out
}

/// The wait after `failures` refusals in a row: 5 minutes, doubling, at most a day; at least
/// an hour when the CA says it is rate limiting (its problem document's type).
fn backoff_ms(failures: i64, rate_limited: bool) -> i64 {
    let steps = u32::try_from(failures.clamp(1, 20) - 1).unwrap_or(0);
    let wait = (5 * 60_000_i64)
        .saturating_mul(1 << steps.min(10))
        .min(86_400_000);
    if rate_limited {
        wait.max(3_600_000)
    } else {
        wait
    }
}

/// Asks the CA for the renewal window (ARI) of every issued certificate whose last answer
/// has expired (its Retry-After; a day when the CA has no ARI), and records the answers in
/// `records` and the journal. A CA that cannot be reached is skipped: `renewDays` decides.
///
/// # Errors
/// Journal errors.
async fn refresh_ari(
    inputs: &Inputs,
    sites: &[TlsSite],
    records: &mut BTreeMap<String, CertRecord>,
    journal: &Journal,
) -> Result<(), EngineError> {
    let now = now_ms();
    let stale: Vec<(&TlsSite, String)> = sites
        .iter()
        .filter(|s| matches!(s.source, Source::Acme { .. }))
        .filter(|s| {
            records
                .get(&s.domain)
                .and_then(|r| r.ari_next_check)
                .is_none_or(|t| t <= now)
        })
        .filter_map(|s| {
            let text = s.read_chain().ok().flatten()?;
            let info = CertInfo::parse(&text).ok()?;
            (!info.placeholder).then_some((s, text))
        })
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let (config, account_file) = account(inputs)?;
    let client = match account_file.open(&config).await {
        Ok(client) => client,
        Err(e) => {
            warn!(error = %e, "renewal windows (ARI) not asked: the CA cannot be reached");
            return Ok(());
        }
    };
    let mut changed = Vec::new();
    for (site, chain) in stale {
        let mut record = records
            .get(&site.domain)
            .cloned()
            .unwrap_or_else(|| CertRecord {
                domain: site.domain.clone(),
                ..CertRecord::default()
            });
        match client.renewal_window(&chain).await {
            Ok(supercp_tls::RenewalWindow::Window {
                start,
                end,
                recheck_secs,
            }) => {
                info!(domain = %site.domain, start, end, "renewal window (ARI)");
                record.ari_start = Some(start);
                record.ari_end = Some(end);
                let recheck = i64::try_from(recheck_secs.clamp(60, 86_400)).unwrap_or(86_400);
                record.ari_next_check = Some(now + recheck * 1000);
            }
            Ok(supercp_tls::RenewalWindow::Unsupported) => {
                record.ari_start = None;
                record.ari_end = None;
                record.ari_next_check = Some(now + 86_400_000);
            }
            Err(e) => {
                warn!(domain = %site.domain, error = %e, "renewal window (ARI) not known");
                record.ari_next_check = Some(now + 3_600_000);
            }
        }
        record.updated_at = now;
        records.insert(site.domain.clone(), record.clone());
        changed.push(record);
    }
    journal
        .record_certificates(inputs.node_name(), &changed)
        .await?;
    Ok(())
}

/// The ACME settings and the account file of the node's CA.
fn account(inputs: &Inputs) -> Result<(AcmeConfig, AccountFile), EngineError> {
    let config = acme_config(inputs)?;
    let file = AccountFile {
        anchor: inputs.state_dir.display().to_string(),
        rel: format!("acme/{}/account.json", account_name(&config.directory_url)),
    };
    Ok((config, file))
}

/// What issuing did.
#[derive(Debug, Default)]
pub struct Issued {
    pub issued: usize,
    pub failed: Vec<NotIssued>,
    pub reloads: i64,
}

/// Issues every due certificate through the node's ACME CA, records each as a step of `run`,
/// then checks nginx and reloads it once.
///
/// # Errors
/// Journal errors, and `EngineError::Gate` when nginx refuses the new certificates (they are
/// put back first).
async fn issue(
    inputs: &Inputs,
    due: Vec<(TlsSite, Due)>,
    records_before: &BTreeMap<String, CertRecord>,
    journal: &Journal,
    run: i64,
) -> Result<Issued, EngineError> {
    let mut outcome = Issued::default();
    if due.is_empty() {
        return Ok(outcome);
    }
    let tls = &inputs.spec.tls;
    let new_steps: Vec<NewStep> = due
        .iter()
        .map(|(site, why)| {
            let fresh = matches!(why, Due::Missing | Due::Placeholder);
            site.step(if fresh { "create" } else { "update" })
        })
        .collect();
    let ids = journal.add_steps(run, &new_steps).await?;
    let (config, account_file) = account(inputs)?;
    let solver = Http01 {
        dir: inputs.spec.path(&tls.challenge_dir),
    };
    let mut client = account_file.open(&config).await.map_err(Arc::new);
    let mut results = Vec::new();
    let mut previous = Vec::new();
    let mut records = Vec::new();
    for ((site, why), id) in due.iter().zip(&ids) {
        let started = now_ms();
        let mut log = vec![format!("due: {why}")];
        let replaces = records_before
            .get(&site.domain)
            .filter(|r| r.ari_start.is_some())
            .and_then(|_| site.read_chain().ok().flatten())
            .filter(|text| CertInfo::parse(text).is_ok_and(|i| !i.placeholder));
        let replaces = replaces.as_deref();
        let mut result: Result<_, CertError> = match &client {
            Ok(client) => client
                .issue(&site.names, site.key_kind, &solver, replaces)
                .await
                .map_err(CertError::from),
            // Said once per certificate, as the CA's own words.
            Err(e) => Err(CertError::Account(Arc::clone(e))),
        };
        // The CA forgot the account (a reset test CA, a deactivated account): make a new one
        // and try once more.
        if matches!(&result, Err(e) if e.acme().is_some_and(AcmeError::is_unknown_account)) {
            warn!(file = %account_file.path(), "the CA does not know this account; creating a new one");
            if let Err(e) = private::remove_file(&account_file.anchor, &account_file.rel) {
                warn!(error = %e, "the old account file stays");
            }
            client = account_file.open(&config).await.map_err(Arc::new);
            result = match &client {
                Ok(client) => client
                    .issue(&site.names, site.key_kind, &solver, replaces)
                    .await
                    .map_err(CertError::from),
                Err(e) => Err(CertError::Account(Arc::clone(e))),
            };
        }
        let status = match result {
            Ok(pair) => {
                let old = site.read_pair();
                match write_pair(site, pair.key_pem.as_bytes(), pair.chain_pem.as_bytes()) {
                    Ok(()) => {
                        let info = CertInfo::parse(&pair.chain_pem).ok();
                        let serial = info.as_ref().map(|i| i.serial.clone()).unwrap_or_default();
                        records.push(CertRecord {
                            domain: site.domain.clone(),
                            serial: Some(serial.clone()),
                            not_after: info.map(|i| i.not_after),
                            issued_at: Some(now_ms()),
                            updated_at: now_ms(),
                            ..CertRecord::default()
                        });
                        info!(domain = %site.domain, %serial, "certificate issued");
                        log.push(format!("issued, serial {serial}"));
                        previous.push((site, old));
                        outcome.issued += 1;
                        StepStatus::Done
                    }
                    Err(e) => {
                        warn!(domain = %site.domain, error = %e, "certificate issued but not written; the current one keeps serving");
                        log.push(format!("writing the certificate: {e}"));
                        outcome.failed.push(NotIssued {
                            what: format!("{}: {e}", site.resource),
                            class: file_class(&e),
                        });
                        StepStatus::Failed
                    }
                }
            }
            Err(e) => {
                warn!(domain = %site.domain, error = %e, "certificate not issued; the current one keeps serving");
                // The CA refused this order: wait before asking again. The CA not answering
                // at all (no account could be opened) asks nothing of it: no backoff.
                let known = records_before.get(&site.domain);
                let refused = !matches!(e, CertError::Account(_));
                let failures = known.map_or(0, |r| r.failures) + 1;
                let text = e.to_string();
                let rate_limited = e.acme().is_some_and(AcmeError::is_rate_limited);
                let next = refused.then(|| now_ms() + backoff_ms(failures, rate_limited));
                if let Some(next) = next {
                    log.push(format!(
                        "refused {failures} time(s) in a row: next attempt after {}",
                        supercp_core::time::utc(next)
                    ));
                }
                records.push(CertRecord {
                    domain: site.domain.clone(),
                    failures,
                    last_error: Some(text),
                    next_attempt: next,
                    updated_at: now_ms(),
                    ..known.cloned().unwrap_or_default()
                });
                log.push(e.to_string());
                outcome.failed.push(NotIssued {
                    what: format!("{}: {e}", site.resource),
                    class: e.class(),
                });
                StepStatus::Failed
            }
        };
        results.push(StepResult {
            id: *id,
            status,
            after_hash: None,
            log,
            started_at: started,
            finished_at: now_ms(),
        });
    }
    if outcome.issued > 0 {
        if let Some(gate) = inputs
            .spec
            .gates
            .iter()
            .find(|g| g.name == supercp_render::GATE_NGINX)
        {
            let check = supercp_drivers::gate::run(&gate.name, &gate.check)
                .map_err(|e| EngineError::Gate(e.to_string()))?;
            if !check.success {
                for (site, (key, chain)) in &previous {
                    if let (Some(key), Some(chain)) = (key, chain) {
                        if let Err(e) = write_pair(site, key, chain) {
                            warn!(domain = %site.domain, error = %e, "the previous certificate could not be put back");
                        }
                    }
                }
                journal.finish_steps(&results).await?;
                return Err(EngineError::Gate(format!(
                    "gate {}: the new certificates failed the check and were put back: {}",
                    gate.name,
                    check.output.trim()
                )));
            }
            let mut notes = Vec::new();
            outcome.reloads += crate::apply::reload(gate, &mut notes)?;
        }
    }
    journal.finish_steps(&results).await?;
    journal
        .record_certificates(inputs.node_name(), &records)
        .await?;
    Ok(outcome)
}

/// One account per CA: its directory URL, made a file name.
fn account_name(url: &str) -> String {
    url.trim_start_matches("https://")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Checks the node's ACME settings (the EAB key file) before anything is written, when some
/// site's certificate comes from ACME.
///
/// # Errors
/// `EngineError::Tls` naming the field and the file.
fn check_acme(inputs: &Inputs, sites: &[TlsSite]) -> Result<(), EngineError> {
    if sites
        .iter()
        .any(|s| matches!(s.source, Source::Acme { .. }))
    {
        acme_config(inputs)?;
    }
    Ok(())
}

/// The node file's ACME settings.
fn acme_config(inputs: &Inputs) -> Result<AcmeConfig, EngineError> {
    let tls = &inputs.spec.tls;
    let eab = match &tls.acme_eab {
        Some(eab) => {
            // The HMAC key binds accounts to the operator's CA account: root's eyes only.
            use std::os::unix::fs::MetadataExt;
            let mode = std::fs::metadata(&eab.hmac_key_file).map_or(0, |m| m.mode() & 0o777);
            if mode & 0o077 != 0 {
                return Err(EngineError::Tls(format!(
                    "tls.acmeEab.hmacKeyFile {}: mode {mode:o} lets others read it; chmod 600 it",
                    eab.hmac_key_file
                )));
            }
            let text = std::fs::read_to_string(&eab.hmac_key_file).map_err(|e| {
                EngineError::Tls(format!(
                    "tls.acmeEab.hmacKeyFile {}: {e}",
                    eab.hmac_key_file
                ))
            })?;
            let key = base64url(text.trim()).ok_or_else(|| {
                EngineError::Tls(format!(
                    "tls.acmeEab.hmacKeyFile {}: not base64url (give the key exactly as the CA shows it)",
                    eab.hmac_key_file
                ))
            })?;
            Some((eab.kid.clone(), key))
        }
        None => None,
    };
    Ok(AcmeConfig {
        directory_url: supercp_tls::directory_url(&tls.acme_directory).to_owned(),
        email: tls.acme_email.clone(),
        eab,
        ca_file: tls.acme_ca_file.as_ref().map(PathBuf::from),
    })
}

/// Decodes an EAB key as CAs show it: base64url, padded or not.
fn base64url(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_decodes_like_the_rfc() {
        assert_eq!(base64url("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(base64url("Zm9vYg").unwrap(), b"foob");
        assert_eq!(base64url("_-8").unwrap(), vec![0xff, 0xef]);
        assert_eq!(base64url("Zm9vYg==").unwrap(), b"foob");
        assert!(base64url("no spaces").is_none());
    }

    #[test]
    fn backoff_doubles_from_five_minutes_to_a_day_and_respects_rate_limits() {
        assert_eq!(backoff_ms(1, false), 300_000);
        assert_eq!(backoff_ms(2, false), 600_000);
        assert_eq!(backoff_ms(4, false), 2_400_000);
        assert_eq!(backoff_ms(50, false), 86_400_000);
        assert_eq!(backoff_ms(1, true), 3_600_000);
        assert_eq!(backoff_ms(50, true), 86_400_000);
    }

    #[test]
    fn the_point_in_an_ari_window_is_inside_it_stable_and_spread() {
        let (start, end) = (1_000_000, 1_000_000 + 86_400);
        let a = ari_time("a.test", start, end);
        assert!((start..=end).contains(&a));
        assert_eq!(a, ari_time("a.test", start, end), "the same on every run");
        let points: std::collections::BTreeSet<i64> = (0..20)
            .map(|i| ari_time(&format!("site{i}.test"), start, end))
            .collect();
        assert!(
            points.len() > 15,
            "domains spread over the window: {points:?}"
        );
        assert_eq!(ari_time("a.test", start, start), start);
    }

    #[test]
    fn account_files_are_named_after_the_ca() {
        assert_eq!(
            account_name("https://acme-v02.api.letsencrypt.org/directory"),
            "acme-v02.api.letsencrypt.org_directory"
        );
        assert_eq!(
            account_name("https://127.0.0.1:14000/dir"),
            "127.0.0.1_14000_dir"
        );
    }

    /// A fresh directory under the system's temp dir, removed again by `Drop`.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "supercp-certs-{name}-{}-{}",
                std::process::id(),
                now_ms()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn http01_writes_the_answer_through_the_driver_and_cleans_it_up() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = TempDir::new("http01");
        let solver = Http01 {
            dir: tmp.0.join("challenges").display().to_string(),
        };
        solver.present("a.test", "tok_1", "tok_1.thumb").unwrap();
        let path = tmp.0.join("challenges/tok_1");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "tok_1.thumb");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644,
            "nginx's workers read it"
        );
        assert!(matches!(
            solver.present("a.test", "../escape", "x"),
            Err(ChallengeError::BadToken(_))
        ));
        solver.cleanup("tok_1");
        assert!(!path.exists());
        // A symlink planted under a token's name is refused, permanently, and left alone.
        let target = tmp.0.join("victim");
        std::fs::write(&target, "precious").unwrap();
        std::os::unix::fs::symlink(&target, tmp.0.join("challenges/tok_2")).unwrap();
        let err = solver.present("a.test", "tok_2", "x").unwrap_err();
        assert_eq!(err.class(), Class::Permanent, "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    }

    #[test]
    fn a_refused_file_is_permanent_and_an_unopened_account_keeps_its_cause() {
        let refused = CertError::File(PrivateError::SymlinkRefused {
            path: "/x".into(),
            what: "a symlink".into(),
        });
        assert_eq!(refused.class(), Class::Permanent);
        let full = CertError::File(PrivateError::WriteFailed {
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(28),
        });
        assert_eq!(full.class(), Class::Transient, "a full disk may be freed");
        let account = CertError::Account(Arc::new(full));
        assert_eq!(account.class(), Class::Transient);
        assert!(account.acme().is_none());
    }
}
