//! The `supercp` binary: clap arguments, thin commands, output formats and exit codes.
//!
//! Exit codes (the contract CI pipelines rely on): 0 success or no changes (and `--help`,
//! `--version`), 1 error, invalid input or a usage error (unknown flag, value or subcommand:
//! clap's own 2 would read as "changes"), 2 changes present (`plan --detailed-exitcode`).
//! stdout carries only what was asked for; diagnostics, progress and logs go to stderr, with
//! colour only on a terminal and never under `NO_COLOR`. A broken pipe exits quietly.

mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "supercp",
    version,
    about = "Declarative hosting control plane: validate, plan and apply a repo of YAML resources"
)]
struct Cli {
    /// State directory: the sandbox root and the audit database.
    #[arg(long, global = true, default_value = "state")]
    state: PathBuf,
    /// More logs on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load and check every resource; print every problem as file:line:col.
    Validate(commands::validate::Args),
    /// Show what apply would change.
    Plan(commands::plan::Args),
    /// Converge the node to the repo.
    Apply(commands::apply::Args),
    /// Follow the node file's Git branch: apply every new commit, scan for drift, reconcile on
    /// SIGHUP (runs until SIGTERM).
    Agent(commands::agent::Args),
    /// Ask the running agent to reconcile now (through its control socket).
    Reconcile(commands::agent::ReconcileArgs),
    /// Runs and their steps, from the audit journal.
    Audit(commands::audit::Args),
    /// Certificates: `supercp cert renew DOMAIN…` orders new ones now, even when not due.
    Cert(commands::cert::Args),
    /// Write the JSON Schemas of every kind.
    Schema(commands::schema::Args),
    /// The node's last run and each tenant's usage against its package.
    Status(commands::status::Args),
}

/// How a command ended, mapped to the exit code by `main` alone.
pub enum Outcome {
    Success,
    Changes,
    Invalid,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` print to stdout and succeed; every other parse error is a
            // usage error: exit 1, never clap's 2, which `--detailed-exitcode` means "changes".
            // A failed print (a broken pipe on `--help | head`) changes nothing.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Validate(args) => commands::validate::exec(&cli.state, &args),
        Command::Plan(args) => commands::plan::exec(&cli.state, &args),
        Command::Apply(args) => commands::apply::exec(&cli.state, &args),
        Command::Agent(args) => commands::agent::exec(&cli.state, &args),
        Command::Reconcile(args) => commands::agent::reconcile(&cli.state, &args),
        Command::Audit(args) => commands::audit::exec(&cli.state, &args),
        Command::Cert(args) => commands::cert::exec(&cli.state, &args),
        Command::Schema(args) => commands::schema::exec(&args),
        Command::Status(args) => commands::status::exec(&cli.state, &args),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Changes) => ExitCode::from(2),
        Ok(Outcome::Invalid) => ExitCode::from(1),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    // Escape codes only where a terminal renders them: a log file or a CI log gets plain text.
    let ansi = std::io::stderr().is_terminal() && output::colour_allowed();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
