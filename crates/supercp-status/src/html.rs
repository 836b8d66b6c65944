//! The HTML pages: one layout, one small inline style sheet, no script, no external asset.
//!
//! # Guarantees
//! Every string that comes from the journal or the agent reaches the page through [`esc`] (text
//! and attribute values) or [`seg`] (URL parts, then escaped too): a resource name, log line,
//! commit message or error cannot open a tag or an attribute.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use supercp_audit::{Outcome, RunRecord, StepRecord, StepStatus};
use supercp_core::Observation;

use crate::model::{run_duration_ms, Filter, Resource, Status};
use crate::time::{duration, relative, utc};

/// `s` with `&`, `<`, `>`, `"` and `'` replaced by character references, safe in element text
/// and in quoted attribute values.
pub fn escape(s: &str) -> String {
    esc(s).to_string()
}

/// Writes its string HTML-escaped (see [`escape`]), without allocating.
pub(crate) struct Esc<'a>(&'a str);

/// Writes its string percent-encoded: every byte but `A-Z a-z 0-9 - . _ ~`, so it is one path
/// segment or one query value, whatever it holds (`/`, `?`, `&`, `#` included).
pub(crate) struct Seg<'a>(&'a str);

pub(crate) fn esc(s: &str) -> Esc<'_> {
    Esc(s)
}

pub(crate) fn seg(s: &str) -> Seg<'_> {
    Seg(s)
}

/// The overview page.
/// The certificates section: how many are issued, and each failing one with the CA's error
/// and when it is asked again.
fn certificates(b: &mut String, certs: &[supercp_audit::CertRecord], now: i64) {
    if certs.is_empty() {
        return;
    }
    let failing: Vec<&supercp_audit::CertRecord> =
        certs.iter().filter(|c| c.failures > 0).collect();
    b.push_str(&format!(
        "<section><h2>Certificates</h2>\n<p>{} issued, {} failing.</p>\n",
        certs.iter().filter(|c| c.failures == 0).count(),
        failing.len()
    ));
    if !failing.is_empty() {
        b.push_str(
            "<table><thead><tr><th>Domain</th><th>Failures</th><th>Next attempt</th>\
             <th>The CA's last error</th></tr></thead><tbody>\n",
        );
        for c in failing {
            let next = match c.next_attempt {
                Some(ms) => format!(
                    "{} <span class=muted>({})</span>",
                    utc(ms),
                    relative(ms, now)
                ),
                None => "<span class=muted>next run</span>".to_owned(),
            };
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{next}</td><td><pre class=err>{}</pre></td></tr>\n",
                esc(&c.domain),
                c.failures,
                esc(c.last_error.as_deref().unwrap_or(""))
            ));
        }
        b.push_str("</tbody></table>\n");
    }
    b.push_str("</section>\n");
}

