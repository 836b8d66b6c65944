//! The journal against real databases: a SQLite file in a temp dir and a PostgreSQL server
//! started by the testkit. Every behaviour test runs on both through `on_both_backends`.

use std::collections::HashSet;
use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use supercp_audit::{
    AuditError, Journal, NewRun, NewStep, Outcome, OwnedObject, RunRecord, StepRecord, StepResult,
    StepStatus,
};
use supercp_testkit::postgres::Postgres;
use supercp_testkit::services::free_port;

#[tokio::test]
async fn opening_runs_the_migrations_and_reopening_keeps_the_runs() {
    on_both_backends("opening_runs_the_migrations", |url| async move {
        let journal = open(&url).await;
        let run = journal
            .start_run(&new_run("web1"))
            .await
            .expect("start_run");
        journal.close().await;

        let journal = open(&url).await;
        let runs = journal.list_runs(10).await.expect("list_runs");
        assert_eq!(ids(&runs), vec![run], "{url}");
    })
    .await;
}

#[tokio::test]
async fn a_run_and_its_steps_round_trip_with_every_field() {
    on_both_backends("a_run_and_its_steps_round_trip", |url| async move {
        let journal = open(&url).await;
        let before = now_ms();
        let new = NewRun {
            node: "web1".into(),
            actor: "alice".into(),
            repo: "/srv/supercp/repo".into(),
            git_commit: Some("0123abcd".into()),
            git_author: Some("Alice <alice@example.test>".into()),
            git_dirty: Some(true),
            git_message: Some("Add acme.test\n\nWith a body line.".into()),
            git_time: Some(1_700_000_123),
            trigger: "commit".into(),
            summary: "1 to create, 1 to update, 1 to delete".into(),
            pid: 4_000_000_000,
        };
        let run = journal.start_run(&new).await.expect("start_run");
        let old_content = b"server_name old.test;\n\0\xff".to_vec();
        let steps = vec![
            new_step("create", "Domain/acme.test", None),
            NewStep {
                before_hash: Some("sha256:before".into()),
                after_hash: Some("sha256:planned".into()),
                before_content: Some(old_content.clone()),
                ..new_step("update", "Domain/beta.test", None)
            },
            new_step("delete", "Domain/gone.test", None),
        ];
        let ids = journal.add_steps(run, &steps).await.expect("add_steps");
        assert_eq!(ids.len(), 3);

        journal
            .steps_running(&ids[..2], 1_000)
            .await
            .expect("steps_running");
        journal
            .finish_steps(&[
                StepResult {
                    id: ids[0],
                    status: StepStatus::Done,
                    after_hash: Some("sha256:observed".into()),
                    log: vec![
                        "wrote 12 bytes".into(),
                        "a \"quoted\" ünïcode line\n".into(),
                    ],
                    started_at: 1_001,
                    finished_at: 1_002,
                },
                StepResult {
                    id: ids[1],
                    status: StepStatus::Failed,
                    after_hash: None,
                    log: vec!["permission denied".into()],
                    started_at: 1_003,
                    finished_at: 1_004,
                },
            ])
            .await
            .expect("finish_steps");
        journal.count_gate(run, 2, 1).await.expect("count_gate");
        journal.count_gate(run, 1, 0).await.expect("count_gate");
        let error = "Domain/beta.test (sites/beta.yaml:3:1): permission denied";
        journal
            .finish_run(run, Outcome::Failed, Some(error))
            .await
            .expect("finish_run");
        let after = now_ms();

        let (record, step_records) = journal
            .get_run(run)
            .await
            .expect("get_run")
            .expect("the run exists");
        assert!((before..=after).contains(&record.started_at), "{record:?}");
        let finished_at = record.finished_at.expect("a finished run has finished_at");
        assert!(
            (record.started_at..=after).contains(&finished_at),
            "{record:?}"
        );
        assert_eq!(
            record,
            RunRecord {
                id: run,
                node: new.node.clone(),
                actor: new.actor.clone(),
                repo: new.repo.clone(),
                git_commit: new.git_commit.clone(),
                git_author: new.git_author.clone(),
                git_dirty: Some(true),
                git_message: new.git_message.clone(),
                git_time: Some(1_700_000_123),
                trigger: "commit".into(),
                summary: new.summary.clone(),
                outcome: Outcome::Failed,
                started_at: record.started_at,
                finished_at: Some(finished_at),
                pid: 4_000_000_000,
                error: Some(error.into()),
                gate_checks: 3,
                reloads: 1,
            },
            "{url}"
        );

        let expected_step = |seq: usize, step: &NewStep| StepRecord {
            id: ids[seq],
            run_id: run,
            seq: seq as i64,
            resource: step.resource.clone(),
            origin: step.origin.clone(),
            object: step.object.clone(),
            action: step.action.clone(),
            status: StepStatus::Pending,
            attempt: 0,
            started_at: None,
            finished_at: None,
            before_hash: step.before_hash.clone(),
            after_hash: step.after_hash.clone(),
            log: vec![],
            has_before_content: step.before_content.is_some(),
        };
        let expected = vec![
            StepRecord {
                status: StepStatus::Done,
                attempt: 1,
                started_at: Some(1_001),
                finished_at: Some(1_002),
                after_hash: Some("sha256:observed".into()),
                log: vec![
                    "wrote 12 bytes".into(),
                    "a \"quoted\" ünïcode line\n".into(),
                ],
                ..expected_step(0, &steps[0])
            },
            StepRecord {
                status: StepStatus::Failed,
                attempt: 1,
                started_at: Some(1_003),
                finished_at: Some(1_004),
                // None in the result keeps the hash the plan expected.
                after_hash: Some("sha256:planned".into()),
                log: vec!["permission denied".into()],
                ..expected_step(1, &steps[1])
            },
            expected_step(2, &steps[2]),
        ];
        assert_eq!(step_records, expected, "{url}");

        assert_eq!(
            journal
                .step_before_content(ids[1])
                .await
                .expect("before content"),
            Some(old_content)
        );
        assert_eq!(
            journal
                .step_before_content(ids[0])
                .await
                .expect("before content"),
            None
        );

        let json = serde_json::to_value(&record).expect("a run serializes");
        assert_eq!(json["outcome"], "failed");
        let json = serde_json::to_value(&step_records[0]).expect("a step serializes");
        assert_eq!(json["status"], "done");
    })
    .await;
}

