//! `supercp plan`: what apply would change, as text, JSON or Markdown.

use std::io::Write;
use std::path::Path;

use crate::output::{self, Format};
use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub source: super::Source,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit 2 when there are changes, 0 when there are none (1 stays an error).
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub delete: super::DeleteArgs,
}

/// # Errors
/// Journal and output failures.
pub fn exec(state: &Path, args: &Args) -> anyhow::Result<Outcome> {
    let options = args.delete.plan_options();
    let rt = super::runtime()?;
    // Reading what the journal owns takes as long as loading a large repo: when the SQLite
    // journal already exists, do both at once. A journal is never created or migrated before
    // the repo is known to be valid.
    let prefetch = match supercp_engine::inputs::node_journal(args.source.node.as_deref(), state) {
        Ok((node, url)) if super::journal_exists(&url) => Some((node, url)),
        Ok(_) => None,
        Err(diagnostics) => {
            super::print_diagnostics(diagnostics);
            return Ok(Outcome::Invalid);
        }
    };
    let result = rt.block_on(async {
        // The journal's owned objects and certificate records (what the CA said last).
        let (loaded, journaled) = match &prefetch {
            Some((node, url)) => {
                let journal = super::open_journal(state, url).await?;
                let (state, source) = (state.to_path_buf(), args.source.clone());
                let loading =
                    tokio::task::spawn_blocking(move || super::load_and_render(&state, &source));
                let journaled = supercp_engine::Journaled::read(&journal, node).await;
                journal.close().await;
                (loading.await?, Some(journaled?))
            }
            None => (super::load_and_render(state, &args.source), None),
        };
        let Some((inputs, desired)) = loaded else {
            return anyhow::Ok(None);
        };
        let journaled = match journaled {
            Some(journaled) => journaled,
            None => {
                let journal = super::open_journal(state, &inputs.audit_url()).await?;
                let journaled = supercp_engine::Journaled::read(&journal, inputs.node_name()).await;
                journal.close().await;
                journaled?
            }
        };
        let planned = supercp_engine::dry_run(&inputs, desired, journaled, &options)?;
        Ok(Some((inputs, planned)))
    })?;
    let Some((inputs, planned)) = result else {
        return Ok(Outcome::Invalid);
    };
    let plan = &planned.plan;
    let mut out = std::io::stdout().lock();
    let notes: Vec<String> = planned
        .observed
        .iter()
        .flat_map(|o| o.notes.iter().cloned())
        .collect();
    output::write_plan(&mut out, args.format, inputs.node_name(), plan, &notes)?;
    out.flush()?;
    if let Some(u) = plan.unreached.first() {
        // The plan is incomplete: CI must not read it as the node's whole change.
        anyhow::bail!(
            "{} object(s) could not be planned because their service did not answer, first {} ({}): {}",
            plan.unreached.len(),
            u.id,
            u.resource,
            u.why
        );
    }
    if args.detailed_exitcode && !plan.is_empty() {
        Ok(Outcome::Changes)
    } else {
        Ok(Outcome::Success)
    }
}
