//! Prometheus exposition for every role (`/metrics` on the `--metrics` address): the exporter with
//! histogram buckets for every `_seconds` histogram, a description (HELP text and unit) for every
//! series of the catalogue (`spikerl_metrics::ALL`), the series dashboards and alerts rely on
//! initialised at start, and process CPU and memory read from /proc by a collector thread.
//! docs/metrics.md defines every series.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use spikerl_metrics::seed_label::{SeedLabelled, SeedScope};
use spikerl_metrics::{self as series, Kind};
use std::time::Duration;

/// Buckets for latencies and waits (most `_seconds` histograms): 0.5 ms to 1 min.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Checkpoint writes: 10 ms to 10 min.
const CHECKPOINT_BUCKETS: &[f64] =
    &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// gRPC calls last until they complete: a unary call milliseconds, a stream up to the whole run.
const GRPC_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0];

/// Policy lag in versions (one version per actor update, i.e. every second iteration by default).
const LAG_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0,
    50000.0,
];

/// How often process CPU and memory are read.
const PROCESS_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the Prometheus exporter with an HTTP listener (must run inside the tokio runtime), labels
/// every series with `role`, describes every series, initialises the ones `role` ("learner" or
/// "actor") always has, and starts the process collector.
pub fn install(addr: std::net::SocketAddr, role: &str) -> anyhow::Result<()> {
    install_for_seeds(addr, role, &[])
}

/// [`install`] for `train --seeds`: the series a learner always has are initialised once per seed,
/// labelled `seed` (`spikerl_metrics::seed_label`), instead of once unlabelled; the process's own series
/// (build info, CPU, memory) stay unlabelled.
pub fn install_for_seeds(addr: std::net::SocketAddr, role: &str, seeds: &[u64]) -> anyhow::Result<()> {
    let bad = |e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}");
    let (recorder, exporter) = PrometheusBuilder::new()
        .with_http_listener(addr)
        .add_global_label("role", role)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(series::learner::CHECKPOINT_DURATION_SECONDS.into()),
                CHECKPOINT_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(series::grpc::SERVER_HANDLING_SECONDS.into()),
                GRPC_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(series::learner::BATCH_POLICY_LAG.into()), LAG_BUCKETS)
        })
        .map_err(bad)?
        .build()
        .map_err(bad)?;
    tokio::spawn(exporter);
    metrics::set_global_recorder(SeedLabelled(recorder))
        .map_err(|e| anyhow::anyhow!("a metrics recorder is already installed: {e}"))?;
    describe_all();
    metrics::gauge!(series::process::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    if seeds.is_empty() {
        initialise(role);
    }
    for &seed in seeds {
        let _seed = SeedScope::enter(Some(seed));
        initialise(role);
    }
    start_process_collector();
    Ok(())
}

