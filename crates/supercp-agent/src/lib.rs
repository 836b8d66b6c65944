//! `supercp agent`: follows the node file's Git branch and converges the node commit by
//! commit, scans for drift on a timer, and reconciles on SIGHUP. Every run goes through the same
//! path as `supercp apply` (`supercp_engine::apply`) and is recorded in the journal with the
//! commit's SHA, author, message and commit time and why it ran (`commit`, `drift`, `signal`).
//!
//! # Guarantees
//! - A head that does not descend from the last applied commit (force-push, rewritten history)
//!   is refused unless the node file allows it; the refusal is a failed run in the journal.
//! - A transient failure (failed gate, failed steps, unreachable remote, a busy lock) is logged,
//!   recorded when it concerns a commit, and retried with exponential backoff.
//! - A permanent failure (the repo does not load or validate, a refused mass delete) is recorded
//!   once per head; then the agent waits for the next commit or a change of the node file (or
//!   SIGHUP, `supercp reconcile`) instead of retrying. The agent keeps running either way.
//! - The status page and the control socket keep answering during a run: the loop runs on a
//!   thread of its own, and the runtime thread that serves them never blocks on the node
//!   (observe, writes, gate commands, account tools) or on a Git fetch.
//! - SIGTERM and SIGINT stop it between runs.

pub mod notify;
pub mod socket;
pub mod source;
pub mod transport;
pub mod trust;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use git2::Oid;
use serde_json::{json, Value};
use supercp_audit::{Journal, NewRun, Outcome, OwnedObject};
use supercp_core::{Desired, Observation};
use supercp_engine::{ApplyOptions, EngineError, Inputs};
use supercp_load::ParseCache;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

use crate::socket::{Command, SharedSnapshot, Snapshot};
use crate::source::{Commit, GitCheckout};

/// What the agent runs on.
pub struct AgentConfig {
    /// The node file (it names the Git source and the intervals).
    pub node_file: PathBuf,
    pub state: PathBuf,
    /// Without a Git source in the node file: the directory to converge as it is.
    pub repo: Option<PathBuf>,
    /// Recorded as the runs' actor.
    pub actor: String,
}

/// What keeps the agent from running at all.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A setting of the node file (the status page's options).
    #[error("node file: {0}")]
    Node(String),
    #[error("node file:\n{}", lines(.0))]
    NodeFile(Vec<supercp_core::Diagnostic>),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the node file names no agent.git source and no --repo was given")]
    NoSource,
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error("node file: {0}")]
    Transport(#[from] transport::TransportError),
    #[error("agent.git.requireSignedCommits needs agent.git.allowedSigners (a file in ssh-keygen's allowed_signers format)")]
    NoSigners,
    #[error("agent.git.allowedSigners: {0}")]
    Signers(#[from] trust::TrustError),
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: String,
        source: ::notify::Error,
    },
    #[error("audit journal: {0}")]
    Audit(#[from] supercp_audit::AuditError),
    #[error("signals: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Socket(#[from] socket::SocketError),
    #[error("the agent's loop stopped: {0}")]
    Loop(#[from] tokio::task::JoinError),
}

/// Why one run (or one fetch) failed; the agent keeps running.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("fetch failed: {0}")]
    Fetch(source::SourceError),
    #[error("checkout failed: {0}")]
    Checkout(source::SourceError),
    /// The repo (or the node file) does not load, validate or render.
    #[error("{}", lines(.0))]
    Invalid(Vec<supercp_core::Diagnostic>),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("audit journal: {0}")]
    Audit(#[from] supercp_audit::AuditError),
}

impl RunError {
    /// Whether the same run may succeed later without a change (retry with backoff), or only
    /// a new commit or node file can change its outcome (record once, then wait).
    pub fn is_transient(&self) -> bool {
        match self {
            RunError::Fetch(_) | RunError::Checkout(_) | RunError::Audit(_) => true,
            RunError::Invalid(_) => false,
            RunError::Engine(e) => e.is_transient(),
        }
    }
}

/// A commit (and node file) a permanent failure was recorded for: not run again until one of
/// them changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Blocked {
    /// The head (`None` in local mode, where a change of the files clears it).
    head: Option<Oid>,
    node_file: u64,
}

/// How a cycle ended: the wait before the next depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cycle {
    Done,
    /// A transient failure: back off.
    Failed,
    /// A permanent failure recorded (or one already recorded): wait for a change.
    Blocked,
}

/// Why a reconcile runs; recorded as the run's trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Commit,
    Drift,
    Signal,
    /// `reconcile` through the control socket.
    Reconcile,
    /// Local mode: files of `--repo` changed (or the first run).
    Change,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Commit => "commit",
            Trigger::Drift => "drift",
            Trigger::Signal => "signal",
            Trigger::Reconcile => "reconcile",
            Trigger::Change => "change",
        }
    }
}

