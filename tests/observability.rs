//! Observability end to end: the series the exporters really emit against what the dashboards, alert rules
//! and docs/metrics.md use, a real Prometheus server (Debian's `prometheus` package) scraping a real learner
//! and actor on loopback ports, and `promtool` on the shipped configuration and rules.
//!
//! Prometheus and promtool come from PATH (scripts/setup_test_deps.sh installs Debian's `prometheus`
//! package; the tests never install anything). Without them the Prometheus parts skip loudly through
//! `common::require`, or fail where SPIKERL_REQUIRE lists `prometheus` (CI); everything else always runs.

mod common;

use common::shipped::{files, metric_names, root, shipped_expressions};
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The metric names in docs/interface.md: they must be there from the moment the endpoint answers.
const INTERFACE_LEARNER: [&str; 6] = [
    "spikerl_learner_train_iterations_total",
    "spikerl_learner_replay_size",
    "spikerl_learner_policy_version",
    "spikerl_learner_transitions_rejected_total",
    "spikerl_learner_connected_actors",
    "spikerl_eval_return_last",
];
const INTERFACE_ACTOR: [&str; 4] = [
    "spikerl_actor_env_steps_total",
    "spikerl_actor_policy_version",
    "spikerl_actor_transitions_produced_total",
    "spikerl_actor_transitions_acked_total",
];
/// The learner's per-actor series: present once an actor has registered.
const INTERFACE_PER_ACTOR: [&str; 2] =
    ["spikerl_learner_transitions_received_total", "spikerl_learner_transitions_inserted_total"];

/// Series Prometheus itself makes (not exporter output) that expressions may use.
const PROMETHEUS_SERIES: [&str; 4] = ["up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"];

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

// The shipped expressions and the names in them: `common::shipped`.

#[test]
fn metric_name_extraction_understands_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.95, sum by (le, method) (rate(spikerl_grpc_server_handling_seconds_bucket{instance=~"$learner", method="Register"}[$__rate_interval])))"#
        ),
        ["spikerl_grpc_server_handling_seconds_bucket"]
    );
    assert_eq!(
        names(
            "increase(a_total[10m]) == 0\nand on (job, instance) (time() - process_start_time_seconds) > 900"
        ),
        ["a_total", "process_start_time_seconds"]
    );
    assert_eq!(names("label_values(spikerl_run_info, instance)"), ["spikerl_run_info"]);
    assert_eq!(names(r#"count(ALERTS{alertstate="firing"}) or vector(0)"#), ["ALERTS"]);
    assert_eq!(names("1e-9 * sum(rate(x[5m])) * scalar(max(y{a=\"}\"}))"), ["x", "y"]);
    assert_eq!(names("a / ignoring(actor) group_left b offset 5m"), ["a", "b"]);
}

// ---------------------------------------------------------------------------------------------------
// Exposition parsing.

/// Sample names in an exposition (histograms as their _bucket/_sum/_count series).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// `# TYPE` and `# HELP` per family.
fn families(text: &str) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let mut types = BTreeMap::new();
    let mut helps = BTreeSet::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("#"), Some("TYPE"), Some(name), Some(kind)) => {
                types.insert(name.to_string(), kind.to_string());
            }
            (Some("#"), Some("HELP"), Some(name), Some(help)) if !help.trim().is_empty() => {
                helps.insert(name.to_string());
            }
            _ => {}
        }
    }
    (types, helps)
}

/// Series names defined in docs/metrics.md: every `name` in backticks that looks like a metric.
fn documented_names() -> BTreeSet<String> {
    let doc = read("docs/metrics.md");
    doc.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.split('{').next().unwrap_or(s).trim().to_string())
        .filter(|s| (s.starts_with("spikerl_") || s.starts_with("process_")) && !s.ends_with('_'))
        .filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect()
}

/// Names the binary describes: the series catalogue (`spikerl_metrics::ALL`, metrics/src/lib.rs).
fn described_names() -> BTreeSet<String> {
    spikerl_metrics::ALL.iter().map(|s| s.name.to_string()).collect()
}

