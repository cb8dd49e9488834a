//! Prometheus exposition for every role (`/metrics` on the `--metrics` address): the exporter with
//! histogram buckets for every `_seconds` histogram, a description (HELP text and unit) for every
//! series, the series dashboards and alerts rely on initialised at start, and process CPU and memory
//! read from /proc by a collector thread. docs/metrics.md defines every series.

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
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
const LAG_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0];

/// How often process CPU and memory are read.
const PROCESS_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}
use Kind::{Counter, Gauge, Histogram};

/// Every series the binary can emit: name, type, unit, help. Keep in step with docs/metrics.md.
const SERIES: &[(&str, Kind, Option<Unit>, &str)] = &[
    // Process (standard Prometheus client names), every role.
    (
        "process_cpu_seconds_total",
        Counter,
        Some(Unit::Seconds),
        "User and system CPU time of the process (whole seconds).",
    ),
    ("process_resident_memory_bytes", Gauge, Some(Unit::Bytes), "Resident set size of the process."),
    ("process_virtual_memory_bytes", Gauge, Some(Unit::Bytes), "Virtual memory size of the process."),
    ("process_open_fds", Gauge, Some(Unit::Count), "Open file descriptors of the process."),
    ("process_max_fds", Gauge, Some(Unit::Count), "Soft limit on open file descriptors."),
    ("process_threads", Gauge, Some(Unit::Count), "OS threads of the process."),
    ("process_start_time_seconds", Gauge, Some(Unit::Seconds), "Start time of the process, Unix seconds."),
    ("spikerl_build_info", Gauge, None, "Always 1; labels: version of the spikerl binary."),
    // The run (learner).
    (
        "spikerl_run_info",
        Gauge,
        None,
        "Always 1; labels describe the run: run_id, env, algo, neuron, mode (distributed|sync).",
    ),
    (
        "spikerl_learner_train_iterations_total",
        Counter,
        Some(Unit::Count),
        "Training iterations done (one TD3 critic update each; continues across resumes).",
    ),
    (
        "spikerl_learner_train_iterations_target",
        Gauge,
        Some(Unit::Count),
        "Training iterations the run will do in total (--steps).",
    ),
    (
        "spikerl_learner_random_steps",
        Gauge,
        Some(Unit::Count),
        "Uniform-random env steps before training starts (--random-steps).",
    ),
    (
        "spikerl_learner_transitions_inserted_total",
        Counter,
        Some(Unit::Count),
        "Transitions inserted into the replay buffer (all actors; continues across resumes).",
    ),
    (
        "spikerl_learner_transitions_received_total",
        Counter,
        Some(Unit::Count),
        "Transitions received and stored, per actor id.",
    ),
    (
        "spikerl_learner_transitions_rejected_total",
        Counter,
        Some(Unit::Count),
        "Rejected requests or batches, by reason (unknown_run, unknown_actor, empty, oversized, shape, non_finite).",
    ),
    (
        "spikerl_learner_duplicate_batches_total",
        Counter,
        Some(Unit::Count),
        "Batches already stored that an actor resent (acknowledged, not inserted again).",
    ),
    (
        "spikerl_learner_unauthenticated_requests_total",
        Counter,
        Some(Unit::Count),
        "gRPC requests refused for a missing or wrong token.",
    ),
    ("spikerl_learner_replay_size", Gauge, Some(Unit::Count), "Transitions held in the replay buffer."),
    (
        "spikerl_learner_samples_per_insert",
        Gauge,
        None,
        "Training iterations per inserted transition beyond the random steps (the rate limiter's measure).",
    ),
    (
        "spikerl_learner_target_samples_per_insert",
        Gauge,
        None,
        "The configured update-to-data ratio the rate limiter holds.",
    ),
    (
        "spikerl_learner_insert_wait_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Time a received batch waited for the rate limiter before insertion (actor backpressure).",
    ),
    (
        "spikerl_learner_sample_wait_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Time the training thread waited for the rate limiter (data starvation) per iteration.",
    ),
    (
        "spikerl_learner_update_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Duration of one training iteration (critic, delayed actor, proxy steps).",
    ),
    (
        "spikerl_learner_critic_loss",
        Gauge,
        None,
        "Critic loss (sum of both critics' MSE) of the latest iteration.",
    ),
    ("spikerl_learner_actor_loss", Gauge, None, "Actor loss (-Q1) of the latest actor update."),
    (
        "spikerl_learner_proxy_loss",
        Gauge,
        None,
        "Proxy imitation loss of the latest actor update (proxy algorithm; NaN otherwise).",
    ),
    ("spikerl_learner_q_mean", Gauge, None, "Mean Q1 estimate over the latest minibatch."),
    ("spikerl_learner_td_target_mean", Gauge, None, "Mean TD target over the latest minibatch."),
    (
        "spikerl_learner_policy_version",
        Gauge,
        Some(Unit::Count),
        "Newest published policy version (actor updates so far).",
    ),
    (
        "spikerl_learner_policy_lag",
        Gauge,
        Some(Unit::Count),
        "Largest policy lag among the connected actors' latest batches (versions; NaN with no actor connected).",
    ),
    (
        "spikerl_learner_batch_policy_lag",
        Histogram,
        Some(Unit::Count),
        "Per stored batch: policy versions between the newest and the one that chose its actions.",
    ),
    (
        "spikerl_learner_connected_actors",
        Gauge,
        Some(Unit::Count),
        "Open transition streams (connected actors).",
    ),
    (
        "spikerl_learner_episodes_total",
        Counter,
        Some(Unit::Count),
        "Training episodes finished, per actor id, as reported in batches.",
    ),
    (
        "spikerl_learner_episode_return_last",
        Gauge,
        None,
        "Return of the latest finished training episode (with exploration noise).",
    ),
    (
        "spikerl_learner_episode_length_last",
        Gauge,
        Some(Unit::Count),
        "Length in env steps of the latest finished training episode.",
    ),
    (
        "spikerl_learner_checkpoint_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Time to write one checkpoint.",
    ),
    (
        "spikerl_learner_checkpoint_last_success_timestamp_seconds",
        Gauge,
        Some(Unit::Seconds),
        "Unix time of the latest successful checkpoint (the run's start until the first).",
    ),
    (
        "spikerl_learner_checkpoint_interval_seconds",
        Gauge,
        Some(Unit::Seconds),
        "Configured periodic checkpoint interval (0: checkpoints only at the end).",
    ),
    (
        "spikerl_learner_checkpoint_failures_total",
        Counter,
        Some(Unit::Count),
        "Checkpoints that failed to write.",
    ),
    (
        "spikerl_learner_eval_write_failures_total",
        Counter,
        Some(Unit::Count),
        "Evaluations that could not be appended to the run folder's evals.csv.",
    ),
    (
        "spikerl_eval_return_last",
        Gauge,
        None,
        "Mean return of the latest evaluation (deterministic policy; NaN before the first).",
    ),
    ("spikerl_eval_return_best", Gauge, None, "Best evaluation mean return of the run so far."),
    (
        "spikerl_eval_return_initial",
        Gauge,
        None,
        "Mean return of the run's first evaluation (the untrained policy).",
    ),
    // Spiking network activity, measured during the latest evaluation.
    (
        "spikerl_snn_firing_rate",
        Gauge,
        None,
        "Mean firing probability per neuron and time step over hidden and output layers.",
    ),
    (
        "spikerl_snn_layer_firing_rate",
        Gauge,
        None,
        "Firing probability per neuron and time step, per population (encoder, layers.N).",
    ),
    (
        "spikerl_snn_sops_per_inference",
        Gauge,
        Some(Unit::Count),
        "Synaptic operations per inference (one action).",
    ),
    (
        "spikerl_snn_macs_per_inference",
        Gauge,
        Some(Unit::Count),
        "Multiply-accumulates per inference (dense layers; 0 for a pure SNN).",
    ),
    (
        "spikerl_snn_timesteps",
        Gauge,
        Some(Unit::Count),
        "Simulation time steps per inference (0 for an ANN).",
    ),
    (
        "spikerl_snn_energy_nanojoules_per_inference",
        Gauge,
        None,
        "Estimated energy per inference in nJ: SOPs x 77 fJ + MACs x 3.97 pJ.",
    ),
    (
        "spikerl_snn_ann_energy_nanojoules_per_inference",
        Gauge,
        None,
        "Energy per inference in nJ of the equivalent ANN (same widths): MACs x 3.97 pJ.",
    ),
    (
        "spikerl_snn_energy_ratio_to_ann",
        Gauge,
        None,
        "Estimated energy per inference divided by the equivalent ANN's.",
    ),
    // The learner's gRPC server.
    ("spikerl_grpc_server_started_total", Counter, Some(Unit::Count), "gRPC calls started, per method."),
    (
        "spikerl_grpc_server_handled_total",
        Counter,
        Some(Unit::Count),
        "gRPC calls completed, per method and status code.",
    ),
    (
        "spikerl_grpc_server_handling_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Duration of gRPC calls until completion (a stream's whole lifetime), per method.",
    ),
    ("spikerl_grpc_server_in_flight", Gauge, Some(Unit::Count), "gRPC calls in progress, per method."),
    // Actors (and the learner in --sync mode for the env-step series).
    ("spikerl_actor_info", Gauge, None, "Always 1; labels: actor id, run_id and env given at registration."),
    (
        "spikerl_actor_env_steps_total",
        Counter,
        Some(Unit::Count),
        "Environment transitions stepped (every env of the actor).",
    ),
    ("spikerl_actor_episodes_total", Counter, Some(Unit::Count), "Training episodes finished."),
    (
        "spikerl_actor_episode_return_last",
        Gauge,
        None,
        "Return of the latest finished training episode (with exploration noise).",
    ),
    (
        "spikerl_actor_episode_length_last",
        Gauge,
        Some(Unit::Count),
        "Length in env steps of the latest finished training episode.",
    ),
    ("spikerl_actor_policy_version", Gauge, Some(Unit::Count), "Policy version the actor acts with next."),
    ("spikerl_actor_connected", Gauge, None, "1 while registered with the learner and streaming, else 0."),
    (
        "spikerl_actor_reconnects_total",
        Counter,
        Some(Unit::Count),
        "Connection attempts retried after an error (with backoff).",
    ),
    (
        "spikerl_actor_grpc_errors_total",
        Counter,
        Some(Unit::Count),
        "gRPC errors seen by the actor that led to a retry, by status code.",
    ),
    (
        "spikerl_actor_lost_batches_total",
        Counter,
        Some(Unit::Count),
        "Batches lost because the learner went back further than the actor retains.",
    ),
    (
        "spikerl_actor_broadcast_latency_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Time from a policy's publication on the learner to its receipt (wall clocks of both).",
    ),
];

