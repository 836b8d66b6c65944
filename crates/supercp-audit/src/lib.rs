//! The audit journal: what every `supercp apply` run did, step by step, and which objects SuperCP
//! owns on each node.
//!
//! It owns the journal's schema and its two stores: SQLite (the default, a file
//! `<state>/audit.db`) and PostgreSQL (a `postgres://` URL), each with its own migration
//! directory, chosen at run time by the URL given to [`Journal::open`]. It records runs, their
//! steps (status, hashes, log lines, the previous content of replaced files) and ownership.
//!
//! It does not decide anything: it never plans, applies, locks the node or reads the repo. The
//! engine tells it what happened; the CLI and the status pages read it back.
//!
//! # Guarantees
//! - Batches (`add_steps`, `steps_running`, `finish_steps`, `set_owned`, `mark_interrupted`) are
//!   written in one transaction each: a crash leaves all of a batch or none of it.
//! - No error message carries the password of a database URL.
//!
//! # Assumptions
//! - One `supercp apply` runs per node at a time (the engine holds the node lock), so a run that
//!   is still `running` when the next one starts was interrupted.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

/// Identifies a run; ids grow, so a larger id is a newer run.
pub type RunId = i64;
/// Identifies a step of a run.
pub type StepId = i64;

/// How a run ended, or that it has not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Running,
    Succeeded,
    Failed,
    /// The process stopped before it recorded an outcome; found by the next run on the node.
    Interrupted,
}

/// Where one step of a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Pending,
    Running,
    Done,
    Failed,
    /// The run stopped while this step was pending or running.
    Interrupted,
}

/// What the engine knows when a run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub node: String,
    pub actor: String,
    pub repo: String,
    pub git_commit: Option<String>,
    pub git_author: Option<String>,
    pub git_dirty: Option<bool>,
    /// The applied commit's message.
    pub git_message: Option<String>,
    /// When the applied commit was committed (committer time), unix seconds.
    pub git_time: Option<i64>,
    /// Why the run ran: `cli`, or the agent's `commit`, `drift`, `signal`, `reconcile`.
    pub trigger: String,
    /// For humans, e.g. "3 to create, 1 to update, 0 to delete".
    pub summary: String,
    pub pid: u32,
}

/// One planned step, recorded as `pending` before anything changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStep {
    /// The resource that asked for the object, e.g. `Domain/acme.test`.
    pub resource: String,
    /// Where that resource is written, e.g. `sites/acme.yaml:12:1`.
    pub origin: String,
    /// The object on the node, e.g. `file:/etc/nginx/sites-enabled/acme.test.conf`.
    pub object: String,
    /// `create`, `update` or `delete`.
    pub action: String,
    pub before_hash: Option<String>,
    /// The hash the plan expects after the step.
    pub after_hash: Option<String>,
    /// The previous content of a file the step replaces, so it can be put back.
    pub before_content: Option<Vec<u8>>,
}

/// What happened to one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    pub id: StepId,
    pub status: StepStatus,
    /// The hash observed after the step; `None` keeps the hash the plan expected.
    pub after_hash: Option<String>,
    pub log: Vec<String>,
    /// Unix milliseconds.
    pub started_at: i64,
    /// Unix milliseconds.
    pub finished_at: i64,
}

/// A run as recorded. Timestamps are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub id: RunId,
    pub node: String,
    pub actor: String,
    pub repo: String,
    pub git_commit: Option<String>,
    pub git_author: Option<String>,
    pub git_dirty: Option<bool>,
    pub git_message: Option<String>,
    /// Committer time of the commit, unix seconds.
    pub git_time: Option<i64>,
    pub trigger: String,
    pub summary: String,
    pub outcome: Outcome,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub pid: u32,
    pub error: Option<String>,
    pub gate_checks: i64,
    pub reloads: i64,
}

/// A step as recorded. Timestamps are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub id: StepId,
    pub run_id: RunId,
    /// Position in the run, from 0.
    pub seq: i64,
    pub resource: String,
    pub origin: String,
    pub object: String,
    pub action: String,
    pub status: StepStatus,
    /// How many times the step was marked running.
    pub attempt: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub before_hash: Option<String>,
    pub after_hash: Option<String>,
    pub log: Vec<String>,
    /// True when [`Journal::step_before_content`] has the previous content.
    pub has_before_content: bool,
}

/// An object SuperCP created on a node, and so may delete when nothing asks for it any more.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct OwnedObject {
    pub object: String,
    pub resource: String,
    /// The object holds tenant data (a mailbox, a database, a web root), so deleting it needs
    /// more than "no resource asks for it".
    pub tenant_data: bool,
    /// The layout directory the object's path is walked from (never following symlinks).
    pub anchor: String,
    /// `Retain` or `Delete` for tenant data, as declared when SuperCP last wrote it.
    pub deletion_policy: Option<String>,
    /// The service gate (`nginx`, `php-fpm`) that must check a delete of this object.
    pub gate: Option<String>,
}

/// An object a commit unit wrote and has not checked yet (see [`Journal::open_unit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unchecked {
    pub object: String,
    /// The gate that must check it.
    pub gate: String,
    /// The run that wrote it.
    pub run: RunId,
    pub resource: String,
    pub origin: String,
    pub anchor: String,
    /// `create`, `update` or `delete`.
    pub action: String,
    /// The content before the first unchecked write; `None` where there was no file.
    pub before_content: Option<Vec<u8>>,
}

/// A row of the `unchecked` table.
type UncheckedRow = (
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    Option<Vec<u8>>,
);

