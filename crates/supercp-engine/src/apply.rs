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

use supercp_audit::{
    Journal, NewRun, NewStep, Outcome, OwnedObject, StepResult, StepStatus, Unchecked,
};
use supercp_core::object::Observed;
use supercp_core::plan::Summary;
use supercp_core::resource::Gate;
use supercp_core::time::now_ms;
use supercp_core::{Action, Desired, Observation, Reason, ResourceKind, Step, Target};
use supercp_drivers::{gate, lock, registry, Drivers};
use tracing::{info, warn};

use crate::inputs::Inputs;
use crate::plan::{plan, PlanOptions, Planned, Scope};
use crate::progress::Progress;
use crate::{EngineError, GateFailure};

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
pub struct Prefetched<'a> {
    pub lock: lock::ApplyLock,
    pub owned: Vec<OwnedObject>,
    pub accounts: BTreeMap<String, u32>,
    /// Whether the desired objects and `owned` are the whole node or a part of it (the
    /// agent's incremental reconcile); the mass-deletion guard covers the whole node either way.
    pub scope: Scope<'a>,
}

/// Takes the apply lock of `state_dir` and reads what apply needs from the journal.
///
/// # Errors
/// `Lock` when another apply runs; `Audit` when the journal cannot be read.
pub async fn prefetch(
    state_dir: &std::path::Path,
    node: &str,
    journal: &Journal,
) -> Result<Prefetched<'static>, EngineError> {
    let lock = lock_state(state_dir)?;
    Ok(Prefetched {
        lock,
        owned: journal.owned(node).await?,
        accounts: journal.accounts(node).await?,
        scope: Scope::Whole,
    })
}

