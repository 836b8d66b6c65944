//! `supercp audit`: runs, and one run's steps, from the journal.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use supercp_audit::Journal;

use crate::output::Format;
use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show the steps of this run.
    #[arg(long)]
    pub run: Option<i64>,
    /// text or json (markdown is for plans).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The node file whose audit URL to read (default: the sandbox's `<state>/audit.db`).
    #[arg(long)]
    pub node: Option<PathBuf>,
    /// How many runs to list.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

/// A state directory without a journal is an error (exit 1) that says so, and nothing is
/// created: no state directory and no empty `audit.db` that a later apply would take for a
/// journal with no runs.
///
/// # Errors
/// Journal and output failures; a missing SQLite journal; an unknown run id.
pub fn exec(state: &Path, args: &Args) -> anyhow::Result<Outcome> {
    let url = match supercp_engine::inputs::audit_url_for(args.node.as_deref(), state) {
        Ok(url) => url,
        Err(diagnostics) => {
            super::print_diagnostics(diagnostics);
            return Ok(Outcome::Invalid);
        }
    };
    if let Some(path) = super::sqlite_path(&url) {
        if !path.is_file() {
            anyhow::bail!(
                "no audit journal at {}: nothing was applied with this state directory\n\
                 help: pass the --state (or --node) that `supercp apply` used, or run `supercp apply` first",
                path.display()
            );
        }
    }
    let rt = super::runtime()?;
    let mut out = std::io::stdout().lock();
    rt.block_on(async {
        // The file exists (or the journal is a server): nothing to create.
        let journal = Journal::open(&url)
            .await
            .context("cannot open the audit journal")?;
        let result = show(&journal, args, &mut out).await;
        journal.close().await;
        result
    })?;
    out.flush()?;
    Ok(Outcome::Success)
}

async fn show(journal: &Journal, args: &Args, out: &mut impl Write) -> anyhow::Result<()> {
    let json = matches!(args.format, Format::Json);
    match args.run {
        None => {
            let runs = journal.list_runs(args.limit).await?;
            if json {
                let value = serde_json::json!({ "format_version": 1, "runs": runs });
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                writeln!(
                    out,
                    "{:>5}  {:<11}  {:<20}  {:>8}  {:<10}  {:<18}  summary",
                    "run", "outcome", "started (UTC)", "took", "node", "commit"
                )?;
                for r in runs {
                    let commit = r
                        .git_commit
                        .as_deref()
                        .map_or("-", |c| &c[..c.len().min(12)]);
                    let dirty = if r.git_dirty == Some(true) {
                        "+dirty"
                    } else {
                        ""
                    };
                    writeln!(
                        out,
                        "{:>5}  {:<11}  {:<20}  {:>8}  {:<10}  {:<18}  {}",
                        r.id,
                        r.outcome.as_str(),
                        supercp_core::time::utc(r.started_at),
                        r.finished_at.map_or_else(
                            || "-".to_owned(),
                            |f| format!("{:.2}s", (f - r.started_at) as f64 / 1000.0)
                        ),
                        r.node,
                        format!("{commit}{dirty}"),
                        r.summary
                    )?;
                }
            }
        }
        Some(id) => {
            let (run, steps) = journal.get_run(id).await?.with_context(|| {
                format!("run {id} is not in the journal; `supercp audit` lists the runs")
            })?;
            if json {
                let value = serde_json::json!({ "format_version": 1, "run": run, "steps": steps });
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                writeln!(
                    out,
                    "run {}  {}  started {}  node {}  actor {}  {}",
                    run.id,
                    run.outcome.as_str(),
                    supercp_core::time::utc(run.started_at),
                    run.node,
                    run.actor,
                    run.summary
                )?;
                if let Some(commit) = &run.git_commit {
                    writeln!(
                        out,
                        "commit {commit}{}  {}{}",
                        if run.git_dirty == Some(true) {
                            " (dirty)"
                        } else {
                            ""
                        },
                        run.git_author.as_deref().unwrap_or(""),
                        run.git_time
                            .map(|t| format!("  committed {}", supercp_core::time::utc(t * 1000)))
                            .unwrap_or_default()
                    )?;
                }
                writeln!(
                    out,
                    "gate checks {}  reloads {}",
                    run.gate_checks, run.reloads
                )?;
                if let Some(error) = &run.error {
                    writeln!(out, "error: {error}")?;
                }
                for s in steps {
                    writeln!(
                        out,
                        "{:>5}  {:<11}  {:<6}  {}  {}  {}",
                        s.seq,
                        s.status.as_str(),
                        s.action,
                        s.object,
                        s.resource,
                        s.origin
                    )?;
                    for line in &s.log {
                        writeln!(out, "         {line}")?;
                    }
                }
            }
        }
    }
    Ok(())
}
