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
//! - A certificate that fails `nginx -t` after it was written is put back as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use supercp_audit::{CertRecord, Journal, NewStep, StepResult, StepStatus};
use supercp_core::resource::{CertSource, TlsProfile};
use supercp_core::time::now_ms;
use supercp_core::Span;
use supercp_tls::{AcmeClient, AcmeConfig, CertInfo, Http01, KeyKind};
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
    /// Issued by the node's ACME CA into `dir` (`fullchain.pem`, `privkey.pem`).
    Acme { dir: PathBuf },
    /// The operator's files.
    Files { cert: PathBuf, key: PathBuf },
}

impl TlsSite {
    fn chain_path(&self) -> PathBuf {
        match &self.source {
            Source::Acme { dir } => dir.join("fullchain.pem"),
            Source::Files { cert, .. } => cert.clone(),
        }
    }

    fn key_path(&self) -> PathBuf {
        match &self.source {
            Source::Acme { dir } => dir.join("privkey.pem"),
            Source::Files { key, .. } => key.clone(),
        }
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
                    dir: PathBuf::from(inputs.spec.cert_dir_for(&domain)),
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
                if e.starts_with("key") || e.starts_with("the key") {
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
        if !matches!(site.source, Source::Acme { .. }) {
            continue;
        }
        if site.chain_path().is_file() && site.key_path().is_file() {
            continue;
        }
        let fail = |e: String| {
            EngineError::Tls(format!(
                "{} ({}): placeholder: {e}",
                site.resource, site.origin
            ))
        };
        let p = supercp_tls::placeholder(&site.names, now).map_err(|e| fail(e.to_string()))?;
        write_pair(site, &p.key_pem, &p.chain_pem).map_err(|e| fail(e.to_string()))?;
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
    let root = PathBuf::from(inputs.spec.path(&inputs.spec.tls.cert_dir));
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(0);
    };
    let keep: BTreeSet<String> = sites(inputs, None)
        .into_iter()
        .filter(|s| matches!(s.source, Source::Acme { .. }))
        .map(|s| s.domain)
        .collect();
    let mut gone = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Only what SuperCP made here: a real directory named after a domain.
        let ours = supercp_core::DomainName::parse(&name).is_ok_and(|d| d.as_str() == name)
            && std::fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_dir());
        if !ours || keep.contains(&name) {
            continue;
        }
        let dir = entry.path();
        let removed = [
            "privkey.pem",
            "fullchain.pem",
            "privkey.pem.supercp-tmp",
            "fullchain.pem.supercp-tmp",
        ]
        .iter()
        .map(|f| dir.join(f))
        .filter(|f| std::fs::symlink_metadata(f).is_ok())
        .try_for_each(std::fs::remove_file)
        .and_then(|()| std::fs::remove_dir(&dir));
        match removed {
            Ok(()) => {
                info!(domain = %name, "certificate removed: the domain no longer takes it from ACME");
                gone.push(name);
            }
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "certificate directory left in place")
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
            object: format!("tls:{}", root.join(domain).join("fullchain.pem").display()),
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

/// The key, then the chain, each written aside and renamed into place.
fn write_pair(site: &TlsSite, key_pem: &str, chain_pem: &str) -> std::io::Result<()> {
    supercp_tls::acme::write_private(&site.key_path(), key_pem.as_bytes())?;
    supercp_tls::acme::write_private(&site.chain_path(), chain_pem.as_bytes())
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
    let text = match std::fs::read_to_string(site.chain_path()) {
        Ok(text) => text,
        Err(_) => return Some(Due::Missing),
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
/// an hour when the CA says it is rate limiting.
fn backoff_ms(failures: i64, error: &str) -> i64 {
    let steps = u32::try_from(failures.clamp(1, 20) - 1).unwrap_or(0);
    let wait = (5 * 60_000_i64)
        .saturating_mul(1 << steps.min(10))
        .min(86_400_000);
    if error.contains("rateLimited") {
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
            let text = std::fs::read_to_string(s.chain_path()).ok()?;
            let info = CertInfo::parse(&text).ok()?;
            (!info.placeholder).then_some((s, text))
        })
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let (config, account_file) = account(inputs)?;
    let client = match AcmeClient::open(&config, &account_file).await {
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
fn account(inputs: &Inputs) -> Result<(AcmeConfig, PathBuf), EngineError> {
    let config = acme_config(inputs)?;
    let file = inputs
        .state_dir
        .join("acme")
        .join(account_name(&config.directory_url))
        .join("account.json");
    Ok((config, file))
}

/// What issuing did.
#[derive(Debug, Default)]
pub struct Issued {
    pub issued: usize,
    pub failed: Vec<String>,
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
        dir: PathBuf::from(inputs.spec.path(&tls.challenge_dir)),
    };
    let mut client = AcmeClient::open(&config, &account_file).await;
    let mut results = Vec::new();
    let mut previous = Vec::new();
    let mut records = Vec::new();
    for ((site, why), id) in due.iter().zip(&ids) {
        let started = now_ms();
        let mut log = vec![format!("due: {why}")];
        let replaces = records_before
            .get(&site.domain)
            .filter(|r| r.ari_start.is_some())
            .and_then(|_| std::fs::read_to_string(site.chain_path()).ok())
            .filter(|text| CertInfo::parse(text).is_ok_and(|i| !i.placeholder));
        let replaces = replaces.as_deref();
        let mut result = match &client {
            Ok(client) => {
                client
                    .issue(&site.names, site.key_kind, &solver, replaces)
                    .await
            }
            // Said once per certificate, as the CA's own words.
            Err(e) => Err(supercp_tls::AcmeError::Unreachable(e.to_string())),
        };
        // The CA forgot the account (a reset test CA, a deactivated account): make a new one
        // and try once more.
        if matches!(&result, Err(e) if e.to_string().contains("accountDoesNotExist")) {
            warn!(file = %account_file.display(), "the CA does not know this account; creating a new one");
            let _ = std::fs::remove_file(&account_file);
            client = AcmeClient::open(&config, &account_file).await;
            if let Ok(client) = &client {
                result = client
                    .issue(&site.names, site.key_kind, &solver, replaces)
                    .await;
            }
        }
        let status = match result {
            Ok(pair) => {
                let old = (
                    std::fs::read(site.key_path()).ok(),
                    std::fs::read(site.chain_path()).ok(),
                );
                match write_pair(site, &pair.key_pem, &pair.chain_pem) {
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
                        log.push(format!("writing the certificate: {e}"));
                        outcome.failed.push(format!("{}: {e}", site.resource));
                        StepStatus::Failed
                    }
                }
            }
            Err(e) => {
                warn!(domain = %site.domain, error = %e, "certificate not issued; the current one keeps serving");
                // The CA refused this order: wait before asking again. The CA not answering
                // at all (no account could be opened) asks nothing of it: no backoff.
                let known = records_before.get(&site.domain);
                let refused = client.is_ok();
                let failures = known.map_or(0, |r| r.failures) + 1;
                let text = e.to_string();
                let next = refused.then(|| now_ms() + backoff_ms(failures, &text));
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
                outcome.failed.push(format!("{}: {e}", site.resource));
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
                        let _ = supercp_tls::acme::write_private(&site.key_path(), key);
                        let _ = supercp_tls::acme::write_private(&site.chain_path(), chain);
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
        assert_eq!(backoff_ms(1, "x"), 300_000);
        assert_eq!(backoff_ms(2, "x"), 600_000);
        assert_eq!(backoff_ms(4, "x"), 2_400_000);
        assert_eq!(backoff_ms(50, "x"), 86_400_000);
        assert_eq!(
            backoff_ms(1, "urn:ietf:params:acme:error:rateLimited"),
            3_600_000
        );
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
}