#[tokio::test]
async fn unknown_runs_and_steps_are_reported_as_not_found() {
    on_both_backends("unknown_runs_and_steps", |url| async move {
        let journal = open(&url).await;
        assert_eq!(journal.get_run(999).await.expect("get_run"), None);
        assert!(matches!(
            journal.finish_run(999, Outcome::Succeeded, None).await,
            Err(AuditError::RunNotFound { run: 999 })
        ));
        assert!(matches!(
            journal
                .add_steps(999, &[new_step("create", "Domain/a.test", None)])
                .await,
            Err(AuditError::RunNotFound { run: 999 })
        ));
        assert!(matches!(
            journal.step_before_content(999).await,
            Err(AuditError::StepNotFound { step: 999 })
        ));
        assert!(matches!(
            journal.steps_running(&[999], 1).await,
            Err(AuditError::StepNotFound { step: 999 })
        ));
        let run = journal
            .start_run(&new_run("web1"))
            .await
            .expect("start_run");
        assert!(matches!(
            journal.finish_run(run, Outcome::Running, None).await,
            Err(AuditError::NotFinal { .. })
        ));
    })
    .await;
}

#[tokio::test]
async fn list_runs_returns_the_newest_run_first_and_honours_the_limit() {
    on_both_backends("list_runs_newest_first", |url| async move {
        let journal = open(&url).await;
        let mut started = vec![];
        for node in ["web1", "web2", "web1"] {
            started.push(journal.start_run(&new_run(node)).await.expect("start_run"));
        }
        journal
            .finish_run(started[0], Outcome::Succeeded, None)
            .await
            .expect("finish_run");
        let newest_first: Vec<_> = started.iter().rev().copied().collect();

        assert_eq!(
            ids(&journal.list_runs(10).await.expect("list_runs")),
            newest_first
        );
        assert_eq!(
            ids(&journal.list_runs(2).await.expect("list_runs")),
            newest_first[..2]
        );
        assert!(journal.list_runs(0).await.expect("list_runs").is_empty());
    })
    .await;
}

