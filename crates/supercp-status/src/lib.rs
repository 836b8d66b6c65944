//! The read-only status page of one node: HTML pages, JSON and Prometheus metrics over the audit
//! journal and what the agent knows right now.
//!
//! It owns the routes, their rendering and the HTTP rules around them (bearer token, GET and
//! HEAD only, security headers, connection cap and timeouts). It does not own the journal (`supercp-audit`), the agent loop
//! that fills [`AgentSnapshot`] (`supercp-agent`), or any way to change the node: nothing here
//! writes.
//!
//! | route | what |
//! | --- | --- |
//! | `/` | overview: node, roles, commits, last run, owned resources by kind, next scan, last error |
//! | `/runs`, `/runs/{id}` | the newest runs; one run with every step |
//! | `/resources?kind=&tenant=`, `/resources/{kind}/{name}` | owned resources; one resource's objects, what the agent last observed of each, and last steps |
//! | `/api/v1/status`, `/api/v1/resources`, `/api/v1/resources/{kind}/{name}`, `/api/v1/runs`, `/api/v1/runs/{id}` | the same as JSON: the versioned mirrors of [`api`] |
//! | `/metrics` | Prometheus text format |
//! | `/healthz` | `ok`, without the token |
//!
//! # Guarantees
//! - Every method but GET and HEAD gets 405 with `Allow: GET, HEAD`, on every path.
//! - With a token, every request but `GET /healthz` needs `Authorization: Bearer TOKEN`, or
//!   gets 401; the token is compared in constant time and never printed (not even by `Debug`).
//! - [`serve`] refuses to listen on a non-loopback address without a token, and on loopback
//!   without one unless [`StatusConfig::open_on_loopback`] (tenants' code reaches loopback).
//! - [`serve`] holds at most [`connection_cap`] connections and closes those that send no
//!   request head in time or stay idle ([`Limits`]); `/healthz` answers while thousands of
//!   idle connections are opened against it.
//! - Every journal or agent string is HTML-escaped on the pages; the JSON escapes `<`, `>` and
//!   `&` as `\u003c`, `\u003e`, `\u0026`, so no response holds a raw `<script>` from either.
//! - An object that a step touched after its last observation (a failed or partial run) is
//!   shown as that step left it, never as its older observation ("as desired") says.
//! - No file content reaches a page: an object's observation says only whether its content
//!   matches ([`Observation`]'s guarantee).
//! - Every read is bounded: runs come from the newest [`RUN_WINDOW`] runs of the journal, and a
//!   resource's last steps from the newest [`RESOURCE_SCAN_RUNS`] runs of the node.
//!
//! # Assumptions
//! - The journal holds no secret (it records hashes, paths, log lines and commit metadata).
//! - `Journal::list_runs` lists the runs of every node; the pages keep those of this node, so in
//!   a fleet sharing one database, a node that ran nothing among the newest [`RUN_WINDOW`] runs
//!   shows none.

pub mod api;
mod html;
mod metrics;
mod model;
mod server;
mod time;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use supercp_audit::{AuditError, Journal, Outcome, RunId, RunRecord, StepRecord, StepStatus};
use supercp_core::Observation;

use crate::model::{Filter, Resource, Status};

pub use crate::html::escape;
pub use crate::server::{connection_cap, Limits};

/// Where the status page listens, the bearer token it asks for, and its connection limits.
#[derive(Clone)]
pub struct StatusConfig {
    pub bind: SocketAddr,
    /// Bearer token every request must carry; required when `bind` is not loopback, and on
    /// loopback unless `open_on_loopback`.
    pub token: Option<String>,
    /// Serve a loopback `bind` without a token. Only where no tenant code runs: on a node that
    /// hosts tenants, every tenant's PHP reaches 127.0.0.1 too.
    pub open_on_loopback: bool,
    pub limits: Limits,
}

/// The node the page reports on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub node: String,
    pub roles: Vec<String>,
}