/// A TLS domain's certificate as the journal knows it. Times in unix milliseconds, except
/// `not_after` (unix seconds, as in the certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CertRecord {
    pub domain: String,
    pub serial: Option<String>,
    pub not_after: Option<i64>,
    pub issued_at: Option<i64>,
    /// Failed issuing attempts in a row.
    pub failures: i64,
    /// The CA's (or the solver's) last error.
    pub last_error: Option<String>,
    /// No new order before this time.
    pub next_attempt: Option<i64>,
    /// The CA's suggested renewal window (ARI), unix seconds; none when the CA has no ARI.
    pub ari_start: Option<i64>,
    pub ari_end: Option<i64>,
    /// When to ask the CA for the window again (its Retry-After), unix ms; none: never asked.
    pub ari_next_check: Option<i64>,
    pub updated_at: i64,
}

type CertRow = (
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
);

/// A row of the `owned` table.
type OwnedRow = (String, String, bool, String, Option<String>, Option<String>);

/// The audit journal on SQLite or PostgreSQL. Cheap to clone: clones share one pool.
#[derive(Debug, Clone)]
pub struct Journal {
    backend: Backend,
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "unsupported audit database `{url_redacted}`: use a file path, `sqlite:PATH` or \
         `postgres://USER@HOST/DB`"
    )]
    UnsupportedUrl { url_redacted: String },
    #[error("cannot open the audit database `{url_redacted}`: check the URL and that the database is reachable")]
    Open {
        url_redacted: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "cannot migrate the audit database `{url_redacted}`: was it written by a newer supercp?"
    )]
    Migrate {
        url_redacted: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("audit journal: `{op}` failed")]
    Query {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("audit journal: run {run} does not exist")]
    RunNotFound { run: RunId },
    #[error("audit journal: step {step} does not exist")]
    StepNotFound { step: StepId },
    #[error("audit journal: a run cannot finish as `{outcome}`; finish it as succeeded, failed or interrupted")]
    NotFinal { outcome: Outcome },
    #[error("audit journal: `{op}` met a value it cannot read: {detail}; was it written by a newer supercp?")]
    BadValue { op: &'static str, detail: String },
}

