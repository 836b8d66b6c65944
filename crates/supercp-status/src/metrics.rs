//! `/metrics` in the Prometheus text exposition format (version 0.0.4). Pure: the caller reads
//! the journal and passes the runs it could see.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use supercp_audit::{Outcome, RunRecord};

use crate::model::{run_duration_ms, KindCount};

/// The `Content-Type` of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the run duration histogram, in seconds.
const DURATION_BUCKETS: &[(f64, &str)] = &[
    (0.5, "0.5"),
    (1.0, "1"),
    (2.5, "2.5"),
    (5.0, "5"),
    (10.0, "10"),
    (30.0, "30"),
    (60.0, "60"),
    (120.0, "120"),
    (300.0, "300"),
    (600.0, "600"),
    (1800.0, "1800"),
];

/// What `/metrics` reports.
pub(crate) struct Inputs<'a> {
    pub node: &'a str,
    /// The node's runs the page could see (the newest of the journal), any order.
    pub runs: &'a [RunRecord],
    /// How many runs the page looks at, for the help text.
    pub window: usize,
    pub kinds: &'a BTreeMap<String, KindCount>,
    /// Runs triggered by a drift scan that completed at least one step.
    pub drift_runs_changed: usize,
    /// Now, unix milliseconds: the commit age is measured against it.
    pub now_ms: i64,
    /// The node's certificate records.
    pub certificates: &'a [supercp_audit::CertRecord],
}

