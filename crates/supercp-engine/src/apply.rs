//! apply(): lock → journal → steps → sync → gate → reload → verify → record.
//!
//! # Guarantees
//! - One apply at a time per state directory (`<state>/apply.lock`).
//! - A step is recorded `done` only after its writes are on disk (one `syncfs` per batch,
//!   before the journal's transaction for that batch).
//! - A gate whose check fails gets every file of its batch put back as it was; the previous
//!   config stays live and the error names the resource and file:line that broke the check.
//! - A step that would go through a symlink is refused and touches nothing.

use std::collections::{BTreeMap, BTreeSet};

use supercp_audit::{Journal, NewRun, NewStep, Outcome, OwnedObject, StepResult, StepStatus};
use supercp_core::object::Observed;
use supercp_core::plan::Summary;
use supercp_core::resource::Gate;
use supercp_core::time::now_ms;
use supercp_core::{Action, Desired, Observation, Reason, Step};
use supercp_drivers::{accounts, gate, lock, Node};
use tracing::{info, warn};

use crate::diff::diff;
use crate::inputs::Inputs;
use crate::plan::{plan, PlanOptions, Planned};
use crate::progress::Progress;
use crate::EngineError;

/// What an operator allows an apply to do, and who runs it.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    pub plan: PlanOptions,
    /// Recorded in the journal (e.g. `root@web1` or `ci`).
    pub actor: String,
    /// Why this run runs, recorded in the journal: `cli` for `supercp apply`; the agent's
    /// `commit`, `drift`, `signal` or `reconcile`.
    pub trigger: String,
    /// Test hook: stop (sleep) before executing the step with this index, so a test can kill
    /// the process at a known point. Set from `SUPERCP_TEST_PAUSE_BEFORE_STEP`.
    pub pause_before_step: Option<usize>,
    /// Domains whose certificate is issued again even when it is not due (`supercp cert
    /// renew`, e.g. after a key compromise).
    pub renew: BTreeSet<String>,
}

/// What an apply did.
#[derive(Clone, Debug, Default)]
pub struct ApplyReport {
    pub run: i64,
    pub summary: Summary,
    pub applied: usize,
    pub failed: usize,
    pub retained: usize,
    pub gate_checks: i64,
    pub reloads: i64,
    /// Certificates issued (placeholders not counted).
    pub certificates: usize,
    /// Due certificates this run did not order, and why (backoff after a refusal, or the cap
    /// on orders per run).
    pub certificates_waiting: Vec<String>,
    /// Runs of this node found still `running` (killed) and marked interrupted.
    pub interrupted: Vec<i64>,
    /// What observing each desired object found, by object id, in the order observed: every
    /// object as planned, then each applied object again as verified (the later one is the
    /// node's state now).
    pub observed: Vec<(String, Observation)>,
}

/// What an apply reads from the journal before it plans, read by a caller that holds the apply
/// lock already (the CLI reads it while the repo loads).
pub struct Prefetched {
    pub lock: lock::ApplyLock,
    pub owned: Vec<OwnedObject>,
    pub accounts: BTreeMap<String, u32>,
}

/// Takes the apply lock of `state_dir` and reads what apply needs from the journal.
///
/// # Errors
/// `Lock` when another apply runs; `Audit` when the journal cannot be read.
pub async fn prefetch(
    state_dir: &std::path::Path,
    node: &str,
    journal: &Journal,
) -> Result<Prefetched, EngineError> {
    let lock = lock_state(state_dir)?;
    Ok(Prefetched {
        lock,
        owned: journal.owned(node).await?,
        accounts: journal.accounts(node).await?,
    })
}

/// Takes the apply lock of a state directory (creating the directory).
///
/// # Errors
/// `StateDir` when it cannot be created, `Lock` when another apply holds it.
pub fn lock_state(state_dir: &std::path::Path) -> Result<lock::ApplyLock, EngineError> {
    std::fs::create_dir_all(state_dir).map_err(|source| EngineError::StateDir {
        path: state_dir.display().to_string(),
        source,
    })?;
    Ok(lock::acquire(&state_dir.join("apply.lock"), now_ms())?)
}

