//! `supercp plan`: what apply would change, as text, JSON or Markdown.

use std::io::Write;
use std::path::Path;

use supercp_engine::PlanOptions;

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
    /// Plan deletes of tenant data whose deletion policy is Delete.
    #[arg(long)]
    pub allow_destroy: bool,
    /// Largest share (percent) of any kind of resource a plan may remove.
    #[arg(long, default_value_t = 25.0)]
    pub max_delete_share: f64,
}

/// # Errors
/// Journal and output failures.
pub fn exec(state: &Path, args: &Args) -> anyhow::Result<Outcome> {
    let Some((inputs, desired)) = super::load_and_render(state, &args.source) else {
        return Ok(Outcome::Invalid);
    };
    let options = PlanOptions {
        allow_destroy: args.allow_destroy,
        max_delete_share: args.max_delete_share,
    };
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
