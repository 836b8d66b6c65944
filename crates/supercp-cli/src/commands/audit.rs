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

/// # Errors
/// Journal and output failures; an unknown run id.
pub fn exec(state: &Path, args: &Args) -> anyhow::Result<Outcome> {
    let url = match supercp_engine::inputs::audit_url_for(args.node.as_deref(), state) {
        Ok(url) => url,
        Err(diagnostics) => {
            super::print_diagnostics(diagnostics);
            return Ok(Outcome::Invalid);
        }
    };
    let rt = super::runtime()?;
    let mut out = std::io::stdout().lock();
    rt.block_on(async {
        let journal = super::open_journal(state, &url).await?;
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
                        utc(r.started_at),
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
                    utc(run.started_at),
                    run.node,
                    run.actor,
                    run.summary
                )?;
                if let Some(commit) = &run.git_commit {
                    writeln!(
                        out,
                        "commit {commit}{}  {}",
                        if run.git_dirty == Some(true) {
                            " (dirty)"
                        } else {
                            ""
                        },
                        run.git_author.as_deref().unwrap_or("")
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

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC), without a date-time crate.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_milliseconds_print_as_utc() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(1_795_491_173_594), "2026-11-24T03:32:53Z");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
