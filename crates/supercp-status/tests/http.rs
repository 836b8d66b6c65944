//! The status page over HTTP, as a client sees it: a real server on 127.0.0.1 over a real
//! SQLite journal filled through the audit API, read with a plain HTTP/1.1 client.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    data_paths, html_paths, now_ms, percent, request, Server, COMMIT_APPLIED, COMMIT_CURRENT,
    COMMIT_TIME, EVIL, EVIL_ESCAPED, NODE, OBSERVED_AT, TOKEN,
};
use serde_json::Value;
use supercp_audit::Journal;
use supercp_status::{serve, Limits, NodeInfo, Shared, StatusConfig, StatusError};

#[test]
fn the_overview_shows_node_commits_last_run_resources_and_agent_state() {
    let server = Server::start(None);
    let page = server.ok("/");
    for expected in [
        "<meta http-equiv=\"refresh\" content=\"10\">",
        NODE,
        "<span class=tag>web</span> <span class=tag>dns</span>",
        COMMIT_APPLIED,
        COMMIT_CURRENT,
        // The last run is this node's newest (the failed one), not web2's newer run.
        &format!("<a href=\"/runs/{0}\">#{0}</a>", server.runs.failed),
        "<span class=\"badge failed\">failed</span>",
        " UTC",
        "Next drift scan",
        // Domain: 1 resource, 2 objects; Tenant: 2 resources (acme and the evil one), 3 objects.
        "<a href=\"/resources?kind=Domain\">Domain</a></td><td class=num>1</td><td class=num>2</td>",
        "<a href=\"/resources?kind=Tenant\">Tenant</a></td><td class=num>2</td><td class=num>3</td>",
        &format!("apply failed: {EVIL_ESCAPED}"),
        &format!("gate nginx check failed: {EVIL_ESCAPED}"),
    ] {
        assert!(page.contains(expected), "missing `{expected}` in\n{page}");
    }
    assert!(!page.contains(&format!("/runs/{}\"", server.runs.other_node)));
}