pub(crate) fn overview(status: &Status) -> String {
    let mut b = String::new();
    let a = &status.agent;
    let now = status.generated_at;
    b.push_str("<h1>Overview</h1>\n<section><h2>Node</h2>\n<dl>");
    dt(
        &mut b,
        "Node",
        &format!("<strong>{}</strong>", esc(&status.node)),
    );
    let roles = if status.roles.is_empty() {
        "<span class=muted>none</span>".to_owned()
    } else {
        status
            .roles
            .iter()
            .map(|r| format!("<span class=tag>{}</span>", esc(r)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    dt(&mut b, "Roles", &roles);
    dt(
        &mut b,
        "Current commit",
        &commit_full(a.current_commit.as_deref()),
    );
    dt(
        &mut b,
        "Last applied commit",
        &commit_full(a.last_applied_commit.as_deref()),
    );
    let next_scan = match a.next_scan_unix_ms {
        Some(ms) => format!(
            "{} <span class=muted>({})</span>",
            utc(ms),
            relative(ms, now)
        ),
        None => "<span class=muted>not scheduled</span>".to_owned(),
    };
    dt(&mut b, "Next drift scan", &next_scan);
    let last_error = match &a.last_error {
        Some(e) => format!("<pre class=err>{}</pre>", esc(e)),
        None => "<span class=muted>none</span>".to_owned(),
    };
    dt(&mut b, "Last error", &last_error);
    b.push_str("</dl></section>\n");
    if status.fleet.len() > 1 {
        b.push_str(
            "<section><h2>Fleet</h2>\n<p class=muted>Every node recording into this journal.</p>\n\
             <table><thead><tr><th>Node</th><th>Last run</th><th>Outcome</th><th>Trigger</th>\
             <th>Commit</th><th>Started</th><th>Summary</th></tr></thead><tbody>\n",
        );
        for f in &status.fleet {
            let run = &f.last_run;
            let node = if f.node == status.node {
                format!("<strong>{}</strong>", esc(&f.node))
            } else {
                esc(&f.node).to_string()
            };
            b.push_str(&format!(
                "<tr><td>{node}</td><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                run.id,
                outcome_badge(run.outcome),
                esc(&run.trigger),
                commit_short(run.git_commit.as_deref()),
                utc(run.started_at),
                esc(&run.summary)
            ));
        }
        b.push_str("</tbody></table></section>\n");
    }
    certificates(&mut b, &status.certificates, now);
    b.push_str("<section><h2>Last run</h2>\n");
    match &status.last_run {
        None => b.push_str("<p class=muted>No run recorded for this node yet.</p>"),
        Some(run) => {
            b.push_str("<dl>");
            dt(
                &mut b,
                "Run",
                &format!("<a href=\"/runs/{0}\">#{0}</a>", run.id),
            );
            dt(&mut b, "Outcome", &outcome_badge(run.outcome));
            dt(&mut b, "Trigger", &esc(&run.trigger).to_string());
            dt(
                &mut b,
                "Started",
                &format!(
                    "{} <span class=muted>({})</span>",
                    utc(run.started_at),
                    relative(run.started_at, now)
                ),
            );
            dt(&mut b, "Duration", &run_duration(run));
            dt(&mut b, "Commit", &commit_short(run.git_commit.as_deref()));
            if let Some(message) = &run.git_message {
                dt(&mut b, "Message", &format!("<pre>{}</pre>", esc(message)));
            }
            dt(&mut b, "Summary", &esc(&run.summary).to_string());
            if let Some(error) = &run.error {
                dt(
                    &mut b,
                    "Error",
                    &format!("<pre class=err>{}</pre>", esc(error)),
                );
            }
            b.push_str("</dl>");
        }
    }
    b.push_str("</section>\n<section><h2>Owned resources</h2>\n");
    if status.resources.is_empty() {
        b.push_str("<p class=muted>SuperCP owns nothing on this node yet.</p>");
    } else {
        b.push_str("<table><thead><tr><th>Kind</th><th class=num>Resources</th><th class=num>Objects</th></tr></thead><tbody>");
        for (kind, count) in &status.resources {
            let _ = write!(
                b,
                "<tr><td><a href=\"/resources?kind={}\">{}</a></td><td class=num>{}</td><td class=num>{}</td></tr>",
                seg(kind),
                esc(kind),
                count.resources,
                count.objects
            );
        }
        let _ = write!(
            b,
            "</tbody><tfoot><tr><th>Total</th><th class=num>{}</th><th class=num>{}</th></tr></tfoot></table>",
            status.resources.values().map(|c| c.resources).sum::<usize>(),
            status.owned_objects
        );
    }
    b.push_str("</section>");
    layout("Overview", &status.node, &b)
}

/// The list of runs, newest first.
pub(crate) fn runs(node: &str, runs: &[RunRecord], limit: usize) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Runs</h1>\n<p class=muted>The newest {limit} runs of this node, newest first.</p>\n"
    );
    if runs.is_empty() {
        b.push_str("<p class=muted>No run recorded for this node yet.</p>");
    } else {
        b.push_str("<table><thead><tr><th>Run</th><th>Outcome</th><th>Trigger</th><th>Started</th><th class=num>Duration</th><th>Commit</th><th>Summary</th><th>Actor</th><th>Error</th></tr></thead><tbody>\n");
        for run in runs {
            let _ = writeln!(
                b,
                "<tr><td><a href=\"/runs/{0}\">#{0}</a></td><td>{1}</td><td>{2}</td><td class=nowrap>{3}</td><td class=num>{4}</td><td>{5}</td><td>{6}</td><td>{7}</td><td class=err>{8}</td></tr>",
                run.id,
                outcome_badge(run.outcome),
                esc(&run.trigger),
                utc(run.started_at),
                run_duration(run),
                commit_short(run.git_commit.as_deref()),
                esc(&run.summary),
                esc(&run.actor),
                esc(run.error.as_deref().unwrap_or("")),
            );
        }
        b.push_str("</tbody></table>");
    }
    layout("Runs", node, &b)
}

/// One run with every step.
pub(crate) fn run(node: &str, run: &RunRecord, steps: &[StepRecord]) -> String {
    let mut b = String::new();
    let _ = writeln!(b, "<h1>Run #{}</h1>\n<dl>", run.id);
    dt(&mut b, "Outcome", &outcome_badge(run.outcome));
    dt(&mut b, "Trigger", &esc(&run.trigger).to_string());
    dt(&mut b, "Started", &utc(run.started_at));
    dt(
        &mut b,
        "Finished",
        &run.finished_at
            .map_or_else(|| "<span class=muted>not yet</span>".to_owned(), utc),
    );
    dt(&mut b, "Duration", &run_duration(run));
    dt(&mut b, "Actor", &esc(&run.actor).to_string());
    dt(&mut b, "Repository", &esc(&run.repo).to_string());
    dt(&mut b, "Commit", &commit_full(run.git_commit.as_deref()));
    if let Some(author) = &run.git_author {
        dt(&mut b, "Author", &esc(author).to_string());
    }
    if let Some(seconds) = run.git_time {
        dt(&mut b, "Committed", &utc(seconds.saturating_mul(1000)));
    }
    if run.git_dirty == Some(true) {
        dt(&mut b, "Work tree", "had uncommitted changes");
    }
    if let Some(message) = &run.git_message {
        dt(&mut b, "Message", &format!("<pre>{}</pre>", esc(message)));
    }
    dt(&mut b, "Summary", &esc(&run.summary).to_string());
    dt(
        &mut b,
        "Gate checks / reloads",
        &format!("{} / {}", run.gate_checks, run.reloads),
    );
    if let Some(error) = &run.error {
        dt(
            &mut b,
            "Error",
            &format!("<pre class=err>{}</pre>", esc(error)),
        );
    }
    let _ = writeln!(b, "</dl>\n<h2>Steps ({})</h2>", steps.len());
    if steps.is_empty() {
        b.push_str("<p class=muted>This run had nothing to change.</p>");
    } else {
        steps_table(&mut b, steps, false);
    }
    layout(&format!("Run #{}", run.id), node, &b)
}

/// The resource list, filtered.
pub(crate) fn resources(
    node: &str,
    all: &[Resource],
    shown: &[&Resource],
    filter: &Filter,
) -> String {
    let mut b = String::new();
    b.push_str("<h1>Resources</h1>\n<form method=get action=\"/resources\"><label>Kind <select name=kind><option value=\"\">any</option>");
    let mut kinds: Vec<&str> = all.iter().map(|r| r.kind.as_str()).collect();
    kinds.dedup();
    for kind in kinds {
        let selected = if filter.kind() == Some(kind) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            b,
            "<option value=\"{0}\"{1}>{0}</option>",
            esc(kind),
            selected
        );
    }
    let _ = writeln!(
        b,
        "</select></label> <label>Tenant <input name=tenant value=\"{}\"></label> <button type=submit>Filter</button></form>",
        esc(filter.tenant().unwrap_or(""))
    );
    let _ = writeln!(
        b,
        "<p class=muted>{} of {} resources.</p>",
        shown.len(),
        all.len()
    );
    if !shown.is_empty() {
        b.push_str("<table><thead><tr><th>Kind</th><th>Name</th><th>Tenant</th><th class=num>Objects</th><th class=num>Tenant data</th><th>Gates</th></tr></thead><tbody>\n");
        for r in shown {
            let row = r.row();
            let tenant = match row.tenant {
                Some(t) => format!("<a href=\"/resources?tenant={}\">{}</a>", seg(t), esc(t)),
                None => String::new(),
            };
            let gates: Vec<String> = row.gates.iter().map(|g| esc(g).to_string()).collect();
            let _ = writeln!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=num>{}</td><td class=num>{}</td><td>{}</td></tr>",
                esc(row.kind),
                resource_link(row.resource, row.name),
                tenant,
                row.objects,
                row.tenant_data_objects,
                gates.join(", "),
            );
        }
        b.push_str("</tbody></table>");
    }
    layout("Resources", node, &b)
}

