//! `spikerl bench transport` and `spikerl bench actor`: the figures that need both the actor and the
//! learner crate (which never depend on each other), joined here. Each prints a table, or one JSON object
//! with --json. The machine's load average is read before and after: on a shared machine it says how far
//! the figures can be trusted.

use crate::UsageError;
use crate::cli::BenchCommand;
use crate::train::{algo_of, neuron_of};
use serde::Serialize;
use spikerl_actor::bench as actor_bench;
use spikerl_algo::{Algo, RunConfig};
use spikerl_learner::bench_transport::{self as lb, Limiter};
use spikerl_snn::{NamedTensors, NeuronKind, PolicyConfig};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Transport {
            env,
            ingest_actors,
            batch,
            subscribers,
            train_actors,
            ingest_rate,
            seconds,
            threads,
            client_threads,
            server_nagle,
            json,
        } => {
            let server_nodelay = !server_nagle;
            if ingest_actors == 0
                || subscribers == 0
                || train_actors == 0
                || batch == 0
                || threads == 0
                || client_threads == 0
            {
                return Err(
                    UsageError("actor, subscriber, batch and thread counts must be positive".into()).into()
                );
            }
            if !(seconds.is_finite() && seconds > 0.0)
                || ingest_rate.is_some_and(|r| !(r.is_finite() && r > 0.0))
            {
                return Err(UsageError("--seconds and --ingest-rate must be positive numbers".into()).into());
            }
            if batch > 4096 {
                return Err(UsageError(
                    "--batch is at most 4096 (the learner's default --max-batch-transitions)".into(),
                )
                .into());
            }
            let opts = TransportOptions {
                env,
                ingest_actors,
                batch,
                subscribers,
                train_actors,
                ingest_rate,
                seconds,
                threads,
                client_threads,
                server_nodelay,
            };
            let r = transport(&opts)?;
            if json {
                println!("{}", serde_json::to_value(&r)?);
            } else {
                print_transport(&r);
            }
        }
        BenchCommand::Actor { env, neuron, algo, envs, seconds, env_threads, policy, json } => {
            if env_threads == 0 {
                return Err(UsageError("--env-threads must be positive".into()).into());
            }
            if envs.is_empty() || envs.contains(&0) {
                return Err(UsageError("--envs must list positive environment counts".into()).into());
            }
            if !(seconds.is_finite() && seconds > 0.0) {
                return Err(UsageError("--seconds must be a positive number".into()).into());
            }
            let r = acting(
                &env,
                algo_of(algo),
                neuron_of(neuron),
                &envs,
                env_threads,
                seconds,
                policy.as_deref(),
            )?;
            if json {
                println!("{}", serde_json::to_value(&r)?);
            } else {
                print_acting(&r);
            }
        }
        BenchCommand::Ensemble { env, algo, neuron, batch, device, seeds, iterations, threads, json } => {
            if batch == 0 || iterations == 0 || threads == Some(0) {
                return Err(UsageError("--batch, --iterations and --threads must be positive".into()).into());
            }
            if seeds.is_empty() || seeds.contains(&0) {
                return Err(UsageError("--seeds must list positive seed counts".into()).into());
            }
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            tch::set_num_threads(threads.unwrap_or(cores) as i32);
            tch::set_num_interop_threads(1);
            let device = crate::train::device(device)?;
            let load_before = load_average();
            let r = spikerl_learner::bench::ensemble(
                &env,
                algo_of(algo),
                neuron_of(neuron),
                batch,
                device,
                &seeds,
                iterations,
            )?;
            let report = EnsembleReport { bench: r, load_before, load_after: load_average() };
            if json {
                println!("{}", serde_json::to_value(&report)?);
            } else {
                print_ensemble(&report);
            }
        }
        _ => unreachable!("bench inference and update are handled in train.rs"),
    }
    Ok(())
}

#[derive(Serialize)]
struct EnsembleReport {
    #[serde(flatten)]
    bench: spikerl_learner::bench::EnsembleBench,
    /// 1-minute load average before and after.
    load_before: Option<f64>,
    load_after: Option<f64>,
}