/// Longest wait between two attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Runs until SIGTERM or SIGINT.
///
/// # Errors
/// Only for what makes running impossible: a broken node file, no source, no journal, no
/// signal handlers. Failures of single runs are logged, recorded and retried.
pub async fn run(config: AgentConfig) -> Result<(), AgentError> {
    let (node, spec, url) =
        supercp_engine::inputs::node_spec(Some(&config.node_file), &config.state)
            .map_err(AgentError::NodeFile)?;
    let agent = spec.agent.clone().unwrap_or_default();
    std::fs::create_dir_all(&config.state).map_err(|source| AgentError::StateDir {
        path: config.state.display().to_string(),
        source,
    })?;
    let journal = Arc::new(Journal::open(&url).await?);
    let checkout = match &agent.git {
        Some(git) => Some(GitCheckout::open(
            &git.url,
            &git.branch,
            transport::Transport::new(git)?,
            &config.state.join("checkout"),
        )?),
        None => None,
    };
    let repo = match (&checkout, &config.repo) {
        (Some(c), _) => c.dir.clone(),
        (None, Some(repo)) => repo.clone(),
        (None, None) => return Err(AgentError::NoSource),
    };
    let poll = Duration::from_secs(agent.git.as_ref().map_or(30, |g| g.poll_seconds.max(1)));
    let drift = Duration::from_secs(agent.drift_scan_seconds.max(1));
    let allow_rewrite = agent.git.as_ref().is_some_and(|g| g.allow_non_fast_forward);
    // Signed commits: the allowed signers are read once, at start (a bad file stops the agent).
    let signers = match agent.git.as_ref().filter(|g| g.require_signed_commits) {
        Some(git) => {
            let path = git
                .allowed_signers
                .as_deref()
                .ok_or(AgentError::NoSigners)?;
            Some(trust::AllowedSigners::read(Path::new(path))?)
        }
        None => None,
    };
    let snapshot: SharedSnapshot = Arc::new(std::sync::RwLock::new(Snapshot {
        node: node.clone(),
        roles: spec.roles.clone(),
        ..Snapshot::default()
    }));
    let applied = last_applied(&journal, &node, &config.state).await?;
    let status = supercp_status::Shared::default();
    let (commands_tx, commands) = tokio::sync::mpsc::channel::<Command>(16);
    let socket_path = socket::path_for(agent.socket.as_deref(), &config.state);
    let (listener, group) = socket::bind(&socket_path, agent.socket_group.as_deref())?;
    tokio::spawn(socket::serve(
        listener,
        Arc::new(socket::Context {
            journal: journal.clone(),
            snapshot: snapshot.clone(),
            commands: commands_tx,
            group,
        }),
    ));
    let status_page = start_status_page(&spec, &journal, &node, &status)?;
    info!(node = %node, applied = ?applied, socket = %socket_path.display(), "agent started");
    let signals = Signals {
        hup: signal(SignalKind::hangup()).map_err(AgentError::Signals)?,
        term: signal(SignalKind::terminate()).map_err(AgentError::Signals)?,
        int: signal(SignalKind::interrupt()).map_err(AgentError::Signals)?,
    };
    // Local mode: the directory is watched; a burst of changes is one run, 300 ms after the last.
    let (changed_tx, changed) = tokio::sync::mpsc::channel::<()>(64);
    let _watcher = match &checkout {
        Some(_) => None,
        None => Some(watch(&repo, changed_tx)?),
    };
    let looped = Loop {
        config,
        journal,
        node,
        repo,
        applied,
        snapshot,
        status,
        checkout,
        signers,
        poll,
        drift,
        allow_rewrite,
        signals,
        commands,
        changed,
    };
    // The loop owns the node and blocks (observe, writes, gate commands, fetches): it runs on
    // a thread of its own. Its awaits (journal, timers, channels) are still this runtime's,
    // whose thread only serves the socket and the status page and waits for the loop.
    let handle = tokio::runtime::Handle::current();
    let stopped = tokio::task::spawn_blocking(move || handle.block_on(looped.run())).await;
    info!("agent stopping");
    if let Some(task) = status_page {
        task.abort();
    }
    let _ = std::fs::remove_file(&socket_path);
    stopped?
}

struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

/// What the loop owns.
struct Loop {
    config: AgentConfig,
    journal: Arc<Journal>,
    node: String,
    repo: PathBuf,
    applied: Option<Oid>,
    snapshot: SharedSnapshot,
    status: supercp_status::Shared,
    checkout: Option<GitCheckout>,
    signers: Option<trust::AllowedSigners>,
    poll: Duration,
    drift: Duration,
    allow_rewrite: bool,
    signals: Signals,
    commands: tokio::sync::mpsc::Receiver<Command>,
    changed: tokio::sync::mpsc::Receiver<()>,
}