/// A status or outcome text that is not one of the known values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`; expected one of {expected}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Runs `$body` with `$pool` bound to whichever pool the journal has. The body is compiled once
/// per database, so the same SQL and binds serve both; write SQL that both accept (`$1`
/// placeholders, `RETURNING`, `ON CONFLICT … DO UPDATE`).
macro_rules! on_pool {
    ($journal:expr, $pool:ident => $body:expr) => {
        match &$journal.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

impl Journal {
    /// Opens the journal at `url` and brings its schema up to date.
    ///
    /// `url` is `postgres://…` or `postgresql://…` for PostgreSQL, and `sqlite:PATH` or a plain
    /// file path for SQLite; a missing SQLite file is created (its directory must exist).
    ///
    /// # Errors
    /// [`AuditError::UnsupportedUrl`] for another scheme, [`AuditError::Open`] when the database
    /// cannot be reached or opened, [`AuditError::Migrate`] when its schema cannot be brought up
    /// to date. Every message carries the URL without its password.
    pub async fn open(url: &str) -> Result<Journal, AuditError> {
        let url_redacted = redact_url(url);
        let open_err = |source| AuditError::Open {
            url_redacted: url_redacted.clone(),
            source,
        };
        let migrate_err = |source| AuditError::Migrate {
            url_redacted: url_redacted.clone(),
            source,
        };
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(open_err)?;
            // One plain connection first: the pool retries a refused connection until its
            // acquire timeout and then reports only "timed out", which hides the cause.
            let mut conn = options.connect().await.map_err(open_err)?;
            POSTGRES_MIGRATOR
                .run(&mut conn)
                .await
                .map_err(migrate_err)?;
            // Closing politely is a courtesy to the server; the schema is already in place.
            let _ = conn.close().await;
            Backend::Postgres(
                PgPoolOptions::new()
                    .max_connections(POOL_SIZE)
                    .connect_lazy_with(options),
            )
        } else {
            let options = if url.starts_with("sqlite:") {
                SqliteConnectOptions::from_str(url).map_err(open_err)?
            } else if url.contains("://") {
                return Err(AuditError::UnsupportedUrl { url_redacted });
            } else {
                SqliteConnectOptions::new().filename(url)
            };
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            // Two processes opening a new journal at once (the agent and `supercp audit`) race:
            // switching it to WAL takes a lock the busy timeout does not wait for, and both may
            // try the same migration. The loser tries again and finds the work done.
            let mut attempt = 0u64;
            let pool = loop {
                let opened = SqlitePoolOptions::new()
                    .max_connections(POOL_SIZE)
                    .connect_with(options.clone())
                    .await
                    .map_err(open_err);
                let migrated = match opened {
                    Ok(pool) => match SQLITE_MIGRATOR.run(&pool).await {
                        Ok(()) => Ok(pool),
                        Err(e) => {
                            pool.close().await;
                            Err(migrate_err(e))
                        }
                    },
                    Err(e) => Err(e),
                };
                match migrated {
                    Ok(pool) => break pool,
                    Err(_) if attempt < 5 => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            Backend::Sqlite(pool)
        };
        let journal = Journal { backend };
        tracing::debug!(backend = journal.backend_name(), url = %url_redacted, "opened audit journal");
        Ok(journal)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool, waiting for queries in flight; SQLite checkpoints its WAL.
    pub async fn close(self) {
        on_pool!(self, pool => pool.close().await);
    }

    /// Marks every run of `node` still `running` as `interrupted` (finished now), and their
    /// `pending` and `running` steps as `interrupted`, in one transaction.
    ///
    /// Call it while holding the node lock, before [`Journal::start_run`]: no other run can be
    /// in progress then. Returns the ids of the runs it marked, oldest first.
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails.
    pub async fn mark_interrupted(&self, node: &str) -> Result<Vec<RunId>, AuditError> {
        const OP: &str = "mark_interrupted";
        let now = now_ms();
        let mut runs: Vec<RunId> = on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(query_err(OP))?;
            let runs: Vec<RunId> = sqlx::query_scalar(
                "UPDATE runs SET outcome = 'interrupted', finished_at = $2 \
                 WHERE node = $1 AND outcome = 'running' RETURNING id",
            )
            .bind(node)
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(query_err(OP))?;
            for run in &runs {
                sqlx::query(
                    "UPDATE steps SET status = 'interrupted' \
                     WHERE run_id = $1 AND status IN ('pending', 'running')",
                )
                .bind(run)
                .execute(&mut *tx)
                .await
                .map_err(query_err(OP))?;
            }
            tx.commit().await.map_err(query_err(OP))?;
            runs
        });
        runs.sort_unstable();
        Ok(runs)
    }

    /// Records the start of a run, as `running` from now.
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails.
    pub async fn start_run(&self, run: &NewRun) -> Result<RunId, AuditError> {
        const OP: &str = "start_run";
        let now = now_ms();
        on_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO runs (node, actor, repo, git_commit, git_author, git_dirty, summary, \
                 outcome, started_at, pid, git_message, trigger, git_time) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8, $9, $10, $11, $12) \
                 RETURNING id",
            )
            .bind(&run.node)
            .bind(&run.actor)
            .bind(&run.repo)
            .bind(run.git_commit.as_deref())
            .bind(run.git_author.as_deref())
            .bind(run.git_dirty)
            .bind(&run.summary)
            .bind(now)
            .bind(i64::from(run.pid))
            .bind(run.git_message.as_deref())
            .bind(&run.trigger)
            .bind(run.git_time)
            .fetch_one(pool)
            .await
            .map_err(query_err(OP))
        })
    }

    /// Records the planned steps of `run` as `pending`, in one transaction, and returns their
    /// ids in the order given.
    ///
    /// `seq` counts from 0 on the first call for a run; a later call continues after the last
    /// step already recorded.
    ///
    /// # Errors
    /// [`AuditError::RunNotFound`] when `run` does not exist, [`AuditError::Query`] when the
    /// database fails or refuses a step (an action other than create, update or delete).
    pub async fn add_steps(
        &self,
        run: RunId,
        steps: &[NewStep],
    ) -> Result<Vec<StepId>, AuditError> {
        const OP: &str = "add_steps";
        let sqlite = self.backend_name() == "sqlite";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(query_err(OP))?;
            let first_seq: Option<i64> = sqlx::query_scalar(
                "SELECT COALESCE(MAX(s.seq) + 1, 0) FROM runs r \
                 LEFT JOIN steps s ON s.run_id = r.id WHERE r.id = $1 GROUP BY r.id",
            )
            .bind(run)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_err(OP))?;
            let Some(first_seq) = first_seq else {
                return Err(AuditError::RunNotFound { run });
            };
            let mut ids = Vec::with_capacity(steps.len());
            let mut seq = first_seq;
            for chunk in steps.chunks(STEP_ROWS_PER_INSERT) {
                let sql = insert_steps_sql(chunk.len());
                let sql = for_backend(sql, sqlite);
                let mut insert = sqlx::query_as::<_, (StepId, i64)>(&sql);
                for step in chunk {
                    insert = insert
                        .bind(run)
                        .bind(seq)
                        .bind(&step.resource)
                        .bind(&step.origin)
                        .bind(&step.object)
                        .bind(&step.action)
                        .bind(step.before_hash.as_deref())
                        .bind(step.after_hash.as_deref())
                        .bind(step.before_content.as_deref());
                    seq += 1;
                }
                // Neither database promises RETURNING rows in VALUES order.
                let mut rows = insert.fetch_all(&mut *tx).await.map_err(query_err(OP))?;
                rows.sort_unstable_by_key(|&(_, seq)| seq);
                ids.extend(rows.into_iter().map(|(id, _)| id));
            }
            tx.commit().await.map_err(query_err(OP))?;
            Ok(ids)
        })
    }

    /// Marks steps `running` from `at_ms` (unix milliseconds) and counts an attempt for each, in
    /// one transaction.
    ///
    /// # Errors
    /// [`AuditError::StepNotFound`] when a step does not exist (nothing is written then),
    /// [`AuditError::Query`] when the database fails.
    pub async fn steps_running(&self, ids: &[StepId], at_ms: i64) -> Result<(), AuditError> {
        const OP: &str = "steps_running";
        let sqlite = self.backend_name() == "sqlite";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(query_err(OP))?;
            for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "UPDATE steps SET status = 'running', started_at = $1, attempt = attempt + 1 \
                     WHERE id IN {}",
                    values_sql(1, chunk.len(), 2)
                );
                let sql = for_backend(sql, sqlite);
                let mut update = sqlx::query(&sql).bind(at_ms);
                for &step in chunk {
                    update = update.bind(step);
                }
                let done = update.execute(&mut *tx).await.map_err(query_err(OP))?;
                if done.rows_affected() != chunk.len() as u64 {
                    let step = missing_step(&mut tx, chunk, sqlite).await.map_err(query_err(OP))?;
                    return Err(AuditError::StepNotFound { step });
                }
            }
            tx.commit().await.map_err(query_err(OP))
        })
    }

    /// Records what happened to many steps, in one transaction.
    ///
    /// # Errors
    /// [`AuditError::StepNotFound`] when a step does not exist (nothing is written then),
    /// [`AuditError::Query`] when the database fails.
    pub async fn finish_steps(&self, results: &[StepResult]) -> Result<(), AuditError> {
        const OP: &str = "finish_steps";
        let sqlite = self.backend_name() == "sqlite";
        let logs = results
            .iter()
            .map(|result| serde_json::to_string(&result.log))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AuditError::BadValue {
                op: OP,
                detail: e.to_string(),
            })?;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(query_err(OP))?;
            let rows: Vec<(&StepResult, &String)> = results.iter().zip(&logs).collect();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                // One statement per chunk; VALUES columns are column1… in both databases.
                let sql = format!(
                    "UPDATE steps SET status = v.column2, \
                     after_hash = COALESCE(v.column3, steps.after_hash), log = v.column4, \
                     started_at = v.column5, finished_at = v.column6 \
                     FROM (VALUES {}) AS v WHERE steps.id = v.column1",
                    values_sql(chunk.len(), 6, 1)
                );
                let sql = for_backend(sql, sqlite);
                let mut update = sqlx::query(&sql);
                for (result, log) in chunk {
                    update = update
                        .bind(result.id)
                        .bind(result.status.as_str())
                        .bind(result.after_hash.as_deref())
                        .bind(*log)
                        .bind(result.started_at)
                        .bind(result.finished_at);
                }
                let done = update.execute(&mut *tx).await.map_err(query_err(OP))?;
                if done.rows_affected() != chunk.len() as u64 {
                    let ids: Vec<StepId> = chunk.iter().map(|(r, _)| r.id).collect();
                    let step = missing_step(&mut tx, &ids, sqlite).await.map_err(query_err(OP))?;
                    return Err(AuditError::StepNotFound { step });
                }
            }
            tx.commit().await.map_err(query_err(OP))
        })
    }

    /// Adds `checks` gate checks and `reloads` service reloads to the counts of `run`.
    ///
    /// # Errors
    /// [`AuditError::RunNotFound`] when `run` does not exist, [`AuditError::Query`] when the
    /// database fails.
    pub async fn count_gate(
        &self,
        run: RunId,
        checks: i64,
        reloads: i64,
    ) -> Result<(), AuditError> {
        const OP: &str = "count_gate";
        let done = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE runs SET gate_checks = gate_checks + $2, reloads = reloads + $3 \
                 WHERE id = $1",
            )
            .bind(run)
            .bind(checks)
            .bind(reloads)
            .execute(pool)
            .await
            .map_err(query_err(OP))?
            .rows_affected()
        });
        if done == 0 {
            return Err(AuditError::RunNotFound { run });
        }
        Ok(())
    }

    /// Records how `run` ended, finished now.
    ///
    /// # Errors
    /// [`AuditError::NotFinal`] for [`Outcome::Running`], [`AuditError::RunNotFound`] when `run`
    /// does not exist, [`AuditError::Query`] when the database fails.
    pub async fn finish_run(
        &self,
        run: RunId,
        outcome: Outcome,
        error: Option<&str>,
    ) -> Result<(), AuditError> {
        const OP: &str = "finish_run";
        if outcome == Outcome::Running {
            return Err(AuditError::NotFinal { outcome });
        }
        let now = now_ms();
        let done = on_pool!(self, pool => {
            sqlx::query("UPDATE runs SET outcome = $2, error = $3, finished_at = $4 WHERE id = $1")
                .bind(run)
                .bind(outcome.as_str())
                .bind(error)
                .bind(now)
                .execute(pool)
                .await
                .map_err(query_err(OP))?
                .rows_affected()
        });
        if done == 0 {
            return Err(AuditError::RunNotFound { run });
        }
        Ok(())
    }

    /// Records `run` as failed with `error`, unless it has an outcome already (the caller's
    /// last word on a run whose error path may or may not have recorded it).
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails.
    pub async fn fail_if_running(&self, run: RunId, error: &str) -> Result<(), AuditError> {
        const OP: &str = "fail_if_running";
        let now = now_ms();
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE runs SET outcome = 'failed', error = $2, finished_at = $3 \
                 WHERE id = $1 AND outcome = 'running'",
            )
            .bind(run)
            .bind(error)
            .bind(now)
            .execute(pool)
            .await
            .map_err(query_err(OP))?;
        });
        Ok(())
    }

    /// The latest `limit` runs, newest first.
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails, [`AuditError::BadValue`] when a row holds
    /// a value this version cannot read.
    pub async fn list_runs(&self, limit: i64) -> Result<Vec<RunRecord>, AuditError> {
        const OP: &str = "list_runs";
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT $1");
        let rows: Vec<RunRow> = on_pool!(self, pool => {
            sqlx::query_as(&sql)
                .bind(limit.max(0))
                .fetch_all(pool)
                .await
                .map_err(query_err(OP))?
        });
        rows.into_iter().map(|row| row.into_record(OP)).collect()
    }

    /// One run and its steps in order, or `None` when there is no such run.
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails, [`AuditError::BadValue`] when a row holds
    /// a value this version cannot read.
    pub async fn get_run(
        &self,
        id: RunId,
    ) -> Result<Option<(RunRecord, Vec<StepRecord>)>, AuditError> {
        const OP: &str = "get_run";
        let run_sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let steps_sql = format!("SELECT {STEP_COLUMNS} FROM steps WHERE run_id = $1 ORDER BY seq");
        let rows: Option<(RunRow, Vec<StepRow>)> = on_pool!(self, pool => {
            let run: Option<RunRow> = sqlx::query_as(&run_sql)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query_err(OP))?;
            match run {
                None => None,
                Some(run) => Some((
                    run,
                    sqlx::query_as(&steps_sql)
                        .bind(id)
                        .fetch_all(pool)
                        .await
                        .map_err(query_err(OP))?,
                )),
            }
        });
        let Some((run, steps)) = rows else {
            return Ok(None);
        };
        let steps = steps
            .into_iter()
            .map(|row| row.into_record(OP))
            .collect::<Result<_, _>>()?;
        Ok(Some((run.into_record(OP)?, steps)))
    }

    /// The content a step's object had before the step replaced it, if it was recorded.
    ///
    /// # Errors
    /// [`AuditError::StepNotFound`] when the step does not exist, [`AuditError::Query`] when
    /// the database fails.
    pub async fn step_before_content(&self, step: StepId) -> Result<Option<Vec<u8>>, AuditError> {
        const OP: &str = "step_before_content";
        let row: Option<(Option<Vec<u8>>,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT before_content FROM steps WHERE id = $1")
                .bind(step)
                .fetch_optional(pool)
                .await
                .map_err(query_err(OP))?
        });
        row.map(|(content,)| content)
            .ok_or(AuditError::StepNotFound { step })
    }

    /// The objects SuperCP owns on `node`, sorted by object.
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails.
    pub async fn owned(&self, node: &str) -> Result<Vec<OwnedObject>, AuditError> {
        const OP: &str = "owned";
        let rows: Vec<OwnedRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT object, resource, tenant_data, anchor, deletion_policy, gate \
                 FROM owned WHERE node = $1",
            )
                .bind(node)
                .fetch_all(pool)
                .await
                .map_err(query_err(OP))?
        });
        // Sorted here, not in SQL: text collation differs between the databases.
        let mut owned: Vec<OwnedObject> = rows
            .into_iter()
            .map(
                |(object, resource, tenant_data, anchor, deletion_policy, gate)| OwnedObject {
                    object,
                    resource,
                    tenant_data,
                    anchor,
                    deletion_policy,
                    gate,
                },
            )
            .collect();
        owned.sort_unstable_by(|a, b| a.object.cmp(&b.object));
        Ok(owned)
    }

    /// Records that SuperCP owns `add` on `node` (replacing what it knew of those objects) and
    /// no longer owns `remove`, in one transaction. An object in both ends up not owned.
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails.
    pub async fn set_owned(
        &self,
        node: &str,
        add: &[OwnedObject],
        remove: &[String],
    ) -> Result<(), AuditError> {
        const OP: &str = "set_owned";
        let sqlite = self.backend_name() == "sqlite";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(query_err(OP))?;
            // A key may appear once per INSERT … ON CONFLICT statement: the last record wins.
            let mut latest: std::collections::BTreeMap<&str, &OwnedObject> = Default::default();
            for owned in add {
                latest.insert(owned.object.as_str(), owned);
            }
            let add: Vec<&OwnedObject> = latest.into_values().collect();
            for chunk in add.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO owned (node, object, resource, tenant_data, anchor, \
                     deletion_policy, gate) VALUES {} ON CONFLICT (node, object) \
                     DO UPDATE SET resource = excluded.resource, tenant_data = excluded.tenant_data, \
                     anchor = excluded.anchor, deletion_policy = excluded.deletion_policy, \
                     gate = excluded.gate",
                    values_sql(chunk.len(), 7, 1)
                );
                let sql = for_backend(sql, sqlite);
                let mut insert = sqlx::query(&sql);
                for owned in chunk {
                    insert = insert
                        .bind(node)
                        .bind(&owned.object)
                        .bind(&owned.resource)
                        .bind(owned.tenant_data)
                        .bind(&owned.anchor)
                        .bind(&owned.deletion_policy)
                        .bind(&owned.gate);
                }
                insert.execute(&mut *tx).await.map_err(query_err(OP))?;
            }
            for chunk in remove.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "DELETE FROM owned WHERE node = $1 AND object IN {}",
                    values_sql(1, chunk.len(), 2)
                );
                let sql = for_backend(sql, sqlite);
                let mut delete = sqlx::query(&sql).bind(node);
                for object in chunk {
                    delete = delete.bind(object);
                }
                delete.execute(&mut *tx).await.map_err(query_err(OP))?;
            }
            tx.commit().await.map_err(query_err(OP))
        })
    }

    /// Records, before a commit unit writes anything, every object it is about to write, in
    /// one transaction. An object already recorded (by a run killed before its check) keeps
    /// its first record: its `before_content` is the last content that passed a check.
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails.
    pub async fn open_unit(&self, node: &str, objects: &[Unchecked]) -> Result<(), AuditError> {
        const OP: &str = "open_unit";
        let sqlite = self.backend_name() == "sqlite";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(query_err(OP))?;
            for chunk in objects.chunks(ROWS_PER_STATEMENT / 2) {
                let sql = format!(
                    "INSERT INTO unchecked (node, object, gate, run_id, resource, origin, anchor, \
                     action, before_content) VALUES {} ON CONFLICT (node, object) DO NOTHING",
                    values_sql(chunk.len(), 9, 1)
                );
                let sql = for_backend(sql, sqlite);
                let mut insert = sqlx::query(&sql);
                for o in chunk {
                    insert = insert
                        .bind(node)
                        .bind(&o.object)
                        .bind(&o.gate)
                        .bind(o.run)
                        .bind(&o.resource)
                        .bind(&o.origin)
                        .bind(&o.anchor)
                        .bind(&o.action)
                        .bind(o.before_content.as_deref());
                }
                insert.execute(&mut *tx).await.map_err(query_err(OP))?;
            }
            tx.commit().await.map_err(query_err(OP))
        })
    }

    /// Records that `gate`'s writes on `node` are settled: checked and reloaded, or put back.
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails.
    pub async fn close_unit(&self, node: &str, gate: &str) -> Result<(), AuditError> {
        const OP: &str = "close_unit";
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM unchecked WHERE node = $1 AND gate = $2")
                .bind(node)
                .bind(gate)
                .execute(pool)
                .await
                .map_err(query_err(OP))?;
        });
        Ok(())
    }

    /// The objects of `node` that a commit unit wrote and never checked (a killed run's),
    /// sorted by object.
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails.
    pub async fn unchecked(&self, node: &str) -> Result<Vec<Unchecked>, AuditError> {
        const OP: &str = "unchecked";
        let rows: Vec<UncheckedRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT object, gate, run_id, resource, origin, anchor, action, before_content \
                 FROM unchecked WHERE node = $1",
            )
            .bind(node)
            .fetch_all(pool)
            .await
            .map_err(query_err(OP))?
        });
        let mut out: Vec<Unchecked> = rows
            .into_iter()
            .map(
                |(object, gate, run, resource, origin, anchor, action, before_content)| Unchecked {
                    object,
                    gate,
                    run,
                    resource,
                    origin,
                    anchor,
                    action,
                    before_content,
                },
            )
            .collect();
        out.sort_unstable_by(|a, b| a.object.cmp(&b.object));
        Ok(out)
    }

    /// The uid every tenant of `node` was ever given, by tenant (deleted tenants included).
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails.
    pub async fn accounts(&self, node: &str) -> Result<BTreeMap<String, u32>, AuditError> {
        const OP: &str = "accounts";
        let rows: Vec<(String, i64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT tenant, uid FROM accounts WHERE node = $1")
                .bind(node)
                .fetch_all(pool)
                .await
                .map_err(query_err(OP))?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(tenant, uid)| u32::try_from(uid).ok().map(|uid| (tenant, uid)))
            .collect())
    }

    /// Every certificate record of `node`, by domain.
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails.
    pub async fn certificates(
        &self,
        node: &str,
    ) -> Result<BTreeMap<String, CertRecord>, AuditError> {
        const OP: &str = "certificates";
        let rows: Vec<CertRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT domain, serial, not_after, issued_at, failures, last_error, next_attempt, \
                 ari_start, ari_end, ari_next_check, updated_at FROM certificates \
                 WHERE node = $1 ORDER BY domain",
            )
            .bind(node)
            .fetch_all(pool)
            .await
            .map_err(query_err(OP))?
        });
        Ok(rows
            .into_iter()
            .map(|r| {
                let record = CertRecord {
                    domain: r.0,
                    serial: r.1,
                    not_after: r.2,
                    issued_at: r.3,
                    failures: r.4,
                    last_error: r.5,
                    next_attempt: r.6,
                    ari_start: r.7,
                    ari_end: r.8,
                    ari_next_check: r.9,
                    updated_at: r.10,
                };
                (record.domain.clone(), record)
            })
            .collect())
    }

    /// Forgets the certificate records of `domains` on `node` (their certificates are gone).
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails.
    pub async fn forget_certificates(
        &self,
        node: &str,
        domains: &[String],
    ) -> Result<(), AuditError> {
        const OP: &str = "forget_certificates";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(query_err(OP))?;
            for domain in domains {
                sqlx::query("DELETE FROM certificates WHERE node = $1 AND domain = $2")
                    .bind(node)
                    .bind(domain)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err(OP))?;
            }
            tx.commit().await.map_err(query_err(OP))
        })
    }

    /// Records (inserts or replaces) the certificate records of `node`.
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails.
    pub async fn record_certificates(
        &self,
        node: &str,
        records: &[CertRecord],
    ) -> Result<(), AuditError> {
        const OP: &str = "record_certificates";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(query_err(OP))?;
            for r in records {
                sqlx::query(
                    "INSERT INTO certificates (node, domain, serial, not_after, issued_at, \
                     failures, last_error, next_attempt, ari_start, ari_end, ari_next_check, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (node, domain) DO UPDATE SET serial = excluded.serial, \
                     not_after = excluded.not_after, issued_at = excluded.issued_at, \
                     failures = excluded.failures, last_error = excluded.last_error, \
                     next_attempt = excluded.next_attempt, ari_start = excluded.ari_start, \
                     ari_end = excluded.ari_end, ari_next_check = excluded.ari_next_check, \
                     updated_at = excluded.updated_at",
                )
                .bind(node)
                .bind(&r.domain)
                .bind(&r.serial)
                .bind(r.not_after)
                .bind(r.issued_at)
                .bind(r.failures)
                .bind(&r.last_error)
                .bind(r.next_attempt)
                .bind(r.ari_start)
                .bind(r.ari_end)
                .bind(r.ari_next_check)
                .bind(r.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(query_err(OP))?;
            }
            tx.commit().await.map_err(query_err(OP))
        })
    }

    /// Records uids given to tenants (a tenant already recorded keeps its first uid).
    ///
    /// # Errors
    /// [`AuditError::Query`] when the database fails, or a uid is already another tenant's.
    pub async fn record_accounts(
        &self,
        node: &str,
        accounts: &[(String, u32)],
        at_ms: i64,
    ) -> Result<(), AuditError> {
        const OP: &str = "record_accounts";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(query_err(OP))?;
            for (tenant, uid) in accounts {
                sqlx::query(
                    "INSERT INTO accounts (node, tenant, uid, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (node, tenant) DO NOTHING",
                )
                .bind(node)
                .bind(tenant)
                .bind(i64::from(*uid))
                .bind(at_ms)
                .execute(&mut *tx)
                .await
                .map_err(query_err(OP))?;
            }
            tx.commit().await.map_err(query_err(OP))
        })
    }
}