fn print_ensemble(r: &EnsembleReport) {
    let b = &r.bench;
    let load = |l: Option<f64>| l.map_or("-".into(), |l| format!("{l:.2}"));
    println!(
        "{} {} {} batch {} on {} ({} libtorch threads), {} timed iterations per side; load {} -> {}",
        b.env,
        b.algo,
        b.neuron,
        b.batch,
        b.device,
        b.threads,
        b.iterations,
        load(r.load_before),
        load(r.load_after)
    );
    println!(
        "{:>5} {:>14} {:>12} {:>16} {:>20} {:>16} {:>8}",
        "S",
        "ms/ensemble-it",
        "ensemble it/s",
        "seed-it/s",
        "separate ms/round",
        "separate seed-it/s",
        "ratio"
    );
    for row in &b.rows {
        println!(
            "{:>5} {:>14.2} {:>12.2} {:>16.2} {:>20.2} {:>16.2} {:>7.2}x",
            row.seeds,
            row.ms_per_iteration,
            row.iterations_per_second,
            row.seed_iterations_per_second,
            row.separate_ms_per_round,
            row.separate_seed_iterations_per_second,
            row.speedup
        );
    }
}

/// The 1-minute load average (Linux), for the report.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// CPU seconds (user + system) used so far by this process's threads whose name starts with `prefix`
/// (Linux: /proc/self/task/*/stat; threads that already exited are not counted, so take differences over
/// windows in which the threads live).
fn thread_cpu_seconds(prefix: &str) -> f64 {
    let ticks = 100.0; // USER_HZ: 100 on every Linux the project targets (getconf CLK_TCK)
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut total = 0.0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ...": the name may hold spaces, so split at the parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the name: state is field 3 of stat(5), utime 14 and stime 15.
        let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        total += (u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0)) / ticks;
    }
    total
}

/// CPU seconds used so far by the calling thread (Linux).
fn own_thread_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return f64::NAN;
    };
    let Some(close) = stat.rfind(')') else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (tick(11) + tick(12)) / 100.0
}

/// Nearest-rank percentile of seconds, reported in milliseconds.
fn percentile_ms(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] * 1e3
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The paper's acting policy for `env` (initial weights, seed 0).
fn paper_policy(env: &str, algo: Algo, neuron: NeuronKind) -> anyhow::Result<(PolicyConfig, NamedTensors)> {
    let spec = spikerl_envs::spec(env)?;
    let max_action = spikerl_learner::training::trainer::max_action(&spec)?;
    let cfg = RunConfig::paper(env, algo, neuron, 0).policy_config(spec.obs_dim, spec.act_dim, max_action);
    let tensors = spikerl_snn::initial_tensors(&cfg, 0)?;
    Ok((cfg, tensors))
}

// ---- bench actor -----------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct ActingRow {
    envs: usize,
    steps_per_batch: usize,
    /// Env steps/s (all envs together) of the acting loop with uniform-random actions: the environment.
    random_steps_per_second: f64,
    /// Env steps/s of the same loop acting with the policy plus exploration noise.
    policy_steps_per_second: f64,
    /// Time per env step choosing actions with the policy (inference + exploration noise), microseconds,
    /// timed inside the loop.
    policy_us_per_step: f64,
    /// The rest of an env step with the policy acting (physics and the loop's bookkeeping), microseconds.
    /// More than in the random phase: the policy's actions make different physics (contacts).
    rest_us_per_step: f64,
    /// Fraction of the acting loop's time spent in the policy.
    policy_share: f64,
}

#[derive(Debug, Serialize)]
struct ActingReport {
    env: String,
    network: String,
    /// The trained weights acting (`--policy`); none: initial weights.
    policy: Option<String>,
    seconds_per_measurement: f64,
    env_threads: usize,
    rows: Vec<ActingRow>,
    load_before: Option<f64>,
    load_after: Option<f64>,
}