impl Loop {
    /// Runs until SIGTERM or SIGINT, one cycle at a time.
    async fn run(self) -> Result<(), AgentError> {
        let Loop {
            config,
            journal,
            node,
            repo,
            applied,
            snapshot,
            status,
            checkout,
            signers,
            poll,
            drift,
            allow_rewrite,
            mut signals,
            mut commands,
            mut changed,
        } = self;
        let mut state = State {
            config: &config,
            journal: &journal,
            node: &node,
            repo,
            applied,
            refused: None,
            blocked: None,
            head: None,
            failures: 0,
            fetch_failed: false,
            snapshot,
            status,
            memory: Memory::default(),
        };
        let mut next_fetch = tokio::time::Instant::now();
        let mut next_drift = tokio::time::Instant::now() + drift;
        let mut ready = false;
        loop {
            state.note_next_scan(next_drift);
            let mut reply = None;
            let trigger = tokio::select! {
                () = tokio::time::sleep_until(next_fetch) => Trigger::Commit,
                () = tokio::time::sleep_until(next_drift) => Trigger::Drift,
                _ = signals.hup.recv() => Trigger::Signal,
                Some(()) = changed.recv() => {
                    while let Ok(Some(())) =
                        tokio::time::timeout(Duration::from_millis(300), changed.recv()).await
                    {}
                    Trigger::Change
                }
                Some(command) = commands.recv() => match command {
                    Command::Reconcile(tx) => {
                        reply = Some(tx);
                        Trigger::Reconcile
                    }
                    Command::Plan(tx) => {
                        let _ = tx.send(state.plan().await.map_err(socket::RpcError::from));
                        continue;
                    }
                },
                _ = signals.term.recv() => break,
                _ = signals.int.recv() => break,
            };
            let cycle = match (&checkout, trigger) {
                (Some(c), Trigger::Commit | Trigger::Signal | Trigger::Reconcile) => {
                    state
                        .follow(c, trigger, allow_rewrite, signers.as_ref())
                        .await
                }
                // Local mode: the first run (and a retry after a failure) on the poll timer;
                // then runs come from changes, the drift scan and SIGHUP.
                (None, Trigger::Commit) if state.memory.desired.is_none() => {
                    state.reconcile_unless_blocked(Trigger::Change, None).await
                }
                (None, Trigger::Commit) => Cycle::Done,
                (_, Trigger::Drift) => state.reconcile_unless_blocked(trigger, None).await,
                (None, Trigger::Change) => {
                    state.blocked = None; // the files changed
                    state.cycle(Trigger::Change, None).await
                }
                _ => state.cycle(trigger, None).await,
            };
            if let Some(tx) = reply {
                let ok = cycle == Cycle::Done;
                let _ = tx.send(state.last_run(ok).await.map_err(socket::RpcError::from));
            }
            state.failures = match cycle {
                Cycle::Failed => state.failures + 1,
                Cycle::Done | Cycle::Blocked => 0,
            };
            let wait = backoff(poll, state.failures);
            match trigger {
                Trigger::Drift => next_drift = tokio::time::Instant::now() + drift.max(wait),
                _ => next_fetch = tokio::time::Instant::now() + wait,
            }
            if !ready {
                notify::ready();
                ready = true;
            }
            notify::watchdog();
        }
        Ok(())
    }
}

struct State<'a> {
    config: &'a AgentConfig,
    journal: &'a Journal,
    node: &'a str,
    /// The directory runs load the repo from (the checkout, or --repo).
    repo: PathBuf,
    /// The last commit applied successfully.
    applied: Option<Oid>,
    /// A head already refused (recorded once, not on every poll).
    refused: Option<Oid>,
    /// The commit and node file of the last permanent failure, recorded once.
    blocked: Option<Blocked>,
    /// The commit checked out now (`None` in local mode).
    head: Option<Oid>,
    failures: u32,
    /// The last fetch failed (its error is the snapshot's `last_error` until one succeeds).
    fetch_failed: bool,
    snapshot: SharedSnapshot,
    /// The status page's copy of the snapshot.
    status: supercp_status::Shared,
    memory: Memory,
}

/// How a successful run updates the memory of object hashes.
enum Remember {
    /// Every object's hash: the map is rebuilt.
    All(Vec<(String, u64)>),
    /// The fresh objects' hashes, and the ids that are gone.
    Delta {
        hashed: Vec<(String, u64)>,
        removed: Vec<String>,
    },
}

/// What the agent keeps between runs so that a commit costs only what it changes.
#[derive(Default)]
struct Memory {
    /// Parsed documents per repo file: a commit re-parses only the files it changed.
    cache: ParseCache,
    /// A hash of each object the last successful run rendered, by id. `None` after a
    /// failure: the next run is a full one.
    desired: Option<HashMap<String, u64>>,
    /// What the journal records as owned after the last successful run.
    owned: Option<BTreeMap<String, OwnedObject>>,
    /// The keys of the object hashes.
    keys: std::collections::hash_map::RandomState,
    /// Each tenant's rendered objects: a commit renders again only the tenants it touched.
    render: supercp_render::RenderMemory,
}