#[tokio::test]
async fn mark_interrupted_ends_running_runs_of_the_node_and_their_unfinished_steps_only() {
    on_both_backends("mark_interrupted", |url| async move {
        let journal = open(&url).await;
        let steps: Vec<NewStep> = (0..3)
            .map(|i| new_step("create", &format!("Domain/d{i}.test"), None))
            .collect();

        let finished = journal
            .start_run(&new_run("web1"))
            .await
            .expect("start_run");
        let finished_steps = journal
            .add_steps(finished, &steps)
            .await
            .expect("add_steps");
        journal
            .steps_running(&finished_steps, 10)
            .await
            .expect("steps_running");
        let results: Vec<StepResult> = finished_steps.iter().map(|&id| done(id)).collect();
        journal.finish_steps(&results).await.expect("finish_steps");
        journal
            .finish_run(finished, Outcome::Succeeded, None)
            .await
            .expect("finish_run");
        let finished_before = journal.get_run(finished).await.expect("get_run");

        let crashed = journal
            .start_run(&new_run("web1"))
            .await
            .expect("start_run");
        let crashed_steps = journal.add_steps(crashed, &steps).await.expect("add_steps");
        journal
            .steps_running(&crashed_steps[..2], 20)
            .await
            .expect("steps_running");
        journal
            .finish_steps(&[done(crashed_steps[0])])
            .await
            .expect("finish_steps");

        let other_node = journal
            .start_run(&new_run("web2"))
            .await
            .expect("start_run");

        let before = now_ms();
        assert_eq!(
            journal
                .mark_interrupted("web1")
                .await
                .expect("mark_interrupted"),
            vec![crashed],
            "{url}"
        );

        let (run, steps) = journal
            .get_run(crashed)
            .await
            .expect("get_run")
            .expect("the run exists");
        assert_eq!(run.outcome, Outcome::Interrupted);
        assert!(run.finished_at.is_some_and(|at| at >= before), "{run:?}");
        let statuses: Vec<_> = steps.iter().map(|s| s.status).collect();
        assert_eq!(
            statuses,
            [
                StepStatus::Done,
                StepStatus::Interrupted,
                StepStatus::Interrupted
            ]
        );

        assert_eq!(
            journal.get_run(finished).await.expect("get_run"),
            finished_before
        );
        let (other, _) = journal
            .get_run(other_node)
            .await
            .expect("get_run")
            .expect("the run exists");
        assert_eq!(other.outcome, Outcome::Running);
        assert_eq!(other.finished_at, None);

        assert!(journal
            .mark_interrupted("web1")
            .await
            .expect("again")
            .is_empty());
    })
    .await;
}

#[tokio::test]
async fn twenty_thousand_steps_are_recorded_in_one_call_and_in_order() {
    on_both_backends("twenty_thousand_steps", |url| async move {
        const COUNT: usize = 20_000;
        let journal = open(&url).await;
        let run = journal
            .start_run(&new_run("web1"))
            .await
            .expect("start_run");
        let steps: Vec<NewStep> = (0..COUNT)
            .map(|i| new_step("create", &format!("Domain/d{i}.test"), Some(i)))
            .collect();

        let ids = journal.add_steps(run, &steps).await.expect("add_steps");

        assert_eq!(ids.len(), COUNT);
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            COUNT,
            "ids are distinct"
        );
        let (_, records) = journal
            .get_run(run)
            .await
            .expect("get_run")
            .expect("the run exists");
        assert_eq!(records.len(), COUNT);
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.seq, i as i64, "{url}");
            assert_eq!(record.id, ids[i], "{url}");
            assert_eq!(record.resource, steps[i].resource, "{url}");
            assert_eq!(record.has_before_content, i % 2 == 0, "{url}");
        }

        // The batched updates cover every step, across many statements.
        journal.steps_running(&ids, now_ms()).await.expect("steps_running");
        let results: Vec<StepResult> = ids.iter().map(|&id| done(id)).collect();
        journal.finish_steps(&results).await.expect("finish_steps");
        let (_, records) = journal.get_run(run).await.expect("get_run").expect("run");
        assert!(records.iter().all(|r| r.status == StepStatus::Done && r.attempt == 1), "{url}");
        let mut with_unknown: Vec<StepResult> = ids[..700].iter().map(|&id| done(id)).collect();
        with_unknown.insert(600, done(ids[COUNT - 1] + 1_000));
        assert!(
            matches!(journal.finish_steps(&with_unknown).await, Err(AuditError::StepNotFound { step }) if step == ids[COUNT - 1] + 1_000),
            "an unknown id in a later chunk is named, {url}"
        );

        let many: Vec<OwnedObject> = (0..COUNT).map(|i| owned(&format!("file:/d{i}"), "Domain/d", false)).collect();
        journal.set_owned("web1", &many, &[]).await.expect("set_owned");
        assert_eq!(journal.owned("web1").await.expect("owned").len(), COUNT, "{url}");
        let gone: Vec<String> = (0..COUNT / 2).map(|i| format!("file:/d{i}")).collect();
        journal.set_owned("web1", &[], &gone).await.expect("set_owned");
        assert_eq!(journal.owned("web1").await.expect("owned").len(), COUNT / 2, "{url}");
    })
    .await;
}

