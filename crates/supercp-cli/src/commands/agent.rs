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

/// Where the agent of this node listens: the node file's `agent.socket`, else
/// `<state>/agent.sock`.
///
/// # Errors
/// Diagnostics of the node file.
pub fn socket_path(
    node: Option<&Path>,
    state: &Path,
) -> Result<PathBuf, Vec<supercp_core::Diagnostic>> {
    let (_, spec, _) = supercp_engine::inputs::node_spec(node, state)?;
    let socket = spec.agent.as_ref().and_then(|a| a.socket.as_deref());
    Ok(supercp_agent::socket::path_for(socket, state))
}

#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    /// The node file (where its agent listens); default `<state>/agent.sock`.
    #[arg(long)]
    pub node: Option<PathBuf>,
}

/// `supercp reconcile`: ask the running agent to reconcile now, and print its run.
///
/// # Errors
/// No agent answering, or the agent's error.
pub fn reconcile(state: &Path, args: &ReconcileArgs) -> anyhow::Result<Outcome> {
    let path = match socket_path(args.node.as_deref(), state) {
        Ok(path) => path,
        Err(diagnostics) => {
            super::print_diagnostics(diagnostics);
            return Ok(Outcome::Invalid);
        }
    };
    let answer = super::runtime()?
        .block_on(supercp_agent::socket::call(
            &path,
            "reconcile",
            serde_json::Value::Null,
        ))
        .map_err(|e| anyhow::anyhow!("no agent answers on {}: {e}", path.display()))?;
    if let Some(e) = answer.get("error") {
        anyhow::bail!("the agent: {}", e["message"]);
    }
    let result = &answer["result"];
    let run = &result["run"];
    eprintln!(
        "run {} {} ({}): {}",
        run["id"],
        run["outcome"].as_str().unwrap_or("?"),
        run["trigger"].as_str().unwrap_or("?"),
        run["summary"].as_str().unwrap_or("")
    );
    if let Some(e) = run["error"].as_str() {
        eprintln!("{e}");
    }
    if result["ok"].as_bool() == Some(true) {
        Ok(Outcome::Success)
    } else {
        Ok(Outcome::Invalid)
    }
}