impl State<'_> {
    fn note_next_scan(&self, at: tokio::time::Instant) {
        let ms = i64::try_from(
            at.saturating_duration_since(tokio::time::Instant::now())
                .as_millis(),
        )
        .unwrap_or(0);
        self.update(|s| s.next_scan_unix_ms = Some(supercp_core::time::now_ms() + ms));
    }

    fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        let Ok(mut s) = self.snapshot.write() else {
            return;
        };
        f(&mut s);
        if let Ok(mut page) = self.status.write() {
            *page = supercp_status::AgentSnapshot {
                current_commit: s.current_commit.clone(),
                last_applied_commit: s.last_applied_commit.clone(),
                next_scan_unix_ms: s.next_scan_unix_ms,
                last_error: s.last_error.clone(),
                observed: std::mem::take(&mut page.observed),
            };
        }
    }

    /// Shows what a run observed on the status page: an object's newer observation replaces
    /// the older one, and objects the last successful run no longer rendered are dropped.
    fn publish_observed(&self, observed: Vec<(String, Observation)>) {
        let Ok(mut page) = self.status.write() else {
            return;
        };
        merge_observed(
            Arc::make_mut(&mut page.observed),
            observed,
            self.memory.desired.as_ref(),
        );
    }

    /// The newest run of this node, for a `reconcile` reply.
    async fn last_run(&self, ok: bool) -> Result<Value, supercp_audit::AuditError> {
        let runs = self.journal.list_runs(20).await?;
        let run = runs.into_iter().find(|r| r.node == self.node);
        Ok(json!({ "ok": ok, "run": run }))
    }

    /// A dry run over the current checkout: what apply would do now.
    async fn plan(&self) -> Result<Value, RunError> {
        let inputs = Inputs::load(&self.repo, Some(&self.config.node_file), &self.config.state)
            .map_err(RunError::Invalid)?;
        let desired = inputs.render().map_err(RunError::Invalid)?;
        let journaled = supercp_engine::Journaled::read(self.journal, self.node).await?;
        let planned = supercp_engine::dry_run(
            &inputs,
            desired,
            journaled,
            &supercp_engine::PlanOptions::default(),
        )?;
        let steps: Vec<Value> = planned
            .plan
            .steps
            .iter()
            .map(|s| {
                json!({
                    "action": s.action.as_str(),
                    "object": s.id.to_string(),
                    "resource": s.resource.to_string(),
                    "reason": s.reason.to_string(),
                })
            })
            .collect();
        let held: Vec<Value> = planned
            .plan
            .held
            .iter()
            .map(|(s, why)| {
                json!({
                    "action": s.action.as_str(),
                    "object": s.id.to_string(),
                    "resource": s.resource.to_string(),
                    "reason": s.reason.to_string(),
                    "held": why,
                })
            })
            .collect();
        Ok(json!({
            "summary": planned.plan.summary().to_string(),
            "steps": steps,
            "held": held,
        }))
    }
    /// Fetches; applies a new head (unless it is the head of a permanent failure and the node
    /// file has not changed since).
    async fn follow(
        &mut self,
        checkout: &GitCheckout,
        trigger: Trigger,
        allow_rewrite: bool,
        signers: Option<&trust::AllowedSigners>,
    ) -> Cycle {
        let head = match checkout.fetch() {
            Ok(head) => head,
            Err(e) => {
                let e = RunError::Fetch(e);
                warn!(error = %e, "retrying with backoff");
                self.fetch_failed = true;
                self.update(|s| s.last_error = Some(e.to_string()));
                return Cycle::Failed;
            }
        };
        if std::mem::take(&mut self.fetch_failed) {
            self.update(|s| s.last_error = None);
        }
        if self.applied.is_none() {
            self.update(|s| s.current_commit = checkout.head().map(|h| h.to_string()));
        }
        let new = self.applied != Some(head);
        if !new && trigger == Trigger::Commit {
            return Cycle::Done;
        }
        if let Some(applied) = self.applied.filter(|_| new) {
            let descends = checkout.descends(head, applied).unwrap_or(false);
            if !descends && !allow_rewrite {
                let why = format!(
                    "it does not descend from the last applied commit {applied} (a force-push or \
                     rewritten history); set agent.git.allowNonFastForward in the node file to apply it"
                );
                self.refuse(checkout, trigger, head, &why).await;
                return Cycle::Done; // refusing is the agent working as meant, not a failure to retry
            }
        }
        if let (Some(signers), true) = (signers, new) {
            if let Err(e) = checkout.verify_head(head, signers) {
                self.refuse(checkout, trigger, head, &e.to_string()).await;
                return Cycle::Done; // the agent working as meant
            }
        }
        // An invalid head was recorded once: the poll waits for the next commit or node file.
        if trigger == Trigger::Commit && self.blocked == Some(self.blocked_key(Some(head))) {
            return Cycle::Blocked;
        }
        let commit = match checkout.checkout(head) {
            Ok(commit) => commit,
            Err(e) => {
                let e = RunError::Checkout(e);
                warn!(error = %e, "retrying with backoff");
                return Cycle::Failed;
            }
        };
        self.head = Some(head);
        self.update(|s| s.current_commit = Some(head.to_string()));
        let cycle = self.cycle(trigger, Some(&commit)).await;
        if cycle == Cycle::Done {
            self.applied = Some(head);
            self.refused = None;
            self.update(|s| s.last_applied_commit = Some(head.to_string()));
        }
        cycle
    }

    /// What a permanent failure of `head` with the node file as it is now would be recorded as.
    fn blocked_key(&self, head: Option<Oid>) -> Blocked {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::fs::read(&self.config.node_file)
            .unwrap_or_default()
            .hash(&mut hasher);
        Blocked {
            head,
            node_file: hasher.finish(),
        }
    }

    /// A run, unless the checkout is that of a permanent failure already recorded and the node
    /// file has not changed since (then the loop waits for a change).
    async fn reconcile_unless_blocked(
        &mut self,
        trigger: Trigger,
        commit: Option<&Commit>,
    ) -> Cycle {
        if self.blocked.is_some() && self.blocked == Some(self.blocked_key(self.head)) {
            tracing::debug!(
                trigger = trigger.as_str(),
                "not run: waiting for a new commit or a change of the node file"
            );
            return Cycle::Blocked;
        }
        self.cycle(trigger, commit).await
    }

    /// One run, its failure logged and recorded: a transient one backs off, a permanent one
    /// is remembered with its commit and node file, so that it is recorded once.
    async fn cycle(&mut self, trigger: Trigger, commit: Option<&Commit>) -> Cycle {
        let error = match self.reconcile(trigger, commit).await {
            Ok(()) => {
                self.blocked = None;
                return Cycle::Done;
            }
            Err(e) => e,
        };
        let message = error.to_string();
        self.update(|s| s.last_error = Some(message.clone()));
        // A failed gate and failed steps are recorded by apply itself (a run with its steps);
        // anything else stopped before a run was recorded: record why.
        let recorded = matches!(&error, RunError::Engine(e) if e.run_recorded());
        if !recorded {
            let id = commit.map(|c| c.id);
            self.record(trigger, id, commit, "refused: nothing applied", &message)
                .await;
        }
        if error.is_transient() {
            warn!(
                trigger = trigger.as_str(),
                "run failed; retrying with backoff:\n{message}"
            );
            Cycle::Failed
        } else {
            warn!(
                trigger = trigger.as_str(),
                "run refused; waiting for a new commit or a change of the node file:\n{message}"
            );
            self.blocked = Some(self.blocked_key(self.head));
            Cycle::Blocked
        }
    }

    /// Refuses a head: logged, and recorded as a failed run once per head (not on every poll).
    async fn refuse(&mut self, checkout: &GitCheckout, trigger: Trigger, head: Oid, why: &str) {
        if self.refused == Some(head) {
            return;
        }
        self.refused = Some(head);
        let message = format!("refused commit {head}: {why}");
        warn!("{message}");
        let commit = checkout.describe(head).ok();
        self.record(
            trigger,
            Some(head),
            commit.as_ref(),
            "refused: nothing applied",
            &message,
        )
        .await;
    }

    /// One run over the current checkout (or --repo), through `supercp_engine::apply`.
    ///
    /// A drift scan (and the first run) observes every object. Any other run, after a run that
    /// succeeded, is incremental: only the files that changed are parsed again, only the
    /// tenants they declare are rendered again, and only the objects whose rendering changed
    /// (or that are gone) are observed and applied; the engine's mass-deletion guard still
    /// looks at the whole node, which the run passes it as `Scope::Part`.
    async fn reconcile(
        &mut self,
        trigger: Trigger,
        commit: Option<&Commit>,
    ) -> Result<(), RunError> {
        let _ = commit; // recorded by apply through the checkout (and by `cycle` on failure)
        let started = std::time::Instant::now();
        let loaded = Inputs::load_cached(
            &self.repo,
            Some(&self.config.node_file),
            &self.config.state,
            &mut self.memory.cache,
        );
        let inputs = loaded.map_err(RunError::Invalid)?;
        let loaded_ms = started.elapsed().as_millis();
        // Only the tenants whose files changed are rendered again; the rest come from memory.
        let cache = &self.memory.cache;
        let file_hash = |path: &str| cache.text_hash(path);
        let delta = inputs
            .render_delta(&file_hash, &mut self.memory.render)
            .map_err(RunError::Invalid)?;
        let rendered_ms = started.elapsed().as_millis();
        let tenants_rendered = delta.tenants_rendered;
        let options = ApplyOptions {
            actor: self.config.actor.clone(),
            trigger: trigger.as_str().to_owned(),
            // The test hook `supercp apply` has too: hold the run open before this step.
            pause_before_step: std::env::var("SUPERCP_TEST_PAUSE_BEFORE_STEP")
                .ok()
                .and_then(|v| v.parse().ok()),
            ..ApplyOptions::default()
        };
        // Ids and hashes of objects, on every core: what a commit changed is what hashes
        // differently from the last run.
        let keys = self.memory.keys.clone();
        let hash_all = |objects: &[Desired]| -> Vec<(String, u64)> {
            supercp_core::par::map_chunks(objects, |chunk| {
                chunk
                    .iter()
                    .map(|d| (d.id().to_string(), hash_of(&keys, d)))
                    .collect::<Vec<_>>()
            })
            .into_iter()
            .flatten()
            .collect()
        };
        let memory = (&self.memory.desired, &self.memory.owned);
        let (subset, prefetched, remember) = match memory {
            (Some(before), Some(owned)) if trigger != Trigger::Drift => {
                // Only the fresh objects (node-wide and re-rendered tenants') can have changed.
                let hashed = hash_all(&delta.fresh);
                let removed: Vec<String> = delta
                    .gone
                    .into_iter()
                    .filter(|id| before.contains_key(id))
                    .collect();
                let changed: Vec<Desired> = delta
                    .fresh
                    .into_iter()
                    .zip(&hashed)
                    .filter(|(_, (id, hash))| before.get(id) != Some(hash))
                    .map(|(d, _)| d)
                    .collect();
                let changed_ids: Vec<String> = changed.iter().map(|d| d.id().to_string()).collect();
                let owned_subset: Vec<OwnedObject> = removed
                    .iter()
                    .chain(changed_ids.iter())
                    .filter_map(|id| owned.get(id).cloned())
                    .collect();
                // The engine guards the whole node: every object rendered (the memory holds the
                // fresh ones too) against every object owned.
                let scope = supercp_engine::Scope::Part {
                    desired: self.memory.render.slices(),
                    owned,
                };
                let prefetched = async {
                    Ok::<_, EngineError>(supercp_engine::Prefetched {
                        lock: supercp_engine::apply::lock_state(&self.config.state)?,
                        owned: owned_subset,
                        accounts: self.journal.accounts(self.node).await?,
                        scope,
                    })
                };
                match prefetched.await {
                    Ok(p) => {
                        info!(
                            changed = changed.len(),
                            tenants_rendered,
                            loaded_ms,
                            rendered_ms,
                            ms = started.elapsed().as_millis(),
                            "incremental reconcile"
                        );
                        (changed, Some(p), Remember::Delta { hashed, removed })
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // A drift scan, the first run, or a run after a failure: every object.
            _ => {
                let desired = if delta.full {
                    delta.fresh
                } else {
                    self.memory.render.all()
                };
                let hashed = hash_all(&desired);
                (desired, None, Remember::All(hashed))
            }
        };
        // What the run observed, also when it failed: the page shows the node as it is, never
        // the last green observations (a directory refused because a symlink took its place
        // is not "as desired").
        let mut seen = Vec::new();
        let result = supercp_engine::apply_observed(
            &inputs,
            subset,
            self.journal,
            &options,
            prefetched,
            &mut seen,
        )
        .await;
        // Until the journal is read again below, a failure leaves the memory unknown.
        let before = self.memory.desired.take();
        match result {
            Ok(report) => {
                info!(run = report.run, trigger = trigger.as_str(), summary = %report.summary, "reconciled");
                self.update(|s| s.last_error = None);
                // After the reloads: remember what the node holds now, for the next commit.
                match self.journal.owned(self.node).await {
                    Ok(owned) => {
                        self.memory.owned =
                            Some(owned.into_iter().map(|o| (o.object.clone(), o)).collect());
                        // Built after the reloads, off the path from commit to served.
                        self.memory.desired = match (remember, before) {
                            (Remember::All(hashed), _) => Some(hashed.into_iter().collect()),
                            (Remember::Delta { hashed, removed }, Some(mut map)) => {
                                for id in &removed {
                                    map.remove(id);
                                }
                                map.extend(hashed);
                                Some(map)
                            }
                            (Remember::Delta { .. }, None) => None,
                        };
                    }
                    Err(e) => {
                        warn!(error = %e, "could not read the owned objects; the next run is a full one")
                    }
                }
                self.publish_observed(seen);
                Ok(())
            }
            Err(e) => {
                self.publish_observed(seen);
                Err(e.into())
            }
        }
    }

    /// Records a failed run without steps. `id` is the commit the run was about; `commit`
    /// gives the author and message when known.
    async fn record(
        &self,
        trigger: Trigger,
        id: Option<Oid>,
        commit: Option<&Commit>,
        summary: &str,
        error: &str,
    ) {
        let run = NewRun {
            node: self.node.to_owned(),
            actor: self.config.actor.clone(),
            repo: self.repo.display().to_string(),
            git_commit: id.map(|i| i.to_string()),
            git_author: commit
                .filter(|c| Some(c.id) == id)
                .map(|c| c.author.clone()),
            git_dirty: None,
            git_message: commit
                .filter(|c| Some(c.id) == id)
                .map(|c| c.message.clone()),
            git_time: commit
                .filter(|c| Some(c.id) == id)
                .and_then(|c| commit_time(&self.repo, c.id)),
            trigger: trigger.as_str().to_owned(),
            summary: summary.to_owned(),
            pid: std::process::id(),
        };
        let recorded = async {
            let id = self.journal.start_run(&run).await?;
            self.journal
                .finish_run(id, Outcome::Failed, Some(error))
                .await
        };
        if let Err(e) = recorded.await {
            warn!(error = %e, "could not record the failed run in the journal");
        }
    }
}

/// Watches `repo` (recursively) and sends a unit on every change.
fn watch(
    repo: &Path,
    changed: tokio::sync::mpsc::Sender<()>,
) -> Result<::notify::RecommendedWatcher, AgentError> {
    use ::notify::Watcher;
    let mut watcher =
        ::notify::recommended_watcher(move |event: ::notify::Result<::notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                // A full channel already holds a pending change: dropping this one loses nothing.
                let _ = changed.try_send(());
            }
        })
        .map_err(|e| AgentError::Node(format!("cannot watch {}: {e}", repo.display())))?;
    watcher
        .watch(repo, ::notify::RecursiveMode::Recursive)
        .map_err(|e| AgentError::Node(format!("cannot watch {}: {e}", repo.display())))?;
    Ok(watcher)
}