/// Takes the apply lock of a state directory (creating the directory).
///
/// # Errors
/// `StateDir` when it cannot be created, `Lock` when another apply holds it.
pub fn lock_state(state_dir: &std::path::Path) -> Result<lock::ApplyLock, EngineError> {
    lock::ensure_state_dir(state_dir).map_err(|source| EngineError::StateDir {
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
    prefetched: Option<Prefetched<'_>>,
) -> Result<ApplyReport, EngineError> {
    let mut seen = Vec::new();
    let mut report =
        apply_observed(inputs, desired, journal, options, prefetched, &mut seen).await?;
    report.observed = seen;
    Ok(report)
}

/// `apply`, which also leaves in `seen` what the run observed, whether it succeeded or not:
/// each desired object as planned, then each applied object again as verified (the later one
/// is the node's state now). Empty when the run failed before it planned. A caller that shows
/// the node's state (the agent's status page) shows a failed run's observations too, never
/// the last green ones.
///
/// # Errors
/// As `apply`.
pub async fn apply_observed(
    inputs: &Inputs,
    desired: Vec<Desired>,
    journal: &Journal,
    options: &ApplyOptions,
    prefetched: Option<Prefetched<'_>>,
    seen: &mut Vec<(String, Observation)>,
) -> Result<ApplyReport, EngineError> {
    let node = inputs.node_name().to_owned();
    let started = std::time::Instant::now();
    let Prefetched {
        lock: _lock,
        owned,
        accounts: recorded,
        scope,
    } = match prefetched {
        Some(p) => p,
        None => prefetch(&inputs.state_dir, &node, journal).await?,
    };
    info!(
        ms = started.elapsed().as_millis(),
        owned = owned.len(),
        "read the journal's accounts and owned objects"
    );
    preflight(inputs)?;
    // Bring-your-own certificates of the domains this run covers are checked before anything
    // is written, and the domains asked for renewal must take theirs from the CA.
    let covered: BTreeSet<String> = desired
        .iter()
        .filter(|d| d.resource.kind == ResourceKind::Domain)
        .map(|d| d.resource.name.clone())
        .collect();
    crate::certs::check(
        inputs,
        &crate::certs::sites(inputs, Some(&covered)),
        &options.renew,
    )?;
    let interrupted = journal.mark_interrupted(&node).await?;
    let unchecked = journal.unchecked(&node).await?;
    if let Some(u) = unchecked.first() {
        warn!(
            objects = unchecked.len(),
            run = u.run,
            "a killed run left writes its commit unit never checked; this run checks them again"
        );
    }
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
    // What the CA said last, refreshed (its renewal windows) when some certificate is
    // rendered.
    let mut records = BTreeMap::new();
    if desired.iter().any(|d| d.unit.is_issue()) {
        records = journal.certificates(&node).await?;
        crate::certs::refresh_ari(inputs, &desired, &mut records, journal).await?;
    }
    let policy = crate::certs::Policy::new(inputs, records, options.renew.clone());
    let settings = supercp_drivers::Settings::for_node(&inputs.spec);
    let started = std::time::Instant::now();
    let Planned {
        plan,
        owned,
        desired,
        observed,
    } = plan(
        desired,
        owned,
        &scope,
        &unchecked,
        &policy,
        &settings,
        &options.plan,
    )?;
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
    let mut verified = Vec::new();
    let result: Result<ApplyReport, EngineError> = async {
        info!(run, %summary, "apply started");
        let mut report = ApplyReport {
            run,
            summary,
            retained: plan.retained.len(),
            interrupted,
            ..ApplyReport::default()
        };
        let mut ex = Executor {
            drivers: Drivers::new(&settings),
            journal,
            run,
            inputs,
            pause: options.pause_before_step,
            index: 0,
            verified: &mut verified,
        };
        for dir in anchors(&plan.steps) {
            ex.drivers.remove_stale_temps(dir);
        }
        // Stand-ins first: the configs written below point their services at them. One
        // that cannot be put in place stops the run before anything else is written (the
        // configs that refer to it would fail their checks).
        // Held steps too: a certificate waiting out the CA's backoff still needs a stand-in
        // when its files went missing, or every nginx check fails on the vhost that points at
        // them.
        let held: Vec<Step> = plan.held.iter().map(|(step, _)| step.clone()).collect();
        let held_stand_ins = ex.stand_ins(&held);
        let stand_ins = ex.stand_ins(&plan.steps);
        let failure = stand_in_failure(&plan.steps, &stand_ins)
            .or_else(|| stand_in_failure(&held, &held_stand_ins));
        if let Some(e) = failure {
            journal
                .finish_run(run, Outcome::Failed, Some(&e.to_string()))
                .await?;
            return Err(e);
        }
        let placed: Vec<bool> = stand_ins
            .iter()
            .map(|s| matches!(s, StandIn::Placed))
            .collect();
        let new_steps: Vec<NewStep> = plan.steps.iter().map(new_step).collect();
        let ids = journal.add_steps(run, &new_steps).await?;
        let mut done: Vec<bool> = vec![false; plan.steps.len()];
        let mut progress = Progress::new("applying", plan.steps.len());
        let mut start = 0;
        let mut gate_error = None;
        let mut not_issued = Vec::new();
        while start < plan.steps.len() {
            let key = phase_key(&plan.steps[start]);
            let end = (start..plan.steps.len())
                .find(|&i| phase_key(&plan.steps[i]) != key)
                .unwrap_or(plan.steps.len());
            let outcome = if plan.steps[start].unit.is_issue() {
                // Every other unit is live: issue what is due.
                let issued = crate::certs::issue(
                    inputs,
                    &plan.steps[start..end],
                    &ids[start..end],
                    &placed[start..end],
                    &mut ex.drivers,
                    journal,
                    run,
                )
                .await?;
                report.certificates += issued.issued;
                not_issued.extend(issued.failed);
                for _ in start..end {
                    progress.tick();
                }
                PhaseOutcome {
                    ok: issued.ok,
                    checks: issued.checks,
                    reloads: issued.reloads,
                    gate_error: issued.gate_error,
                }
            } else {
                ex.phase(&plan.steps[start..end], &ids[start..end], &mut progress)
                    .await?
            };
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
        report.certificates_waiting = plan
            .held
            .iter()
            .map(|(step, why)| format!("{}: {why}", step.resource.name))
            .collect();
        for line in &report.certificates_waiting {
            warn!("certificate due but not ordered this run: {line}");
        }
        report.applied = done.iter().filter(|d| **d).count();
        report.failed = plan.steps.len() - report.applied;
        // A stand-in is SuperCP's whether or not its certificate was issued.
        let owns: Vec<bool> = done.iter().zip(&placed).map(|(d, p)| *d || *p).collect();
        let (add, remove) = ownership(&owned, &desired, &plan, &owns, &inputs.catalog);
        journal.set_owned(&node, &add, &remove).await?;
        for step in &plan.retained {
            warn!(object = %step.id, resource = %step.resource, "tenant data left the repo and is kept (deletion policy Retain, or no --allow-destroy)");
        }
        if let Some(failure) = gate_error {
            journal
                .finish_run(run, Outcome::Failed, Some(&failure.to_string()))
                .await?;
            return Err(failure.into());
        }
        let total = plan.steps.len();
        for u in &plan.unreached {
            warn!(object = %u.id, resource = %u.resource, "not planned: {}", u.why);
        }
        if report.failed > 0 || !plan.unreached.is_empty() {
            let mut details: String = not_issued
                .iter()
                .map(|f| format!("\ncertificate not issued (the current one keeps serving): {f}"))
                .collect();
            for u in &plan.unreached {
                details.push_str(&format!(
                    "\nnot planned, the rest of the node was applied: {} ({}): {}",
                    u.id, u.resource, u.why
                ));
            }
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
        Ok(report)
    }
    .await;
    // After the reloads: naming every object costs nothing on the way to a served change.
    seen.extend(desired.iter().map(|d| d.id().to_string()).zip(observed));
    seen.append(&mut verified);
    if let Err(e) = &result {
        // Never a run left `running`: an error the run did not record yet (a full disk, a
        // journal that went away) is recorded here when the journal still takes it.
        if let Err(record) = journal.fail_if_running(run, &e.to_string()).await {
            warn!(run, error = %record, "could not record the failed run; the next apply marks it interrupted");
        }
    }
    result
}

struct Executor<'a> {
    drivers: Drivers,
    journal: &'a Journal,
    run: i64,
    inputs: &'a Inputs,
    pause: Option<usize>,
    /// Index of the next step in execution order (for the pause hook).
    index: usize,
    /// What verifying each applied step observed, by object id.
    verified: &'a mut Vec<(String, Observation)>,
}

/// Why one step failed.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("refused: {what} at {path}; SuperCP never writes, chmods or chowns through it. Remove it and apply again")]
    Refused { path: String, what: String },
    #[error(transparent)]
    Driver(#[from] supercp_drivers::DriverError),
}

/// What the stand-in pass did for one step.
enum StandIn {
    /// Not an object of an issue unit (or refused: a symlink in its place).
    NotIssued,
    /// In place: a stand-in written, or the object there already.
    Placed,
    Failed(supercp_drivers::DriverError),
}

struct PhaseOutcome {
    ok: Vec<bool>,
    checks: i64,
    reloads: i64,
    gate_error: Option<GateFailure>,
}

impl Executor<'_> {
    /// Runs one batch: all its steps, one sync, then its gate's check and reload.
    async fn phase(
        &mut self,
        steps: &[Step],
        ids: &[i64],
        progress: &mut Progress,
    ) -> Result<PhaseOutcome, EngineError> {
        let gate = steps.first().and_then(|s| s.unit.gate());
        let gate = gate.and_then(|g| self.inputs.spec.gates.iter().find(|x| x.name == g).cloned());
        if let Some(gate) = &gate {
            // Before the first write: a run killed from here until the unit settles leaves
            // these records, and the next run checks the unit again or puts them back.
            let node = self.inputs.node_name();
            let records: Vec<Unchecked> = steps
                .iter()
                .map(|s| unchecked(s, &gate.name, self.run))
                .collect();
            self.journal.open_unit(node, &records).await?;
        }
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
                    (StepStatus::Failed, vec![format!("{}: {e}", step.who())])
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
        if let Some(gate) = gate {
            // A write that failed (a full disk) puts the whole batch back: half of a change
            // never goes live. A refused step (a symlink in the way) wrote nothing.
            let failed: Vec<&Step> = steps
                .iter()
                .zip(&outcome.ok)
                .filter(|(s, ok)| !**ok && !matches!(s.reason, Reason::Blocked { .. }))
                .map(|(s, _)| s)
                .collect();
            if !failed.is_empty() {
                let names: Vec<String> = failed.iter().map(|s| s.who()).collect();
                let why = format!(
                    "gate {}: writing {} failed; the batch was put back and the previous config stays live (see `supercp audit --run {}`)",
                    gate.name,
                    names.join(", "),
                    self.run
                );
                self.put_back(&gate, steps, &mut results, &mut outcome, why)?;
            } else if outcome.ok.iter().any(|o| *o) {
                self.gate(&gate, steps, &mut results, &mut outcome)?;
            }
            // Checked and reloaded, or put back: settled either way.
            self.journal
                .close_unit(self.inputs.node_name(), &gate.name)
                .await?;
        }
        self.verify(steps, &mut results, &mut outcome.ok);
        self.journal.finish_steps(&results).await?;
        self.journal
            .count_gate(self.run, outcome.checks, outcome.reloads)
            .await?;
        Ok(outcome)
    }

    /// Puts a stand-in in place for each object of an issue unit (`Unit::Issue`) that has
    /// none, before any unit runs: the configs that refer to it pass their checks. Per step:
    /// the lines for its log, and whether the object is in place (false for the other steps).
    fn stand_ins(&mut self, steps: &[Step]) -> Vec<StandIn> {
        steps
            .iter()
            .map(|step| {
                let Some(desired) = step.desired().filter(|_| step.unit.is_issue()) else {
                    return StandIn::NotIssued;
                };
                if matches!(step.reason, Reason::Blocked { .. }) {
                    return StandIn::NotIssued;
                }
                match self.drivers.apply(&desired.object) {
                    Ok(()) => StandIn::Placed,
                    Err(e) => {
                        warn!(run = self.run, object = %step.id, error = %e, "stand-in not written");
                        StandIn::Failed(e)
                    }
                }
            })
            .collect()
    }

    fn execute(&mut self, step: &Step) -> Result<String, StepError> {
        if let Reason::Blocked { path, what } = &step.reason {
            return Err(StepError::Refused {
                path: path.clone(),
                what: what.clone(),
            });
        }
        match &step.target {
            Target::Put(desired) => self.drivers.apply(&desired.object)?,
            Target::Remove(owned) => self.drivers.delete(owned)?,
        }
        Ok(format!("{} {}", step.action, step.id))
    }

    fn sync(&mut self, steps: &[Step]) -> Result<(), EngineError> {
        self.drivers
            .sync(anchors(steps))
            .map_err(|source| EngineError::Driver {
                resource: steps[0].resource.to_string(),
                origin: steps[0].origin.clone(),
                source,
            })
    }

    /// One check for the whole batch; on failure every applied step is put back.
    fn gate(
        &mut self,
        gate: &Gate,
        steps: &[Step],
        results: &mut [StepResult],
        outcome: &mut PhaseOutcome,
    ) -> Result<(), EngineError> {
        let check = match gate::run_for(gate, &gate.check) {
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
            // The check could not run (or ran out of time): what it did not pass does not stay.
            Err(e) => {
                let why = format!("{e}; the batch was put back and the previous config stays live");
                return self.put_back(gate, steps, results, outcome, why);
            }
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
        let names: Vec<String> = culprits(steps, &check.output)
            .iter()
            .map(|s| s.who())
            .collect();
        let why = format!(
            "gate {}: `{}` failed after writing {}; the previous files were put back and the previous config stays live:\n{}",
            gate.name,
            gate.check.join(" "),
            names.join(", "),
            check.output.trim()
        );
        self.put_back(gate, steps, results, outcome, why)
    }

    /// Puts every applied step of a batch back as it was and fails them all, with `why` as
    /// the run's error.
    fn put_back(
        &mut self,
        gate: &Gate,
        steps: &[Step],
        results: &mut [StepResult],
        outcome: &mut PhaseOutcome,
        why: String,
    ) -> Result<(), EngineError> {
        for ((step, result), applied) in steps
            .iter()
            .zip(results.iter_mut())
            .zip(outcome.ok.iter_mut())
        {
            if *applied {
                if let Err(e) = self.drivers.restore(step) {
                    result
                        .log
                        .push(format!("could not put the previous file back: {e}"));
                }
                *applied = false;
            }
            result.status = StepStatus::Failed;
            result.log.push(format!(
                "rolled back with the rest of gate {}'s batch",
                gate.name
            ));
        }
        self.sync(steps)?;
        outcome.gate_error = Some(GateFailure::PutBack {
            gate: gate.name.clone(),
            message: why,
        });
        Ok(())
    }

    /// Paired execution: after a step, observing again must show no difference. One that does
    /// is a driver bug and is recorded as one.
    fn verify(&mut self, steps: &[Step], results: &mut [StepResult], ok: &mut [bool]) {
        for ((step, result), applied) in steps.iter().zip(results.iter_mut()).zip(ok.iter_mut()) {
            if !*applied || step.action == Action::Delete {
                continue;
            }
            let Some(desired) = step.desired() else {
                continue;
            };
            let seen = match self.drivers.observe(&desired.object) {
                Ok(seen) => seen,
                Err(e) => {
                    warn!(object = %step.id, error = %e, "cannot observe the object after apply");
                    result
                        .log
                        .push(format!("cannot observe the object after apply: {e}"));
                    result.status = StepStatus::Failed;
                    *applied = false;
                    continue;
                }
            };
            let differs = registry::diff(desired, &seen).map(|s| s.reason);
            self.verified.push((
                step.id.to_string(),
                Observation::new(&desired.object, &seen.observed, differs.as_ref(), now_ms()),
            ));
            if seen.observed == Observed::Absent || differs.is_some() {
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
        let named: Vec<&Step> = steps.iter().filter(|s| text.contains(s.id.key())).collect();
        if !named.is_empty() {
            return named;
        }
    }
    steps.iter().collect()
}

/// `StandIn` naming every object of an issue unit that is not in place after the stand-in
/// pass (a symlink in the way, a write that failed); permanent when something in the way
/// stays until someone removes it.
fn stand_in_failure(steps: &[Step], stand_ins: &[StandIn]) -> Option<EngineError> {
    let mut lines = Vec::new();
    let mut transient = true;
    for (step, stand_in) in steps.iter().zip(stand_ins) {
        match (&step.reason, stand_in) {
            (Reason::Blocked { path, what }, _)
                if step.unit.is_issue() && step.action != Action::Delete =>
            {
                transient = false;
                lines.push(format!(
                    "{}: refused: {what} at {path}; SuperCP never writes through it, remove it",
                    step.who()
                ));
            }
            (_, StandIn::Failed(e)) => {
                transient &= e.is_transient();
                lines.push(format!("{}: {e}", step.who()));
            }
            _ => {}
        }
    }
    if lines.is_empty() {
        return None;
    }
    Some(EngineError::StandIn {
        details: lines.iter().map(|l| format!("\n  {l}")).collect(),
        transient,
    })
}

/// Steps are batched by commit unit; direct deletes run last, in their own batch.
fn phase_key(step: &Step) -> (&supercp_core::Unit, bool) {
    (
        &step.unit,
        step.unit == supercp_core::Unit::Direct && step.action == Action::Delete,
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
        match gate::signal(&gate.name, reload, program).map_err(GateFailure::from)? {
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
    let reload = gate::run_for(gate, &gate.reload).map_err(GateFailure::from)?;
    if !reload.success {
        return Err(GateFailure::ReloadFailed {
            gate: gate.name.clone(),
            command: gate.reload.join(" "),
            output: reload.output.trim().to_owned(),
        }
        .into());
    }
    Ok(1)
}

/// The journal's record of a step a commit unit is about to write.
fn unchecked(step: &Step, gate: &str, run: i64) -> Unchecked {
    let anchor = match &step.target {
        Target::Put(d) => d.location(),
        Target::Remove(o) => o.location.as_ref(),
    };
    Unchecked {
        object: step.id.to_string(),
        gate: gate.to_owned(),
        run,
        resource: step.resource.to_string(),
        origin: if step.origin.line == 0 {
            String::new()
        } else {
            step.origin.to_string()
        },
        anchor: anchor.map_or_else(String::new, |at| at.anchor.clone()),
        action: step.action.as_str().to_owned(),
        before_content: step.previous().map(<[u8]>::to_vec),
    }
}

fn new_step(step: &Step) -> NewStep {
    NewStep {
        resource: step.resource.to_string(),
        origin: if step.origin.line == 0 {
            String::new()
        } else {
            step.origin.to_string()
        },
        object: step.id.to_string(),
        action: step.action.as_str().to_owned(),
        before_hash: step.before.clone(),
        after_hash: step.after.clone(),
        before_content: step.previous().map(<[u8]>::to_vec),
    }
}

/// The anchors of the steps' objects (where a batch is synced, and where a killed run may
/// have left a temp file).
fn anchors(steps: &[Step]) -> BTreeSet<&str> {
    steps
        .iter()
        .filter_map(|s| match &s.target {
            Target::Put(d) => d.location(),
            Target::Remove(o) => o.location.as_ref(),
        })
        .map(|at| at.anchor.as_str())
        .filter(|a| !a.is_empty())
        .collect()
}

/// Refuses before anything is written when a required commit unit could not pass its check
/// in this process (a gate needing more open files than the process may open).
///
/// # Errors
/// `Gate` with what the unit needs and what to do.
fn preflight(inputs: &Inputs) -> Result<(), EngineError> {
    let open_files = gate::raise_open_files_limit();
    for need in supercp_render::unit_needs(&inputs.catalog, &inputs.spec) {
        if open_files >= need.open_files {
            continue;
        }
        let message = format!("{}; this process may open {open_files}", need.why);
        let required = inputs
            .spec
            .gates
            .iter()
            .any(|g| g.name == need.gate && !g.optional);
        if required {
            return Err(EngineError::OpenFiles {
                gate: need.gate,
                why: message,
            });
        }
        warn!(gate = %need.gate, open_files, needed = need.open_files, "{message}");
    }
    Ok(())
}

/// What the journal must record as owned after this apply.
fn ownership(
    owned: &BTreeMap<String, OwnedObject>,
    desired: &[Desired],
    plan: &supercp_core::Plan,
    done: &[bool],
    catalog: &supercp_core::Catalog,
) -> (Vec<OwnedObject>, Vec<String>) {
    // Not recorded as owned: what failed, and what could not be reached (never created).
    let failed: BTreeSet<String> = plan
        .steps
        .iter()
        .zip(done)
        .filter(|(s, d)| !**d && s.action != Action::Delete)
        .map(|(s, _)| s.id.to_string())
        .chain(plan.unreached.iter().map(|u| u.id.to_string()))
        .collect();
    let policies: BTreeMap<String, String> = catalog
        .tenants
        .values()
        .map(|t| {
            (
                t.name.to_string(),
                format!("{:?}", t.resource.spec.deletion_policy),
            )
        })
        .collect();
    let mut add = Vec::new();
    for d in desired {
        let id = d.id().to_string();
        if failed.contains(&id) {
            continue;
        }
        let record = OwnedObject {
            object: id.clone(),
            resource: d.resource.to_string(),
            tenant_data: d.tenant_data,
            anchor: d
                .location()
                .map_or_else(String::new, |at| at.anchor.clone()),
            // Only tenant data has a deletion policy: a zone its own, the rest their tenant's.
            deletion_policy: d.tenant_data.then(|| {
                zone_policy(d, catalog)
                    .or_else(|| tenant_of(d, catalog).and_then(|t| policies.get(&t).cloned()))
                    .unwrap_or_else(|| "Retain".into())
            }),
            gate: d.unit.journal_name(),
        };
        if owned.get(&id) != Some(&record) {
            add.push(record);
        }
    }
    let mut remove: Vec<String> = plan
        .steps
        .iter()
        .zip(done)
        .filter(|(s, d)| **d && s.action == Action::Delete)
        .map(|(s, _)| s.id.to_string())
        .collect();
    // Retained data with policy Retain is released: SuperCP stops managing it.
    remove.extend(
        plan.retained.iter().map(|s| s.id.to_string()).filter(|id| {
            owned.get(id).and_then(|o| o.deletion_policy.as_deref()) != Some("Delete")
        }),
    );
    // Owned objects seen gone from the node (and not in the repo) are forgotten; one that
    // could not be observed never reaches here (the plan fails instead).
    remove.extend(plan.gone.iter().map(ToString::to_string));
    (add, remove)
}

/// The tenant whose deletion policy covers a tenant-data object.
fn tenant_of(d: &Desired, catalog: &supercp_core::Catalog) -> Option<String> {
    match d.resource.kind {
        ResourceKind::Tenant => Some(d.resource.name.clone()),
        ResourceKind::Domain => supercp_core::DomainName::parse(&d.resource.name)
            .ok()
            .and_then(|n| catalog.domains.get(&n))
            .map(|e| e.tenant.to_string()),
        ResourceKind::Node | ResourceKind::Package | ResourceKind::Zone => None,
    }
}

/// A zone's own deletion policy (`spec.deletionPolicy` of the Zone).
fn zone_policy(d: &Desired, catalog: &supercp_core::Catalog) -> Option<String> {
    if d.resource.kind != ResourceKind::Zone {
        return None;
    }
    let name = supercp_core::DomainName::parse(&d.resource.name).ok()?;
    let zone = catalog.zones.get(&name)?;
    Some(format!("{:?}", zone.resource.spec.deletion_policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use supercp_core::plan::Found;
    use supercp_core::{Location, Object, ResourceRef, Snapshot, Span, Unit};

    fn step(path: &str, resource: &str) -> Step {
        let (anchor, rel) = path.rsplit_once('/').unwrap_or(("/", path));
        let desired = Desired {
            object: Object::File {
                at: Location::new(anchor, rel),
                content: Vec::new(),
                mode: 0o644,
                owner: None,
            },
            resource: ResourceRef::parse(resource).expect("a resource"),
            origin: Span::default(),
            unit: Unit::Gate("nginx".into()),
            tenant_data: false,
        };
        Step::put(
            &desired,
            Action::Update,
            Reason::Content,
            Found::nothing(Snapshot::Kept),
        )
    }

    #[test]
    fn culprit_is_the_file_an_error_line_names_not_the_main_config() {
        let steps = [
            step("/etc/nginx/nginx.conf", "Node/web1"),
            step("/etc/nginx/sites/b.test.conf", "Domain/b.test"),
        ];
        let output = "nginx: [emerg] unknown directive \"x\" in /etc/nginx/sites/b.test.conf:3\n\
                      nginx: configuration file /etc/nginx/nginx.conf test failed\n";
        let named: Vec<String> = culprits(&steps, output)
            .iter()
            .map(|s| s.resource.to_string())
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