fn acting(
    env: &str,
    algo: Algo,
    neuron: NeuronKind,
    envs: &[usize],
    env_threads: usize,
    seconds: f64,
    policy_file: Option<&std::path::Path>,
) -> anyhow::Result<ActingReport> {
    let mut policy = paper_policy(env, algo, neuron)?;
    if let Some(path) = policy_file {
        policy.1 = spikerl_learner::bench::trained_weights(path, &policy.0)?;
    }
    let load_before = load_average();
    let duration = Duration::from_secs_f64(seconds);
    let steps_per_batch = 32;
    let mut rows = Vec::new();
    for &n in envs {
        let random = actor_bench::acting_rate(env, n, env_threads, steps_per_batch, None, duration)?;
        let with_policy =
            actor_bench::acting_rate(env, n, env_threads, steps_per_batch, Some(policy.clone()), duration)?;
        let r = random.env_steps as f64 / random.seconds;
        let p = with_policy.env_steps as f64 / with_policy.seconds;
        let policy_us = with_policy.policy_us_per_step.unwrap_or(f64::NAN);
        rows.push(ActingRow {
            envs: n,
            steps_per_batch,
            random_steps_per_second: r,
            policy_steps_per_second: p,
            policy_us_per_step: policy_us,
            rest_us_per_step: 1e6 / p - policy_us,
            policy_share: policy_us * p / 1e6,
        });
    }
    Ok(ActingReport {
        env: env.to_string(),
        network: if algo == Algo::Ann { "ann".into() } else { format!("snn-{neuron}") },
        policy: policy_file.map(|p| p.display().to_string()),
        seconds_per_measurement: seconds,
        env_threads,
        rows,
        load_before,
        load_after: load_average(),
    })
}

fn print_acting(r: &ActingReport) {
    println!(
        "{} acting loop (spikerl_actor::env_loop, no learner), {} policy, {}, {} env thread(s), {:.0} s each",
        r.env,
        r.network,
        r.policy.as_deref().map_or("initial weights".to_string(), |p| format!("weights from {p}")),
        r.env_threads,
        r.seconds_per_measurement
    );
    println!(
        "{:>5} {:>16} {:>16} {:>14} {:>14} {:>13}",
        "envs", "random steps/s", "policy steps/s", "policy us/step", "rest us/step", "policy share"
    );
    for row in &r.rows {
        println!(
            "{:>5} {:>16.0} {:>16.0} {:>14.1} {:>14.1} {:>12.0}%",
            row.envs,
            row.random_steps_per_second,
            row.policy_steps_per_second,
            row.policy_us_per_step,
            row.rest_us_per_step,
            100.0 * row.policy_share
        );
    }
    println!("load average {:?} before, {:?} after", r.load_before, r.load_after);
}

// ---- bench transport -------------------------------------------------------------------------------

struct TransportOptions {
    env: String,
    ingest_actors: usize,
    batch: usize,
    subscribers: usize,
    train_actors: usize,
    ingest_rate: Option<f64>,
    seconds: f64,
    threads: usize,
    client_threads: usize,
    server_nodelay: bool,
}

#[derive(Debug, Serialize)]
struct IngestFigures {
    actors: usize,
    transitions_per_batch: usize,
    seconds: f64,
    transitions: u64,
    transitions_per_second: f64,
    batches: usize,
    /// Send (handed to the HTTP/2 stream) to acknowledgement, per batch; the actor keeps up to 4 in flight.
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    latency_ms_max: f64,
    /// CPU seconds of the learner's runtime threads (gRPC, decode, validate, insert) and of the actor
    /// clients' runtime over the window, and the learner's CPU per transition: what bounds the rate on a
    /// machine whose cores are shared.
    learner_cpu_seconds: f64,
    clients_cpu_seconds: f64,
    learner_cpu_us_per_transition: f64,
}

#[derive(Debug, Serialize)]
struct BroadcastFigures {
    subscribers: usize,
    network: String,
    parameters: usize,
    versions: usize,
    /// (version, subscriber) pairs received; subscribers x versions when none skipped a version.
    received: usize,
    expected: usize,
    /// Weight file per update (safetensors + metadata) and over all subscribers.
    bytes_per_update: usize,
    bytes_per_broadcast: usize,
    /// Encoding the weights (before the publish time stamp).
    encode_ms_mean: f64,
    /// Publish (watch send) to the subscriber holding the decoded, validated version.
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    latency_ms_max: f64,
}

