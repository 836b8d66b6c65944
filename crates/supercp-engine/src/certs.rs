//! The certificate policy: when a certificate of the node's CA is due, and how the commit unit
//! that issues them (`Unit::Issue`) runs. The certificates themselves are objects of the plan
//! (rendered per ACME Domain, observed and diffed by `supercp_drivers::cert`); this module
//! decides what the diff cannot know from the node alone:
//!
//! - before a plan (`Policy`, `annotate`): the CA's renewal window (ARI, asked for by
//!   `refresh_ari` on an apply), `supercp cert renew`, and the time the plan is made for;
//! - after it (`hold`): due certificates this run does not order, held with why: the CA
//!   refused recently (exponential backoff, longer when it rate limits), or more are due than
//!   `tls.maxOrdersPerRun`;
//! - the unit itself (`issue`), once every other unit is live (every vhost answers ACME HTTP-01
//!   challenges from the node-wide challenge directory): each due certificate is ordered, its
//!   key and chain written by the driver (key first, each through a temp file and a rename),
//!   then the unit's gate checks them all once and reloads. A certificate that fails the check
//!   is put back; one the CA refused keeps the current one (or the stand-in) serving.
//!
//! # Guarantees
//! - Nothing here reads or writes below a tenant's home: certificates live in `tls.certDir`
//!   and challenge answers in `tls.challengeDir`, both root-owned node directories.
//! - Keys, chains, account credentials and challenge answers are read, written and removed
//!   only through the drivers (`supercp_drivers::cert` and `private`): never through a symlink.
//!   (Bring-your-own files and the EAB key are the operator's, read where the node file points,
//!   as nginx reads them.)
//! - One ACME client per run, opened when the first certificate is ordered.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use supercp_audit::{CertRecord, Journal, StepResult, StepStatus};
use supercp_core::object::KeyType;
use supercp_core::resource::CertSource;
use supercp_core::time::now_ms;
use supercp_core::{Action, Desired, Plan, Reason, Span, Step, Target};
use supercp_drivers::private::{self, Access, PrivateError};
use supercp_drivers::{gate, DriverError, Drivers};
use supercp_tls::{
    AcmeClient, AcmeConfig, AcmeError, CertInfo, ChallengeError, ChallengeSolver, ChallengeType,
    Class, KeyKind,
};
use tracing::{info, warn};

use crate::inputs::Inputs;
use crate::{CertCheck, EngineError, GateFailure};

/// One Domain with `tls`, for the checks before anything is written.
#[derive(Clone, Debug)]
pub struct TlsSite {
    pub resource: String,
    pub origin: Span,
    pub domain: String,
    /// The domain, then its aliases: the names its certificate must cover.
    pub names: Vec<String>,
    pub source: Source,
}

#[derive(Clone, Debug)]
pub enum Source {
    /// Issued by the node's ACME CA (an object of the plan).
    Acme,
    /// The operator's files.
    Files { cert: PathBuf, key: PathBuf },
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
                CertSource::Acme => Source::Acme,
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
                source,
            })
        })
        .collect()
}

/// What a plan needs to know about certificates beyond the node: what the CA said last
/// (renewal windows, refusals), what the operator asked to renew, the cap per run, and the
/// time the plan is made for.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub records: BTreeMap<String, CertRecord>,
    pub asked: BTreeSet<String>,
    pub max_orders: usize,
    pub now_ms: i64,
}

impl Policy {
    /// The policy of `inputs`' node now, from the journal's certificate records.
    pub fn new(
        inputs: &Inputs,
        records: BTreeMap<String, CertRecord>,
        asked: BTreeSet<String>,
    ) -> Policy {
        Policy {
            records,
            asked,
            max_orders: inputs.spec.tls.max_orders_per_run as usize,
            now_ms: now_ms(),
        }
    }
}

/// Fills in what decides when each certificate among `desired` is due: the time, the CA's
/// renewal window and whether renewal was asked for. A certificate is a Domain's: the
/// resource's name is the domain. Pure.
pub fn annotate(desired: &mut [Desired], policy: &Policy) {
    for d in desired {
        let domain = d.resource.name.clone();
        let Some(renewal) = d.object.renewal_mut() else {
            continue;
        };
        renewal.now = policy.now_ms / 1000;
        renewal.asked = policy.asked.contains(&domain);
        renewal.from = policy
            .records
            .get(&domain)
            .and_then(|r| r.ari_start.zip(r.ari_end))
            .map(|(start, end)| ari_time(&domain, start, end));
    }
}