/// One resource: its owned objects with what was last observed of each (`observed`, by
/// object id), and the last steps that touched it.
pub(crate) fn resource(
    node: &str,
    resource: &str,
    found: Option<&Resource>,
    observed: &HashMap<String, Observation>,
    steps: &[StepRecord],
    scanned_runs: usize,
    now: i64,
) -> String {
    let mut b = String::new();
    let _ = writeln!(b, "<h1>{}</h1>", esc(resource));
    if let Some(tenant) = found.and_then(|r| r.tenant.as_deref()) {
        let _ = writeln!(
            b,
            "<p>Tenant <a href=\"/resources?tenant={}\">{}</a></p>",
            seg(tenant),
            esc(tenant)
        );
    }
    b.push_str("<h2>Owned objects</h2>\n");
    match found {
        None => b.push_str("<p class=muted>SuperCP owns no object for this resource.</p>"),
        Some(r) => {
            b.push_str("<p class=muted>Observed: what the agent's last run that looked at the object found there, unless a later step (of a failed or partial run) touched it since.</p>\n");
            b.push_str("<table><thead><tr><th>Object</th><th>Anchor</th><th>Tenant data</th><th>Deletion policy</th><th>Gate</th><th>Observed</th></tr></thead><tbody>\n");
            for o in &r.objects {
                let _ = writeln!(
                    b,
                    "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&o.object),
                    esc(&o.anchor),
                    if o.tenant_data { "yes" } else { "no" },
                    esc(o.deletion_policy.as_deref().unwrap_or("")),
                    esc(o.gate.as_deref().unwrap_or("")),
                    observation(
                        observed.get(&o.object),
                        crate::model::superseding(&o.object, observed.get(&o.object), steps),
                        now
                    ),
                );
            }
            b.push_str("</tbody></table>");
        }
    }
    let _ = writeln!(
        b,
        "<h2>Last steps</h2>\n<p class=muted>Steps for this resource in the newest {scanned_runs} runs of this node, newest first.</p>"
    );
    if steps.is_empty() {
        b.push_str("<p class=muted>None.</p>");
    } else {
        steps_table(&mut b, steps, true);
    }
    layout(resource, node, &b)
}