#[derive(Debug, Serialize)]
struct TrainingFigures {
    algo: String,
    threads: usize,
    /// Iterations/s with no actor connected, before and after the ingest window.
    iterations_per_second_idle_before: f64,
    iterations_per_second_idle_after: f64,
    /// Iterations/s while `actors` streams ingest and as many subscribers receive the weights.
    iterations_per_second_ingesting: f64,
    actors: usize,
    /// Transitions/s offered (the rate asked for) and acknowledged during the window.
    ingest_rate_offered: f64,
    ingest_rate_achieved: f64,
    /// Where the offered rate comes from.
    ingest_rate_source: String,
    /// Change of iterations/s against the mean of the two idle windows (negative: slower).
    change: f64,
    /// Cores the learner's runtime threads (ingest + broadcast) used during the ingest window.
    learner_runtime_cores_ingesting: f64,
    /// Cores the in-process actor clients (streaming, and decoding every broadcast) used meanwhile: on
    /// this one machine they compete with training, as separate actor machines would not.
    actor_clients_cores_ingesting: f64,
    /// The training thread's CPU time per iteration and its share of a core (CPU / wall seconds), idle
    /// (both idle windows) and while ingesting. The same CPU per iteration with a smaller share means the
    /// thread was waiting for a core (the machine is shared), not slowed by ingest's locks or caches.
    training_cpu_ms_per_iteration_idle: f64,
    training_cpu_ms_per_iteration_ingesting: f64,
    training_core_share_idle: f64,
    training_core_share_ingesting: f64,
}

#[derive(Debug, Serialize)]
struct TransportReport {
    env: String,
    seconds_per_measurement: f64,
    client_threads: usize,
    learner_runtime_threads: usize,
    /// Whether the learner's sockets had TCP_NODELAY (as a learner has; false with --server-nagle).
    server_nodelay: bool,
    /// One acting loop's env steps/s (HalfCheetah with the PT-LIF policy, 1 env), when measured.
    one_actor_steps_per_second: Option<f64>,
    ingest: IngestFigures,
    broadcast: BroadcastFigures,
    training: TrainingFigures,
    load_before: Option<f64>,
    load_after: Option<f64>,
}

/// Records the values of one histogram (the actor's `spikerl_actor_broadcast_latency_seconds`, recorded
/// just before a received version is stored) and ignores every other metric.
struct Capture {
    name: &'static str,
    values: Arc<Mutex<Vec<f64>>>,
}

struct Sink(Arc<Mutex<Vec<f64>>>);

impl metrics::HistogramFn for Sink {
    fn record(&self, value: f64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(value);
    }
}

impl metrics::Recorder for Capture {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        if key.name() == self.name {
            metrics::Histogram::from_arc(Arc::new(Sink(self.values.clone())))
        } else {
            metrics::Histogram::noop()
        }
    }
}

