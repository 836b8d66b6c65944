//! `supercp apply`: converge the node to the repo, recording the run in the audit journal.

use std::io::Write;
use std::path::Path;

use supercp_engine::ApplyOptions;

use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub source: super::Source,
    #[command(flatten)]
    pub delete: super::DeleteArgs,
}

/// # Errors
/// Lock, journal, gate and step failures, each naming what failed.
pub fn exec(state: &Path, args: &Args) -> anyhow::Result<Outcome> {
    let Some((inputs, desired)) = super::load_and_render(state, &args.source) else {
        return Ok(Outcome::Invalid);
    };
    let options = ApplyOptions {
        plan: args.delete.plan_options(),
        actor: actor(),
        pause_before_step: std::env::var("SUPERCP_TEST_PAUSE_BEFORE_STEP")
            .ok()
            .and_then(|v| v.parse().ok()),
    };
    let rt = super::runtime()?;
    let report = rt.block_on(async {
        let journal = super::open_journal(state, &inputs.audit_url()).await?;
        let report = supercp_engine::apply(&inputs, desired, &journal, &options).await;
        journal.close().await;
        anyhow::Ok(report?)
    })?;
    let mut err = std::io::stderr().lock();
    for run in &report.interrupted {
        writeln!(
            err,
            "run {run} had been interrupted; this run finished its work"
        )?;
    }
    if report.summary.create + report.summary.update + report.summary.delete == 0 {
        writeln!(err, "no changes (run {})", report.run)?;
    } else {
        writeln!(
            err,
            "applied run {}: {}; {} gate check(s), {} reload(s)",
            report.run, report.summary, report.gate_checks, report.reloads
        )?;
    }
    if report.retained > 0 {
        writeln!(err, "kept {} object(s) of tenant data that left the repo (deletion policy Retain, or no --allow-destroy)", report.retained)?;
    }
    Ok(Outcome::Success)
}

/// Who runs the apply, for the journal: `user@host`.
fn actor() -> String {
    use std::os::unix::fs::MetadataExt;
    let user = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| {
            // No login variables (CI, systemd): name the uid this process runs as.
            let uid = std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid());
            if uid == 0 {
                "root".to_owned()
            } else {
                format!("uid {uid}")
            }
        });
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        user
    } else {
        format!("{user}@{host}")
    }
}
