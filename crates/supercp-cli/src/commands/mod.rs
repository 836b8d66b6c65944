//! One module per command: clap arguments and an `exec` that calls the engine.

pub mod agent;
pub mod apply;
pub mod audit;
pub mod cert;
pub mod plan;
pub mod schema;
pub mod status;
pub mod validate;

use std::io::Write;
use std::path::{Path, PathBuf};

use supercp_core::diagnostic::sort_diagnostics;
use supercp_core::{Desired, Diagnostic};
use supercp_engine::Inputs;

/// Where the repo and the node come from (shared by validate, plan and apply).
#[derive(clap::Args, Debug, Clone)]
pub struct Source {
    /// The repo of YAML resources.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The node file; without it, the embedded sandbox node (everything under <state>/sandbox).
    #[arg(long)]
    pub node: Option<PathBuf>,
}

/// What a plan or apply may delete (shared by both, so a plan shows what apply would do).
#[derive(clap::Args, Debug, Clone)]
pub struct DeleteArgs {
    /// Delete tenant data (homes, document roots) whose resource left the repo with
    /// `deletionPolicy: Delete`.
    #[arg(long)]
    pub allow_destroy: bool,
    /// Largest share (percent) of any kind of resource one plan may remove.
    #[arg(long, default_value_t = 25.0)]
    pub max_delete_share: f64,
    /// Let this zone's guarded change through: more than 30 % of the rrsets of a zone with at
    /// least 10 changed or removed, or its apex NS set changed. Repeat for several zones.
    #[arg(long = "force-zone", value_name = "ZONE")]
    pub force_zones: Vec<String>,
}

impl DeleteArgs {
    pub fn plan_options(&self) -> supercp_engine::PlanOptions {
        supercp_engine::PlanOptions {
            allow_destroy: self.allow_destroy,
            max_delete_share: self.max_delete_share,
            force: self
                .force_zones
                .iter()
                .map(|z| format!("Zone/{}", z.trim_end_matches('.').to_ascii_lowercase()))
                .collect(),
        }
    }
}

/// Loads and renders, or prints every diagnostic to stderr and returns `None`.
pub fn load_and_render(state: &Path, source: &Source) -> Option<(Inputs, Vec<Desired>)> {
    let started = std::time::Instant::now();
    let inputs = match Inputs::load(&source.repo, source.node.as_deref(), state) {
        Ok(inputs) => inputs,
        Err(diagnostics) => {
            print_diagnostics(diagnostics);
            return None;
        }
    };
    let loaded = started.elapsed();
    match inputs.render() {
        Ok(desired) => {
            tracing::info!(
                load_ms = loaded.as_millis(),
                render_ms = (started.elapsed() - loaded).as_millis(),
                resources = inputs.catalog.len(),
                objects = desired.len(),
                "loaded and rendered"
            );
            Some((inputs, desired))
        }
        Err(diagnostics) => {
            print_diagnostics(diagnostics);
            None
        }
    }
}

/// Prints diagnostics (sorted) and a count to stderr.
pub fn print_diagnostics(mut diagnostics: Vec<Diagnostic>) {
    sort_diagnostics(&mut diagnostics);
    let mut err = std::io::stderr().lock();
    for d in &diagnostics {
        let _ = writeln!(err, "{d}");
    }
    let _ = writeln!(err, "{} error(s); nothing was applied", diagnostics.len());
}

/// Opens the audit journal, creating the state directory first (the SQLite file lives there).
///
/// # Errors
/// When the directory cannot be created or the database cannot be opened.
pub async fn open_journal(state: &Path, url: &str) -> anyhow::Result<supercp_audit::Journal> {
    use anyhow::Context;
    std::fs::create_dir_all(state)
        .with_context(|| format!("cannot create the state directory {}", state.display()))?;
    supercp_audit::Journal::open(url)
        .await
        .context("cannot open the audit journal")
}

/// A current-thread runtime for the journal's async calls.
///
/// # Errors
/// When the runtime cannot start (no threads or file descriptors left).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Whether `url` is a SQLite journal that exists already. Other journals are opened only once
/// the repo is valid: opening one may create its tables.
pub fn journal_exists(url: &str) -> bool {
    sqlite_path(url).is_some_and(|p| p.is_file())
}

/// The file of a SQLite journal URL (`sqlite:PATH`, `sqlite://PATH`, a bare path, any
/// `?options` dropped); `None` for a server URL (`postgres://…`).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("sqlite:").unwrap_or(url);
    if path.contains("://") {
        return None;
    }
    let path = path.split('?').next().unwrap_or(path);
    Some(PathBuf::from(path.trim_start_matches("//")))
}