impl Outcome {
    /// The lowercase text stored in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(Outcome::Running),
            "succeeded" => Ok(Outcome::Succeeded),
            "failed" => Ok(Outcome::Failed),
            "interrupted" => Ok(Outcome::Interrupted),
            _ => Err(UnknownValue {
                kind: "run outcome",
                value: s.to_owned(),
                expected: "running, succeeded, failed, interrupted",
            }),
        }
    }
}

impl StepStatus {
    /// The lowercase text stored in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
            StepStatus::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StepStatus {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(StepStatus::Pending),
            "running" => Ok(StepStatus::Running),
            "done" => Ok(StepStatus::Done),
            "failed" => Ok(StepStatus::Failed),
            "interrupted" => Ok(StepStatus::Interrupted),
            _ => Err(UnknownValue {
                kind: "step status",
                value: s.to_owned(),
                expected: "pending, running, done, failed, interrupted",
            }),
        }
    }
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

const POOL_SIZE: u32 = 5;

/// Rows per multi-row INSERT in `add_steps`: 9 parameters a row stays far below the parameter
/// limits of SQLite (32766) and PostgreSQL (65535).
const STEP_ROWS_PER_INSERT: usize = 500;

/// Rows per batched UPDATE, INSERT or DELETE: well under both databases' parameter limits
/// (32,766 in SQLite, 65,535 in PostgreSQL) at seven values a row.
const ROWS_PER_STATEMENT: usize = 500;
const STEP_INSERT_COLUMNS: usize = 9;