/// Starts the read-only status page on `agent.statusBind` (none when empty), as
/// [`status_config`] says; a bad configuration stops the agent, an address in use only costs
/// the page (logged).
fn start_status_page(
    spec: &supercp_core::resource::NodeSpec,
    journal: &Arc<Journal>,
    node: &str,
    shared: &supercp_status::Shared,
) -> Result<Option<tokio::task::JoinHandle<()>>, AgentError> {
    let agent = spec.agent.clone().unwrap_or_default();
    let Some(config) = status_config(&agent, spec.manage_ownership)? else {
        return Ok(None);
    };
    let info = supercp_status::NodeInfo {
        node: node.to_owned(),
        roles: spec.roles.clone(),
    };
    let (journal, shared) = (journal.clone(), shared.clone());
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = supercp_status::serve(config, journal, info, shared).await {
            warn!(error = %e, "the status page stopped");
        }
    })))
}

/// The status page's settings from the node file; `None` when `statusBind` is empty.
///
/// A token (`statusTokenFile`, a regular file of mode 0600 or stricter) is required off
/// loopback, and on loopback unless `statusOpen` (default: open only when the node does not
/// manage ownership, like the sandbox: on a node that hosts tenants, their PHP reaches
/// 127.0.0.1 too).
///
/// # Errors
/// [`AgentError::Node`] naming the setting and what to change.
fn status_config(
    agent: &supercp_core::resource::AgentSpec,
    manage_ownership: bool,
) -> Result<Option<supercp_status::StatusConfig>, AgentError> {
    if agent.status_bind.trim().is_empty() {
        return Ok(None);
    }
    let bind = agent
        .status_bind
        .parse()
        .map_err(|e| AgentError::Node(format!("agent.statusBind {:?}: {e}", agent.status_bind)))?;
    let token = match &agent.status_token_file {
        Some(path) => {
            let meta = std::fs::symlink_metadata(path)
                .map_err(|e| AgentError::Node(format!("agent.statusTokenFile {path}: {e}")))?;
            use std::os::unix::fs::PermissionsExt as _;
            if !meta.is_file() {
                return Err(AgentError::Node(format!(
                    "agent.statusTokenFile {path}: not a regular file"
                )));
            }
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(AgentError::Node(format!(
                    "agent.statusTokenFile {path}: mode {:o} lets others read the token; chmod \
                     600 it",
                    meta.permissions().mode() & 0o777
                )));
            }
            Some(
                std::fs::read_to_string(path)
                    .map_err(|e| AgentError::Node(format!("agent.statusTokenFile {path}: {e}")))?
                    .trim()
                    .to_owned(),
            )
        }
        None => None,
    };
    let config = supercp_status::StatusConfig {
        bind,
        token,
        open_on_loopback: agent.status_open.unwrap_or(!manage_ownership),
        limits: supercp_status::Limits::default(),
    };
    config.check().map_err(|e| {
        let help = match e {
            supercp_status::StatusError::TokenRequiredOnLoopback { .. } => {
                "\nhelp: set agent.statusTokenFile (a file of mode 0600 holding the token), or \
                 agent.statusBind: \"\" for no page; agent.statusOpen: true only if no tenant \
                 code runs on this node"
            }
            supercp_status::StatusError::TokenRequired { .. } => {
                "\nhelp: set agent.statusTokenFile (a file of mode 0600 holding the token), or \
                 bind agent.statusBind to 127.0.0.1"
            }
            _ => "",
        };
        AgentError::Node(format!("agent.statusBind {bind}: {e}{help}"))
    })?;
    Ok(Some(config))
}

