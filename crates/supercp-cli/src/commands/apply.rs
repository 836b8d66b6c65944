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
    /// Issue this domain's certificate again even when it is not due (a compromised key);
    /// repeatable.
    #[arg(long = "renew-cert", value_name = "DOMAIN")]
    pub renew_cert: Vec<String>,
}

/// # Errors
/// Lock, journal, gate and step failures, each naming what failed.
pub fn exec(state: &Path, args: &Args) -> anyhow::Result<Outcome> {
    let options = ApplyOptions {
        plan: args.delete.plan_options(),
        actor: actor(),
        trigger: "cli".into(),
        pause_before_step: std::env::var("SUPERCP_TEST_PAUSE_BEFORE_STEP")
            .ok()
            .and_then(|v| v.parse().ok()),
        renew: args.renew_cert.iter().cloned().collect(),
    };
    // With an existing SQLite journal, take the apply lock and read the journal while the repo
    // loads (as long as loading a large repo). A journal is never created or migrated before
    // the repo is known to be valid.
    let early = match supercp_engine::inputs::node_journal(args.source.node.as_deref(), state) {
        Ok((node, url)) if super::journal_exists(&url) => Some((node, url)),
        Ok(_) => None,
        Err(diagnostics) => {
            super::print_diagnostics(diagnostics);
            return Ok(Outcome::Invalid);
        }
    };
    let rt = super::runtime()?;
    let report = rt.block_on(async {
        let (loaded, journal, prefetched) = match &early {
            Some((node, url)) => {
                let journal = super::open_journal(state, url).await?;
                let (dir, source) = (state.to_path_buf(), args.source.clone());
                let loading =
                    tokio::task::spawn_blocking(move || super::load_and_render(&dir, &source));
                let prefetched = supercp_engine::prefetch(state, node, &journal).await;
                let loaded = loading.await?;
                (loaded, Some(journal), Some(prefetched?))
            }
            None => (super::load_and_render(state, &args.source), None, None),
        };
        let Some((inputs, desired)) = loaded else {
            if let Some(journal) = journal {
                journal.close().await;
            }
            return anyhow::Ok(None);
        };
        let journal = match journal {
            Some(journal) => journal,
            None => super::open_journal(state, &inputs.audit_url()).await?,
        };
        let report = supercp_engine::apply(&inputs, desired, &journal, &options, prefetched).await;
        journal.close().await;
        anyhow::Ok(Some(report?))
    })?;
    let Some(report) = report else {
        return Ok(Outcome::Invalid);
    };
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
    if report.certificates > 0 {
        writeln!(err, "issued {} certificate(s)", report.certificates)?;
    }
    for waiting in &report.certificates_waiting {
        writeln!(err, "certificate not ordered this run: {waiting}")?;
    }
    if report.retained > 0 {
        writeln!(err, "kept {} object(s) of tenant data that left the repo (deletion policy Retain, or no --allow-destroy)", report.retained)?;
    }
    Ok(Outcome::Success)
}

/// Who runs the apply, for the journal: `user@host`.
pub fn actor() -> String {
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
