//! `supercp agent`: follow the node file's Git branch and keep the node converged.

use std::path::{Path, PathBuf};

use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The node file: names the Git source (`agent.git`) and the drift scan interval.
    #[arg(long)]
    pub node: PathBuf,
    /// Without `agent.git` in the node file: converge this directory as it is, on every drift
    /// scan and on SIGHUP.
    #[arg(long)]
    pub repo: Option<PathBuf>,
}

/// # Errors
/// What makes running impossible (node file, journal, signals); single runs that fail are
/// logged, recorded and retried.
pub fn exec(state: &Path, args: &Args) -> anyhow::Result<Outcome> {
    let config = supercp_agent::AgentConfig {
        node_file: args.node.clone(),
        state: state.to_path_buf(),
        repo: args.repo.clone(),
        actor: format!("agent:{}", super::apply::actor()),
    };
    super::runtime()?.block_on(supercp_agent::run(config))?;
    Ok(Outcome::Success)
}
