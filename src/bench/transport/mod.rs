//! `spikerl bench transport`: over loopback gRPC in one process, (a) the learner's ingest from N actor
//! streams, (b) the weight broadcast to M subscribers, (c) training iterations/s without and with the
//! ingest of the rate a number of actors produce; the real actor and learner code on both ends
//! ([`actor_side`], [`learner_side`]).

mod actor_side;
mod broadcast;
mod ingest;
mod learner_side;
mod training;

use super::acting::acting_rate;
use super::measure::load_average;
use super::policies::paper_policy;
use broadcast::BroadcastFigures;
use ingest::IngestFigures;
use serde::Serialize;
use spikerl_algo::Algo;
use spikerl_snn::NeuronKind;
use std::time::Duration;
use tokio::runtime::Runtime;
use training::TrainingFigures;

pub struct TransportOptions {
    pub env: String,
    pub ingest_actors: usize,
    pub batch: usize,
    pub subscribers: usize,
    pub train_actors: usize,
    pub ingest_rate: Option<f64>,
    pub seconds: f64,
    pub threads: usize,
    pub client_threads: usize,
    pub server_nodelay: bool,
}

#[derive(Debug, Serialize)]
pub struct TransportReport {
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

/// What every measurement shares: the options, the environment's shapes, the measuring window, and the
/// two runtimes (the learner's, and the in-process actor clients').
struct Loopback<'a> {
    o: &'a TransportOptions,
    obs_dim: usize,
    act_dim: usize,
    duration: Duration,
    learner_rt: &'a Runtime,
    client_rt: &'a Runtime,
}

/// Tokio worker threads of the learner's runtime, as in a run.
const LEARNER_RUNTIME_THREADS: usize = 2;

pub fn transport(o: &TransportOptions) -> anyhow::Result<TransportReport> {
    let spec = spikerl_envs::spec(&o.env)?;
    // Before anything records: a process has one recorder, installed once.
    let latencies = broadcast::capture_latencies()?;
    tch::set_num_threads(o.threads as i32);
    tch::set_num_interop_threads(1);
    let duration = Duration::from_secs_f64(o.seconds);
    let load_before = load_average();
    let offered = offered_ingest_rate(o)?;
    let learner_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(LEARNER_RUNTIME_THREADS)
        .enable_all()
        .thread_name("learner-rt")
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.client_threads)
        .enable_all()
        .thread_name("actor-rt")
        .build()?;
    let lo = Loopback {
        o,
        obs_dim: spec.obs_dim,
        act_dim: spec.act_dim,
        duration,
        learner_rt: &learner_rt,
        client_rt: &client_rt,
    };
    let ingest = ingest::measure(&lo)?;
    let broadcast = broadcast::measure(&lo, &latencies)?;
    let training = training::measure(&lo, &offered)?;
    drop(client_rt);
    drop(learner_rt);
    Ok(TransportReport {
        env: o.env.clone(),
        seconds_per_measurement: o.seconds,
        client_threads: o.client_threads,
        learner_runtime_threads: LEARNER_RUNTIME_THREADS,
        server_nodelay: o.server_nodelay,
        one_actor_steps_per_second: offered.one_actor,
        ingest,
        broadcast,
        training,
        load_before,
        load_after: load_average(),
    })
}

/// The transitions/s ingested while training, and where the figure comes from.
struct OfferedRate {
    transitions_per_second: f64,
    /// One acting loop's env steps/s, when measured.
    one_actor: Option<f64>,
    source: String,
}

/// `--ingest-rate`, or the rate `train_actors` actors produce: one real acting loop with the paper's
/// policy, times the actor count.
fn offered_ingest_rate(o: &TransportOptions) -> anyhow::Result<OfferedRate> {
    Ok(match o.ingest_rate {
        Some(r) => {
            OfferedRate { transitions_per_second: r, one_actor: None, source: "--ingest-rate".to_string() }
        }
        None => {
            let policy = paper_policy(&o.env, Algo::Proxy, NeuronKind::Lif)?;
            let a = acting_rate(&o.env, 1, 1, 32, Some(policy), Duration::from_secs(2))?;
            let one = a.env_steps as f64 / a.seconds;
            OfferedRate {
                transitions_per_second: one * o.train_actors as f64,
                one_actor: Some(one),
                source: format!("{} x one acting loop measured for 2 s ({one:.0} steps/s)", o.train_actors),
            }
        }
    })
}

pub fn print(r: &TransportReport) {
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
