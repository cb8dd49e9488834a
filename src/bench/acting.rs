//! `spikerl bench actor`: env steps/s of the real acting loop (`spikerl_actor::env_loop`, no learner)
//! acting with the plain-Rust policy against random actions, and the policy's share of a step. The loop
//! driver is also the measured single actor of `bench transport`.

use super::measure::load_average;
use super::policies::{paper_policy, trained_weights};
use serde::Serialize;
use spikerl_actor::env_loop::{self, EnvLoopConfig, Shared};
use spikerl_algo::Algo;
use spikerl_proto::TransitionBatch;
use spikerl_snn::{NamedTensors, NeuronKind, PolicyConfig};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

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
pub struct ActingReport {
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

pub fn acting(
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
        policy.1 = trained_weights(path, &policy.0)?;
    }
    let load_before = load_average();
    let duration = Duration::from_secs_f64(seconds);
    let steps_per_batch = 32;
    let mut rows = Vec::new();
    for &n in envs {
        let random = acting_rate(env, n, env_threads, steps_per_batch, None, duration)?;
        let with_policy = acting_rate(env, n, env_threads, steps_per_batch, Some(policy.clone()), duration)?;
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

pub fn print(r: &ActingReport) {
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

/// What the acting loop produced.
#[derive(Debug)]
pub struct LoopRate {
    /// Env steps (transitions, all envs together) after the first batch.
    pub env_steps: u64,
    pub seconds: f64,
    /// Microseconds per env step spent choosing actions with the policy (inference and exploration
    /// noise, timed inside the loop over the same window); `None` in the random phase.
    pub policy_us_per_step: Option<f64>,
}

/// Runs the real acting loop (`env_loop::run`) with no learner for `duration`: with `policy` the loop
/// acts with it plus exploration noise (the learner's random phase is over), without it the loop takes
/// uniform-random actions (the environment alone plus the loop's own bookkeeping). Batches are dropped
/// as they arrive, so nothing waits on a network. Timing starts at the first batch (after the MuJoCo
/// model is loaded).
pub fn acting_rate(
    env_id: &str,
    num_envs: usize,
    env_threads: usize,
    steps_per_batch: usize,
    policy: Option<(PolicyConfig, NamedTensors)>,
    duration: Duration,
) -> anyhow::Result<LoopRate> {
    let shared = Shared::new();
    let with_policy = policy.is_some();
    if let Some((cfg, tensors)) = policy {
        spikerl_snn::Policy::new(&cfg, &tensors)?; // a bad policy is an error here, not a silent random loop
        shared.policy.store(0, cfg, tensors);
    }
    let cfg = EnvLoopConfig {
        env_id: env_id.to_string(),
        num_envs,
        env_threads,
        seed: 0,
        steps_per_batch,
        exploration_noise: 0.1,
        random_steps: if with_policy { 0 } else { u64::MAX },
    };
    let (tx, mut rx) = mpsc::channel::<TransitionBatch>(1);
    let loop_shared = shared.clone();
    let handle = std::thread::Builder::new()
        .name("acting".into())
        .spawn(move || env_loop::run(cfg, loop_shared, tx))?;
    let mut first: Option<Instant> = None;
    let mut steps = 0u64;
    let mut last = Instant::now();
    let policy_time =
        |s: &Shared| (s.policy_nanos.load(Ordering::Relaxed), s.policy_env_steps.load(Ordering::Relaxed));
    let mut at_first = (0, 0);
    while let Some(b) = rx.blocking_recv() {
        last = Instant::now();
        match first {
            None => {
                first = Some(last);
                at_first = policy_time(&shared);
            }
            Some(f) => {
                steps += b.count as u64;
                if last - f >= duration {
                    break;
                }
            }
        }
    }
    let at_last = policy_time(&shared);
    shared.stop.store(true, Ordering::Relaxed);
    drop(rx);
    match handle.join() {
        Ok(r) => r?,
        Err(_) => anyhow::bail!("the acting thread panicked"),
    }
    let Some(first) = first else { anyhow::bail!("the acting loop produced no batch") };
    let (nanos, policy_steps) = (at_last.0 - at_first.0, at_last.1 - at_first.1);
    Ok(LoopRate {
        env_steps: steps,
        seconds: (last - first).as_secs_f64(),
        policy_us_per_step: (policy_steps > 0).then(|| nanos as f64 / 1e3 / policy_steps as f64),
    })
}
