//! Service gates: run a node's check or reload command (argv, never a shell string).

use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("gate {gate}: `{program}` is not installed")]
    Missing { gate: String, program: String },
    #[error("gate {gate}: cannot run `{program}`: {source}")]
    Spawn {
        gate: String,
        program: String,
        source: std::io::Error,
    },
    #[error("gate {gate}: empty command")]
    Empty { gate: String },
}

/// What a check or reload printed and whether it succeeded.
#[derive(Debug, Clone)]
pub struct GateRun {
    pub success: bool,
    /// stdout and stderr, joined.
    pub output: String,
}

/// Runs `argv` and waits for it.
///
/// # Errors
/// `Missing` when the program is not installed (callers may skip an optional gate), `Spawn`
/// for any other failure to start it.
pub fn run(gate: &str, argv: &[String]) -> Result<GateRun, GateError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(GateError::Empty {
            gate: gate.to_owned(),
        });
    };
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                GateError::Missing {
                    gate: gate.to_owned(),
                    program: program.clone(),
                }
            } else {
                GateError::Spawn {
                    gate: gate.to_owned(),
                    program: program.clone(),
                    source,
                }
            }
        })?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(GateRun {
        success: output.status.success(),
        output: text,
    })
}
