//! Plan output formats. The JSON and Markdown forms are mirrors of `Plan` with their own
//! `format_version`, so refactoring the engine's types cannot silently break a pipeline.
//! docs/plan-json.md documents the JSON form.

use std::io::{IsTerminal, Write};

use serde::Serialize;
use supercp_core::{Plan, Step};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

/// Version of the JSON plan; bump it on any incompatible change.
pub const PLAN_FORMAT_VERSION: u32 = 2;

#[derive(Serialize)]
struct JsonPlan<'a> {
    format_version: u32,
    node: &'a str,
    changes: bool,
    summary: JsonSummary,
    steps: Vec<JsonStep<'a>>,
    retained: Vec<JsonStep<'a>>,
    /// Due steps this apply would not take yet, each with why (a certificate the CA refused
    /// recently, or past the cap on orders per run).
    held: Vec<JsonHeld<'a>>,
    /// Objects not planned because their service did not answer (a DNS server down).
    unreached: Vec<JsonUnreached<'a>>,
    /// What the operator must do outside the node: each signed zone's DS records, for the
    /// registrar (`DS acme.test. 12345 13 2 …`).
    notes: &'a [String],
}

#[derive(Serialize)]
struct JsonUnreached<'a> {
    object: String,
    resource: String,
    why: &'a str,
}

#[derive(Serialize)]
struct JsonHeld<'a> {
    #[serde(flatten)]
    step: JsonStep<'a>,
    held: &'a str,
}

#[derive(Serialize)]
struct JsonSummary {
    create: usize,
    update: usize,
    delete: usize,
    retained: usize,
    objects: usize,
}

#[derive(Serialize)]
struct JsonStep<'a> {
    action: &'static str,
    kind: &'static str,
    /// The path of a file or directory, the name of an account (the id without its kind).
    path: &'a str,
    object: String,
    resource: String,
    origin: Option<String>,
    reason: String,
    gate: Option<&'a str>,
    tenant_data: bool,
    before: Option<&'a str>,
    after: Option<&'a str>,
    diff: Option<&'a str>,
}

/// Writes the plan in the chosen format.
///
/// # Errors
/// Write errors (a broken pipe among them).
pub fn write_plan(
    out: &mut impl Write,
    format: Format,
    node: &str,
    plan: &Plan,
    notes: &[String],
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            let s = plan.summary();
            let value = JsonPlan {
                format_version: PLAN_FORMAT_VERSION,
                node,
                changes: !plan.is_empty(),
                summary: JsonSummary {
                    create: s.create,
                    update: s.update,
                    delete: s.delete,
                    retained: plan.retained.len(),
                    objects: plan.objects,
                },
                steps: plan.steps.iter().map(json_step).collect(),
                retained: plan.retained.iter().map(json_step).collect(),
                held: plan
                    .held
                    .iter()
                    .map(|(step, why)| JsonHeld {
                        step: json_step(step),
                        held: why,
                    })
                    .collect(),
                unreached: plan
                    .unreached
                    .iter()
                    .map(|u| JsonUnreached {
                        object: u.id.to_string(),
                        resource: u.resource.to_string(),
                        why: &u.why,
                    })
                    .collect(),
                notes,
            };
            serde_json::to_writer_pretty(&mut *out, &value)?;
            writeln!(out)
        }
        Format::Markdown => {
            write_markdown(out, node, plan)?;
            if !notes.is_empty() {
                writeln!(out, "\n**For the registrar** (signed zones)\n\n```")?;
                for n in notes {
                    writeln!(out, "{n}")?;
                }
                writeln!(out, "```")?;
            }
            Ok(())
        }
        Format::Text => {
            write_text(
                out,
                node,
                plan,
                std::io::stdout().is_terminal() && colour_allowed(),
            )?;
            if !notes.is_empty() {
                writeln!(out, "For the registrar (signed zones):")?;
                for n in notes {
                    writeln!(out, "  {n}")?;
                }
            }
            Ok(())
        }
    }
}

/// Colour is off when `NO_COLOR` is set to anything but the empty string (no-color.org).
pub fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn json_step(step: &Step) -> JsonStep<'_> {
    JsonStep {
        action: step.action.as_str(),
        kind: step.id.kind().as_str(),
        path: step.id.key(),
        object: step.id.to_string(),
        resource: step.resource.to_string(),
        origin: (step.origin.line > 0).then(|| step.origin.to_string()),
        reason: step.reason.to_string(),
        gate: step.unit.gate(),
        tenant_data: step.tenant_data,
        before: step.before.as_deref(),
        after: step.after.as_deref(),
        diff: step.diff.as_deref(),
    }
}