fn describe_all() {
    for s in series::ALL {
        let (name, help) = (s.name, s.help);
        match (s.kind, s.unit) {
            (Kind::Counter, Some(u)) => metrics::describe_counter!(name, u, help),
            (Kind::Counter, None) => metrics::describe_counter!(name, help),
            (Kind::Gauge, Some(u)) => metrics::describe_gauge!(name, u, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            (Kind::Histogram, Some(u)) => metrics::describe_histogram!(name, u, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

/// A counter or gauge appears only once touched: dashboards and alerts need these from the start. Values
/// that do not exist yet (no evaluation, no iteration) start as NaN, not as a misleading 0. A histogram
/// is rendered as soon as it is registered, empty (`_count` 0) until its first observation. The series
/// only the distributed learner has are initialised by `spikerl_learner::service` when it serves.
fn initialise(role: &str) {
    use series::{actor, eval, learner, snn};
    let counters: &[&str] = match role {
        "learner" => &[
            learner::TRAIN_ITERATIONS_TOTAL,
            learner::CHECKPOINT_FAILURES_TOTAL,
            learner::EVAL_WRITE_FAILURES_TOTAL,
        ],
        "actor" => &[
            actor::ENV_STEPS_TOTAL,
            actor::EPISODES_TOTAL,
            actor::RECONNECTS_TOTAL,
            actor::TRANSITIONS_PRODUCED_TOTAL,
            actor::TRANSITIONS_ACKED_TOTAL,
            actor::LOST_BATCHES_TOTAL,
        ],
        _ => &[],
    };
    let zero_gauges: &[&str] = match role {
        "learner" => &[learner::REPLAY_SIZE, learner::SAMPLES_PER_INSERT, learner::POLICY_VERSION],
        "actor" => &[actor::POLICY_VERSION, actor::CONNECTED],
        _ => &[],
    };
    let nan_gauges: &[&str] = match role {
        "learner" => &[
            eval::RETURN_LAST,
            eval::RETURN_BEST,
            eval::RETURN_INITIAL,
            learner::CRITIC_LOSS,
            learner::ACTOR_LOSS,
            learner::PROXY_LOSS,
            learner::SAC_ALPHA,
            learner::Q_MEAN,
            learner::TD_TARGET_MEAN,
            snn::FIRING_RATE,
            snn::SOPS_PER_INFERENCE,
            snn::MACS_PER_INFERENCE,
            snn::TIMESTEPS,
            snn::ENERGY_NANOJOULES_PER_INFERENCE,
            snn::ENERGY_RATIO_TO_ANN,
        ],
        "actor" => &[actor::EPISODE_RETURN_LAST, actor::EPISODE_LENGTH_LAST],
        _ => &[],
    };
    // Observed by the training loop of either learner (distributed or --sync), by the actor's
    // subscription: empty until the first iteration or policy, which may be minutes away.
    let histograms: &[&str] = match role {
        "learner" => &[learner::SAMPLE_WAIT_SECONDS, learner::UPDATE_DURATION_SECONDS],
        "actor" => &[actor::BROADCAST_LATENCY_SECONDS],
        _ => &[],
    };
    for &name in counters {
        metrics::counter!(name).increment(0);
    }
    for &name in zero_gauges {
        metrics::gauge!(name).set(0.0);
    }
    for &name in nan_gauges {
        metrics::gauge!(name).set(f64::NAN);
    }
    for &name in histograms {
        // Registering is enough: the exporter keeps the handle and renders it.
        let _ = metrics::histogram!(name);
    }
    if role == "actor" {
        // Every code but Ok, named as the actor labels them (tonic's `Code` names).
        for &code in &spikerl_proto::GRPC_CODE_NAMES[1..] {
            metrics::counter!(actor::GRPC_ERRORS_TOTAL, "code" => code).increment(0);
        }
    }
}

/// Reads process CPU, memory, threads and file descriptors from /proc now and every few seconds.
fn start_process_collector() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let start_time = process::start_time();
    collect_process(start_time);
    let _ = std::thread::Builder::new().name("process-metrics".into()).spawn(move || {
        loop {
            std::thread::sleep(PROCESS_INTERVAL);
            collect_process(start_time);
        }
    });
}

fn collect_process(start_time: Option<f64>) {
    let s = process::sample();
    if let Some(cpu) = s.cpu_seconds {
        metrics::counter!(series::process::CPU_SECONDS_TOTAL).absolute(cpu as u64);
    }
    let gauges = [
        (series::process::RESIDENT_MEMORY_BYTES, s.resident_bytes),
        (series::process::VIRTUAL_MEMORY_BYTES, s.virtual_bytes),
        (series::process::THREADS, s.threads),
        (series::process::OPEN_FDS, s.open_fds),
        (series::process::MAX_FDS, s.max_fds),
        (series::process::START_TIME_SECONDS, start_time),
    ];
    for (name, value) in gauges {
        if let Some(v) = value {
            metrics::gauge!(name).set(v);
        }
    }
}

/// /proc readers (Linux). Clock ticks are USER_HZ = 100, fixed by the kernel ABI on every supported
/// architecture; memory comes in explicit units (bytes in `stat`, kB in `status`).
mod process {
    const USER_HZ: f64 = 100.0;

    #[derive(Default)]
    pub struct Sample {
        pub cpu_seconds: Option<f64>,
        pub resident_bytes: Option<f64>,
        pub virtual_bytes: Option<f64>,
        pub threads: Option<f64>,
        pub open_fds: Option<f64>,
        pub max_fds: Option<f64>,
    }

    /// Fields of /proc/self/stat after the command name: index 0 is field 3 (state).
    fn stat_fields() -> Option<Vec<String>> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let (_, rest) = stat.rsplit_once(')')?;
        Some(rest.split_whitespace().map(str::to_string).collect())
    }

    fn field(fields: &[String], number: usize) -> Option<f64> {
        fields.get(number - 3)?.parse().ok()
    }

    pub fn sample() -> Sample {
        let mut s = Sample::default();
        if let Some(f) = stat_fields() {
            s.cpu_seconds = field(&f, 14).zip(field(&f, 15)).map(|(u, k)| (u + k) / USER_HZ);
            s.threads = field(&f, 20);
            s.virtual_bytes = field(&f, 23);
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            s.resident_bytes = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map(|kb| kb * 1024.0);
        }
        s.open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64);
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            s.max_fds = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok());
        }
        s
    }

    /// Unix time the process started: boot time plus the start tick count.
    pub fn start_time() -> Option<f64> {
        let ticks = field(&stat_fields()?, 22)?;
        let proc_stat = std::fs::read_to_string("/proc/stat").ok()?;
        let boot: f64 = proc_stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()?;
        Some(boot + ticks / USER_HZ)
    }
}