/// The metrics text.
pub(crate) fn render(inputs: &Inputs<'_>) -> String {
    let mut out = String::new();
    let window = inputs.window;

    let _ = writeln!(
        out,
        "# HELP supercp_node_info The node this status page reports on.\n\
         # TYPE supercp_node_info gauge\n\
         supercp_node_info{{node=\"{}\"}} 1",
        label(inputs.node)
    );

    let _ = writeln!(
        out,
        "# HELP supercp_runs_total Runs of this node by outcome, among the newest {window} runs \
         of the journal.\n# TYPE supercp_runs_total counter"
    );
    for outcome in [
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::Interrupted,
        Outcome::Running,
    ] {
        let n = inputs.runs.iter().filter(|r| r.outcome == outcome).count();
        let _ = writeln!(out, "supercp_runs_total{{outcome=\"{outcome}\"}} {n}");
    }

    let durations_ms: Vec<i64> = inputs.runs.iter().filter_map(run_duration_ms).collect();
    let _ = writeln!(
        out,
        "# HELP supercp_run_duration_seconds How long finished runs of this node took, among \
         the newest {window} runs of the journal.\n\
         # TYPE supercp_run_duration_seconds histogram"
    );
    for (bound, text) in DURATION_BUCKETS {
        let n = durations_ms
            .iter()
            .filter(|ms| **ms as f64 / 1000.0 <= *bound)
            .count();
        let _ = writeln!(
            out,
            "supercp_run_duration_seconds_bucket{{le=\"{text}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "supercp_run_duration_seconds_bucket{{le=\"+Inf\"}} {}\n\
         supercp_run_duration_seconds_sum {}\n\
         supercp_run_duration_seconds_count {}",
        durations_ms.len(),
        // Summed in whole milliseconds so the sum carries no rounding of its own.
        durations_ms.iter().sum::<i64>() as f64 / 1000.0,
        durations_ms.len()
    );

    // Omitted, not 0, when no run succeeded: `absent()` then alerts on it.
    let last_success = inputs
        .runs
        .iter()
        .filter(|r| r.outcome == Outcome::Succeeded)
        .filter_map(|r| r.finished_at)
        .max();
    if let Some(ms) = last_success {
        let _ = writeln!(
            out,
            "# HELP supercp_last_success_timestamp_seconds When the newest successful run of \
             this node finished (unix time).\n\
             # TYPE supercp_last_success_timestamp_seconds gauge\n\
             supercp_last_success_timestamp_seconds {}",
            ms as f64 / 1000.0
        );
    }

    // The newest successful run applied the commit the node runs. Omitted when that run
    // recorded no commit time (not a Git repo, or journaled before commit times were).
    let committed = inputs
        .runs
        .iter()
        .filter(|r| r.outcome == Outcome::Succeeded)
        .max_by_key(|r| r.id)
        .and_then(|r| r.git_time);
    if let Some(committed) = committed {
        let _ = writeln!(
            out,
            "# HELP supercp_commit_age_seconds How long ago the commit of the newest successful \
             run of this node was committed (committer time).\n\
             # TYPE supercp_commit_age_seconds gauge\n\
             supercp_commit_age_seconds {}",
            inputs.now_ms.div_euclid(1000) - committed
        );
    }

    let _ = writeln!(
        out,
        "# HELP supercp_resources Resources that own objects on this node, by kind.\n\
         # TYPE supercp_resources gauge"
    );
    for (kind, count) in inputs.kinds {
        let _ = writeln!(
            out,
            "supercp_resources{{kind=\"{}\"}} {}",
            label(kind),
            count.resources
        );
    }
    let _ = writeln!(
        out,
        "# HELP supercp_owned_objects Objects SuperCP owns on this node, by resource kind.\n\
         # TYPE supercp_owned_objects gauge"
    );
    for (kind, count) in inputs.kinds {
        let _ = writeln!(
            out,
            "supercp_owned_objects{{kind=\"{}\"}} {}",
            label(kind),
            count.objects
        );
    }

    let _ = writeln!(
        out,
        "# HELP supercp_drift_runs_total Drift-scan runs of this node that changed something (a \
         step done), among the newest {window} runs of the journal.\n\
         # TYPE supercp_drift_runs_total counter\n\
         supercp_drift_runs_total {}",
        inputs.drift_runs_changed
    );

    if !inputs.certificates.is_empty() {
        let failing = inputs
            .certificates
            .iter()
            .filter(|c| c.failures > 0)
            .count();
        let _ = writeln!(
            out,
            "# HELP supercp_certificates Certificates of this node's TLS domains that SuperCP \
             ordered, by state (failing: the last order failed).\n\
             # TYPE supercp_certificates gauge\n\
             supercp_certificates{{state=\"issued\"}} {}\n\
             supercp_certificates{{state=\"failing\"}} {failing}",
            inputs.certificates.len() - failing
        );
        if let Some(first) = inputs.certificates.iter().filter_map(|c| c.not_after).min() {
            let _ = writeln!(
                out,
                "# HELP supercp_certificate_next_expiry_timestamp_seconds When the first of this \
                 node's issued certificates expires.\n\
                 # TYPE supercp_certificate_next_expiry_timestamp_seconds gauge\n\
                 supercp_certificate_next_expiry_timestamp_seconds {first}"
            );
        }
    }
    out
}

/// `value` as a label value: backslash, double quote and newline escaped.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: i64, outcome: Outcome, started: i64, finished: Option<i64>) -> RunRecord {
        RunRecord {
            id,
            node: "web1".into(),
            actor: "root".into(),
            repo: "/srv/repo".into(),
            git_commit: None,
            git_author: None,
            git_dirty: None,
            git_message: None,
            git_time: None,
            trigger: "cli".into(),
            summary: "no changes".into(),
            outcome,
            started_at: started,
            finished_at: finished,
            pid: 1,
            error: None,
            gate_checks: 0,
            reloads: 0,
        }
    }

    #[test]
    fn runs_are_counted_by_outcome_and_bucketed_by_duration() {
        let runs = [
            run(1, Outcome::Succeeded, 1_000, Some(1_400)),
            run(2, Outcome::Failed, 2_000, Some(5_000)),
            run(3, Outcome::Succeeded, 10_000, Some(12_000)),
            run(4, Outcome::Running, 20_000, None),
        ];
        let kinds = BTreeMap::from([(
            "Domain".to_owned(),
            KindCount {
                resources: 2,
                objects: 7,
            },
        )]);
        let text = render(&Inputs {
            node: "web\"1",
            runs: &runs,
            window: 1000,
            kinds: &kinds,
            drift_runs_changed: 3,
            now_ms: 100_000,
            certificates: &[],
        });
        for line in [
            "supercp_node_info{node=\"web\\\"1\"} 1",
            "supercp_runs_total{outcome=\"succeeded\"} 2",
            "supercp_runs_total{outcome=\"failed\"} 1",
            "supercp_runs_total{outcome=\"interrupted\"} 0",
            "supercp_runs_total{outcome=\"running\"} 1",
            "supercp_run_duration_seconds_bucket{le=\"0.5\"} 1",
            "supercp_run_duration_seconds_bucket{le=\"2.5\"} 2",
            "supercp_run_duration_seconds_bucket{le=\"5\"} 3",
            "supercp_run_duration_seconds_bucket{le=\"+Inf\"} 3",
            "supercp_run_duration_seconds_sum 5.4",
            "supercp_run_duration_seconds_count 3",
            "supercp_last_success_timestamp_seconds 12",
            "supercp_resources{kind=\"Domain\"} 2",
            "supercp_owned_objects{kind=\"Domain\"} 7",
            "supercp_drift_runs_total 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
    }

    #[test]
    fn certificates_are_counted_by_state_with_the_next_expiry() {
        let kinds = BTreeMap::new();
        let certs = [
            supercp_audit::CertRecord {
                domain: "a.test".into(),
                not_after: Some(2_000),
                ..Default::default()
            },
            supercp_audit::CertRecord {
                domain: "b.test".into(),
                not_after: Some(1_000),
                ..Default::default()
            },
            supercp_audit::CertRecord {
                domain: "c.test".into(),
                failures: 3,
                ..Default::default()
            },
        ];
        let text = render(&Inputs {
            node: "web1",
            runs: &[],
            window: 10,
            kinds: &kinds,
            drift_runs_changed: 0,
            now_ms: 0,
            certificates: &certs,
        });
        assert!(
            text.contains("supercp_certificates{state=\"issued\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("supercp_certificates{state=\"failing\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("supercp_certificate_next_expiry_timestamp_seconds 1000"),
            "{text}"
        );
    }

    #[test]
    fn no_successful_run_means_no_last_success_sample() {
        let runs = [run(1, Outcome::Failed, 0, Some(1))];
        let text = render(&Inputs {
            node: "web1",
            runs: &runs,
            window: 10,
            kinds: &BTreeMap::new(),
            drift_runs_changed: 0,
            now_ms: 100_000,
            certificates: &[],
        });
        assert!(!text.contains("supercp_last_success_timestamp_seconds"));
        assert!(!text.contains("supercp_commit_age_seconds"));
    }

    #[test]
    fn commit_age_is_measured_from_the_commit_of_the_newest_successful_run() {
        let committed = |mut r: RunRecord, at: i64| {
            r.git_time = Some(at);
            r
        };
        let runs = [
            committed(run(1, Outcome::Succeeded, 1_000, Some(2_000)), 10),
            committed(run(2, Outcome::Succeeded, 3_000, Some(4_000)), 40),
            // A refused or failed commit is not the one the node runs.
            committed(run(3, Outcome::Failed, 5_000, Some(6_000)), 90),
        ];
        let text = render(&Inputs {
            node: "web1",
            runs: &runs,
            window: 10,
            kinds: &BTreeMap::new(),
            drift_runs_changed: 0,
            now_ms: 100_999,
            certificates: &[],
        });
        for line in [
            "# TYPE supercp_commit_age_seconds gauge",
            "supercp_commit_age_seconds 60",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
    }

    #[test]
    fn a_newest_successful_run_without_a_commit_time_means_no_commit_age() {
        let mut old = run(1, Outcome::Succeeded, 1_000, Some(2_000));
        old.git_time = Some(10);
        let runs = [old, run(2, Outcome::Succeeded, 3_000, Some(4_000))];
        let text = render(&Inputs {
            node: "web1",
            runs: &runs,
            window: 10,
            kinds: &BTreeMap::new(),
            drift_runs_changed: 0,
            now_ms: 100_000,
            certificates: &[],
        });
        assert!(!text.contains("supercp_commit_age_seconds"), "{text}");
    }
}