/// Moves the certificates this run does not order from the plan's steps to its held ones,
/// with why: those the CA refused recently (until their backoff ends; asked ones always go),
/// and those past the cap on orders per run, so thousands of due certificates never become
/// thousands of orders at once. Pure.
pub fn hold(plan: &mut Plan, policy: &Policy) {
    let mut ordered = 0;
    let steps = std::mem::take(&mut plan.steps);
    for step in steps {
        let orders = step.unit.is_issue()
            && step.action != Action::Delete
            && !matches!(step.reason, Reason::Blocked { .. });
        if !orders {
            plan.steps.push(step);
            continue;
        }
        let domain = &step.resource.name;
        let asked = policy.asked.contains(domain);
        let refused = policy
            .records
            .get(domain)
            .filter(|r| !asked && r.next_attempt.is_some_and(|t| t > policy.now_ms));
        if let Some(r) = refused {
            let why = format!(
                "waiting until {} after the CA refused: {}",
                supercp_core::time::utc(r.next_attempt.unwrap_or_default()),
                r.last_error.as_deref().unwrap_or_default()
            );
            plan.held.push((step, why));
        } else if ordered >= policy.max_orders {
            let why = format!(
                "more than {} certificates are due: ordered on a later run",
                policy.max_orders
            );
            plan.held.push((step, why));
        } else {
            ordered += 1;
            plan.steps.push(step);
        }
    }
}

/// Everything about certificates that must hold before anything is written: the
/// bring-your-own ones, the ACME settings, and the domains asked for renewal.
///
/// # Errors
/// `Certificates` naming what is wrong.
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
            .any(|s| &s.domain == domain && matches!(s.source, Source::Acme));
        if !acme {
            return Err(CertCheck::RenewUnknown {
                domain: domain.clone(),
            }
            .into());
        }
    }
    Ok(())
}