#[tokio::test]
async fn a_second_add_steps_continues_the_sequence_of_the_run() {
    on_both_backends("a_second_add_steps", |url| async move {
        let journal = open(&url).await;
        let run = journal
            .start_run(&new_run("web1"))
            .await
            .expect("start_run");
        let first = vec![new_step("create", "Domain/a.test", None); 2];
        journal.add_steps(run, &first).await.expect("add_steps");
        let later = journal
            .add_steps(run, &[new_step("update", "Domain/b.test", None)])
            .await
            .expect("add_steps");

        let (_, records) = journal
            .get_run(run)
            .await
            .expect("get_run")
            .expect("the run exists");
        let seqs: Vec<_> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [0, 1, 2]);
        assert_eq!(records[2].id, later[0]);
    })
    .await;
}

#[tokio::test]
async fn owned_objects_are_upserted_and_removed_per_node() {
    on_both_backends("owned_objects", |url| async move {
        let journal = open(&url).await;
        let web = owned("file:/srv/www/acme", "Site/acme", true);
        let conf = owned("file:/etc/nginx/acme.conf", "Domain/acme.test", false);
        journal
            .set_owned("web1", &[web.clone(), conf.clone()], &[])
            .await
            .expect("set_owned");
        journal
            .set_owned("web2", std::slice::from_ref(&conf), &[])
            .await
            .expect("set_owned");
        assert_eq!(
            journal.owned("web1").await.expect("owned"),
            [conf.clone(), web.clone()]
        );

        let moved = owned("file:/srv/www/acme", "Site/acme-renamed", false);
        journal
            .set_owned(
                "web1",
                std::slice::from_ref(&moved),
                std::slice::from_ref(&conf.object),
            )
            .await
            .expect("set_owned");
        assert_eq!(
            journal.owned("web1").await.expect("owned"),
            std::slice::from_ref(&moved)
        );

        // An object both added and removed in one call ends up not owned.
        let both = owned("file:/tmp/both", "Domain/both.test", false);
        journal
            .set_owned(
                "web1",
                std::slice::from_ref(&both),
                std::slice::from_ref(&both.object),
            )
            .await
            .expect("set_owned");
        assert_eq!(journal.owned("web1").await.expect("owned"), [moved]);

        assert_eq!(journal.owned("web2").await.expect("owned"), [conf]);
        assert!(journal.owned("web3").await.expect("owned").is_empty());
    })
    .await;
}