/// What the agent knows right now (it updates it; the page reads it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentSnapshot {
    /// The commit checked out now.
    pub current_commit: Option<String>,
    /// The last commit applied successfully.
    pub last_applied_commit: Option<String>,
    /// When the next drift scan is due, unix milliseconds.
    pub next_scan_unix_ms: Option<i64>,
    /// The last error of the agent loop, cleared by a successful cycle.
    pub last_error: Option<String>,
    /// What the agent's runs last observed of each object it renders, by object id
    /// (`file:/…`): no file content, only whether it matches. Left out of `/api/v1/status`
    /// (a node has tens of thousands); a resource's page and JSON show its objects'.
    #[serde(skip)]
    pub observed: Arc<HashMap<String, Observation>>,
}

/// The agent's snapshot, shared between the agent (writer) and the page (reader).
pub type Shared = Arc<RwLock<AgentSnapshot>>;

/// The response header of every JSON answer holding [`api::FORMAT_VERSION`].
pub const FORMAT_VERSION_HEADER: &str = "supercp-format-version";

/// Runs read from the journal per request (`Journal::list_runs`), before keeping this node's.
pub const RUN_WINDOW: i64 = 1000;
/// Runs shown on `/runs` and returned by `/api/v1/runs`.
pub const RUNS_SHOWN: usize = 50;
/// Newest runs of the node whose steps are searched for a resource's last steps.
pub const RESOURCE_SCAN_RUNS: usize = 20;
/// Steps shown for one resource.
pub const RESOURCE_STEPS_SHOWN: usize = 50;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "the status page would listen on {bind}, which is not loopback, without a token: set a \
         bearer token or bind to 127.0.0.1"
    )]
    TokenRequired { bind: SocketAddr },
    #[error(
        "the status page would listen on {bind} without a token, and loopback is no trust \
         boundary where tenants run code (their PHP reaches 127.0.0.1 too): set a bearer token, \
         or declare loopback open only where no tenant code runs"
    )]
    TokenRequiredOnLoopback { bind: SocketAddr },
    #[error("the status page token is empty: set a non-empty bearer token or none")]
    EmptyToken,
    #[error(
        "cannot listen on {bind} for the status page: is the address in use or not on this host?"
    )]
    Bind {
        bind: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl StatusConfig {
    /// Checks the config without listening: what [`serve`] checks first.
    ///
    /// # Errors
    /// [`StatusError::TokenRequired`] for a non-loopback `bind` without a token,
    /// [`StatusError::TokenRequiredOnLoopback`] for a loopback `bind` without a token unless
    /// `open_on_loopback`, [`StatusError::EmptyToken`] for an empty token.
    pub fn check(&self) -> Result<(), StatusError> {
        match self.token.as_deref() {
            Some("") => Err(StatusError::EmptyToken),
            None if !self.bind.ip().is_loopback() => {
                Err(StatusError::TokenRequired { bind: self.bind })
            }
            None if !self.open_on_loopback => {
                Err(StatusError::TokenRequiredOnLoopback { bind: self.bind })
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for StatusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusConfig")
            .field("bind", &self.bind)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("open_on_loopback", &self.open_on_loopback)
            .field("limits", &self.limits)
            .finish()
    }
}

/// The status page's routes over `journal`, for `node`.
///
/// With `token`, every request but `/healthz` needs `Authorization: Bearer TOKEN`; an empty
/// token lets no request through.
pub fn router(
    journal: Arc<Journal>,
    node: NodeInfo,
    agent: Shared,
    token: Option<String>,
) -> Router {
    let app = Arc::new(App {
        journal,
        node,
        agent,
        token,
        drift_changed: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/", get(overview))
        .route("/runs", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/resources", get(resources_page))
        .route("/resources/{kind}/{*name}", get(resource_page))
        .route("/api/v1/status", get(api_status))
        .route("/api/v1/runs", get(api_runs))
        .route("/api/v1/runs/{id}", get(api_run))
        .route("/api/v1/resources", get(api_resources))
        .route("/api/v1/resources/{kind}/{*name}", get(api_resource))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), authorize))
        .layer(middleware::from_fn(only_get_and_head))
        .layer(middleware::map_response(security_headers))
        .with_state(app)
}

/// Serves the status page on `config.bind` until the task is dropped, within
/// `config.limits` (the guarantees of [`Limits`]: a connection cap of at most
/// [`connection_cap`], a header-read and an idle timeout). Once listening, it never returns:
/// a failed accept (descriptors exhausted) is retried after a pause.
///
/// # Errors
/// What [`StatusConfig::check`] returns, before listening; [`StatusError::Bind`] when the
/// address cannot be bound.
pub async fn serve(
    config: StatusConfig,
    journal: Arc<Journal>,
    node: NodeInfo,
    agent: Shared,
) -> Result<(), StatusError> {
    config.check()?;
    let bind = config.bind;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| StatusError::Bind { bind, source })?;
    let local = listener.local_addr().unwrap_or(bind);
    let cap = connection_cap(config.limits.max_connections);
    tracing::info!(
        addr = %local,
        token = config.token.is_some(),
        max_connections = cap,
        "status page listening"
    );
    let app = router(journal, node, agent, config.token);
    server::run(listener, app, config.limits, cap).await;
    Ok(())
}

/// State shared by the handlers.
struct App {
    journal: Arc<Journal>,
    node: NodeInfo,
    agent: Shared,
    token: Option<String>,
    /// Whether a finished drift run completed a step; finished runs never change.
    drift_changed: Mutex<HashMap<RunId, bool>>,
}

type AppState = State<Arc<App>>;

/// A handler's failure, answered in the form of the route ([`Form`]).
enum Failure {
    Journal(AuditError),
    NotFound(String),
}

/// What a route answers: an HTML page, JSON, or plain text.
#[derive(Clone, Copy)]
enum Form {
    Page,
    Json,
    Text,
}

impl App {
    fn snapshot(&self) -> AgentSnapshot {
        self.agent
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The newest `limit` runs of this node, newest first, among the newest [`RUN_WINDOW`].
    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, AuditError> {
        let runs = self.journal.list_runs(RUN_WINDOW).await?;
        Ok(runs
            .into_iter()
            .filter(|r| r.node == self.node.node)
            .take(limit)
            .collect())
    }

    /// A run of this node and its steps.
    async fn run(&self, id: &str) -> Result<(RunRecord, Vec<StepRecord>), Failure> {
        let missing = || Failure::NotFound(format!("run {id} is not in the journal of this node"));
        let id: RunId = id.parse().map_err(|_| missing())?;
        match self.journal.get_run(id).await? {
            Some((run, steps)) if run.node == self.node.node => Ok((run, steps)),
            _ => Err(missing()),
        }
    }

    async fn resources(&self) -> Result<Vec<Resource>, AuditError> {
        Ok(model::group(self.journal.owned(&self.node.node).await?))
    }

    async fn status(&self) -> Result<Status, AuditError> {
        let last_run = self.runs(1).await?.into_iter().next();
        let resources = self.resources().await?;
        let fleet = model::fleet(&self.journal.list_runs(RUN_WINDOW).await?);
        Ok(Status {
            fleet,
            node: self.node.node.clone(),
            roles: self.node.roles.clone(),
            agent: self.snapshot(),
            last_run,
            owned_objects: resources.iter().map(|r| r.objects.len()).sum(),
            resources: model::count_by_kind(&resources),
            generated_at: time::now_ms(),
            certificates: self
                .journal
                .certificates(&self.node.node)
                .await?
                .into_values()
                .collect(),
        })
    }

    /// One resource (`None` when SuperCP owns nothing for it) and the steps that touched it in
    /// the newest [`RESOURCE_SCAN_RUNS`] runs of the node, newest first.
    ///
    /// # Errors
    /// [`Failure::NotFound`] when SuperCP owns nothing for it and no scanned step touched it.
    async fn resource(
        &self,
        resource: &str,
    ) -> Result<(Option<Resource>, Vec<StepRecord>), Failure> {
        let found = self
            .resources()
            .await?
            .into_iter()
            .find(|r| r.resource == resource);
        let mut steps = Vec::new();
        for run in self.runs(RESOURCE_SCAN_RUNS).await? {
            let Some((_, run_steps)) = self.journal.get_run(run.id).await? else {
                continue;
            };
            // Within a run, the latest step first too.
            steps.extend(
                run_steps
                    .into_iter()
                    .rev()
                    .filter(|s| s.resource == resource),
            );
            if steps.len() >= RESOURCE_STEPS_SHOWN {
                break;
            }
        }
        steps.truncate(RESOURCE_STEPS_SHOWN);
        if found.is_none() && steps.is_empty() {
            return Err(Failure::NotFound(format!(
                "resource {resource} owns nothing on this node and no recent run touched it"
            )));
        }
        Ok((found, steps))
    }

    fn page(&self, page: Result<String, Failure>) -> Response {
        match page {
            Ok(body) => html_page(body),
            Err(failure) => failure.respond(&self.node.node, Form::Page),
        }
    }

    fn api<T: Serialize>(&self, body: Result<T, Failure>) -> Response {
        match body {
            Ok(body) => json(&body),
            Err(failure) => failure.respond(&self.node.node, Form::Json),
        }
    }

    /// How many drift runs among `runs` completed a step. A finished run is read once and
    /// remembered; the memory keeps only runs still in `runs`, so it stays bounded.
    async fn drift_runs_changed(&self, runs: &[RunRecord]) -> Result<usize, AuditError> {
        let drift: Vec<&RunRecord> = runs.iter().filter(|r| r.trigger == "drift").collect();
        let mut changed: HashMap<RunId, bool> = {
            let known = self
                .drift_changed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            drift
                .iter()
                .filter_map(|r| known.get(&r.id).map(|&c| (r.id, c)))
                .collect()
        };
        let mut learned = Vec::new();
        for run in &drift {
            if changed.contains_key(&run.id) {
                continue;
            }
            let done = match self.journal.get_run(run.id).await? {
                Some((_, steps)) => steps.iter().any(|s| s.status == StepStatus::Done),
                None => false,
            };
            changed.insert(run.id, done);
            // A running run may still complete a step: read it again next time.
            if run.outcome != Outcome::Running {
                learned.push((run.id, done));
            }
        }
        let mut known = self
            .drift_changed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        known.extend(learned);
        known.retain(|id, _| changed.contains_key(id));
        Ok(changed.values().filter(|&&c| c).count())
    }
}

async fn overview(State(app): AppState) -> Response {
    let page = async { Ok(html::overview(&app.status().await?)) };
    app.page(page.await)
}

async fn runs_page(State(app): AppState) -> Response {
    let page = async {
        let runs = app.runs(RUNS_SHOWN).await?;
        Ok(html::runs(&app.node.node, &runs, RUNS_SHOWN))
    };
    app.page(page.await)
}

async fn run_page(State(app): AppState, Path(id): Path<String>) -> Response {
    let page = async {
        let (run, steps) = app.run(&id).await?;
        Ok(html::run(&app.node.node, &run, &steps))
    };
    app.page(page.await)
}

async fn resources_page(State(app): AppState, Query(filter): Query<Filter>) -> Response {
    let page = async {
        let all = app.resources().await?;
        let shown: Vec<&Resource> = all.iter().filter(|r| filter.matches(r)).collect();
        Ok(html::resources(&app.node.node, &all, &shown, &filter))
    };
    app.page(page.await)
}

async fn resource_page(
    State(app): AppState,
    Path((kind, name)): Path<(String, String)>,
) -> Response {
    let page = async {
        let resource = format!("{kind}/{name}");
        let (found, steps) = app.resource(&resource).await?;
        Ok(html::resource(
            &app.node.node,
            &resource,
            found.as_ref(),
            &app.snapshot().observed,
            &steps,
            RESOURCE_SCAN_RUNS,
            time::now_ms(),
        ))
    };
    app.page(page.await)
}

async fn api_status(State(app): AppState) -> Response {
    let body = async { Ok(api::Status::from(&app.status().await?)) };
    app.api(body.await)
}

async fn api_runs(State(app): AppState) -> Response {
    let body = async {
        let runs = app.runs(RUNS_SHOWN).await?;
        Ok(runs.iter().map(api::Run::from).collect::<Vec<_>>())
    };
    app.api(body.await)
}

async fn api_run(State(app): AppState, Path(id): Path<String>) -> Response {
    let body = async {
        let (run, steps) = app.run(&id).await?;
        Ok(api::RunDetail::new(&run, &steps))
    };
    app.api(body.await)
}

async fn api_resources(State(app): AppState, Query(filter): Query<Filter>) -> Response {
    let body = async {
        let all = app.resources().await?;
        Ok(all
            .iter()
            .filter(|r| filter.matches(r))
            .map(api::ResourceRow::from)
            .collect::<Vec<_>>())
    };
    app.api(body.await)
}

async fn api_resource(
    State(app): AppState,
    Path((kind, name)): Path<(String, String)>,
) -> Response {
    let body = async {
        let resource = format!("{kind}/{name}");
        let (owned, last_steps) = app.resource(&resource).await?;
        let all = app.snapshot().observed;
        let objects = owned.iter().flat_map(|r| &r.objects);
        let observed = objects
            .clone()
            .filter_map(|o| Some((o.object.clone(), all.get(&o.object)?.into())))
            .collect();
        let superseded = objects
            .filter_map(|o| {
                let step = model::superseding(&o.object, all.get(&o.object), &last_steps)?;
                Some((o.object.clone(), step.into()))
            })
            .collect();
        Ok(api::ResourceDetail {
            format_version: api::FORMAT_VERSION,
            resource,
            owned: owned.as_ref().map(api::Resource::from),
            observed,
            superseded,
            last_steps: last_steps.iter().map(api::Step::from).collect(),
        })
    };
    app.api(body.await)
}

async fn metrics_text(State(app): AppState) -> Response {
    let text = async {
        let runs = app.runs(usize::MAX).await?;
        let drift_runs_changed = app.drift_runs_changed(&runs).await?;
        let resources = app.resources().await?;
        let certificates: Vec<_> = app
            .journal
            .certificates(&app.node.node)
            .await?
            .into_values()
            .collect();
        Ok::<_, Failure>(metrics::render(&metrics::Inputs {
            node: &app.node.node,
            runs: &runs,
            window: usize::try_from(RUN_WINDOW).unwrap_or(usize::MAX),
            kinds: &model::count_by_kind(&resources),
            drift_runs_changed,
            now_ms: time::now_ms(),
            certificates: &certificates,
        }))
    };
    match text.await {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(failure) => failure.respond(&app.node.node, Form::Text),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn not_found(State(app): AppState, request: Request) -> Response {
    let path = request.uri().path();
    let form = if path.starts_with("/api/") {
        Form::Json
    } else {
        Form::Page
    };
    Failure::NotFound(format!("there is no page at {path}")).respond(&app.node.node, form)
}

/// 401 unless the request carries the token (when there is one); `/healthz` stays open.
async fn authorize(State(app): AppState, request: Request, next: Next) -> Response {
    let Some(token) = app.token.as_deref() else {
        return next.run(request).await;
    };
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, value)| value.trim());
    match given {
        Some(given) if !token.is_empty() && same_secret(given.as_bytes(), token.as_bytes()) => {
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"supercp-status\"")],
            "unauthorized: send Authorization: Bearer <token>\n",
        )
            .into_response(),
    }
}

/// 405 for every method but GET and HEAD, before anything else looks at the request.
async fn only_get_and_head(request: Request, next: Next) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return next.run(request).await;
    }
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "GET, HEAD")],
        "method not allowed: the status page is read-only; use GET\n",
    )
        .into_response()
}