fn transport(o: &TransportOptions) -> anyhow::Result<TransportReport> {
    let spec = spikerl_envs::spec(&o.env)?;
    let (od, ad) = (spec.obs_dim, spec.act_dim);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    metrics::set_global_recorder(Capture {
        name: "spikerl_actor_broadcast_latency_seconds",
        values: latencies.clone(),
    })
    .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed in this process"))?;
    tch::set_num_threads(o.threads as i32);
    tch::set_num_interop_threads(1);
    let duration = Duration::from_secs_f64(o.seconds);
    let load_before = load_average();

    // The rate 16 actors produce: one real acting loop with the paper's policy, times the actor count.
    let (ingest_rate, one_actor, source) = match o.ingest_rate {
        Some(r) => (r, None, "--ingest-rate".to_string()),
        None => {
            let policy = paper_policy(&o.env, Algo::Proxy, NeuronKind::Lif)?;
            let a = actor_bench::acting_rate(&o.env, 1, 1, 32, Some(policy), Duration::from_secs(2))?;
            let one = a.env_steps as f64 / a.seconds;
            (
                one * o.train_actors as f64,
                Some(one),
                format!("{} x one acting loop measured for 2 s ({one:.0} steps/s)", o.train_actors),
            )
        }
    };

    let learner_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("learner-rt")
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.client_threads)
        .enable_all()
        .thread_name("actor-rt")
        .build()?;

    // (a) Ingest: N actor streams as fast as acknowledgements allow, no training.
    let ingest = {
        let trainer = lb::trainer(&o.env, Algo::Proxy, NeuronKind::Lif, 1_000_000, Limiter::IngestOnly)?;
        let server = learner_rt.block_on(lb::Server::start(&trainer, o.server_nodelay))?;
        let url = server.url();
        let cpu0 = (thread_cpu_seconds("learner-rt"), thread_cpu_seconds("actor-rt"));
        let reports = client_rt.block_on(async {
            let tasks: Vec<_> = (0..o.ingest_actors)
                .map(|i| {
                    let b = actor_bench::synthetic_batch(o.batch, od, ad, i as u32);
                    tokio::spawn(actor_bench::ingest_client(
                        url.clone(),
                        format!("ingest-{i}"),
                        b,
                        None,
                        duration,
                    ))
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await??);
            }
            anyhow::Ok(out)
        })?;
        let cpu = (thread_cpu_seconds("learner-rt") - cpu0.0, thread_cpu_seconds("actor-rt") - cpu0.1);
        learner_rt.block_on(server.shutdown());
        let transitions: u64 = reports.iter().map(|r| r.acked_transitions).sum();
        let secs = reports.iter().map(|r| r.seconds).fold(0.0, f64::max);
        let lat = sorted(reports.iter().flat_map(|r| r.round_trips_s.iter().copied()).collect());
        IngestFigures {
            actors: o.ingest_actors,
            transitions_per_batch: o.batch,
            seconds: secs,
            transitions,
            transitions_per_second: transitions as f64 / secs,
            batches: lat.len(),
            latency_ms_p50: percentile_ms(&lat, 50.0),
            latency_ms_p99: percentile_ms(&lat, 99.0),
            latency_ms_max: percentile_ms(&lat, 100.0),
            learner_cpu_seconds: cpu.0,
            clients_cpu_seconds: cpu.1,
            learner_cpu_us_per_transition: cpu.0 * 1e6 / transitions.max(1) as f64,
        }
    };

    // (b) Broadcast: M subscribers, a new version every 100 ms (the learner's publish interval).
    let broadcast = {
        let mut trainer = lb::trainer(&o.env, Algo::Proxy, NeuronKind::Lif, 1_000, Limiter::IngestOnly)?;
        let parameters = trainer.td3.export_policy().iter().map(|(_, t)| t.data.len()).sum();
        let server = learner_rt.block_on(lb::Server::start(&trainer, o.server_nodelay))?;
        let url = server.url();
        let subs = client_rt.block_on(async {
            let mut subs = Vec::new();
            for i in 0..o.subscribers {
                subs.push(actor_bench::subscriber(url.clone(), format!("sub-{i}")).await?);
            }
            anyhow::Ok(subs)
        })?;
        let all_hold = |v: u64| subs.iter().all(|(s, _)| s.policy.version() == Some(v));
        let wait_all = |v: u64| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !all_hold(v) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        // A first version warms every stream up; it is not counted.
        let first = lb::publish_next(&mut trainer, &server.policy)?;
        wait_all(first.version);
        latencies.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let mut published = Vec::new();
        let started = Instant::now();
        while started.elapsed() < duration {
            published.push(lb::publish_next(&mut trainer, &server.policy)?);
            std::thread::sleep(Duration::from_millis(100));
        }
        let last = published.last().map_or(first.version, |p| p.version);
        wait_all(last);
        let values = sorted(std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner())));
        for (_, task) in &subs {
            task.abort();
        }
        learner_rt.block_on(server.shutdown());
        let bytes = published.first().map_or(first.bytes, |p| p.bytes);
        BroadcastFigures {
            subscribers: o.subscribers,
            network: format!("PT-LIF actor ({} -> 256 -> 256 -> {}, T=5)", od * 10, ad * 10),
            parameters,
            versions: published.len(),
            received: values.len(),
            expected: published.len() * o.subscribers,
            bytes_per_update: bytes,
            bytes_per_broadcast: bytes * o.subscribers,
            encode_ms_mean: 1e3 * published.iter().map(|p| p.encode_seconds).sum::<f64>()
                / published.len().max(1) as f64,
            latency_ms_p50: percentile_ms(&values, 50.0),
            latency_ms_p99: percentile_ms(&values, 99.0),
            latency_ms_max: percentile_ms(&values, 100.0),
        }
    };

    // (c) Training with and without ingest at the rate `train_actors` actors produce.
    let training = {
        let mut trainer = lb::trainer(&o.env, Algo::Proxy, NeuronKind::Lif, 1_000_000, Limiter::Free)?;
        lb::prefill(&trainer.replay, od, ad, 100_000)?;
        let server = learner_rt.block_on(lb::Server::start(&trainer, o.server_nodelay))?;
        let url = server.url();
        let stop = AtomicBool::new(false);
        // Warm-up (first iterations allocate), then an idle window.
        lb::train_for(&mut trainer, Duration::from_secs(1), Some(&server.policy), &stop)?;
        let c0 = own_thread_cpu_seconds();
        let idle_before = lb::train_for(&mut trainer, duration, Some(&server.policy), &stop)?;
        let cpu_idle_before = own_thread_cpu_seconds() - c0;
        // Actors connect (streams and subscriptions), run a little longer than the training window.
        let per_actor = ingest_rate / o.train_actors as f64;
        let lead = Duration::from_millis(500);
        let subs = client_rt.block_on(async {
            let mut subs = Vec::new();
            for i in 0..o.train_actors {
                subs.push(actor_bench::subscriber(url.clone(), format!("train-sub-{i}")).await?);
            }
            anyhow::Ok(subs)
        })?;
        let clients: Vec<_> = (0..o.train_actors)
            .map(|i| {
                let b = actor_bench::synthetic_batch(o.batch, od, ad, i as u32);
                let d = duration + 2 * lead;
                client_rt.spawn(actor_bench::ingest_client(
                    url.clone(),
                    format!("train-{i}"),
                    b,
                    Some(per_actor),
                    d,
                ))
            })
            .collect();
        std::thread::sleep(lead);
        let cpu0 = thread_cpu_seconds("learner-rt");
        let clients0 = thread_cpu_seconds("actor-rt");
        let c0 = own_thread_cpu_seconds();
        let ingesting = lb::train_for(&mut trainer, duration, Some(&server.policy), &stop)?;
        let cpu_ingesting = own_thread_cpu_seconds() - c0;
        let runtime_cores = (thread_cpu_seconds("learner-rt") - cpu0) / ingesting.seconds;
        let client_cores = (thread_cpu_seconds("actor-rt") - clients0) / ingesting.seconds;
        let reports = client_rt.block_on(async {
            let mut out = Vec::new();
            for c in clients {
                out.push(c.await??);
            }
            anyhow::Ok(out)
        })?;
        for (_, task) in &subs {
            task.abort();
        }
        let c0 = own_thread_cpu_seconds();
        let idle_after = lb::train_for(&mut trainer, duration, Some(&server.policy), &stop)?;
        let cpu_idle_after = own_thread_cpu_seconds() - c0;
        let idle_iterations = (idle_before.iterations + idle_after.iterations).max(1) as f64;
        let idle_seconds = idle_before.seconds + idle_after.seconds;
        learner_rt.block_on(server.shutdown());
        let achieved = reports.iter().map(|r| r.acked_transitions as f64 / r.seconds).sum::<f64>();
        let rate = |w: lb::TrainWindow| w.iterations as f64 / w.seconds;
        let idle = (rate(idle_before) + rate(idle_after)) / 2.0;
        TrainingFigures {
            algo: "proxy-lif".into(),
            threads: o.threads,
            iterations_per_second_idle_before: rate(idle_before),
            iterations_per_second_idle_after: rate(idle_after),
            iterations_per_second_ingesting: rate(ingesting),
            actors: o.train_actors,
            ingest_rate_offered: ingest_rate,
            ingest_rate_achieved: achieved,
            ingest_rate_source: source,
            change: rate(ingesting) / idle - 1.0,
            learner_runtime_cores_ingesting: runtime_cores,
            actor_clients_cores_ingesting: client_cores,
            training_cpu_ms_per_iteration_idle: 1e3 * (cpu_idle_before + cpu_idle_after) / idle_iterations,
            training_cpu_ms_per_iteration_ingesting: 1e3 * cpu_ingesting / ingesting.iterations.max(1) as f64,
            training_core_share_idle: (cpu_idle_before + cpu_idle_after) / idle_seconds,
            training_core_share_ingesting: cpu_ingesting / ingesting.seconds,
        }
    };
    drop(client_rt);
    drop(learner_rt);
    Ok(TransportReport {
        env: o.env.clone(),
        seconds_per_measurement: o.seconds,
        client_threads: o.client_threads,
        learner_runtime_threads: 2,
        server_nodelay: o.server_nodelay,
        one_actor_steps_per_second: one_actor,
        ingest,
        broadcast,
        training,
        load_before,
        load_after: load_average(),
    })
}