#[tokio::test]
async fn certificate_records_are_upserted_per_node_and_domain() {
    on_both_backends("certificate_records", |url| async move {
        let journal = open(&url).await;
        let failed = supercp_audit::CertRecord {
            domain: "a.test".into(),
            failures: 2,
            last_error: Some("urn:ietf:params:acme:error:rejectedIdentifier".into()),
            next_attempt: Some(1_000_600_000),
            updated_at: 1_000_000_000,
            ..Default::default()
        };
        journal
            .record_certificates("web1", std::slice::from_ref(&failed))
            .await
            .expect("record");
        let got = journal.certificates("web1").await.expect("read");
        assert_eq!(got.get("a.test"), Some(&failed));
        assert!(journal.certificates("web2").await.expect("read").is_empty());
        let issued = supercp_audit::CertRecord {
            domain: "a.test".into(),
            serial: Some("0a1b".into()),
            not_after: Some(1_900_000_000),
            issued_at: Some(1_000_700_000),
            updated_at: 1_000_700_000,
            ..Default::default()
        };
        journal
            .record_certificates("web1", std::slice::from_ref(&issued))
            .await
            .expect("record");
        let got = journal.certificates("web1").await.expect("read");
        assert_eq!(got.len(), 1);
        assert_eq!(
            got.get("a.test"),
            Some(&issued),
            "replaced, failures cleared"
        );
        journal
            .forget_certificates("web1", &["a.test".to_owned()])
            .await
            .expect("forget");
        assert!(journal.certificates("web1").await.expect("read").is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_postgres_password_never_appears_in_an_open_error() {
    let url = format!("postgres://alice:s3cret-pw@127.0.0.1:{}/audit", free_port());

    let err = Journal::open(&url)
        .await
        .expect_err("nothing listens on that port");

    assert!(matches!(err, AuditError::Open { .. }), "{err:?}");
    let text = error_chain(&err);
    assert!(text.contains("postgres://alice:***@127.0.0.1:"), "{text}");
    assert!(!text.contains("s3cret-pw"), "{text}");
    assert!(!format!("{err:?}").contains("s3cret-pw"), "{err:?}");
}

#[tokio::test]
async fn an_unsupported_url_scheme_is_refused_without_its_password() {
    let err = Journal::open("mysql://root:hunter2@localhost/audit")
        .await
        .expect_err("mysql is not supported");

    assert!(matches!(err, AuditError::UnsupportedUrl { .. }), "{err:?}");
    assert!(!error_chain(&err).contains("hunter2"), "{err}");
}

#[tokio::test]
async fn a_plain_file_path_opens_a_sqlite_journal_and_creates_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.db");
    let path_text = path.to_str().expect("temp paths are UTF-8");

    let journal = open(path_text).await;
    assert_eq!(journal.backend_name(), "sqlite");
    assert!(path.is_file(), "{} was not created", path.display());
    let run = journal
        .start_run(&new_run("web1"))
        .await
        .expect("start_run");
    journal.close().await;

    let journal = open(&format!("sqlite:{path_text}")).await;
    assert_eq!(ids(&journal.list_runs(1).await.expect("list_runs")), [run]);
}

/// Runs `body` with the URL of a fresh SQLite file, then of a fresh PostgreSQL database (when
/// PostgreSQL is installed; under `CI=true` it must be).
async fn on_both_backends<F, Fut>(test: &str, body: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    body(format!("sqlite:{}", dir.path().join("audit.db").display())).await;

    let Some(pg) = Postgres::start(test) else {
        return;
    };
    let url = pg.create_database("audit");
    body(url).await;
}

async fn open(url: &str) -> Journal {
    let journal = Journal::open(url)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {}", error_chain(&e)));
    let expected = if url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(journal.backend_name(), expected);
    journal
}

fn new_run(node: &str) -> NewRun {
    NewRun {
        node: node.into(),
        actor: "root".into(),
        repo: "/srv/repo".into(),
        git_commit: None,
        git_author: None,
        git_dirty: None,
        git_message: None,
        git_time: None,
        trigger: "cli".into(),
        summary: "1 to create, 0 to update, 0 to delete".into(),
        pid: 1234,
    }
}

/// A step; `n` adds an origin line and, for even `n`, previous content.
fn new_step(action: &str, resource: &str, n: Option<usize>) -> NewStep {
    let line = n.map_or(1, |n| n + 1);
    NewStep {
        resource: resource.into(),
        origin: format!("sites/acme.yaml:{line}:1"),
        object: format!("file:/etc/nginx/sites-enabled/{resource}.conf"),
        action: action.into(),
        before_hash: None,
        after_hash: Some(format!("sha256:{resource}")),
        before_content: n.filter(|n| n % 2 == 0).map(|n| n.to_string().into_bytes()),
    }
}

fn done(id: i64) -> StepResult {
    StepResult {
        id,
        status: StepStatus::Done,
        after_hash: None,
        log: vec!["ok".into()],
        started_at: 30,
        finished_at: 40,
    }
}

fn owned(object: &str, resource: &str, tenant_data: bool) -> OwnedObject {
    OwnedObject {
        object: object.into(),
        resource: resource.into(),
        tenant_data,
        anchor: "/srv".into(),
        deletion_policy: tenant_data.then(|| "Retain".into()),
        gate: (!tenant_data).then(|| "nginx".into()),
    }
}

fn ids(runs: &[RunRecord]) -> Vec<i64> {
    runs.iter().map(|r| r.id).collect()
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds fit in i64")
}

#[tokio::test]
async fn several_processes_opening_a_new_sqlite_journal_at_once_all_succeed() {
    // The agent and `supercp audit` may open a journal that does not exist yet at the same
    // moment: each runs the migrations, and none may fail on a migration the other applied.
    for round in 0..5 {
        let dir = tempfile::tempdir().expect("tmp");
        let url = format!("sqlite:{}", dir.path().join("audit.db").display());
        let (a, b, c, d) = tokio::join!(
            Journal::open(&url),
            Journal::open(&url),
            Journal::open(&url),
            Journal::open(&url)
        );
        for opened in [a, b, c, d] {
            opened.unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
}
