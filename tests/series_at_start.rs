//! Every series a shipped dashboard or alert rule reads exists from the start, for the role that exports
//! it: a process scraped in its first seconds, before any actor, training iteration, evaluation, policy
//! or checkpoint, already has them (counters at 0, unknown values NaN, histograms empty). Otherwise a
//! panel shows "no data" and an alert rule that uses `increase()` misses the first event.
//!
//! The names come from the dashboards' JSON and the rules' YAML themselves, so the test follows them when
//! they change; tests/observability.rs checks the same expressions against a process that has run a while.

mod common;

use common::*;
use serde_json::Value;
use spikerl_metrics::{Kind, Series};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Series the learner can only have once an actor registered: their `actor` label is its id
/// (docs/metrics.md: "Appears at registration").
const PER_ACTOR: [&str; 2] =
    [spikerl_metrics::learner::TRANSITIONS_RECEIVED_TOTAL, spikerl_metrics::learner::EPISODES_TOTAL];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("listing {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A dashboard's PromQL: panel targets' `expr` and query variables' `query`.
fn dashboard_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(e)) = map.get("expr") {
                out.push(e.clone());
            }
            if map.get("type").and_then(Value::as_str) == Some("query")
                && let Some(q) = map.get("query")
                && let Some(q) = q.get("query").unwrap_or(q).as_str()
            {
                out.push(q.to_string());
            }
            map.values().for_each(|c| dashboard_exprs(c, out));
        }
        Value::Array(items) => items.iter().for_each(|c| dashboard_exprs(c, out)),
        _ => {}
    }
}

/// A rules file's `expr:` values, one line or a `|` / `>` block (annotations also name series, in prose
/// that no rule evaluates, so they are left out).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix("expr:") else { continue };
        let indent = line.len() - trimmed.len();
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let block = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim());
            out.push(block.collect::<Vec<_>>().join("\n"));
        } else {
            out.push(rest.trim_matches(|c| c == '\'' || c == '"').to_string());
        }
    }
    out
}

/// The spikerl and process sample names an expression selects (outside quoted strings, which hold label
/// values).
fn sample_names(expr: &str, out: &mut BTreeSet<String>) {
    let mut unquoted = String::new();
    let mut quote = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if matches!(c, '"' | '\'' | '`') => {
                quote = Some(c);
                unquoted.push(' ');
            }
            None => unquoted.push(c),
        }
    }
    for word in unquoted.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
        if word.starts_with("spikerl_") || word.starts_with("process_") {
            out.insert(word.to_string());
        }
    }
}

/// Every sample name the shipped dashboards and alert rules read, with the files that read it.
fn shipped_names() -> BTreeMap<String, BTreeSet<String>> {
    let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |file: &Path, exprs: Vec<String>| {
        let origin = file.file_name().unwrap().to_string_lossy().into_owned();
        let mut names = BTreeSet::new();
        exprs.iter().for_each(|e| sample_names(e, &mut names));
        assert!(!names.is_empty(), "{origin}: no spikerl series found");
        for n in names {
            by_name.entry(n).or_default().insert(origin.clone());
        }
    };
    let dashboards = files("deploy/grafana/dashboards", "json");
    assert!(!dashboards.is_empty(), "no dashboards found");
    for path in dashboards {
        let json: Value =
            serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut exprs = Vec::new();
        dashboard_exprs(&json, &mut exprs);
        add(&path, exprs);
    }
    let rules = files("deploy/prometheus/rules", "yml");
    assert!(!rules.is_empty(), "no alert rules found");
    for path in rules {
        add(&path, rule_exprs(&read(&path)));
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
    let mut names = BTreeSet::new();
    sample_names(
        r#"histogram_quantile(0.95, sum by (le) (rate(spikerl_x_seconds_bucket{job=~"spikerl_not_a_name"}[5m])))"#,
        &mut names,
    );
    sample_names(
        "increase(spikerl_a_total[10m]) == 0\nand on (job) (time() - process_start_time_seconds) > 9",
        &mut names,
    );
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