fn base_name(sample: &str, types: &BTreeMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix)
            && types.get(base).is_some_and(|t| t == "histogram" || t == "summary")
        {
            return base.to_string();
        }
    }
    sample.to_string()
}

// ---------------------------------------------------------------------------------------------------
// A learner and an actor.

struct Cluster {
    procs: Processes,
    dir: PathBuf,
    grpc: u16,
    learner: String,
    actor: String,
}

impl Cluster {
    /// A proxy-target learner that trains for a long time, checkpointing every second (so checkpoint
    /// series move), on Pendulum; the actor is started separately by `start_actor`.
    fn start_learner(name: &str) -> Cluster {
        let dir = temp_dir(name);
        let (grpc, lm, am) = (free_port(), free_port(), free_port());
        let mut procs = Processes::default();
        let mut cmd = spikerl();
        cmd.args([
            "learner",
            "--listen",
            &format!("127.0.0.1:{grpc}"),
            "--metrics",
            &format!("127.0.0.1:{lm}"),
        ]);
        cmd.args([
            "--run-dir",
            dir.join("run").to_str().unwrap(),
            "--env",
            "Pendulum-v1",
            "--threads",
            "1",
            "--log",
            "info",
        ]);
        cmd.args(["--algo", "proxy", "--neuron", "lif", "--steps", "1000000", "--random-steps", "300"]);
        cmd.args([
            "--eval-every",
            "1000000",
            "--eval-episodes",
            "1",
            "--checkpoint-secs",
            "1",
            "--seed",
            "5",
        ]);
        procs.spawn("learner", cmd, &dir.join("learner.log"));
        Cluster { procs, dir, grpc, learner: format!("127.0.0.1:{lm}"), actor: format!("127.0.0.1:{am}") }
    }

    /// Starts the actor; returns its index in `procs`.
    fn start_actor(&mut self) -> usize {
        let mut cmd = actor_cmd(self.grpc, "obs-actor", &["--metrics", &self.actor]);
        cmd.env("OMP_NUM_THREADS", "1");
        self.procs.spawn("actor", cmd, &self.dir.join("actor.log"))
    }

