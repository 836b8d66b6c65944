//! `supercp cert renew DOMAIN…`: issue certificates again now, even when they are not due
//! (after a key compromise). It is an apply of the repo as it is, with those domains asked for.

use std::path::Path;

use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: CertCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum CertCommand {
    /// Order new certificates (and new keys) for these domains now, then converge the node as
    /// `apply` does.
    Renew {
        /// Domains with `tls` and `certificate: acme` in the repo.
        #[arg(required = true, value_name = "DOMAIN")]
        domains: Vec<String>,
        #[command(flatten)]
        source: super::Source,
        #[command(flatten)]
        delete: super::DeleteArgs,
    },
}

/// # Errors
/// As for `apply`; a domain without an ACME certificate is refused before anything is applied.
pub fn exec(state: &Path, args: &Args) -> anyhow::Result<Outcome> {
    match &args.command {
        CertCommand::Renew {
            domains,
            source,
            delete,
        } => super::apply::exec(
            state,
            &super::apply::Args {
                source: source.clone(),
                delete: delete.clone(),
                renew_cert: domains.clone(),
            },
        ),
    }
}
