//! `supercp status`: the node's last run and what each tenant uses against its package.

use std::io::Write;
use std::path::Path;

use supercp_engine::status::{tenant_usage, TenantUsage};

use crate::output::Format;
use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub source: super::Source,
    /// text or json.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// # Errors
/// Journal and output failures.
pub fn exec(state: &Path, args: &Args) -> anyhow::Result<Outcome> {
    let inputs =
        match supercp_engine::Inputs::load(&args.source.repo, args.source.node.as_deref(), state) {
            Ok(inputs) => inputs,
            Err(diagnostics) => {
                super::print_diagnostics(diagnostics);
                return Ok(Outcome::Invalid);
            }
        };
    let usage = tenant_usage(&inputs);
    // The last run, when a journal exists (status never creates one).
    let url = inputs.audit_url();
    let path = url.strip_prefix("sqlite:").unwrap_or(&url);
    let last_run = if path.contains("://") || Path::new(path).is_file() {
        let rt = super::runtime()?;
        rt.block_on(async {
            let journal = super::open_journal(state, &url).await?;
            let runs = journal.list_runs(1).await;
            journal.close().await;
            anyhow::Ok(runs?.into_iter().next())
        })?
    } else {
        None
    };
    let mut out = std::io::stdout().lock();
    if matches!(args.format, Format::Json) {
        let value = serde_json::json!({
            "format_version": 1,
            "node": inputs.node_name(),
            "last_run": last_run,
            "tenants": usage,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(out, "node {}", inputs.node_name())?;
        match &last_run {
            Some(run) => writeln!(
                out,
                "last run {}: {} ({})",
                run.id, run.outcome, run.summary
            )?,
            None => writeln!(out, "no run recorded yet")?,
        }
        writeln!(
            out,
            "\n{:<24} {:<12} {:>9} {:>11} {:>16}  state",
            "TENANT", "PACKAGE", "DOMAINS", "PHP WORKERS", "DISK MiB"
        )?;
        for t in &usage {
            writeln!(out, "{}", row(t))?;
        }
    }
    out.flush()?;
    Ok(Outcome::Success)
}

fn row(t: &TenantUsage) -> String {
    let of = |used: String, max: Option<String>| match max {
        Some(max) => format!("{used}/{max}"),
        None => used,
    };
    let disk = t.disk_bytes.map_or_else(
        || "-".to_owned(),
        |b| format!("{:.1}", b as f64 / 1_048_576.0),
    );
    let mut state = Vec::new();
    if t.suspended {
        state.push("suspended");
    }
    if t.over_quota() {
        state.push("over disk quota");
    }
    format!(
        "{:<24} {:<12} {:>9} {:>11} {:>16}  {}",
        t.tenant,
        t.package,
        of(t.domains.to_string(), t.max_domains.map(|m| m.to_string())),
        of(
            t.php_workers.to_string(),
            t.max_php_workers.map(|m| m.to_string())
        ),
        of(disk, t.disk_quota_mb.map(|m| m.to_string())),
        if state.is_empty() {
            "ok".to_owned()
        } else {
            state.join(", ")
        }
    )
}