    fn logs(&self) -> String {
        let log = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        let tail = |s: String| {
            s.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        format!(
            "--- learner.log (tail)\n{}\n--- actor.log (tail)\n{}",
            tail(log("learner.log")),
            tail(log("actor.log"))
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.procs.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[test]
fn dashboards_alerts_and_docs_use_only_series_the_exporters_emit() {
    let exprs = shipped_expressions();
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (origin, e) in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty() || e.contains("vector("), "{origin}: no metric in expression {e:?}");
        for n in names {
            used.entry(n).or_default().push(origin.clone());
        }
    }

    let mut c = Cluster::start_learner("obs-names");
    // The interface names are there as soon as the learner serves (before any actor).
    let first = wait_metrics(
        &c.learner,
        Duration::from_secs(120),
        "the learner's metrics with its run started",
        |t| metric(t, "spikerl_learner_connected_actors", &[]).is_some(),
    );
    let names = sample_names(&first);
    for n in INTERFACE_LEARNER {
        assert!(names.contains(n), "{n} is not exported at start:\n{first}\n{}", c.logs());
    }
    assert!(
        first.contains(r#"spikerl_learner_transitions_rejected_total{role="learner",reason="shape"} 0"#),
        "{first}"
    );
    assert!(
        metric(&first, "spikerl_learner_policy_lag", &[]).is_some_and(f64::is_nan),
        "no actor, no lag: {first}"
    );
    let actor = c.start_actor();
    let actor_first = wait_metrics(&c.actor, Duration::from_secs(60), "the actor's metrics", |_| true);
    for n in INTERFACE_ACTOR {
        assert!(
            sample_names(&actor_first).contains(n),
            "{n} is not exported at the actor's start:\n{actor_first}"
        );
    }

    // Run until every name the dashboards and rules use has appeared (histograms need an observation).
    let deadline = Instant::now() + Duration::from_secs(240);
    let (learner_text, actor_text, emitted) = loop {
        let lt = scrape(&c.learner).unwrap_or_default();
        let at = scrape(&c.actor).unwrap_or_default();
        let mut emitted = sample_names(&lt);
        emitted.extend(sample_names(&at));
        let missing: Vec<&String> = used
            .keys()
            .filter(|n| !emitted.contains(*n) && !PROMETHEUS_SERIES.contains(&n.as_str()))
            .collect();
        if missing.is_empty() && INTERFACE_PER_ACTOR.iter().all(|n| emitted.contains(*n)) {
            break (lt, at, emitted);
        }
        assert!(
            Instant::now() < deadline,
            "series used by dashboards/rules but never emitted: {:?}\n(used in: {:?})\n{}",
            missing,
            missing.iter().map(|m| &used[*m]).collect::<Vec<_>>(),
            c.logs()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let received = metric(&learner_text, INTERFACE_PER_ACTOR[0], &[("actor", "0")]).unwrap_or(0.0);
    let steps = metric(&actor_text, "spikerl_actor_env_steps_total", &[]).unwrap_or(0.0);
    let iterations = metric(&learner_text, "spikerl_learner_train_iterations_total", &[]).unwrap_or(0.0);
    eprintln!(
        "{} expressions use {} names; the learner and actor emit {} sample names (received {received}, actor steps {steps}, iterations {iterations})",
        exprs.len(),
        used.len(),
        emitted.len()
    );

    // Every family has HELP text and is defined in docs/metrics.md; docs and the catalogue agree.
    let documented = documented_names();
    let described = described_names();
    for text in [&learner_text, &actor_text] {
        let (types, helps) = families(text);
        for sample in sample_names(text) {
            let base = base_name(&sample, &types);
            assert!(helps.contains(&base), "{base} has no HELP line (describe it in metrics/src/lib.rs)");
            assert!(documented.contains(&base), "{base} is emitted but not defined in docs/metrics.md");
            assert!(
                described.contains(&base),
                "{base} is emitted but missing from the catalogue (spikerl_metrics::ALL)"
            );
        }
        for (name, kind) in &types {
            if name.ends_with("_seconds") && kind != "gauge" {
                assert_eq!(
                    kind, "histogram",
                    "{name}: _seconds distributions must be histograms with buckets"
                );
            }
        }
    }
    // Labels stay bounded: no series label holds a free-form value.
    for line in learner_text.lines().chain(actor_text.lines()).filter(|l| !l.starts_with('#')) {
        assert!(line.len() < 300, "suspiciously long series: {line}");
    }

    // Policy lag: reported while the actor streams, gone once it has left. The learner's lag has no
    // actor label (a per-actor gauge would keep a departed actor's last value forever).
    let lag_lines = |t: &str| {
        t.lines()
            .filter(|l| l.starts_with("spikerl_learner_policy_lag"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let streaming =
        wait_metrics(&c.learner, Duration::from_secs(60), "a policy lag from the connected actor", |t| {
            metric(t, "spikerl_learner_policy_lag", &[]).is_some_and(f64::is_finite)
        });
    assert_eq!(
        lag_lines(&streaming).len(),
        1,
        "one lag series, no per-actor ones: {:?}",
        lag_lines(&streaming)
    );
    assert!(
        metric(&streaming, "spikerl_learner_batch_policy_lag_count", &[]).is_some_and(|n| n >= 1.0),
        "{streaming}"
    );
    c.procs.kill(actor);
    let left =
        wait_metrics(&c.learner, Duration::from_secs(30), "the learner to notice the actor left", |t| {
            metric(t, "spikerl_learner_connected_actors", &[]) == Some(0.0)
        });
    let lag = lag_lines(&left);
    assert!(
        lag.len() == 1 && metric(&left, "spikerl_learner_policy_lag", &[]).is_some_and(f64::is_nan),
        "after the only actor left the learner reports no lag for it: {lag:?}"
    );
    eprintln!("policy lag while streaming: {:?}; after the actor left: {lag:?}", lag_lines(&streaming));
}

/// `spikerl train --sync` serves the learner's series plus the actor step and episode series it produces
/// itself (docs/metrics.md), each defined and described, and no distributed-only series.
#[test]
fn the_lockstep_learner_exports_its_documented_series() {
    let dir = temp_dir("obs-sync");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut procs = Processes::default();
    let mut cmd = spikerl();
    cmd.args([
        "train",
        "--sync",
        "--env",
        "Pendulum-v1",
        "--algo",
        "ann",
        "--steps",
        "1000000",
        "--random-steps",
        "256",
    ]);
    cmd.args([
        "--eval-every",
        "1000000",
        "--eval-episodes",
        "1",
        "--threads",
        "1",
        "--no-progress",
        "--metrics",
        &addr,
    ]);
    cmd.args(["--out", dir.join("run").to_str().unwrap()]);
    procs.spawn("train", cmd, &dir.join("train.log"));
    let at_start = wait_metrics(&addr, Duration::from_secs(120), "the lockstep learner's run started", |t| {
        metric(t, "spikerl_run_info", &[("mode", "sync")]).is_some()
    });
    // Pendulum episodes are 200 steps: after the first one every per-episode series has a value.
    let text = wait_metrics(&addr, Duration::from_secs(120), "a finished lockstep episode", |t| {
        metric(t, "spikerl_actor_episode_length_last", &[]).is_some_and(|v| v == 200.0)
    });
    let names = sample_names(&text);
    let sync_series = [
        "spikerl_actor_env_steps_total",
        "spikerl_actor_episodes_total",
        "spikerl_actor_episode_return_last",
        "spikerl_actor_episode_length_last",
    ];
    for n in sync_series {
        assert!(
            sample_names(&at_start).contains(n),
            "{n} is not exported from the start in --sync mode:\n{at_start}"
        );
    }
    // Series about actors and their network traffic are the distributed learner's (docs/metrics.md).
    let distributed_only = [
        "spikerl_learner_connected_actors",
        "spikerl_learner_transitions_rejected_total",
        "spikerl_learner_policy_lag",
        "spikerl_grpc_server_started_total",
    ];
    for n in INTERFACE_LEARNER.iter().filter(|n| !distributed_only.contains(n)) {
        assert!(names.contains(*n), "{n} is not exported in --sync mode:\n{text}");
    }
    for n in distributed_only {
        assert!(
            !names.contains(n),
            "{n} has no meaning without actors and must not be exported in --sync mode"
        );
    }
    let (types, helps) = families(&text);
    let (documented, described) = (documented_names(), described_names());
    for sample in &names {
        let base = base_name(sample, &types);
        assert!(
            helps.contains(&base) && documented.contains(&base) && described.contains(&base),
            "{base}: HELP, docs/metrics.md and the catalogue"
        );
    }
    eprintln!("--sync exports {} sample names", names.len());
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn docs_define_every_series_the_binary_describes_and_dashboards_are_well_formed() {
    let documented = documented_names();
    let described = described_names();
    assert!(described.len() > 50, "the catalogue spikerl_metrics::ALL holds only {} names", described.len());
    let undocumented: Vec<_> = described.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "in the catalogue (metrics/src/lib.rs) but not in docs/metrics.md: {undocumented:?}"
    );
    let unknown: Vec<_> = documented.difference(&described).collect();
    assert!(unknown.is_empty(), "in docs/metrics.md but never described by the binary: {unknown:?}");
    for n in INTERFACE_LEARNER.iter().chain(&INTERFACE_ACTOR).chain(&INTERFACE_PER_ACTOR) {
        assert!(described.contains(*n), "interface name {n} missing");
    }
    // Names used by dashboards and rules are all defined (or are Prometheus' own, or histogram series).
    for (origin, e) in shipped_expressions() {
        for n in metric_names(&e) {
            let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| n.strip_suffix(s)).unwrap_or(&n);
            assert!(
                documented.contains(&n)
                    || documented.contains(base)
                    || PROMETHEUS_SERIES.contains(&n.as_str()),
                "{origin}: {n} is not defined in docs/metrics.md"
            );
        }
    }

    // Grafana provisioning points at the dashboards folder and the datasource uid the dashboards default to.
    let provider = read("deploy/grafana/provisioning/dashboards/spikerl.yml");
    assert!(provider.contains("path: /var/lib/grafana/dashboards"), "{provider}");
    let datasource = read("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert!(
        datasource.contains("uid: spikerl-prometheus") && datasource.contains("url: http://prometheus:9090"),
        "{datasource}"
    );
    let mut uids = BTreeSet::new();
    let dashboards = files("deploy/grafana/dashboards", "json");
    assert_eq!(dashboards.len(), 3, "health, learning and spiking-network dashboards: {dashboards:?}");
    for path in dashboards {
        let name = path.display().to_string();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(uids.insert(d["uid"].as_str().expect("uid").to_string()), "{name}: duplicate uid");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}: title");
        let vars = d["templating"]["list"].as_array().expect("templating");
        let ds = vars.iter().find(|v| v["name"] == "datasource").expect("a datasource variable");
        assert_eq!(ds["current"]["value"], "spikerl-prometheus", "{name}");
        let panels = d["panels"].as_array().expect("panels");
        let mut cells = BTreeSet::new();
        for p in panels {
            let title = p["title"].as_str().unwrap_or("?");
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(x + w <= 24, "{name}: panel {title} is wider than the grid");
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(cells.insert((cx, cy)), "{name}: panel {title} overlaps another");
                }
            }
            if let Some(targets) = p["targets"].as_array() {
                assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}: panel {title} datasource");
                let refs: BTreeSet<_> = targets.iter().map(|t| t["refId"].as_str().unwrap()).collect();
                assert_eq!(refs.len(), targets.len(), "{name}: panel {title} repeats a refId");
                assert!(
                    targets.iter().all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())),
                    "{name}: {title}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Prometheus and promtool.

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool").args(args).current_dir(root()).output().expect("running promtool");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn promtool_accepts_the_shipped_configuration_and_rules() {
    if !require(Need::Prometheus) {
        return;
    }
    let rules: Vec<String> = files("deploy/prometheus/rules", "yml")
        .iter()
        .map(|p| p.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    assert!(!rules.is_empty(), "no rule files in deploy/prometheus/rules");
    let mut args = vec!["check", "rules"];
    args.extend(rules.iter().map(String::as_str));
    let (ok, out) = promtool(&args);
    assert!(ok, "promtool check rules:\n{out}");
    eprintln!("{}", out.trim());

    // The compose configuration (DNS names need not resolve: check config validates syntax and rule files).
    let (ok, out) = promtool(&["check", "config", "deploy/prometheus/prometheus.yml"]);
    assert!(ok, "promtool check config prometheus.yml:\n{out}");
    assert!(
        out.contains("rule files found") || out.contains("rules found"),
        "the config loads the rules:\n{out}"
    );

    // The alert rules behave: each fires on its failure and stays quiet on a healthy run.
    let (ok, out) = promtool(&["test", "rules", "tests/fixtures/prometheus/alerts_test.yml"]);
    assert!(ok, "promtool test rules:\n{out}");

    // Kubernetes: Debian builds Prometheus without the Kubernetes service discovery; then everything but
    // that block (relabelling, rule files) is checked on a copy that discovers a placeholder target.
    let (ok, out) = promtool(&["check", "config", "deploy/prometheus/prometheus-k8s.yml"]);
    if !ok && out.contains("kubernetes_sd_configs not found") {
        let text = read("deploy/prometheus/prometheus-k8s.yml");
        let start = text.find("    kubernetes_sd_configs:").expect("kubernetes_sd_configs block");
        let end =
            start + text[start..].find("    relabel_configs:").expect("relabel_configs after the sd block");
        let copy = format!(
            "{}    static_configs:\n      - targets: [\"placeholder:9100\"]\n{}",
            &text[..start],
            &text[end..]
        );
        let dir = temp_dir("obs-k8s-config");
        std::fs::write(dir.join("prometheus.yml"), copy).unwrap();
        std::os::unix::fs::symlink(root().join("deploy/prometheus/rules"), dir.join("rules")).unwrap();
        let (ok2, out2) = promtool(&["check", "config", dir.join("prometheus.yml").to_str().unwrap()]);
        assert!(
            ok2,
            "promtool check config prometheus-k8s.yml (with a placeholder for kubernetes_sd_configs):\n{out2}"
        );
        eprintln!(
            "note: this promtool lacks Kubernetes service discovery; prometheus-k8s.yml was checked with a placeholder for it"
        );
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        assert!(ok, "promtool check config prometheus-k8s.yml:\n{out}");
    }
}

/// GET over HTTP/1.0 (no chunked encoding): (status, body).
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs an instant query: Ok(result array) or Err(the error Prometheus reports).
fn query(prom: &str, q: &str) -> Result<Vec<Value>, String> {
    let (_, body) =
        http_get(prom, &format!("/api/v1/query?query={}", encode(q))).ok_or("no answer from Prometheus")?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn value(sample: &Value) -> f64 {
    sample["value"][1].as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_real_prometheus_scrapes_learner_and_actor_and_evaluates_every_shipped_expression() {
    if !require(Need::Prometheus) {
        return;
    }
    let mut c = Cluster::start_learner("obs-prometheus");
    c.start_actor();
    wait_metrics(&c.learner, Duration::from_secs(120), "the learner's metrics", |_| true);
    wait_metrics(&c.actor, Duration::from_secs(60), "the actor's metrics", |_| true);

    // A Prometheus on a loopback port with the shipped rules, scraping both every second.
    let prom_dir = c.dir.join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let rules = root().join("deploy/prometheus/rules");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}/*.yml\n\
         scrape_configs:\n  - job_name: learner\n    static_configs:\n      - targets: [\"{}\"]\n  \
         - job_name: actor\n    static_configs:\n      - targets: [\"{}\"]\n",
        rules.display(),
        c.learner,
        c.actor
    );
    std::fs::write(prom_dir.join("prometheus.yml"), config).unwrap();
    let prom = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", prom_dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", prom_dir.join("data").display()))
        .arg(format!("--web.listen-address={prom}"))
        .arg("--log.level=warn")
        .stdin(std::process::Stdio::null());
    let p = c.procs.spawn("prometheus", cmd, &c.dir.join("prometheus.log"));
    let logs = |c: &Cluster| {
        format!(
            "{}\n--- prometheus.log\n{}",
            c.logs(),
            std::fs::read_to_string(c.dir.join("prometheus.log")).unwrap_or_default()
        )
    };
    wait_for("Prometheus to be ready", Duration::from_secs(60), || {
        if let Ok(Some(status)) = c.procs.0[p].1.try_wait() {
            panic!("prometheus exited: {status}\n{}", logs(&c));
        }
        http_get(&prom, "/-/ready").filter(|(s, _)| *s == 200)
    });

    // Both targets up.
    let up = wait_for("both targets up", Duration::from_secs(60), || {
        let r = query(&prom, "up").ok()?;
        let jobs: BTreeMap<String, f64> =
            r.iter().map(|s| (s["metric"]["job"].as_str().unwrap_or("").to_string(), value(s))).collect();
        (jobs.get("learner") == Some(&1.0) && jobs.get("actor") == Some(&1.0)).then_some(jobs)
    });
    eprintln!("up: {up:?}");

    // Training iterations increase between scrapes; the actor steps; the run is described.
    let first = wait_for("spikerl_learner_train_iterations_total", Duration::from_secs(60), || {
        query(&prom, r#"spikerl_learner_train_iterations_total{job="learner"}"#)
            .ok()?
            .first()
            .map(value)
            .filter(|v| v.is_finite())
    });
    let later = wait_for("training iterations to increase in Prometheus", Duration::from_secs(180), || {
        query(&prom, r#"spikerl_learner_train_iterations_total{job="learner"}"#)
            .ok()?
            .first()
            .map(value)
            .filter(|v| *v > first)
    });
    let steps = wait_for("spikerl_actor_env_steps_total > 0", Duration::from_secs(60), || {
        query(&prom, r#"spikerl_actor_env_steps_total{job="actor"}"#)
            .ok()?
            .first()
            .map(value)
            .filter(|v| *v > 0.0)
    });
    let info = query(&prom, "spikerl_run_info").unwrap();
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0]["metric"]["env"], "Pendulum-v1");
    assert_eq!(info[0]["metric"]["algo"], "proxy");
    assert_eq!(info[0]["metric"]["mode"], "distributed");
    assert_eq!(info[0]["metric"]["job"], "learner");
    let connected = query(&prom, "sum(spikerl_learner_connected_actors)").unwrap();
    assert_eq!(connected.first().map(value), Some(1.0), "{connected:?}");
    let received = query(&prom, "spikerl_learner_transitions_received_total").unwrap();
    assert!(received.iter().any(|s| s["metric"]["actor"] == "0" && value(s) > 0.0), "{received:?}");
    let p50 = wait_for("an update-duration quantile", Duration::from_secs(60), || {
        let r = query(&prom, "histogram_quantile(0.5, sum by (le) (rate(spikerl_learner_update_duration_seconds_bucket[30s])))").ok()?;
        r.first().map(value).filter(|v| v.is_finite() && *v > 0.0)
    });
    let rss = query(&prom, r#"process_resident_memory_bytes{job="learner"}"#).unwrap();
    assert!(rss.first().map(value).is_some_and(|v| v > 1e6), "{rss:?}");
    eprintln!("iterations {first} -> {later}; actor env steps {steps}; update p50 {p50:.4} s");

    // Every dashboard and rule expression is valid PromQL and evaluates without error against real
    // data (Grafana variables substituted as Grafana would).
    let mut with_data = 0;
    let exprs = shipped_expressions();
    for (origin, e) in &exprs {
        if e.starts_with("label_values(") {
            continue; // a Grafana function, not PromQL
        }
        let q = e.replace("$__rate_interval", "30s").replace("$learner", ".*");
        match query(&prom, &q) {
            Ok(r) => with_data += usize::from(!r.is_empty()),
            Err(err) => panic!("{origin}: Prometheus rejects {q:?}: {err}"),
        }
    }
    eprintln!("{} shipped expressions evaluate; {with_data} return data after a short run", exprs.len());
    // Valid but empty everywhere would mean the expressions select nothing the exporters emit (76 of 96
    // returned data here).
    assert!(
        2 * with_data >= exprs.len(),
        "only {with_data} of {} shipped expressions return data from a running cluster",
        exprs.len()
    );

    // The shipped rules load into the server and evaluate cleanly.
    let groups = wait_for("rule evaluation", Duration::from_secs(60), || {
        let (_, body) = http_get(&prom, "/api/v1/rules")?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let groups = v["data"]["groups"].as_array()?.clone();
        let evaluated = groups
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .all(|r| r["lastEvaluation"].as_str().is_some_and(|t| !t.starts_with("0001")));
        (!groups.is_empty() && evaluated).then_some(groups)
    });
    let mut rules_seen = 0;
    for g in &groups {
        for r in g["rules"].as_array().unwrap() {
            rules_seen += 1;
            assert_eq!(r["health"], "ok", "rule {} in {}: {}", r["name"], g["name"], r["lastError"]);
        }
    }
    assert!(rules_seen >= 6, "{rules_seen} rules loaded");
    let firing = query(&prom, r#"ALERTS{alertstate="firing"}"#).unwrap();
    assert!(firing.is_empty(), "no alert fires on a healthy young run: {firing:?}");
    eprintln!("{rules_seen} alert rules loaded and evaluate with health ok");
}