/// Checks every bring-your-own certificate. Called before anything is written.
///
/// # Errors
/// `Certificates` naming the Domain, where it is declared, the file and what is wrong.
fn check_files(sites: &[TlsSite]) -> Result<(), EngineError> {
    let mut problems = Vec::new();
    for site in sites {
        let Source::Files { cert, key } = &site.source else {
            continue;
        };
        let read = |path: &Path| {
            private::read_operator_file(&path.display().to_string())
                .map(|(text, _)| text)
                .map_err(|e| e.to_string())
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
        Err(CertCheck::Byo {
            lines: problems.iter().map(|p| format!("\n  {p}")).collect(),
        }
        .into())
    }
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

/// Asks the CA for the renewal window (ARI) of every issued certificate among `desired` whose
/// last answer has expired (its Retry-After; a day when the CA has no ARI), and records the
/// answers in `records` and the journal. A CA that cannot be reached is skipped: `renewDays`
/// decides.
///
/// # Errors
/// Journal errors.
pub async fn refresh_ari(
    inputs: &Inputs,
    desired: &[Desired],
    records: &mut BTreeMap<String, CertRecord>,
    journal: &Journal,
) -> Result<(), EngineError> {
    let now = now_ms();
    let stale: Vec<(&str, String)> = desired
        .iter()
        .filter(|d| d.unit.is_issue())
        .filter(|d| {
            records
                .get(&d.resource.name)
                .and_then(|r| r.ari_next_check)
                .is_none_or(|t| t <= now)
        })
        .filter_map(|d| {
            let text = supercp_drivers::cert::read_chain(d.location()?)
                .ok()
                .flatten()?;
            let info = CertInfo::parse(&text).ok()?;
            (!info.placeholder).then_some((d.resource.name.as_str(), text))
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
    for (domain, chain) in stale {
        let mut record = records.get(domain).cloned().unwrap_or_else(|| CertRecord {
            domain: domain.to_owned(),
            ..CertRecord::default()
        });
        match client.renewal_window(&chain).await {
            Ok(supercp_tls::RenewalWindow::Window {
                start,
                end,
                recheck_secs,
            }) => {
                info!(%domain, start, end, "renewal window (ARI)");
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
                warn!(%domain, error = %e, "renewal window (ARI) not known");
                record.ari_next_check = Some(now + 3_600_000);
            }
        }
        record.updated_at = now;
        records.insert(domain.to_owned(), record.clone());
        changed.push(record);
    }
    journal
        .record_certificates(inputs.node_name(), &changed)
        .await?;
    Ok(())
}

/// What one issue unit did.
#[derive(Debug, Default)]
pub(crate) struct Issued {
    /// Per step: done.
    pub ok: Vec<bool>,
    pub issued: usize,
    pub failed: Vec<NotIssued>,
    pub checks: i64,
    pub reloads: i64,
    /// The gate refused the new certificates (they were put back).
    pub gate_error: Option<GateFailure>,
}

/// Runs one issue unit (`Unit::Issue`): every due certificate ordered from the node's CA
/// and written, every certificate of a domain that left removed, then the unit's gate checks
/// them once and reloads, or the new ones are put back (`prepared` false: the stand-in could
/// not be written, nothing is ordered for it; the run stopped before it anyway).
///
/// # Errors
/// Journal errors, and `Gate` when the reload fails.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn issue(
    inputs: &Inputs,
    steps: &[Step],
    ids: &[i64],
    prepared: &[bool],
    drivers: &mut Drivers,
    journal: &Journal,
    run: i64,
) -> Result<Issued, EngineError> {
    let mut outcome = Issued {
        ok: vec![false; steps.len()],
        ..Issued::default()
    };
    journal.steps_running(ids, now_ms()).await?;
    let records_before = journal.certificates(inputs.node_name()).await?;
    let solver = Http01 {
        dir: inputs.spec.path(&inputs.spec.tls.challenge_dir),
    };
    let mut ca = Ca::new(inputs)?;
    let mut results = Vec::with_capacity(steps.len());
    let mut previous = Vec::new();
    let mut records = Vec::new();
    let mut forget = Vec::new();
    for (i, (step, id)) in steps.iter().zip(ids).enumerate() {
        let started = now_ms();
        let mut log = Vec::new();
        let domain = step.resource.name.clone();
        let status = match (&step.target, &step.reason) {
            (_, Reason::Blocked { path, what }) => {
                log.push(format!("refused: {what} at {path}; SuperCP never writes through it. Remove it and apply again"));
                outcome.failed.push(NotIssued {
                    what: format!("{}: {what} at {path}", step.resource),
                    class: Class::Permanent,
                });
                StepStatus::Failed
            }
            (Target::Remove(owned), _) => match drivers.delete(owned) {
                Ok(()) => {
                    info!(%domain, "certificate removed: the domain no longer takes it from the CA");
                    log.push("the domain no longer takes its certificate from the CA: key and chain removed".into());
                    forget.push(domain.clone());
                    outcome.ok[i] = true;
                    StepStatus::Done
                }
                Err(e) => {
                    warn!(%domain, error = %e, "certificate left in place");
                    log.push(format!("{}: {e}", step.who()));
                    StepStatus::Failed
                }
            },
            (Target::Put(_), _) if !prepared[i] => StepStatus::Failed,
            (Target::Put(desired), reason) => {
                log.insert(0, format!("due: {reason}"));
                let Some(cert) = desired.object.as_cert() else {
                    return Err(EngineError::BadRecord {
                        object: step.id.to_string(),
                        detail: "an issue unit holds only certificates".into(),
                    });
                };
                let key = match cert.key {
                    KeyType::EcdsaP256 => KeyKind::EcdsaP256,
                    KeyType::Rsa2048 => KeyKind::Rsa2048,
                };
                // The certificate it replaces, for the CA's renewal bookkeeping (ARI).
                let replaces = records_before
                    .get(&domain)
                    .filter(|r| r.ari_start.is_some())
                    .and_then(|_| supercp_drivers::cert::read_chain(&cert.at).ok().flatten())
                    .filter(|text| CertInfo::parse(text).is_ok_and(|i| !i.placeholder));
                let order = Order {
                    names: &cert.names,
                    key,
                    solver: &solver,
                    replaces: replaces.as_deref(),
                };
                let result = ca.order(&order).await;
                let known = records_before.get(&domain);
                match result {
                    Ok(pair) => {
                        let old = supercp_drivers::cert::read_pair(&cert.at).unwrap_or_default();
                        let written = supercp_drivers::cert::write_pair(
                            &cert.at,
                            pair.key_pem.as_bytes(),
                            pair.chain_pem.as_bytes(),
                        );
                        match written {
                            Ok(()) => {
                                let info = CertInfo::parse(&pair.chain_pem).ok();
                                let serial =
                                    info.as_ref().map(|i| i.serial.clone()).unwrap_or_default();
                                records.push(CertRecord {
                                    domain: domain.clone(),
                                    serial: Some(serial.clone()),
                                    not_after: info.map(|i| i.not_after),
                                    issued_at: Some(now_ms()),
                                    updated_at: now_ms(),
                                    ..CertRecord::default()
                                });
                                info!(%domain, %serial, "certificate issued");
                                log.push(format!("issued, serial {serial}"));
                                previous.push((i, cert.at.clone(), old));
                                outcome.issued += 1;
                                outcome.ok[i] = true;
                                StepStatus::Done
                            }
                            Err(e) => {
                                warn!(%domain, error = %e, "certificate issued but not written; the current one keeps serving");
                                log.push(format!("writing the certificate: {e}"));
                                outcome.failed.push(NotIssued {
                                    what: format!("{}: {e}", step.resource),
                                    class: driver_class(&e),
                                });
                                StepStatus::Failed
                            }
                        }
                    }
                    Err(e) => {
                        warn!(%domain, error = %e, "certificate not issued; the current one keeps serving");
                        // The CA refused this order: wait before asking again. The CA not
                        // answering at all (no account could be opened) asks nothing of it:
                        // no backoff.
                        let refused = !matches!(e, CertError::Account(_));
                        let failures = known.map_or(0, |r| r.failures) + 1;
                        let rate_limited = e.acme().is_some_and(AcmeError::is_rate_limited);
                        let next = refused.then(|| now_ms() + backoff_ms(failures, rate_limited));
                        if let Some(next) = next {
                            log.push(format!(
                                "refused {failures} time(s) in a row: next attempt after {}",
                                supercp_core::time::utc(next)
                            ));
                        }
                        records.push(CertRecord {
                            domain: domain.clone(),
                            failures,
                            last_error: Some(e.to_string()),
                            next_attempt: next,
                            updated_at: now_ms(),
                            ..known.cloned().unwrap_or_default()
                        });
                        log.push(e.to_string());
                        outcome.failed.push(NotIssued {
                            what: format!("{}: {e}", step.resource),
                            class: e.class(),
                        });
                        StepStatus::Failed
                    }
                }
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
        commit(inputs, steps, &previous, &mut results, &mut outcome)?;
    }
    journal.finish_steps(&results).await?;
    journal
        .record_certificates(inputs.node_name(), &records)
        .await?;
    if !forget.is_empty() {
        journal
            .forget_certificates(inputs.node_name(), &forget)
            .await?;
    }
    journal
        .count_gate(run, outcome.checks, outcome.reloads)
        .await?;
    Ok(outcome)
}

/// The unit's gate over the certificates just written: one check, then one reload; on a
/// failed check each is put back as it was (its step fails) and the previous ones keep
/// serving.
///
/// # Errors
/// `Gate` when the reload fails.
fn commit(
    inputs: &Inputs,
    steps: &[Step],
    previous: &[(usize, supercp_core::Location, supercp_drivers::cert::Pair)],
    results: &mut [StepResult],
    outcome: &mut Issued,
) -> Result<(), EngineError> {
    let Some(gate) = steps
        .first()
        .and_then(|s| s.unit.gate())
        .and_then(|g| inputs.spec.gates.iter().find(|x| x.name == g))
    else {
        return Ok(());
    };
    let check = gate::run_for(gate, &gate.check);
    let refused = match &check {
        Ok(c) if c.success => None,
        Ok(c) => Some(c.output.trim().to_owned()),
        Err(e) => Some(e.to_string()),
    };
    if check.is_ok() {
        outcome.checks += 1;
    }
    let Some(why) = refused else {
        let mut notes = Vec::new();
        outcome.reloads += crate::apply::reload(gate, &mut notes)?;
        for (i, ..) in previous {
            results[*i].log.extend(notes.iter().cloned());
        }
        return Ok(());
    };
    for (i, at, pair) in previous {
        if let Err(e) = supercp_drivers::cert::put_back(at, pair) {
            warn!(object = %steps[*i].id, error = %e, "the previous certificate could not be put back");
            results[*i]
                .log
                .push(format!("could not put the previous certificate back: {e}"));
        }
        results[*i].status = StepStatus::Failed;
        results[*i].log.push(format!(
            "put back: gate {} refused the new certificates",
            gate.name
        ));
        outcome.ok[*i] = false;
    }
    outcome.issued = 0;
    outcome.gate_error = Some(GateFailure::PutBack {
        gate: gate.name.clone(),
        message: format!(
            "gate {}: the new certificates failed the check and were put back: {why}",
            gate.name
        ),
    });
    Ok(())
}

/// One certificate to order: its names, its key, how challenges are answered, and the
/// certificate it replaces (ARI).
struct Order<'a> {
    names: &'a [String],
    key: KeyKind,
    solver: &'a Http01,
    replaces: Option<&'a str>,
}

/// The node's CA for one run: the account is opened once, when the first certificate is
/// ordered, and made again once if the CA forgot it.
struct Ca {
    config: AcmeConfig,
    file: AccountFile,
    client: Option<Result<AcmeClient, Arc<CertError>>>,
}

impl Ca {
    fn new(inputs: &Inputs) -> Result<Ca, EngineError> {
        let (config, file) = account(inputs)?;
        Ok(Ca {
            config,
            file,
            client: None,
        })
    }

    async fn client(&mut self) -> &Result<AcmeClient, Arc<CertError>> {
        let client = match self.client.take() {
            Some(client) => client,
            None => self.file.open(&self.config).await.map_err(Arc::new),
        };
        self.client.insert(client)
    }

    async fn order(&mut self, order: &Order<'_>) -> Result<supercp_tls::KeyAndChain, CertError> {
        let first = self.try_order(order).await;
        // The CA forgot the account (a reset test CA, a deactivated account): make a new one
        // and try once more.
        if !matches!(&first, Err(e) if e.acme().is_some_and(AcmeError::is_unknown_account)) {
            return first;
        }
        warn!(file = %self.file.path(), "the CA does not know this account; creating a new one");
        if let Err(e) = private::remove_file(&self.file.anchor, &self.file.rel) {
            warn!(error = %e, "the old account file stays");
        }
        self.client = None;
        self.try_order(order).await
    }

    async fn try_order(&mut self, o: &Order<'_>) -> Result<supercp_tls::KeyAndChain, CertError> {
        match self.client().await {
            Ok(client) => client
                .issue(o.names, o.key, o.solver, o.replaces)
                .await
                .map_err(CertError::from),
            // Said once per certificate, as the CA's own words.
            Err(e) => Err(CertError::Account(Arc::clone(e))),
        }
    }
}

/// A refused file (a symlink, a file too large) stays until someone removes it; an I/O error
/// (a full disk) may pass.
fn driver_class(e: &DriverError) -> Class {
    if e.is_transient() {
        Class::Transient
    } else {
        Class::Permanent
    }
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
/// `Certificates` naming the field and the file.
fn check_acme(inputs: &Inputs, sites: &[TlsSite]) -> Result<(), EngineError> {
    if sites.iter().any(|s| matches!(s.source, Source::Acme)) {
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
            let refused = |problem: String| CertCheck::Eab {
                file: eab.hmac_key_file.clone(),
                problem,
            };
            let (text, mode) = private::read_operator_file(&eab.hmac_key_file)
                .map_err(|e| refused(e.to_string()))?;
            if mode & 0o077 != 0 {
                return Err(refused(format!(
                    "mode {:o} lets others read it; chmod 600 it",
                    mode & 0o777
                ))
                .into());
            }
            let key = base64url(text.trim()).ok_or_else(|| {
                refused("not base64url (give the key exactly as the CA shows it)".into())
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

    fn cert_step(domain: &str) -> Step {
        let desired = Desired {
            object: supercp_core::Object::Cert(supercp_core::Cert {
                at: supercp_core::Location::new(
                    "/etc/supercp/tls",
                    format!("{domain}/fullchain.pem"),
                ),
                names: vec![domain.to_owned()],
                key: KeyType::EcdsaP256,
                renewal: supercp_core::Renewal::default(),
            }),
            resource: supercp_core::ResourceRef::new(supercp_core::ResourceKind::Domain, domain),
            origin: Span::new("sites.yaml".into(), 1, 1),
            unit: supercp_core::Unit::Issue {
                gate: "nginx".into(),
            },
            tenant_data: false,
        };
        Step::put(
            &desired,
            Action::Create,
            Reason::Due {
                why: "no certificate yet".into(),
            },
            supercp_core::Found::nothing(supercp_core::Snapshot::Kept),
        )
    }

    fn refused_until(domain: &str, next: i64) -> (String, CertRecord) {
        (
            domain.to_owned(),
            CertRecord {
                domain: domain.to_owned(),
                failures: 2,
                last_error: Some("rejectedIdentifier".into()),
                next_attempt: Some(next),
                ..CertRecord::default()
            },
        )
    }

    /// The plan's steps and held steps, by domain.
    fn held(policy: &Policy, domains: &[&str]) -> (Vec<String>, Vec<String>) {
        let mut plan = Plan {
            steps: domains.iter().map(|d| cert_step(d)).collect(),
            ..Plan::default()
        };
        hold(&mut plan, policy);
        (
            plan.steps.iter().map(|s| s.resource.name.clone()).collect(),
            plan.held
                .iter()
                .map(|(s, why)| format!("{}: {why}", s.resource.name))
                .collect(),
        )
    }

    #[test]
    fn a_refused_certificate_waits_for_its_backoff_and_the_cap_holds_the_rest() {
        let now = 1_800_000_000_000;
        let policy = Policy {
            records: BTreeMap::from([
                refused_until("b.test", now + 60_000),
                refused_until("c.test", now - 1),
            ]),
            asked: BTreeSet::new(),
            max_orders: 2,
            now_ms: now,
        };
        let (steps, held_back) = held(&policy, &["a.test", "b.test", "c.test", "d.test"]);
        assert_eq!(steps, ["a.test", "c.test"], "the backoff of c.test is over");
        assert_eq!(held_back.len(), 2, "{held_back:?}");
        assert!(
            held_back[0].starts_with("b.test: waiting until ")
                && held_back[0].ends_with("after the CA refused: rejectedIdentifier"),
            "{held_back:?}"
        );
        assert_eq!(
            held_back[1],
            "d.test: more than 2 certificates are due: ordered on a later run"
        );
        // Asking for it goes past its backoff (not past the cap).
        let asked = Policy {
            asked: BTreeSet::from(["b.test".to_owned()]),
            ..policy
        };
        let (steps, _) = held(&asked, &["b.test", "a.test", "d.test"]);
        assert_eq!(steps, ["b.test", "a.test"]);
    }

    #[test]
    fn annotating_sets_the_time_the_asked_domains_and_each_domains_point_in_its_window() {
        let now = 1_800_000_000_000;
        let (start, end) = (1_800_000_000, 1_800_086_400);
        let policy = Policy {
            records: BTreeMap::from([(
                "a.test".to_owned(),
                CertRecord {
                    domain: "a.test".into(),
                    ari_start: Some(start),
                    ari_end: Some(end),
                    ..CertRecord::default()
                },
            )]),
            asked: BTreeSet::from(["b.test".to_owned()]),
            max_orders: 10,
            now_ms: now,
        };
        let mut desired: Vec<Desired> = ["a.test", "b.test"]
            .iter()
            .filter_map(|d| cert_step(d).desired().cloned())
            .collect();
        annotate(&mut desired, &policy);
        let renewal = |i: usize| desired[i].object.as_cert().map(|c| c.renewal.clone());
        let a = renewal(0).expect("a cert");
        assert_eq!(a.now, now / 1000);
        assert_eq!(a.from, Some(ari_time("a.test", start, end)));
        assert!(!a.asked);
        let b = renewal(1).expect("a cert");
        assert_eq!((b.from, b.asked), (None, true));
    }
}
