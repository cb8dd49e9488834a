//! Every series a shipped dashboard or alert rule reads exists from the start, for the role that exports
//! it: a process scraped in its first seconds, before any actor, training iteration, evaluation, policy
//! or checkpoint, already has them (counters at 0, unknown values NaN, histograms empty). Otherwise a
//! panel shows "no data" and an alert rule that uses `increase()` misses the first event.
//!
//! The names come from the dashboards' JSON and the rules' YAML themselves, so the test follows them when
//! they change; tests/observability.rs checks the same expressions against a process that has run a while.

mod common;

use common::shipped::{metric_names, rule_exprs, shipped_expressions};
use common::*;
use spikerl_metrics::{Kind, Series};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Series the learner can only have once an actor registered: their `actor` label is its id
/// (docs/metrics.md: "Appears at registration").
/// (`spikerl_learner_transitions_inserted_total` has no `actor` label, and is there from the start, only
/// in `--sync` mode.)
const PER_ACTOR: [&str; 3] = [
    spikerl_metrics::learner::TRANSITIONS_RECEIVED_TOTAL,
    spikerl_metrics::learner::TRANSITIONS_INSERTED_TOTAL,
    spikerl_metrics::learner::EPISODES_TOTAL,
];

/// Every spikerl and process sample name the shipped dashboards and alert rules read, with where.
fn shipped_names() -> BTreeMap<String, BTreeSet<String>> {
    let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (origin, expr) in shipped_expressions() {
        for name in metric_names(&expr) {
            if name.starts_with("spikerl_") || name.starts_with("process_") {
                by_name.entry(name).or_default().insert(origin.clone());
            }
        }
    }
    by_name
}

/// The catalogued series a sample name belongs to (`x_bucket` / `x_sum` / `x_count` are histogram x's).
fn series_of(sample: &str) -> Option<&'static Series> {
    Series::find(sample).or_else(|| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| sample.strip_suffix(suffix))
            .filter_map(Series::find)
            .find(|s| s.kind == Kind::Histogram)
    })
}

/// The role whose process exports a series; None for both (the process series).
fn role_of(series: &Series) -> Option<&'static str> {
    if series.name.starts_with("process_") || series.name == spikerl_metrics::process::BUILD_INFO {
        None
    } else if series.name.starts_with("spikerl_actor_") {
        Some("actor")
    } else {
        Some("learner")
    }
}

/// The sample names in an exposition.
fn exposed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_series_dashboards_and_alerts_read_exists_from_the_start() {
    let shipped = shipped_names();
    let mut wanted: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for name in shipped.keys() {
        let series = series_of(name).unwrap_or_else(|| {
            panic!("{name} (read by {:?}) is not a series spikerl exports (spikerl-metrics)", shipped[name])
        });
        if PER_ACTOR.contains(&series.name) {
            continue;
        }
        match role_of(series) {
            Some(role) => wanted.entry(role).or_default().push(name),
            None => ["learner", "actor"].iter().for_each(|r| wanted.entry(*r).or_default().push(name)),
        }
    }
    assert!(shipped.len() > 40, "expected the dashboards and rules to read many series: {shipped:?}");

    let dir = temp_dir("series-at-start");
    let (grpc, learner_metrics, actor_metrics) = (free_port(), free_port(), free_port());
    let (learner_addr, actor_addr) =
        (format!("127.0.0.1:{learner_metrics}"), format!("127.0.0.1:{actor_metrics}"));
    let mut procs = Processes::default();
    // The default algorithm (proxy: a spiking actor, so the network's series apply) with the default
    // random steps and checkpoint interval: no iteration and no checkpoint happens within the test.
    let mut learner = spikerl();
    learner.args(["learner", "--listen", &format!("127.0.0.1:{grpc}"), "--metrics", &learner_addr]);
    learner.args(["--run-dir", dir.join("run").to_str().unwrap(), "--env", "Pendulum-v1", "--threads", "1"]);
    procs.spawn("learner", learner, &dir.join("learner.log"));
    // An actor whose learner never answers: it retries with backoff and exports its series meanwhile.
    let actor = actor_cmd(free_port(), "a", &["--metrics", &actor_addr]);
    procs.spawn("actor", actor, &dir.join("actor.log"));

    // Started: the learner once its gRPC service is initialised (the last step before it serves; the
    // endpoint itself answers earlier, while the networks are built), the actor once the exporter's
    // set-up has ended with the process collector.
    let ready = [
        ("learner", learner_addr.as_str(), spikerl_metrics::learner::CONNECTED_ACTORS),
        ("actor", actor_addr.as_str(), spikerl_metrics::process::START_TIME_SECONDS),
    ];
    let mut failures = Vec::new();
    for (role, addr, marker) in ready {
        let text = wait_metrics(addr, Duration::from_secs(120), &format!("the {role} to start"), |t| {
            metric(t, marker, &[]).is_some()
        });
        let have = exposed(&text);
        let want = &wanted[role];
        let missing: Vec<_> = want.iter().filter(|n| !have.contains(n.as_str())).collect();
        for n in &missing {
            failures.push(format!("{role}: {n} (read by {:?})", shipped[n.as_str()]));
        }
        eprintln!(
            "{role}: {} of {} series read by dashboards and alerts exported at start",
            want.len() - missing.len(),
            want.len()
        );
        if !missing.is_empty() {
            eprintln!("{role}'s first scrape:\n{text}");
        }
    }
    assert!(failures.is_empty(), "missing at start:\n{}", failures.join("\n"));
    // Not yet observed, yet there: the histogram behind the checkpoint panels is empty.
    let text = scrape(&learner_addr).unwrap();
    let count = spikerl_metrics::learner::CHECKPOINT_DURATION_SECONDS.to_string() + "_count";
    assert_eq!(metric(&text, &count, &[]), Some(0.0), "{text}");
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shipped_expressions_are_found() {
    let mut names = metric_names(
        r#"histogram_quantile(0.95, sum by (le) (rate(spikerl_x_seconds_bucket{job=~"spikerl_not_a_name"}[5m])))"#,
    );
    names.extend(metric_names(
        "increase(spikerl_a_total[10m]) == 0\nand on (job) (time() - process_start_time_seconds) > 9",
    ));
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["process_start_time_seconds", "spikerl_a_total", "spikerl_x_seconds_bucket"]
    );
    let yaml =
        "  - alert: A\n    expr: up == 0\n  - alert: B\n    expr: |\n      a\n        > b\n    for: 5m\n";
    assert_eq!(rule_exprs(yaml), ["up == 0", "a\n> b"]);
    assert_eq!(
        series_of("spikerl_learner_checkpoint_duration_seconds_count").map(|s| s.kind),
        Some(Kind::Histogram)
    );
    assert!(series_of("spikerl_learner_replay_size_count").is_none());
}