/// Installs the Prometheus exporter with an HTTP listener (must run inside the tokio runtime), labels
/// every series with `role`, describes every series, initialises the ones `role` ("learner" or
/// "actor") always has, and starts the process collector.
pub fn install(addr: std::net::SocketAddr, role: &str) -> anyhow::Result<()> {
    let bad = |e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}");
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .add_global_label("role", role)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("spikerl_learner_checkpoint_duration_seconds".into()),
                CHECKPOINT_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("spikerl_grpc_server_handling_seconds".into()),
                GRPC_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full("spikerl_learner_batch_policy_lag".into()), LAG_BUCKETS)
        })
        .map_err(bad)?
        .install()
        .map_err(bad)?;
    describe_all();
    initialise(role);
    start_process_collector();
    Ok(())
}

fn describe_all() {
    for &(name, kind, unit, help) in SERIES {
        match (kind, unit) {
            (Counter, Some(u)) => metrics::describe_counter!(name, u, help),
            (Counter, None) => metrics::describe_counter!(name, help),
            (Gauge, Some(u)) => metrics::describe_gauge!(name, u, help),
            (Gauge, None) => metrics::describe_gauge!(name, help),
            (Histogram, Some(u)) => metrics::describe_histogram!(name, u, help),
            (Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

/// A counter or gauge appears only once touched: dashboards and alerts need these from the start. Values
/// that do not exist yet (no evaluation, no iteration) start as NaN, not as a misleading 0.
fn initialise(role: &str) {
    metrics::gauge!("spikerl_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let counters: &[&str] = match role {
        "learner" => &[
            "spikerl_learner_train_iterations_total",
            "spikerl_learner_transitions_inserted_total",
            "spikerl_learner_checkpoint_failures_total",
            "spikerl_learner_eval_write_failures_total",
        ],
        "actor" => &[
            "spikerl_actor_env_steps_total",
            "spikerl_actor_episodes_total",
            "spikerl_actor_reconnects_total",
            "spikerl_actor_lost_batches_total",
        ],
        _ => &[],
    };
    let zero_gauges: &[&str] = match role {
        "learner" => &[
            "spikerl_learner_replay_size",
            "spikerl_learner_samples_per_insert",
            "spikerl_learner_policy_version",
        ],
        "actor" => &["spikerl_actor_policy_version", "spikerl_actor_connected"],
        _ => &[],
    };
    let nan_gauges: &[&str] = match role {
        "learner" => &[
            "spikerl_eval_return_last",
            "spikerl_eval_return_best",
            "spikerl_eval_return_initial",
            "spikerl_learner_critic_loss",
            "spikerl_learner_actor_loss",
            "spikerl_learner_proxy_loss",
            "spikerl_learner_q_mean",
            "spikerl_learner_td_target_mean",
            "spikerl_snn_firing_rate",
            "spikerl_snn_sops_per_inference",
            "spikerl_snn_macs_per_inference",
            "spikerl_snn_energy_nanojoules_per_inference",
            "spikerl_snn_energy_ratio_to_ann",
        ],
        "actor" => &["spikerl_actor_episode_return_last", "spikerl_actor_episode_length_last"],
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
    if role == "actor" {
        // Every code but Ok, named as the actor labels them (tonic's `Code` names).
        for &code in &spikerl_proto::GRPC_CODE_NAMES[1..] {
            metrics::counter!("spikerl_actor_grpc_errors_total", "code" => code).increment(0);
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
        metrics::counter!("process_cpu_seconds_total").absolute(cpu as u64);
    }
    let gauges = [
        ("process_resident_memory_bytes", s.resident_bytes),
        ("process_virtual_memory_bytes", s.virtual_bytes),
        ("process_threads", s.threads),
        ("process_open_fds", s.open_fds),
        ("process_max_fds", s.max_fds),
        ("process_start_time_seconds", start_time),
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
