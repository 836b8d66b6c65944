//! `supercp validate`: load and render, report every problem, change nothing.

use std::path::Path;

use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub source: super::Source,
}

/// # Errors
/// Never for bad input (that is `Outcome::Invalid`); only for I/O on stderr.
pub fn exec(state: &Path, args: &Args) -> anyhow::Result<Outcome> {
    match super::load_and_render(state, &args.source) {
        Some((inputs, desired)) => {
            eprintln!(
                "valid: {} resources, {} objects for node {}",
                inputs.catalog.len(),
                desired.len(),
                inputs.node_name()
            );
            Ok(Outcome::Success)
        }
        None => Ok(Outcome::Invalid),
    }
}
