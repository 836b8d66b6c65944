//! `supercp status`: the node's last run and what each tenant uses against its package.

use std::io::Write;
use std::path::Path;

use supercp_engine::status::{tenant_usage, TenantUsage};

use crate::output::Format;
use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repo whose tenants' usage to show (default: the current directory, unless an agent
    /// answers on its control socket and no --repo is given).
    #[arg(long)]
    pub repo: Option<std::path::PathBuf>,
    /// The node file (its agent socket and audit URL); default: the sandbox node.
    #[arg(long)]
    pub node: Option<std::path::PathBuf>,
    /// text or json.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// # Errors
/// Journal and output failures; an agent that refuses the request.
pub fn exec(state: &Path, args: &Args) -> anyhow::Result<Outcome> {
    let rt = super::runtime()?;
    // A running agent answers on its control socket: its overview comes first.
    let socket = match super::agent::socket_path(args.node.as_deref(), state) {
        Ok(path) => path,
        Err(diagnostics) => {
            super::print_diagnostics(diagnostics);
            return Ok(Outcome::Invalid);
        }
    };
    let answer = rt.block_on(supercp_agent::socket::call(
        &socket,
        "status",
        serde_json::Value::Null,
    ));
    let agent = match answer {
        Ok(answer) => match answer.get("error") {
            Some(e) => anyhow::bail!(
                "the agent on {} refused: {}",
                socket.display(),
                e["message"]
            ),
            None => Some(answer["result"].clone()),
        },
        Err(_) => None,
    };
    let mut out = std::io::stdout().lock();
    let json = matches!(args.format, Format::Json);
    if let (Some(agent), None) = (&agent, &args.repo) {
        if json {
            let value = serde_json::json!({ "format_version": 1, "agent": agent });
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        } else {
            write_agent(&mut out, agent)?;
        }
        return Ok(Outcome::Success);
    }
    let repo = args.repo.clone().unwrap_or_else(|| ".".into());
    let inputs = match supercp_engine::Inputs::load(&repo, args.node.as_deref(), state) {
        Ok(inputs) => inputs,
        Err(diagnostics) => {
            super::print_diagnostics(diagnostics);
            return Ok(Outcome::Invalid);
        }
    };
    let usage = tenant_usage(&inputs);
    // The last run, when a journal exists (status never creates one).
    let url = inputs.audit_url();
    let last_run = if super::journal_exists(&url) || url.contains("://") {
        rt.block_on(async {
            let journal = super::open_journal(state, &url).await?;
            let runs = journal.list_runs(1).await;
            journal.close().await;
            anyhow::Ok(runs?.into_iter().next())
        })?
    } else {
        None
    };
    if json {
        let value = serde_json::json!({
            "format_version": 1,
            "node": inputs.node_name(),
            "agent": agent,
            "last_run": last_run,
            "tenants": usage,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        if let Some(agent) = &agent {
            write_agent(&mut out, agent)?;
            writeln!(out)?;
        }
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

/// The agent's overview, from its `status` answer.
fn write_agent(out: &mut impl Write, agent: &serde_json::Value) -> std::io::Result<()> {
    let a = &agent["agent"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    writeln!(
        out,
        "agent of node {} (roles {})",
        text(&a["node"]),
        a["roles"]
    )?;
    writeln!(out, "current commit       {}", text(&a["current_commit"]))?;
    writeln!(
        out,
        "last applied commit  {}",
        text(&a["last_applied_commit"])
    )?;
    if let Some(ms) = a["next_scan_unix_ms"].as_i64() {
        writeln!(out, "next drift scan      {}", supercp_core::time::utc(ms))?;
    }
    if let Some(e) = a["last_error"].as_str() {
        writeln!(out, "last error           {e}")?;
    }
    let run = &agent["last_run"];
    if run.is_object() {
        writeln!(
            out,
            "last run             {} {} ({}): {}",
            run["id"],
            text(&run["outcome"]),
            text(&run["trigger"]),
            text(&run["summary"])
        )?;
    }
    Ok(())
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