const RUN_COLUMNS: &str = "id, node, actor, repo, git_commit, git_author, git_dirty, summary, \
     outcome, started_at, finished_at, pid, error, gate_checks, reloads, git_message, trigger, \
     git_time";
const STEP_COLUMNS: &str = "id, run_id, seq, resource, origin, object, action, status, attempt, \
     started_at, finished_at, before_hash, after_hash, log, \
     (before_content IS NOT NULL) AS has_before_content";

#[derive(sqlx::FromRow)]
struct RunRow {
    id: i64,
    node: String,
    actor: String,
    repo: String,
    git_commit: Option<String>,
    git_author: Option<String>,
    git_dirty: Option<bool>,
    summary: String,
    outcome: String,
    started_at: i64,
    finished_at: Option<i64>,
    pid: i64,
    error: Option<String>,
    gate_checks: i64,
    reloads: i64,
    git_message: Option<String>,
    trigger: String,
    git_time: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct StepRow {
    id: i64,
    run_id: i64,
    seq: i64,
    resource: String,
    origin: String,
    object: String,
    action: String,
    status: String,
    attempt: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    before_hash: Option<String>,
    after_hash: Option<String>,
    log: String,
    has_before_content: bool,
}

impl RunRow {
    fn into_record(self, op: &'static str) -> Result<RunRecord, AuditError> {
        let bad = |detail: String| AuditError::BadValue { op, detail };
        Ok(RunRecord {
            outcome: self
                .outcome
                .parse()
                .map_err(|e: UnknownValue| bad(e.to_string()))?,
            pid: u32::try_from(self.pid)
                .map_err(|_| bad(format!("run {} has pid {}", self.id, self.pid)))?,
            id: self.id,
            node: self.node,
            actor: self.actor,
            repo: self.repo,
            git_commit: self.git_commit,
            git_author: self.git_author,
            git_dirty: self.git_dirty,
            git_message: self.git_message,
            git_time: self.git_time,
            trigger: self.trigger,
            summary: self.summary,
            started_at: self.started_at,
            finished_at: self.finished_at,
            error: self.error,
            gate_checks: self.gate_checks,
            reloads: self.reloads,
        })
    }
}

impl StepRow {
    fn into_record(self, op: &'static str) -> Result<StepRecord, AuditError> {
        let bad = |detail: String| AuditError::BadValue { op, detail };
        Ok(StepRecord {
            status: self
                .status
                .parse()
                .map_err(|e: UnknownValue| bad(e.to_string()))?,
            log: serde_json::from_str(&self.log)
                .map_err(|e| bad(format!("log of step {}: {e}", self.id)))?,
            id: self.id,
            run_id: self.run_id,
            seq: self.seq,
            resource: self.resource,
            origin: self.origin,
            object: self.object,
            action: self.action,
            attempt: self.attempt,
            started_at: self.started_at,
            finished_at: self.finished_at,
            before_hash: self.before_hash,
            after_hash: self.after_hash,
            has_before_content: self.has_before_content,
        })
    }
}

fn query_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> AuditError {
    move |source| AuditError::Query { op, source }
}

/// `INSERT INTO steps … VALUES (…), (…) RETURNING id, seq` for `rows` rows.
fn insert_steps_sql(rows: usize) -> String {
    format!(
        "INSERT INTO steps (run_id, seq, resource, origin, object, action, before_hash, \
         after_hash, before_content) VALUES {} RETURNING id, seq",
        values_sql(rows, STEP_INSERT_COLUMNS, 1)
    )
}

/// The SQL for the journal's database: SQLite gets anonymous `?` placeholders instead of
/// `$N`. With thousands of numbered parameters SQLite looks each name up in a list, which made
/// one 500-row statement cost quadratic time; positional `?` is bound by index. The `$N` of a
/// batched statement are written in increasing order, so the positions stay the same.
fn for_backend(sql: String, sqlite: bool) -> String {
    if !sqlite {
        return sql;
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// Numbered placeholders for `rows` tuples of `columns` values, starting at `$first`:
/// `values_sql(2, 2, 1)` is `($1, $2), ($3, $4)` and `values_sql(1, 3, 2)` is `($2, $3, $4)`.
/// Both databases take `$N` placeholders through sqlx.
fn values_sql(rows: usize, columns: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 6);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(first + row * columns + column).to_string());
        }
        sql.push(')');
    }
    sql
}