/// Headers on every response: no script, no framing, no caching, no sniffing.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

impl Failure {
    fn respond(self, node: &str, form: Form) -> Response {
        let (status, title, message) = match self {
            Failure::Journal(e) => {
                tracing::warn!(error = %e, "status page: cannot read the audit journal");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Journal unavailable",
                    format!("cannot read the audit journal: {e}"),
                )
            }
            Failure::NotFound(message) => (StatusCode::NOT_FOUND, "Not found", message),
        };
        let mut response = match form {
            Form::Page => html_page(html::error(node, title, &message)),
            Form::Json => json(&serde_json::json!({ "error": message })),
            Form::Text => format!("{message}\n").into_response(),
        };
        *response.status_mut() = status;
        response
    }
}

impl From<AuditError> for Failure {
    fn from(e: AuditError) -> Self {
        Failure::Journal(e)
    }
}

fn html_page(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// `value` as JSON, with `<`, `>` and `&` escaped so no browser can read it as markup.
fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            // These three can only occur inside JSON strings, where `\u00XX` means the same.
            let text = text
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026");
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ),
                    (
                        header::HeaderName::from_static(FORMAT_VERSION_HEADER),
                        HeaderValue::from(api::FORMAT_VERSION),
                    ),
                ],
                text,
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer as JSON: {e}\n"),
        )
            .into_response(),
    }
}