#[cfg(test)]
mod status_page_tests {
    use super::*;
    use supercp_core::resource::AgentSpec;

    fn agent(token_file: Option<&std::path::Path>, open: Option<bool>) -> AgentSpec {
        AgentSpec {
            status_token_file: token_file.map(|p| p.display().to_string()),
            status_open: open,
            ..AgentSpec::default()
        }
    }

    #[test]
    fn a_node_that_hosts_tenants_needs_the_token_on_loopback_by_default() {
        let err = status_config(&agent(None, None), true)
            .expect_err("refused without a token")
            .to_string();
        assert!(err.contains("agent.statusBind 127.0.0.1:9490"), "{err}");
        assert!(err.contains("help: set agent.statusTokenFile"), "{err}");
        // The sandbox (no ownership managed) stays open on loopback; either can be changed.
        let sandbox = status_config(&agent(None, None), false).expect("open on the sandbox");
        assert!(sandbox.is_some_and(|c| c.token.is_none()));
        assert!(status_config(&agent(None, Some(true)), true).is_ok());
        assert!(status_config(&agent(None, Some(false)), false).is_err());
        let off = AgentSpec {
            status_bind: String::new(),
            ..agent(None, None)
        };
        assert!(status_config(&off, true).expect("no page").is_none());
    }