/// Converges the node to `desired`. `prefetched` is the lock and journal reads of `prefetch`
/// for this node, or `None` to take and read them here.
///
/// # Errors
/// `Lock` when another apply runs; `MassDelete` before anything is touched; `Gate` after a
/// failed check (files restored); `StepsFailed` when some steps failed (the rest applied).
pub async fn apply(
    inputs: &Inputs,
    desired: Vec<Desired>,
    journal: &Journal,
    options: &ApplyOptions,
    prefetched: Option<Prefetched>,
) -> Result<ApplyReport, EngineError> {
    let node = inputs.node_name().to_owned();
    let started = std::time::Instant::now();
    let Prefetched {
        lock: _lock,
        owned,
        accounts: recorded,
    } = match prefetched {
        Some(p) => p,
        None => prefetch(&inputs.state_dir, &node, journal).await?,
    };
    info!(
        ms = started.elapsed().as_millis(),
        owned = owned.len(),
        "read the journal's accounts and owned objects"
    );
    let open_files = gate::raise_open_files_limit();
    let site_logs = inputs.spec.web.site_logs == supercp_core::resource::SiteLogs::Domain;
    let needed = 2 * inputs.catalog.domains.len() as u64 + 256;
    if site_logs && open_files < needed {
        let message = format!(
            "nginx opens two log files per site: `nginx -t` needs about {needed} open files and \
             this process may open {open_files}; raise the open-files limit (LimitNOFILE) or set \
             web.siteLogs: Node in the node file"
        );
        // A required nginx check would fail after every write: refuse before writing anything.
        let nginx = inputs
            .spec
            .gates
            .iter()
            .find(|g| g.name == supercp_render::GATE_NGINX);
        if nginx.is_some_and(|g| !g.optional) {
            return Err(EngineError::Gate(message));
        }
        warn!(open_files, needed, "{message}");
    }
    // Certificates of the domains this run covers; bring-your-own ones are checked before
    // anything is written. A node without TLS sites and certificates skips this (it would
    // cost a pass over every desired object on the way to a served change).
    let any_tls = inputs
        .catalog
        .domains
        .values()
        .any(|d| d.resource.spec.tls.is_some())
        || std::path::Path::new(&inputs.spec.path(&inputs.spec.tls.cert_dir)).is_dir();
    let covered: BTreeSet<String> = if any_tls {
        desired
            .iter()
            .filter_map(|d| d.resource.strip_prefix("Domain/").map(str::to_owned))
            .collect()
    } else {
        BTreeSet::new()
    };
    let tls_sites = crate::certs::sites(inputs, Some(&covered));
    crate::certs::check(inputs, &tls_sites, &options.renew)?;
    let interrupted = journal.mark_interrupted(&node).await?;
    for run in &interrupted {
        warn!(
            run,
            "an earlier apply was interrupted; this run finishes its work"
        );
    }
    let mut desired = desired;
    let new_accounts = crate::accounts::assign(&mut desired, &recorded, &inputs.spec.accounts)?;
    if !new_accounts.is_empty() {
        // Recorded before any account exists: the uid is this tenant's from now on.
        journal
            .record_accounts(&node, &new_accounts, now_ms())
            .await?;
    }
    let started = std::time::Instant::now();
    let Planned {
        plan,
        owned,
        desired,
        observed,
    } = plan(desired, owned, &options.plan)?;
    info!(
        ms = started.elapsed().as_millis(),
        objects = desired.len(),
        steps = plan.steps.len(),
        "observed and planned"
    );
    let git = crate::git::describe(&inputs.repo);
    let summary = plan.summary();
    let run = journal
        .start_run(&NewRun {
            node: node.clone(),
            actor: options.actor.clone(),
            repo: inputs.repo.display().to_string(),
            git_commit: git.commit,
            git_author: git.author,
            git_dirty: git.dirty,
            git_message: git.message,
            git_time: git.time,
            trigger: options.trigger.clone(),
            summary: if plan.is_empty() {
                "no changes".into()
            } else {
                summary.to_string()
            },
            pid: std::process::id(),
        })
        .await?;
    info!(run, %summary, "apply started");
    let mut report = ApplyReport {
        run,
        summary,
        retained: plan.retained.len(),
        interrupted,
        ..ApplyReport::default()
    };
    let mut ex = Executor {
        fs: Node::new(),
        journal,
        run,
        inputs,
        pause: options.pause_before_step,
        index: 0,
        verified: Vec::new(),
    };
    for dir in file_dirs(&plan.steps) {
        ex.fs.remove_stale_temps(&dir);
    }
    // Placeholders first: the vhosts written below point nginx at them.
    crate::certs::place(&tls_sites, journal, run).await?;
    let new_steps: Vec<NewStep> = plan.steps.iter().map(new_step).collect();
    let ids = journal.add_steps(run, &new_steps).await?;
    let mut done: Vec<bool> = vec![false; plan.steps.len()];
    let mut progress = Progress::new("applying", plan.steps.len());
    let mut start = 0;
    let mut gate_error = None;
    while start < plan.steps.len() {
        let key = phase_key(&plan.steps[start]);
        let end = (start..plan.steps.len())
            .find(|&i| phase_key(&plan.steps[i]) != key)
            .unwrap_or(plan.steps.len());
        let outcome = ex
            .phase(&plan.steps[start..end], &ids[start..end], &mut progress)
            .await?;
        for (i, ok) in outcome.ok.iter().enumerate() {
            done[start + i] = *ok;
        }
        report.gate_checks += outcome.checks;
        report.reloads += outcome.reloads;
        if let Some(e) = outcome.gate_error {
            gate_error = Some(e);
            break;
        }
        start = end;
    }
    report.applied = done.iter().filter(|d| **d).count();
    report.failed = plan.steps.len() - report.applied;
    let (add, remove) = ownership(
        &owned,
        &desired,
        &plan.steps,
        &done,
        &plan.retained,
        &inputs.catalog,
    );
    journal.set_owned(&node, &add, &remove).await?;
    for step in &plan.retained {
        warn!(object = %step.id, resource = %step.resource, "tenant data left the repo and is kept (deletion policy Retain, or no --allow-destroy)");
    }
    if let Some(message) = gate_error {
        journal
            .finish_run(run, Outcome::Failed, Some(&message))
            .await?;
        return Err(EngineError::Gate(message));
    }
    // The configs are live: every vhost answers ACME challenges. Issue what is due; a
    // certificate that cannot be issued fails its step and the run, and the current one
    // keeps serving.
    let all_domains = any_tls && covered.len() == inputs.catalog.domains.len();
    let certs =
        crate::certs::converge(inputs, tls_sites, &options.renew, all_domains, journal, run);
    let certs = match certs.await {
        Ok(certs) => certs,
        Err(e) => {
            journal
                .finish_run(run, Outcome::Failed, Some(&e.to_string()))
                .await?;
            return Err(e);
        }
    };
    let total = plan.steps.len() + certs.ordered;
    let issued = certs.issued;
    report.certificates = issued.issued;
    report.certificates_waiting = certs.waiting;
    report.reloads += issued.reloads;
    report.failed += issued.failed.len();
    if report.failed > 0 {
        let details: String = issued
            .failed
            .iter()
            .map(|f| format!("\ncertificate not issued (the current one keeps serving): {f}"))
            .collect();
        let message = format!("{} of {total} steps failed{details}", report.failed);
        journal
            .finish_run(run, Outcome::Failed, Some(&message))
            .await?;
        return Err(EngineError::StepsFailed {
            failed: report.failed,
            total,
            run,
            details,
        });
    }
    journal.finish_run(run, Outcome::Succeeded, None).await?;
    info!(run, applied = report.applied, "apply finished");
    // After the reloads: naming every object costs nothing on the way to a served change.
    report.observed = desired.iter().map(|d| d.id().0).zip(observed).collect();
    report.observed.append(&mut ex.verified);
    Ok(report)
}