#[test]
fn the_run_list_is_this_nodes_runs_newest_first() {
    let server = Server::start(None);
    let page = server.ok("/runs");
    let r = server.runs;
    let positions: Vec<usize> = [r.failed, r.drift_clean, r.drift_changed, r.applied]
        .iter()
        .map(|id| {
            page.find(&format!("href=\"/runs/{id}\""))
                .unwrap_or_else(|| panic!("run {id} missing from\n{page}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(!page.contains(&format!("href=\"/runs/{}\"", r.other_node)));
    assert!(!page.contains("other-node-run"));
    assert!(page.contains("no changes"));
    assert!(page.contains(&COMMIT_APPLIED[..12]));
}

#[test]
fn a_run_page_shows_every_step_with_status_timing_object_resource_origin_and_log() {
    let server = Server::start(None);
    let page = server.ok(&format!("/runs/{}", server.runs.applied));
    for expected in [
        "<span class=\"badge succeeded\">succeeded</span>",
        "Steps (5)",
        "<code>user:acme</code>",
        "<code>dir:/srv/homes/acme</code>",
        "<code>dir:/srv/homes/acme/domains/acme.test</code>",
        "<code>file:/etc/nginx/sites-enabled/acme.test.conf</code>",
        &format!("<code>dir:/srv/homes/{EVIL_ESCAPED}</code>"),
        "<a href=\"/resources/Domain/acme.test\">Domain/acme.test</a>",
        &format!("<a href=\"/resources/Tenant/{}\">", percent(EVIL)),
        "<code>tenants/acme.yaml:9:1</code>",
        "<span class=\"badge done\">done</span>",
        "40 ms</td><td class=num>1</td></tr>",
        "applied step 4\nlog line ",
        &format!("log line {EVIL_ESCAPED}"),
        &format!("add acme {EVIL_ESCAPED}"),
        "Ada &lt;ada@example.test&gt;",
        "<dt>Committed</dt><dd>2023-11-14 22:13:20 UTC</dd>",
    ] {
        assert!(page.contains(expected), "missing `{expected}` in\n{page}");
    }

    let failed = server.ok(&format!("/runs/{}", server.runs.failed));
    assert!(failed.contains("<span class=\"badge failed\">failed</span>"));
    assert!(failed.contains(&format!("nginx: [emerg] {EVIL_ESCAPED}")));

    let clean = server.ok(&format!("/runs/{}", server.runs.drift_clean));
    assert!(clean.contains("Steps (0)"), "{clean}");
}

#[test]
fn resources_are_listed_and_filtered_by_kind_and_tenant() {
    let server = Server::start(None);
    let all = server.ok("/resources");
    assert!(all.contains("3 of 3 resources"), "{all}");
    assert!(all.contains("<a href=\"/resources/Domain/acme.test\">acme.test</a>"));
    assert!(all.contains("<a href=\"/resources/Tenant/acme\">acme</a>"));
    assert!(all.contains(EVIL_ESCAPED));

    let domains = server.ok("/resources?kind=Domain");
    assert!(domains.contains("1 of 3 resources"), "{domains}");
    assert!(domains.contains("<option value=\"Domain\" selected>"));
    assert!(!domains.contains("/resources/Tenant/acme\""));

    let acme = server.ok("/resources?tenant=acme");
    assert!(acme.contains("2 of 3 resources"), "{acme}");
    assert!(acme.contains("/resources/Domain/acme.test\""));
    assert!(acme.contains("/resources/Tenant/acme\""));
    assert!(!acme.contains(&percent(EVIL)));

    let nothing = server.ok("/resources?kind=Domain&tenant=nobody");
    assert!(nothing.contains("0 of 3 resources"), "{nothing}");
    // An empty filter, as the form sends it, filters nothing.
    assert!(server
        .ok("/resources?kind=&tenant=")
        .contains("3 of 3 resources"));
}

#[test]
fn a_resource_page_shows_its_objects_and_the_last_steps_that_touched_it() {
    let server = Server::start(None);
    let page = server.ok("/resources/Domain/acme.test");
    let r = server.runs;
    for expected in [
        "<h1>Domain/acme.test</h1>",
        "Tenant <a href=\"/resources?tenant=acme\">acme</a>",
        "<td><code>file:/etc/nginx/sites-enabled/acme.test.conf</code></td><td><code>/etc/nginx</code></td><td>no</td><td></td><td>nginx</td>",
        "<td><code>dir:/srv/homes/acme/domains/acme.test</code></td><td><code>/srv/homes</code></td><td>yes</td><td>Retain</td>",
        "put back by the drift scan",
    ] {
        assert!(page.contains(expected), "missing `{expected}` in\n{page}");
    }
    // Newest run first: the failed run, then the drift run, then the first apply.
    let order: Vec<usize> = [r.failed, r.drift_changed, r.applied]
        .iter()
        .map(|id| {
            page.find(&format!("<td><a href=\"/runs/{id}\">"))
                .unwrap_or_else(|| panic!("run {id} missing from\n{page}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");

    let evil = server.ok(&format!("/resources/Tenant/{}", percent(EVIL)));
    assert!(
        evil.contains(&format!("<h1>Tenant/{EVIL_ESCAPED}</h1>")),
        "{evil}"
    );

    assert_eq!(server.get("/resources/Domain/nothing.test").status, 404);
}

#[test]
fn a_resource_page_shows_what_the_agent_last_observed_of_each_object() {
    let server = Server::start(None);
    let page = server.ok("/resources/Domain/acme.test");
    assert_eq!(OBSERVED_AT, 1_700_000_060_000);
    for expected in [
        "<th>Gate</th><th>Observed</th>",
        // Observed as desired, then the failed run's step touched it: not "as desired" any more.
        &format!(
            "<td>nginx</td><td><span class=\"badge failed\">failed</span> <span class=err>update in <a href=\"/runs/{0}\">run #{0}</a> after this observation; not observed since</span><br><span class=err>nginx: [emerg] {EVIL_ESCAPED}</span><br>before it: as desired<br>file, mode 0644, owner 0:0, content as desired<br><span class=muted>2023-11-14 22:14:20 UTC (",
            server.runs.failed
        ),
        "<td>Retain</td><td></td><td><span class=\"badge failed\">differs</span> <span class=err>mode 755 → 750</span><br>directory, mode 0755, owner 1001:1001<br>",
    ] {
        assert!(page.contains(expected), "missing `{expected}` in\n{page}");
    }

    assert!(!page.contains("badge done\">as desired"), "{page}");

    let tenant = server.ok("/resources/Tenant/acme");
    assert!(
        tenant.contains(
            "<td><code>user:acme</code></td><td><code></code></td><td>yes</td><td></td><td></td><td><span class=muted>not observed since the agent started</span></td>"
        ),
        "{tenant}"
    );

    let evil = server.ok(&format!("/resources/Tenant/{}", percent(EVIL)));
    assert!(
        evil.contains(&format!(
            "<span class=err>refused: a symlink at /srv/homes/{EVIL_ESCAPED}</span><br>blocked<br>"
        )),
        "{evil}"
    );
}

#[test]
fn a_newer_observation_than_the_failed_step_shows_as_it_is() {
    // What the agent shows once a failed run reports what it observed: the file refused
    // because a symlink is in its place, observed after the failed step.
    let server = Server::start(None);
    let nginx_id = "file:/etc/nginx/sites-enabled/acme.test.conf";
    {
        let mut agent = server.agent.write().expect("the snapshot lock");
        let mut observed = (*agent.observed).clone();
        observed.insert(
            nginx_id.to_owned(),
            supercp_core::Observation {
                at_ms: now_ms(),
                found: "blocked",
                mode: None,
                owner: None,
                content_matches: None,
                differs: Some("refused: a symlink at the path".into()),
                notes: Vec::new(),
            },
        );
        agent.observed = Arc::new(observed);
    }
    let page = server.ok("/resources/Domain/acme.test");
    assert!(
        page.contains("<td>nginx</td><td><span class=\"badge failed\">differs</span> <span class=err>refused: a symlink at the path</span><br>blocked<br>"),
        "{page}"
    );
    assert!(!page.contains("after this observation"), "{page}");
    let domain: Value =
        serde_json::from_str(&server.ok("/api/v1/resources/Domain/acme.test")).expect("json");
    assert_eq!(domain["observed"][nginx_id]["found"], "blocked");
    assert!(domain["superseded"].get(nginx_id).is_none(), "{domain}");
}

#[test]
fn the_json_api_answers_what_the_pages_show() {
    let server = Server::start(None);
    let r = server.runs;
    let json = |path: &str| -> Value {
        let reply = server.get(path);
        assert_eq!(reply.status, 200, "GET {path}: {reply:#?}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("supercp-format-version"), Some("1"), "{path}");
        serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{path}: {e}\n{}", reply.body))
    };

    let status = json("/api/v1/status");
    assert_eq!(status["format_version"], 1);
    assert_eq!(status["node"], NODE);
    assert_eq!(status["roles"], serde_json::json!(["web", "dns"]));
    assert_eq!(status["agent"]["current_commit"], COMMIT_CURRENT);
    assert_eq!(status["agent"]["last_applied_commit"], COMMIT_APPLIED);
    assert_eq!(
        status["agent"]["last_error"],
        format!("apply failed: {EVIL}")
    );
    assert_eq!(status["last_run"]["id"], r.failed);
    assert_eq!(status["last_run"]["outcome"], "failed");
    assert_eq!(status["resources"]["Domain"]["resources"], 1);
    assert_eq!(status["resources"]["Tenant"]["objects"], 3);
    assert_eq!(status["owned_objects"], 5);

    let runs = json("/api/v1/runs");
    let ids: Vec<i64> = runs
        .as_array()
        .expect("an array of runs")
        .iter()
        .map(|run| run["id"].as_i64().expect("an id"))
        .collect();
    assert_eq!(ids, [r.failed, r.drift_clean, r.drift_changed, r.applied]);

    let run = json(&format!("/api/v1/runs/{}", r.applied));
    assert_eq!(run["format_version"], 1);
    assert_eq!(run["run"]["outcome"], "succeeded");
    assert_eq!(run["run"]["git_message"], format!("add acme {EVIL}"));
    let steps = run["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 5);
    assert_eq!(steps[4]["resource"], format!("Tenant/{EVIL}"));
    assert_eq!(steps[4]["log"][1], format!("log line {EVIL}"));
    assert_eq!(steps[0]["status"], "done");

    let resources = json("/api/v1/resources?kind=Tenant");
    let names: Vec<&str> = resources
        .as_array()
        .expect("an array of resources")
        .iter()
        .map(|r| r["name"].as_str().expect("a name"))
        .collect();
    // Sorted by kind, then name, bytewise: `<` sorts before `a`.
    assert_eq!(names, [EVIL, "acme"]);

    let domain = json("/api/v1/resources/Domain/acme.test");
    assert_eq!(domain["owned"]["tenant"], "acme");
    assert_eq!(domain["owned"]["objects"].as_array().map(Vec::len), Some(2));
    assert_eq!(domain["format_version"], 1);
    let nginx_id = "file:/etc/nginx/sites-enabled/acme.test.conf";
    let nginx = &domain["observed"][nginx_id];
    assert_eq!(nginx["found"], "file");
    assert_eq!(nginx["content_matches"], true);
    assert_eq!(nginx["differs"], Value::Null);
    // ... and the failed run's step since, which makes that observation stale.
    let since = &domain["superseded"][nginx_id];
    assert_eq!(since["run_id"], r.failed, "{domain}");
    assert_eq!(since["status"], "failed");
    assert_eq!(since["action"], "update");
    assert_eq!(since["last_log"], format!("nginx: [emerg] {EVIL}"));
    let superseded = domain["superseded"].as_object().expect("a map");
    assert_eq!(superseded.len(), 1, "only the nginx file: {domain}");
    let root = &domain["observed"]["dir:/srv/homes/acme/domains/acme.test"];
    assert_eq!(root["differs"], "mode 755 → 750");
    assert_eq!(root["at_ms"], OBSERVED_AT);
    // The overview's JSON leaves the per-object map out.
    assert!(json("/api/v1/status")["agent"].get("observed").is_none());
    assert_eq!(domain["last_steps"].as_array().map(Vec::len), Some(4));

    for missing in [
        format!("/api/v1/runs/{}", r.other_node),
        "/api/v1/runs/999999".into(),
        "/api/v1/runs/not-a-number".into(),
        "/api/v1/nothing".into(),
    ] {
        let reply = server.get(&missing);
        assert_eq!(reply.status, 404, "GET {missing}: {reply:#?}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
}

#[test]
fn metrics_are_in_the_prometheus_text_format() {
    let server = Server::start(None);
    let before_s = now_ms() / 1000;
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = reply.body;
    let after_s = now_ms() / 1000;
    for line in [
        "# TYPE supercp_commit_age_seconds gauge",
        "# TYPE supercp_runs_total counter",
        "supercp_runs_total{outcome=\"succeeded\"} 3",
        "supercp_runs_total{outcome=\"failed\"} 1",
        "supercp_runs_total{outcome=\"interrupted\"} 0",
        "supercp_runs_total{outcome=\"running\"} 0",
        "# TYPE supercp_run_duration_seconds histogram",
        "supercp_run_duration_seconds_bucket{le=\"+Inf\"} 4",
        "supercp_run_duration_seconds_count 4",
        "# TYPE supercp_last_success_timestamp_seconds gauge",
        "supercp_resources{kind=\"Domain\"} 1",
        "supercp_resources{kind=\"Tenant\"} 2",
        "supercp_drift_runs_total 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    // The newest successful run's commit was committed at COMMIT_TIME.
    let age: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("supercp_commit_age_seconds "))
        .unwrap_or_else(|| panic!("no commit age in\n{text}"))
        .parse()
        .expect("a whole number of seconds");
    assert!(
        (before_s - COMMIT_TIME..=after_s - COMMIT_TIME).contains(&age),
        "age {age} for a commit at {COMMIT_TIME}, asked between {before_s} and {after_s}"
    );
    // Every sample line is `name{labels} value` with a number for value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').expect("a sample");
        assert!(value.parse::<f64>().is_ok(), "bad sample `{line}`");
    }
    // A second scrape answers the same (the drift memory is only a cache).
    assert!(server
        .ok("/metrics")
        .lines()
        .any(|l| l == "supercp_drift_runs_total 1"));
}

#[test]
fn healthz_and_head_answer() {
    let server = Server::start(None);
    assert_eq!(server.ok("/healthz"), "ok");
    let head = request(server.addr, "HEAD", "/", &[]);
    assert_eq!(head.status, 200, "{head:#?}");
    assert_eq!(head.body, "");
    assert_eq!(server.get("/no/such/page").status, 404);
}

#[test]
fn every_method_but_get_and_head_is_refused_with_405_and_allow() {
    let server = Server::start(None);
    let mut paths = html_paths(&server.runs);
    paths.extend(data_paths(&server.runs));
    paths.push("/no/such/page".into());
    for path in &paths {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let reply = request(server.addr, method, path, &[]);
            assert_eq!(reply.status, 405, "{method} {path}: {reply:#?}");
            assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
    }
}

#[test]
fn no_answer_holds_a_raw_script_tag_from_the_journal() {
    let server = Server::start(None);
    let mut paths = html_paths(&server.runs);
    paths.extend(data_paths(&server.runs));
    for path in &paths {
        let body = server.ok(path);
        let lower = body.to_ascii_lowercase();
        assert!(!lower.contains("<script"), "raw <script in {path}:\n{body}");
        assert!(
            !lower.contains("</script"),
            "raw </script in {path}:\n{body}"
        );
    }
    for path in html_paths(&server.runs) {
        let reply = server.get(&path);
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        let csp = reply.header("content-security-policy").unwrap_or("");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
    }
    // Where the journal's strings show, they show escaped.
    let run = server.ok(&format!("/runs/{}", server.runs.applied));
    assert!(run.contains(&format!("log line {EVIL_ESCAPED}")));
    // A 404 repeats the path it was asked for, escaped too.
    let missing = server.get(&format!("/{}", percent(EVIL)));
    assert_eq!(missing.status, 404);
    assert!(!missing.body.to_ascii_lowercase().contains("<script"));
}

#[test]
fn certificates_that_fail_show_with_the_cas_error_on_the_overview_and_in_metrics() {
    let server = Server::start(None);
    let page = server.ok("/");
    assert!(page.contains("<h2>Certificates</h2>"), "{page}");
    assert!(page.contains("1 issued, 1 failing."), "{page}");
    assert!(page.contains("refused.test"), "{page}");
    assert!(
        page.contains(&format!("rejectedIdentifier {EVIL_ESCAPED}")),
        "{page}"
    );
    let api: serde_json::Value = serde_json::from_str(&server.ok("/api/v1/status")).expect("json");
    let certs = api["certificates"].as_array().expect("certificates");
    assert!(
        certs
            .iter()
            .any(|c| c["domain"] == "refused.test" && c["failures"] == 2),
        "{api:#}"
    );
    let metrics = server.ok("/metrics");
    assert!(
        metrics.contains("supercp_certificates{state=\"failing\"} 1"),
        "{metrics}"
    );
}

#[test]
fn with_a_token_every_request_but_healthz_needs_it() {
    let server = Server::start(Some(TOKEN));
    let mut paths = html_paths(&server.runs);
    paths.extend(data_paths(&server.runs));
    paths.retain(|p| p != "/healthz");
    let good = format!("Bearer {TOKEN}");
    for path in &paths {
        let none = request(server.addr, "GET", path, &[]);
        assert_eq!(none.status, 401, "GET {path} without a token: {none:#?}");
        assert_eq!(
            none.header("www-authenticate"),
            Some("Bearer realm=\"supercp-status\"")
        );
        assert!(!none.body.contains(TOKEN));
        for wrong in [
            "Bearer nope",
            "Basic czNjcmV0LXN0YXR1cy10b2tlbg==",
            TOKEN,
            "Bearer s3cret-status-token-and-more",
        ] {
            let reply = request(server.addr, "GET", path, &[("Authorization", wrong)]);
            assert_eq!(reply.status, 401, "GET {path} with `{wrong}`");
        }
        let ok = request(server.addr, "GET", path, &[("Authorization", &good)]);
        assert_eq!(ok.status, 200, "GET {path} with the token: {ok:#?}");
        assert!(!ok.body.contains(TOKEN), "{path} shows the token");
    }
    assert_eq!(
        request(
            server.addr,
            "GET",
            "/",
            &[("Authorization", "bearer s3cret-status-token")]
        )
        .status,
        200,
        "the scheme is case-insensitive"
    );
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/no/such/page").status, 401);
}

#[test]
fn the_agent_snapshot_is_read_at_every_request() {
    let server = Server::start(None);
    server.agent.write().expect("the snapshot lock").last_error =
        Some("fetch failed: remote unreachable".into());
    assert!(server.ok("/").contains("fetch failed: remote unreachable"));
}

#[test]
fn serve_refuses_a_non_loopback_bind_without_a_token() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = open(&runtime, &dir);
    for bind in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let config = StatusConfig {
            bind: bind.parse().expect("an address"),
            token: None,
            open_on_loopback: true,
            limits: Limits::default(),
        };
        let result = runtime.block_on(serve(config, journal.clone(), node(), agent()));
        match result {
            Err(StatusError::TokenRequired { .. }) => {}
            other => panic!("{bind}: expected TokenRequired, got {other:?}"),
        }
    }
    let message = StatusError::TokenRequired {
        bind: "0.0.0.0:8080".parse().expect("an address"),
    }
    .to_string();
    assert!(message.contains("set a bearer token"), "{message}");
}

#[test]
fn serve_listens_on_loopback_and_answers() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = open(&runtime, &dir);
    let port = supercp_testkit::services::free_port();
    let bind = format!("127.0.0.1:{port}").parse().expect("an address");
    let task = runtime.spawn(serve(
        StatusConfig {
            bind,
            token: Some(TOKEN.into()),
            open_on_loopback: false,
            limits: Limits::default(),
        },
        journal,
        node(),
        agent(),
    ));
    // Wait until it listens (the task binds asynchronously), then ask.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(bind).is_err() {
        assert!(!task.is_finished(), "serve stopped early");
        assert!(Instant::now() < deadline, "serve never listened on {bind}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(request(bind, "GET", "/healthz", &[]).body, "ok");
    assert_eq!(request(bind, "GET", "/", &[]).status, 401);
    let overview = request(
        bind,
        "GET",
        "/",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("No run recorded for this node yet."));
    task.abort();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn open(runtime: &tokio::runtime::Runtime, dir: &tempfile::TempDir) -> Arc<Journal> {
    let path = dir.path().join("audit.db");
    Arc::new(
        runtime
            .block_on(Journal::open(path.to_str().expect("utf-8 path")))
            .expect("open the journal"),
    )
}

fn node() -> NodeInfo {
    NodeInfo {
        node: NODE.into(),
        roles: vec![],
    }
}

fn agent() -> Shared {
    Shared::default()
}