/// Compares two secrets in time that depends on their lengths only.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(bind: &str, token: Option<&str>) -> StatusConfig {
        StatusConfig {
            bind: bind.parse().expect("test address"),
            token: token.map(str::to_owned),
            open_on_loopback: true,
            limits: Limits::default(),
        }
    }

    #[test]
    fn loopback_needs_a_token_unless_declared_open() {
        let closed = |bind, token| StatusConfig {
            open_on_loopback: false,
            ..config(bind, token)
        };
        for bind in ["127.0.0.1:9490", "[::1]:9490"] {
            assert!(matches!(
                closed(bind, None).check(),
                Err(StatusError::TokenRequiredOnLoopback { .. })
            ));
            assert!(closed(bind, Some("t0ken")).check().is_ok());
            assert!(config(bind, None).check().is_ok());
        }
        // Open on loopback opens nothing else.
        assert!(matches!(
            config("0.0.0.0:9490", None).check(),
            Err(StatusError::TokenRequired { .. })
        ));
        let message = closed("127.0.0.1:9490", None)
            .check()
            .expect_err("refused")
            .to_string();
        assert!(message.contains("set a bearer token"), "{message}");
    }

    #[test]
    fn a_non_loopback_bind_needs_a_token() {
        assert!(matches!(
            config("0.0.0.0:8080", None).check(),
            Err(StatusError::TokenRequired { .. })
        ));
        assert!(matches!(
            config("[::]:8080", None).check(),
            Err(StatusError::TokenRequired { .. })
        ));
        assert!(config("0.0.0.0:8080", Some("t0ken")).check().is_ok());
        assert!(config("127.0.0.1:8080", None).check().is_ok());
        assert!(config("[::1]:8080", None).check().is_ok());
        assert!(matches!(
            config("127.0.0.1:8080", Some("")).check(),
            Err(StatusError::EmptyToken)
        ));
    }

    #[test]
    fn debug_of_the_config_hides_the_token() {
        let text = format!("{:?}", config("0.0.0.0:1", Some("hunter2")));
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("***"), "{text}");
    }

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }
}