    #[test]
    fn the_token_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("status.token");
        std::fs::write(&path, "s3cret\n").expect("write the token");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = status_config(&agent(Some(&path), None), true)
            .expect_err("a token others can read")
            .to_string();
        assert!(
            err.contains("mode 644 lets others read the token; chmod 600 it"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let config = status_config(&agent(Some(&path), None), true)
            .expect("a private token")
            .expect("a page");
        assert_eq!(config.token.as_deref(), Some("s3cret"));
        assert!(!config.open_on_loopback);
    }
}

/// The commit the last successful run applied from the agent's checkout.
async fn last_applied(
    journal: &Journal,
    node: &str,
    state: &Path,
) -> Result<Option<Oid>, AgentError> {
    let checkout = state.join("checkout").display().to_string();
    let runs = journal.list_runs(200).await?;
    Ok(runs
        .iter()
        .filter(|r| r.node == node && r.repo == checkout && r.outcome == Outcome::Succeeded)
        .find_map(|r| r.git_commit.as_deref().and_then(|c| Oid::from_str(c).ok())))
}

/// Adds a run's observations to `map` in order (a later one of an object replaces an earlier
/// one), then drops the objects not in `rendered` (the last successful run's objects), if known.
fn merge_observed(
    map: &mut HashMap<String, Observation>,
    observed: Vec<(String, Observation)>,
    rendered: Option<&HashMap<String, u64>>,
) {
    map.extend(observed);
    if let Some(rendered) = rendered {
        map.retain(|id, _| rendered.contains_key(id));
    }
}

/// The committer time (unix seconds) of commit `id` of the clone at `repo`, when it is there.
fn commit_time(repo: &Path, id: Oid) -> Option<i64> {
    let repo = git2::Repository::open(repo).ok()?;
    let commit = repo.find_commit(id).ok()?;
    Some(commit.time().seconds())
}

/// A hash of everything about an object (path, content, mode, owner, gate, resource and
/// where it is declared).
/// Keyed at random per process (`RandomState`), so no repo content can be made to collide
/// with another on purpose; the drift scan compares everything anyway.
fn hash_of(keys: &std::collections::hash_map::RandomState, d: &Desired) -> u64 {
    use std::hash::BuildHasher;
    keys.hash_one(d)
}

/// The wait after `failures` failures in a row: the interval, doubled per failure, at most
/// ten minutes.
fn backoff(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    interval
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(MAX_BACKOFF)
        .max(interval)
}

fn lines(diagnostics: &[supercp_core::Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_failure_up_to_ten_minutes() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(30), 0), s(30));
        assert_eq!(backoff(s(30), 1), s(60));
        assert_eq!(backoff(s(30), 3), s(240));
        assert_eq!(backoff(s(30), 40), s(600));
        assert_eq!(backoff(s(900), 2), s(900), "never below the interval");
    }

    #[test]
    fn the_newest_observation_of_an_object_wins_and_objects_no_longer_rendered_go() {
        let seen = |at_ms, differs: Option<&str>| Observation {
            at_ms,
            found: "file",
            mode: Some(0o644),
            owner: Some((0, 0)),
            content_matches: Some(differs.is_none()),
            differs: differs.map(str::to_owned),
            notes: Vec::new(),
        };
        let mut map = HashMap::from([
            ("file:/a".to_owned(), seen(1, None)),
            ("file:/gone".to_owned(), seen(1, None)),
        ]);
        // Planned (differs), then verified after the step (as desired).
        let run = vec![
            ("file:/a".to_owned(), seen(2, Some("content differs"))),
            ("file:/a".to_owned(), seen(3, None)),
            ("file:/b".to_owned(), seen(2, None)),
        ];
        let rendered = HashMap::from([("file:/a".to_owned(), 7), ("file:/b".to_owned(), 8)]);
        merge_observed(&mut map, run, Some(&rendered));
        assert_eq!(map.len(), 2);
        assert_eq!(map["file:/a"], seen(3, None));
        assert_eq!(map["file:/b"].at_ms, 2);
    }
}