/// A page for an error: `title` and `message` are escaped here.
pub(crate) fn error(node: &str, title: &str, message: &str) -> String {
    layout(
        title,
        node,
        &format!("<h1>{}</h1>\n<p>{}</p>", esc(title), esc(message)),
    )
}

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

impl fmt::Display for Seg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in self.0.as_bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                f.write_char(char::from(byte))?;
            } else {
                write!(f, "%{byte:02X}")?;
            }
        }
        Ok(())
    }
}

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2433;background:#f6f7f9}\
header{background:#1d2433;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:baseline}\
header a{color:#cfd8ea;text-decoration:none;margin-right:1em}header a:hover{color:#fff}\
main{padding:1em 1.5em;max-width:1400px}h1{font-size:1.5em;margin:.2em 0 .6em}h2{font-size:1.15em;margin:1.2em 0 .4em}\
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.2em 1em 1em;margin-bottom:1em}section h2{margin-top:.5em}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25em 1.2em;margin:0}dt{color:#5a6478}dd{margin:0}\
table{border-collapse:collapse;background:#fff;width:100%}th,td{border:1px solid #dde1e8;padding:.3em .5em;text-align:left;vertical-align:top}\
th{background:#eef1f5}.num{text-align:right}.nowrap{white-space:nowrap}\
pre{margin:0;white-space:pre-wrap;word-break:break-word;font:12px/1.4 ui-monospace,monospace}code{font:12px ui-monospace,monospace}\
.muted{color:#7a8396}.err{color:#a11}.tag{background:#eef1f5;border-radius:3px;padding:0 .4em}\
.badge{border-radius:3px;padding:0 .45em;font-weight:600}.succeeded,.done{background:#d9f2df;color:#175c2a}\
.failed{background:#f9d9d9;color:#8a1111}.running,.pending{background:#e1e9fb;color:#1f3f8a}.interrupted{background:#fbecd0;color:#7a4b00}\
tr.log td{background:#fafbfc;border-top:none;padding-left:2.5em}tr.log pre{color:#3b4456}\
footer{color:#7a8396;padding:1em 1.5em;font-size:12px}";

/// The page around `body`: refreshes every 10 s, no script, no external asset.
fn layout(title: &str, node: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"10\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\">\
         <title>{title} · SuperCP {node}</title><style>{STYLE}</style></head>\n\
         <body><header><strong>SuperCP</strong><span>{node}</span><nav>\
         <a href=\"/\">Overview</a><a href=\"/runs\">Runs</a><a href=\"/resources\">Resources</a>\
         <a href=\"/metrics\">Metrics</a></nav></header>\n<main>\n{body}\n</main>\n\
         <footer>Read-only. Refreshes every 10 s. Times in UTC.</footer></body></html>\n",
        title = esc(title),
        node = esc(node),
    )
}

/// One `<dt>`/`<dd>` pair; `html` is already safe.
fn dt(b: &mut String, term: &str, html: &str) {
    let _ = write!(b, "<dt>{term}</dt><dd>{html}</dd>");
}

fn outcome_badge(outcome: Outcome) -> String {
    format!("<span class=\"badge {outcome}\">{outcome}</span>")
}

fn status_badge(status: StepStatus) -> String {
    format!("<span class=\"badge {status}\">{status}</span>")
}

fn run_duration(run: &RunRecord) -> String {
    run_duration_ms(run).map_or_else(|| "<span class=muted>running</span>".to_owned(), duration)
}

fn commit_full(commit: Option<&str>) -> String {
    match commit {
        Some(c) => format!("<code>{}</code>", esc(c)),
        None => "<span class=muted>unknown</span>".to_owned(),
    }
}

fn commit_short(commit: Option<&str>) -> String {
    match commit {
        Some(c) => {
            let short: String = c.chars().take(12).collect();
            format!("<code title=\"{}\">{}</code>", esc(c), esc(&short))
        }
        None => String::new(),
    }
}

/// What was last observed of an object: matches or differs (and how), what is there (kind, mode,
/// owner ids, whether the content matches; never the content) and when. When a later step
/// touched the object (`superseded`), that step comes first and the observation is only what
/// was seen before it: never a green "as desired" the node may no longer match.
fn observation(seen: Option<&Observation>, superseded: Option<&StepRecord>, now: i64) -> String {
    let Some(seen) = seen else {
        return "<span class=muted>not observed since the agent started</span>".to_owned();
    };
    let mut b = match (superseded, &seen.differs) {
        (Some(step), _) => {
            let mut b = format!(
                "{} <span class=err>{} in <a href=\"/runs/{}\">run #{}</a> after this observation; not observed since</span>",
                status_badge(step.status),
                esc(&step.action),
                step.run_id,
                step.run_id,
            );
            if let Some(line) = step.log.last() {
                let _ = write!(b, "<br><span class=err>{}</span>", esc(line));
            }
            b.push_str("<br>before it: ");
            b.push_str(&match &seen.differs {
                None => "as desired".to_owned(),
                Some(how) => format!("differs, {}", esc(how)),
            });
            b
        }
        (None, None) => "<span class=\"badge done\">as desired</span>".to_owned(),
        (None, Some(how)) => format!(
            "<span class=\"badge failed\">differs</span> <span class=err>{}</span>",
            esc(how)
        ),
    };
    let mut found = vec![match seen.found {
        "dir" => "directory",
        other => other,
    }
    .to_owned()];
    if let Some(mode) = seen.mode {
        found.push(format!("mode {mode:04o}"));
    }
    if let Some((uid, gid)) = seen.owner {
        found.push(format!("owner {uid}:{gid}"));
    }
    match seen.content_matches {
        Some(true) => found.push("content as desired".into()),
        Some(false) => found.push("content differs".into()),
        None => {}
    }
    let _ = write!(
        b,
        "<br>{}<br><span class=muted>{} ({})</span>",
        esc(&found.join(", ")),
        utc(seen.at_ms),
        relative(seen.at_ms, now)
    );
    b
}

/// A link to `resource`'s page, reading `text`.
fn resource_link(resource: &str, text: &str) -> String {
    let (kind, name) = crate::model::split_resource(resource);
    format!(
        "<a href=\"/resources/{}/{}\">{}</a>",
        seg(kind),
        seg(name),
        esc(text)
    )
}

/// The steps of a run, or of a resource across runs (`with_run` adds a run column). A step's
/// log lines go in a full-width row below it.
fn steps_table(b: &mut String, steps: &[StepRecord], with_run: bool) {
    b.push_str("<table class=steps><thead><tr>");
    if with_run {
        b.push_str("<th>Run</th>");
    }
    b.push_str("<th class=num>#</th><th>Status</th><th>Action</th><th>Object</th><th>Resource</th><th>Origin</th><th>Started</th><th class=num>Took</th><th class=num>Attempt</th></tr></thead><tbody>\n");
    let columns = if with_run { 10 } else { 9 };
    for s in steps {
        b.push_str("<tr>");
        if with_run {
            let _ = write!(b, "<td><a href=\"/runs/{0}\">#{0}</a></td>", s.run_id);
        }
        let took = match (s.started_at, s.finished_at) {
            (Some(start), Some(end)) => duration(end - start),
            _ => String::new(),
        };
        let _ = writeln!(
            b,
            "<td class=num>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td class=nowrap>{}</td><td class=\"num nowrap\">{}</td><td class=num>{}</td></tr>",
            s.seq,
            status_badge(s.status),
            esc(&s.action),
            esc(&s.object),
            resource_link(&s.resource, &s.resource),
            esc(&s.origin),
            s.started_at.map(utc).unwrap_or_default(),
            took,
            s.attempt,
        );
        if !s.log.is_empty() {
            let log: Vec<String> = s.log.iter().map(|l| esc(l).to_string()).collect();
            let _ = writeln!(
                b,
                "<tr class=log><td colspan={columns}><pre>{}</pre></td></tr>",
                log.join("\n")
            );
        }
    }
    b.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_replaces_every_character_that_can_open_markup() {
        assert_eq!(
            escape("<script>alert(1)</script> &\"'"),
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp;&quot;&#39;"
        );
        assert_eq!(escape("plain é text"), "plain é text");
        assert_eq!(escape(""), "");
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn a_url_segment_keeps_only_unreserved_bytes() {
        assert_eq!(
            seg("a b/c?d&e#f<é").to_string(),
            "a%20b%2Fc%3Fd%26e%23f%3C%C3%A9"
        );
        assert_eq!(seg("acme.test-1_~").to_string(), "acme.test-1_~");
    }

    #[test]
    fn the_layout_escapes_the_node_name_and_has_no_script() {
        let page = error("<script>x</script>", "Not found", "no <b>such</b> page");
        assert!(!page.to_ascii_lowercase().contains("<script"), "{page}");
        assert!(page.contains("&lt;b&gt;such&lt;/b&gt;"));
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
    }
}