struct Executor<'a> {
    fs: Node,
    journal: &'a Journal,
    run: i64,
    inputs: &'a Inputs,
    pause: Option<usize>,
    /// Index of the next step in execution order (for the pause hook).
    index: usize,
    /// What verifying each applied step observed, by object id.
    verified: Vec<(String, Observation)>,
}

struct PhaseOutcome {
    ok: Vec<bool>,
    checks: i64,
    reloads: i64,
    gate_error: Option<String>,
}

impl Executor<'_> {
    /// Runs one batch: all its steps, one sync, then its gate's check and reload.
    async fn phase(
        &mut self,
        steps: &[Step],
        ids: &[i64],
        progress: &mut Progress,
    ) -> Result<PhaseOutcome, EngineError> {
        self.journal.steps_running(ids, now_ms()).await?;
        let mut results = Vec::with_capacity(steps.len());
        let mut ok = Vec::with_capacity(steps.len());
        for (step, id) in steps.iter().zip(ids) {
            self.pause_if_asked();
            let started = now_ms();
            let outcome = self.execute(step);
            let (status, log) = match outcome {
                Ok(line) => (StepStatus::Done, vec![line]),
                Err(e) => {
                    warn!(run = self.run, object = %step.id, resource = %step.resource, error = %e, "step failed");
                    (
                        StepStatus::Failed,
                        vec![format!("{} ({}): {e}", step.resource, step.origin)],
                    )
                }
            };
            ok.push(status == StepStatus::Done);
            results.push(StepResult {
                id: *id,
                status,
                after_hash: None,
                log,
                started_at: started,
                finished_at: now_ms(),
            });
            progress.tick();
        }
        self.sync(steps)?;
        let mut outcome = PhaseOutcome {
            ok,
            checks: 0,
            reloads: 0,
            gate_error: None,
        };
        let gate = steps.first().and_then(|s| s.gate.clone());
        let gate = gate.and_then(|g| self.inputs.spec.gates.iter().find(|x| x.name == g).cloned());
        if let (Some(gate), true) = (gate, outcome.ok.iter().any(|o| *o)) {
            self.gate(&gate, steps, &mut results, &mut outcome)?;
        }
        self.verify(steps, &mut results, &mut outcome.ok);
        self.journal.finish_steps(&results).await?;
        self.journal
            .count_gate(self.run, outcome.checks, outcome.reloads)
            .await?;
        Ok(outcome)
    }

    fn execute(&mut self, step: &Step) -> Result<String, String> {
        let Some(desired) = &step.desired else {
            return Err("no object for this step (a bug)".into());
        };
        if let Reason::Blocked { path, what } = &step.reason {
            return Err(format!("refused: {what} at {path}; SuperCP never writes, chmods or chowns through it. Remove it and apply again"));
        }
        let result = match (step.action, &desired.object) {
            (Action::Delete, _) if step.id.kind() == "user" => {
                accounts::delete(&desired.rel).map_err(|e| e.to_string())
            }
            (Action::Create | Action::Update, supercp_core::Object::Account(a)) => {
                accounts::apply(&desired.rel, a).map_err(|e| e.to_string())
            }
            (Action::Create | Action::Update, _) => {
                self.fs.apply(desired).map_err(|e| e.to_string())
            }
            (Action::Delete, _) if step.id.kind() == "file" => self
                .fs
                .delete_file(&desired.anchor, &desired.rel)
                .map_err(|e| e.to_string()),
            (Action::Delete, _) => self
                .fs
                .delete(&desired.anchor, &desired.rel)
                .map_err(|e| e.to_string()),
        };
        result.map(|()| format!("{} {}", step.action, step.id))
    }

    fn sync(&mut self, steps: &[Step]) -> Result<(), EngineError> {
        let anchors: BTreeSet<&str> = steps
            .iter()
            .filter_map(|s| s.desired.as_ref())
            .map(|d| d.anchor.as_str())
            .filter(|a| !a.is_empty())
            .collect();
        for anchor in anchors {
            if let Err(source) = self.fs.sync(anchor) {
                // A deleted anchor cannot be synced; its parent filesystem was synced with others.
                if std::path::Path::new(anchor).exists() {
                    let step = &steps[0];
                    return Err(EngineError::Driver {
                        resource: step.resource.clone(),
                        origin: step.origin.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// One check for the whole batch; on failure every applied step is put back.
    fn gate(
        &mut self,
        gate: &Gate,
        steps: &[Step],
        results: &mut [StepResult],
        outcome: &mut PhaseOutcome,
    ) -> Result<(), EngineError> {
        let check = match gate::run(&gate.name, &gate.check) {
            Ok(run) => run,
            Err(gate::GateError::Missing { program, .. }) if gate.optional => {
                warn!(gate = %gate.name, program = %program, "gate check skipped: the program is not installed");
                for r in results.iter_mut() {
                    r.log.push(format!(
                        "gate {} skipped: `{program}` is not installed",
                        gate.name
                    ));
                }
                return Ok(());
            }
            Err(e) => return Err(EngineError::Gate(e.to_string())),
        };
        outcome.checks += 1;
        if check.success {
            info!(gate = %gate.name, "gate check passed");
            let mut notes = Vec::new();
            outcome.reloads += reload(gate, &mut notes)?;
            for r in results.iter_mut() {
                r.log.extend(notes.iter().cloned());
            }
            return Ok(());
        }
        let culprits = culprits(steps, &check.output);
        for ((step, result), applied) in steps
            .iter()
            .zip(results.iter_mut())
            .zip(outcome.ok.iter_mut())
        {
            if *applied {
                if let Some(desired) = &step.desired {
                    let restored = match step.action {
                        Action::Create => self.fs.delete_file(&desired.anchor, &desired.rel),
                        Action::Update | Action::Delete => match &step.previous {
                            Some(previous) => self.fs.restore(desired, Some(previous)),
                            None => Ok(()),
                        },
                    };
                    if let Err(e) = restored {
                        result
                            .log
                            .push(format!("could not put the previous file back: {e}"));
                    }
                }
                *applied = false;
            }
            result.status = StepStatus::Failed;
            result
                .log
                .push(format!("rolled back: gate {} check failed", gate.name));
        }
        self.sync(steps)?;
        let names: Vec<String> = culprits
            .iter()
            .map(|s| format!("{} ({})", s.resource, s.origin))
            .collect();
        outcome.gate_error = Some(format!(
            "gate {}: `{}` failed after writing {}; the previous files were put back and the previous config stays live:\n{}",
            gate.name,
            gate.check.join(" "),
            names.join(", "),
            check.output.trim()
        ));
        Ok(())
    }

    /// Paired execution: after a step, observing again must show no difference. One that does
    /// is a driver bug and is recorded as one.
    fn verify(&mut self, steps: &[Step], results: &mut [StepResult], ok: &mut [bool]) {
        for ((step, result), applied) in steps.iter().zip(results.iter_mut()).zip(ok.iter_mut()) {
            if !*applied || step.action == Action::Delete {
                continue;
            }
            let Some(desired) = &step.desired else {
                continue;
            };
            let observed = crate::plan::observe(&mut self.fs, desired);
            let ids = crate::plan::owner(&desired.object).and_then(|o| self.fs.owner_ids(o));
            let differs = diff(desired, &observed, ids).map(|s| s.reason);
            self.verified.push((
                step.id.0.clone(),
                Observation::new(&desired.object, &observed, differs.as_ref(), now_ms()),
            ));
            if observed == Observed::Absent || differs.is_some() {
                warn!(object = %step.id, "driver bug: the object still differs after apply");
                result.status = StepStatus::Failed;
                result
                    .log
                    .push("driver bug: the object still differs after apply".into());
                *applied = false;
            }
        }
    }

    fn pause_if_asked(&mut self) {
        if self.pause == Some(self.index) {
            eprintln!("supercp: test hook: paused before step {}", self.index);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        self.index += 1;
    }
}

/// Steps whose file the check's error lines name (nginx `[emerg]`, php-fpm `ERROR`), else
/// any line of its output; all steps of the batch when it names none of them.
fn culprits<'a>(steps: &'a [Step], output: &str) -> Vec<&'a Step> {
    let errors: String = output
        .lines()
        .filter(|l| l.contains("[emerg]") || l.contains("ERROR") || l.contains("[crit]"))
        .collect::<Vec<_>>()
        .join("\n");
    for text in [errors.as_str(), output] {
        let named: Vec<&Step> = steps
            .iter()
            .filter(|s| text.contains(s.id.path()))
            .collect();
        if !named.is_empty() {
            return named;
        }
    }
    steps.iter().collect()
}

/// Steps are batched by gate; ungated deletes run last, in their own batch.
fn phase_key(step: &Step) -> (Option<String>, bool) {
    (
        step.gate.clone(),
        step.gate.is_none() && step.action == Action::Delete,
    )
}

/// Reloads a gate's service after its check passed: its signal to the master (or its reload
/// command). Returns the reloads done (none when the service is not running, which `notes`
/// then says, for the steps' logs).
///
/// # Errors
/// `Gate` when the signal cannot be sent or the reload command fails.
pub(crate) fn reload(gate: &Gate, notes: &mut Vec<String>) -> Result<i64, EngineError> {
    if let Some(reload) = &gate.reload_signal {
        // The master's process name: the check's program (`nginx`, `php-fpm8.2`).
        let program = gate
            .check
            .first()
            .and_then(|p| p.rsplit('/').next())
            .unwrap_or_default();
        match gate::signal(&gate.name, reload, program)
            .map_err(|e| EngineError::Gate(e.to_string()))?
        {
            gate::Signalled::Sent { pid } => {
                info!(gate = %gate.name, pid, signal = ?reload.signal, "reload signalled");
                return Ok(1);
            }
            gate::Signalled::NotRunning => {
                warn!(gate = %gate.name, pid_file = %reload.pid_file, "not reloaded: the service is not running (it reads the new files when it starts)");
                notes.push(format!(
                    "gate {}: not reloaded, the service is not running",
                    gate.name
                ));
                return Ok(0);
            }
        }
    }
    if gate.reload.is_empty() {
        return Ok(0);
    }
    let reload =
        gate::run(&gate.name, &gate.reload).map_err(|e| EngineError::Gate(e.to_string()))?;
    if !reload.success {
        return Err(EngineError::Gate(format!(
            "gate {}: reload `{}` failed: {}",
            gate.name,
            gate.reload.join(" "),
            reload.output.trim()
        )));
    }
    Ok(1)
}

fn new_step(step: &Step) -> NewStep {
    NewStep {
        resource: step.resource.clone(),
        origin: if step.origin.line == 0 {
            String::new()
        } else {
            step.origin.to_string()
        },
        object: step.id.0.clone(),
        action: step.action.as_str().to_owned(),
        before_hash: step.before.clone(),
        after_hash: step.after.clone(),
        before_content: step.previous.clone(),
    }
}

/// Directories holding files of this plan (where a killed run may have left a temp file).
fn file_dirs(steps: &[Step]) -> BTreeSet<String> {
    steps
        .iter()
        .filter(|s| s.id.kind() == "file")
        .filter_map(|s| s.desired.as_ref())
        .map(|d| d.anchor.clone())
        .collect()
}

/// What the journal must record as owned after this apply.
fn ownership(
    owned: &BTreeMap<String, OwnedObject>,
    desired: &[Desired],
    steps: &[Step],
    done: &[bool],
    retained: &[Step],
    catalog: &supercp_core::Catalog,
) -> (Vec<OwnedObject>, Vec<String>) {
    let failed: BTreeSet<&str> = steps
        .iter()
        .zip(done)
        .filter(|(s, d)| !**d && s.action != Action::Delete)
        .map(|(s, _)| s.id.0.as_str())
        .collect();
    let policies: BTreeMap<String, String> = catalog
        .tenants
        .values()
        .map(|t| {
            (
                format!("Tenant/{}", t.name),
                format!("{:?}", t.resource.spec.deletion_policy),
            )
        })
        .collect();
    let mut add = Vec::new();
    for d in desired {
        let id = d.id().0;
        if failed.contains(id.as_str()) {
            continue;
        }
        let record = OwnedObject {
            object: id.clone(),
            resource: d.resource.clone(),
            tenant_data: d.tenant_data,
            anchor: d.anchor.clone(),
            // Only tenant data has a deletion policy: look its tenant up for those alone.
            deletion_policy: d.tenant_data.then(|| {
                policies
                    .get(&tenant_resource(d, catalog))
                    .cloned()
                    .unwrap_or_else(|| "Retain".into())
            }),
            gate: d.gate.clone(),
        };
        if owned.get(&id) != Some(&record) {
            add.push(record);
        }
    }
    let wanted: BTreeSet<String> = desired.iter().map(|d| d.id().0).collect();
    let mut remove: Vec<String> = steps
        .iter()
        .zip(done)
        .filter(|(s, d)| **d && s.action == Action::Delete)
        .map(|(s, _)| s.id.0.clone())
        .collect();
    // Retained data with policy Retain is released: SuperCP stops managing it.
    remove.extend(
        retained
            .iter()
            .filter(|s| {
                owned
                    .get(&s.id.0)
                    .and_then(|o| o.deletion_policy.as_deref())
                    != Some("Delete")
            })
            .map(|s| s.id.0.clone()),
    );
    // Owned objects that are gone from the node and the repo are forgotten.
    let planned: BTreeSet<&str> = steps
        .iter()
        .chain(retained)
        .map(|s| s.id.0.as_str())
        .collect();
    remove.extend(
        owned
            .keys()
            .filter(|k| !wanted.contains(*k) && !planned.contains(k.as_str()))
            .cloned(),
    );
    (add, remove)
}

/// The tenant whose deletion policy covers a tenant-data object.
fn tenant_resource(d: &Desired, catalog: &supercp_core::Catalog) -> String {
    match d.resource.split_once('/') {
        Some(("Domain", name)) => supercp_core::DomainName::parse(name)
            .ok()
            .and_then(|n| catalog.domains.get(&n))
            .map_or_else(String::new, |e| format!("Tenant/{}", e.tenant)),
        _ => d.resource.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use supercp_core::{ObjectId, Span};

    fn step(path: &str, resource: &str) -> Step {
        Step {
            id: ObjectId(format!("file:{path}")),
            action: Action::Update,
            reason: Reason::Content,
            resource: resource.into(),
            origin: Span::default(),
            before: None,
            after: None,
            diff: None,
            desired: None,
            previous: None,
            gate: Some("nginx".into()),
            tenant_data: false,
        }
    }

    #[test]
    fn culprit_is_the_file_an_error_line_names_not_the_main_config() {
        let steps = [
            step("/etc/nginx/nginx.conf", "Node/web1"),
            step("/etc/nginx/sites/b.test.conf", "Domain/b.test"),
        ];
        let output = "nginx: [emerg] unknown directive \"x\" in /etc/nginx/sites/b.test.conf:3\n\
                      nginx: configuration file /etc/nginx/nginx.conf test failed\n";
        let named: Vec<&str> = culprits(&steps, output)
            .iter()
            .map(|s| s.resource.as_str())
            .collect();
        assert_eq!(named, ["Domain/b.test"]);
    }

    #[test]
    fn every_step_is_named_when_the_output_names_none() {
        let steps = [
            step("/a.conf", "Domain/a.test"),
            step("/b.conf", "Domain/b.test"),
        ];
        assert_eq!(culprits(&steps, "something broke").len(), 2);
    }
}
