//! `supercp schema`: write the JSON Schema of every kind.

use std::path::PathBuf;

use anyhow::Context;

use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to write `<Kind>.json` and `supercp.json` into.
    #[arg(long, default_value = "schemas")]
    pub out: PathBuf,
}

/// # Errors
/// When the directory or a file cannot be written.
pub fn exec(args: &Args) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for (name, schema) in supercp_core::resource::schemas() {
        let path = args.out.join(&name);
        let text = serde_json::to_string_pretty(&schema)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(Outcome::Success)
}