fn print_transport(r: &TransportReport) {
    let i = &r.ingest;
    println!(
        "{} over loopback gRPC ({:.0} s per figure; learner runtime 2 threads, actor clients {} thread(s), one process; learner TCP_NODELAY {})",
        r.env,
        r.seconds_per_measurement,
        r.client_threads,
        if r.server_nodelay { "on" } else { "off, as a learner runs today" }
    );
    println!(
        "ingest   {} actors x {} transitions/batch: {:.0} transitions/s ({} batches); batch send->ack p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        i.actors,
        i.transitions_per_batch,
        i.transitions_per_second,
        i.batches,
        i.latency_ms_p50,
        i.latency_ms_p99,
        i.latency_ms_max
    );
    println!(
        "         learner runtime CPU {:.2} s ({:.2} us/transition), actor clients CPU {:.2} s",
        i.learner_cpu_seconds, i.learner_cpu_us_per_transition, i.clients_cpu_seconds
    );
    let b = &r.broadcast;
    println!(
        "broadcast {} subscribers, {} ({} parameters): {} bytes/update, {} bytes/broadcast, encode {:.2} ms; publish->held p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} of {} received)",
        b.subscribers,
        b.network,
        b.parameters,
        b.bytes_per_update,
        b.bytes_per_broadcast,
        b.encode_ms_mean,
        b.latency_ms_p50,
        b.latency_ms_p99,
        b.latency_ms_max,
        b.received,
        b.expected
    );
    let t = &r.training;
    println!(
        "training {} ({} libtorch thread(s)): {:.1} it/s idle, {:.1} it/s while {} actors ingest {:.0} transitions/s (offered {:.0}: {}), {:.1} it/s idle after: {:+.1}%; learner runtime threads used {:.2} cores, actor clients {:.2} cores while ingesting",
        t.algo,
        t.threads,
        t.iterations_per_second_idle_before,
        t.iterations_per_second_ingesting,
        t.actors,
        t.ingest_rate_achieved,
        t.ingest_rate_offered,
        t.ingest_rate_source,
        t.iterations_per_second_idle_after,
        100.0 * t.change,
        t.learner_runtime_cores_ingesting,
        t.actor_clients_cores_ingesting
    );
    println!(
        "         training thread CPU {:.1} ms/iteration idle, {:.1} ms/iteration ingesting; it got {:.0}% of a core idle, {:.0}% ingesting",
        t.training_cpu_ms_per_iteration_idle,
        t.training_cpu_ms_per_iteration_ingesting,
        100.0 * t.training_core_share_idle,
        100.0 * t.training_core_share_ingesting
    );
    println!("load average {:?} before, {:?} after", r.load_before, r.load_after);
}