/// Which of `ids` is not in the journal (after a batch touched fewer rows than it named).
async fn missing_step<'c, DB>(
    tx: &mut sqlx::Transaction<'c, DB>,
    ids: &[StepId],
    sqlite: bool,
) -> Result<StepId, sqlx::Error>
where
    DB: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'t> &'t mut <DB as sqlx::Database>::Connection: sqlx::Executor<'t, Database = DB>,
    (i64,): for<'r> sqlx::FromRow<'r, <DB as sqlx::Database>::Row>,
{
    let sql = format!(
        "SELECT id FROM steps WHERE id IN {}",
        values_sql(1, ids.len(), 1)
    );
    let sql = for_backend(sql, sqlite);
    let mut query = sqlx::query_as::<DB, (i64,)>(&sql);
    for &id in ids {
        query = query.bind(id);
    }
    let found: std::collections::BTreeSet<i64> = query
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect();
    Ok(ids
        .iter()
        .copied()
        .find(|id| !found.contains(id))
        .unwrap_or_default())
}

/// Unix milliseconds now; a clock before 1970 reads as 0.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `url` fit for an error message: the password of `user:password@` and any `password=` query
/// parameter become `***`.
///
/// Errs on the side of hiding too much: everything up to the last `@` is taken as user info, so
/// a password with an unescaped `/` or `?` is still hidden.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let (scheme, rest) = url.split_at(scheme_end);
    let mut out = String::from(scheme);
    let rest = match rest.rfind('@') {
        Some(at) => {
            let (userinfo, after) = rest.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            after
        }
        None => rest,
    };
    let Some((before_query, query)) = rest.split_once('?') else {
        out.push_str(rest);
        return out;
    };
    out.push_str(before_query);
    out.push('?');
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, _)) if key.to_ascii_lowercase().contains("password") => format!("{key}=***"),
            _ => param.to_owned(),
        })
        .collect();
    out.push_str(&params.join("&"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_of_a_postgres_url_is_hidden_and_the_rest_kept() {
        assert_eq!(
            redact_url("postgres://alice:s3cret@db.example:5432/audit"),
            "postgres://alice:***@db.example:5432/audit"
        );
    }

    #[test]
    fn a_url_without_a_password_is_unchanged() {
        for url in [
            "postgres://alice@db/audit",
            "postgresql://db/audit?sslmode=require",
            "sqlite:///var/lib/supercp/audit.db",
            "/var/lib/supercp/audit.db",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn a_password_with_unescaped_slashes_and_at_signs_is_still_hidden() {
        let redacted = redact_url("postgres://bob:pa/ss@w?rd@db/audit");
        assert!(!redacted.contains("pa/ss"), "{redacted}");
        assert!(!redacted.contains("rd@"), "{redacted}");
        assert_eq!(redacted, "postgres://bob:***@db/audit");
    }

    #[test]
    fn a_password_query_parameter_is_hidden() {
        assert_eq!(
            redact_url("postgres://db/audit?user=carol&password=hunter2&sslmode=require"),
            "postgres://db/audit?user=carol&password=***&sslmode=require"
        );
    }

    #[test]
    fn outcomes_and_statuses_round_trip_through_their_text() {
        for outcome in [
            Outcome::Running,
            Outcome::Succeeded,
            Outcome::Failed,
            Outcome::Interrupted,
        ] {
            assert_eq!(outcome.to_string().parse::<Outcome>(), Ok(outcome));
        }
        for status in [
            StepStatus::Pending,
            StepStatus::Running,
            StepStatus::Done,
            StepStatus::Failed,
            StepStatus::Interrupted,
        ] {
            assert_eq!(status.to_string().parse::<StepStatus>(), Ok(status));
        }
        assert!("RUNNING".parse::<Outcome>().is_err());
    }

    #[test]
    fn step_inserts_number_their_placeholders_row_by_row() {
        let sql = insert_steps_sql(2);
        assert!(
            sql.contains("($1, $2, $3, $4, $5, $6, $7, $8, $9), ($10, "),
            "{sql}"
        );
        assert!(sql.ends_with("$18) RETURNING id, seq"), "{sql}");
    }

    #[test]
    fn sqlite_gets_positional_placeholders_in_the_same_order() {
        let sql = format!("UPDATE t SET a = $1 WHERE id IN {}", values_sql(1, 3, 2));
        assert_eq!(for_backend(sql.clone(), false), sql);
        assert_eq!(
            for_backend(sql, true),
            "UPDATE t SET a = ? WHERE id IN (?, ?, ?)"
        );
    }
}
