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
    let Some((inputs, desired)) = super::load_and_render(state, &args.source) else {
        return Ok(Outcome::Invalid);
    };
    let options = args.delete.plan_options();
    let rt = super::runtime()?;
    let planned = rt.block_on(async {
        let journal = super::open_journal(state, &inputs.audit_url()).await?;
        let planned = supercp_engine::plan(desired, inputs.node_name(), &journal, &options).await;
        journal.close().await;
        anyhow::Ok(planned?)
    })?;
    let plan = &planned.plan;
    let mut out = std::io::stdout().lock();
    output::write_plan(&mut out, args.format, inputs.node_name(), plan)?;
    out.flush()?;
    if args.detailed_exitcode && !plan.is_empty() {
        Ok(Outcome::Changes)
    } else {
        Ok(Outcome::Success)
    }
}