fn origin(step: &Step) -> String {
    if step.origin.line > 0 {
        format!("{}, {}", step.resource, step.origin)
    } else {
        step.resource.to_string()
    }
}

fn write_text(out: &mut impl Write, node: &str, plan: &Plan, colour: bool) -> std::io::Result<()> {
    let paint = |code: &str, text: &str| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    for step in &plan.steps {
        let code = match step.action {
            supercp_core::Action::Create => "32",
            supercp_core::Action::Update => "33",
            supercp_core::Action::Delete => "31",
        };
        let head = format!("{} {}", step.action.symbol(), step.id);
        writeln!(
            out,
            "{}  ({}): {}",
            paint(code, &head),
            origin(step),
            step.reason
        )?;
        if let Some(diff) = &step.diff {
            for line in diff.lines() {
                let painted = match line.chars().next() {
                    Some('+') if !line.starts_with("+++") => paint("32", line),
                    Some('-') if !line.starts_with("---") => paint("31", line),
                    Some('@') => paint("36", line),
                    _ => line.to_owned(),
                };
                writeln!(out, "    {painted}")?;
            }
        }
    }
    for step in &plan.retained {
        writeln!(
            out,
            "{}  ({}): tenant data kept (deletion policy Retain, or no --allow-destroy)",
            paint("35", &format!("= {}", step.id)),
            origin(step)
        )?;
    }
    for (step, why) in &plan.held {
        writeln!(
            out,
            "{}  ({}): {}; not taken this run: {why}",
            paint("35", &format!("= {}", step.id)),
            origin(step),
            step.reason
        )?;
    }
    for u in &plan.unreached {
        writeln!(
            out,
            "{}  ({}): not planned: {}",
            paint("31", &format!("? {}", u.id)),
            u.resource,
            u.why
        )?;
    }
    if !plan.unreached.is_empty() {
        writeln!(
            out,
            "Plan for node {node}: {}; {} object(s) not planned (their service did not answer).",
            plan.summary(),
            plan.unreached.len()
        )
    } else if plan.is_empty() {
        writeln!(
            out,
            "No changes. Node {node} matches the repo ({} objects).",
            plan.objects
        )
    } else {
        writeln!(out, "Plan for node {node}: {}.", plan.summary())
    }
}

fn write_markdown(out: &mut impl Write, node: &str, plan: &Plan) -> std::io::Result<()> {
    writeln!(out, "### SuperCP plan for node `{node}`\n")?;
    if plan.is_empty() {
        writeln!(out, "No changes ({} objects match the repo).", plan.objects)?;
        return write_held(out, plan);
    }
    let s = plan.summary();
    writeln!(
        out,
        "**{} to create, {} to update, {} to delete**, {} kept\n",
        s.create,
        s.update,
        s.delete,
        plan.retained.len()
    )?;
    writeln!(out, "| | object | resource | reason |\n|---|---|---|---|")?;
    for step in plan.steps.iter().chain(&plan.retained) {
        writeln!(
            out,
            "| `{}` | `{}` | {} | {} |",
            step.action.symbol(),
            step.id,
            md_escape(&origin(step)),
            md_escape(&step.reason.to_string())
        )?;
    }
    for step in plan.steps.iter().filter(|s| s.diff.is_some()) {
        writeln!(
            out,
            "\n<details><summary><code>{}</code></summary>\n\n```diff",
            step.id
        )?;
        write!(
            out,
            "{}",
            step.diff
                .as_deref()
                .unwrap_or("")
                .replace("```", "`\u{200b}``")
        )?;
        writeln!(out, "```\n</details>")?;
    }
    write_held(out, plan)
}

/// Markdown rows for the steps a plan holds back, and the objects it could not reach.
fn write_held(out: &mut impl Write, plan: &Plan) -> std::io::Result<()> {
    if !plan.unreached.is_empty() {
        writeln!(
            out,
            "\n**Not planned: their service did not answer**\n\n| object | resource | why |\n|---|---|---|"
        )?;
        for u in &plan.unreached {
            writeln!(
                out,
                "| `{}` | {} | {} |",
                u.id,
                md_escape(&u.resource.to_string()),
                md_escape(&u.why)
            )?;
        }
    }
    if plan.held.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n**Due, not taken this run**\n\n| object | resource | why |\n|---|---|---|"
    )?;
    for (step, why) in &plan.held {
        writeln!(
            out,
            "| `{}` | {} | {} |",
            step.id,
            md_escape(&origin(step)),
            md_escape(&format!("{}; not taken this run: {why}", step.reason))
        )?;
    }
    Ok(())
}

fn md_escape(text: &str) -> String {
    text.replace('|', "\\|").replace('<', "&lt;")
}
