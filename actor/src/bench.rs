//! Drivers for `spikerl bench transport` and `spikerl bench actor`: this crate's own streamer, policy
//! subscriber and acting loop, measured rather than imitated. The transport drivers replace only the
//! environments (a synthetic producer stands in for the acting thread) so that the figures are those of
//! the wire, the outbox and the learner's ingest; the acting driver runs the real loop without a learner.

use crate::env_loop::{self, EnvLoopConfig, Shared};
use crate::{ActorOptions, Outbox};
use spikerl_proto::TransitionBatch;
use spikerl_snn::{NamedTensors, PolicyConfig};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What one streaming client saw.
#[derive(Debug, Default)]
pub struct IngestReport {
    /// Transitions the learner acknowledged.
    pub acked_transitions: u64,
    /// Send-to-acknowledgement time of every acknowledged batch, seconds.
    pub round_trips_s: Vec<f64>,
    /// Seconds from the first batch offered to the end of the stream.
    pub seconds: f64,
}

/// A batch of `n` transitions of the given shapes with values in the usual range (the learner validates
/// every value, so they must be finite; their content does not change the cost).
pub fn synthetic_batch(n: usize, obs_dim: usize, act_dim: usize, salt: u32) -> TransitionBatch {
    let f = |len: usize, scale: f32| -> Vec<f32> {
        (0..len)
            .map(|i| {
                scale
                    * (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(salt) >> 8) as f32 / 16_777_216.0
                        - 0.5)
            })
            .collect()
    };
    TransitionBatch {
        count: n as u32,
        obs: f(n * obs_dim, 4.0),
        actions: f(n * act_dim, 2.0),
        rewards: f(n, 2.0),
        next_obs: f(n * obs_dim, 4.0),
        terminated: vec![false; n],
        truncated: vec![false; n],
        ..Default::default()
    }
}

/// One actor's transition stream: registers as `name`, then pushes copies of `batch` through the real
/// streamer (sequence numbers, window, outbox, acknowledgements) for `duration`. `rate` paces the
/// producer at that many transitions per second (None: as fast as the streamer takes batches, i.e. as
/// fast as the learner acknowledges them: what a backpressured actor sees).
pub async fn ingest_client(
    learner: String,
    name: String,
    batch: TransitionBatch,
    rate: Option<f64>,
    duration: Duration,
) -> anyhow::Result<IngestReport> {
    let opts = ActorOptions { learner, name, ..Default::default() };
    let (mut client, reply) = crate::connect_and_register(&opts)
        .await
        .map_err(|s| anyhow::anyhow!("registering with the bench learner: {s}"))?;
    let shared = Shared::new();
    let (tx, mut rx) = mpsc::channel::<TransitionBatch>(1);
    let mut outbox = Outbox::new(opts.retain_bytes);
    outbox.timing = Some(Default::default());
    let mut next_sequence = reply.last_sequence + 1;
    let per_batch = batch.count as f64;
    let transitions_per_batch = batch.count as u64;
    let started = Instant::now();
    let producer = tokio::spawn(async move {
        let mut offered = 0u64;
        while started.elapsed() < duration {
            if let Some(r) = rate {
                // An absolute schedule: a late wake-up is made up by the next batch, so the mean rate holds
                // even with the timer's 1 ms granularity.
                let due = started + Duration::from_secs_f64(offered as f64 * per_batch / r);
                tokio::time::sleep_until(due.into()).await;
            }
            if tx.send(batch.clone()).await.is_err() {
                break;
            }
            offered += 1;
        }
        // Dropping `tx` ends the stream: the streamer returns once it sees the channel closed.
    });
    let result =
        crate::stream(&mut client, &reply, &opts, &shared, &mut outbox, &mut rx, &mut next_sequence).await;
    let seconds = started.elapsed().as_secs_f64();
    producer.abort();
    result.map_err(|s| anyhow::anyhow!("the transition stream failed: {s}"))?;
    let timing = outbox.timing.take().unwrap_or_default();
    Ok(IngestReport {
        acked_transitions: timing.round_trips.len() as u64 * transitions_per_batch,
        round_trips_s: timing.round_trips.iter().map(Duration::as_secs_f64).collect(),
        seconds,
    })
}

/// A policy subscriber: registers as `name` and runs the actor's real subscription task (receive,
/// decode, validate, store into the policy slot, record `spikerl_actor_broadcast_latency_seconds`) until
/// the returned handle is aborted. The shared state tells which version it holds.
pub async fn subscriber(
    learner: String,
    name: String,
) -> anyhow::Result<(Arc<Shared>, tokio::task::JoinHandle<()>)> {
    let opts = ActorOptions { learner, name, ..Default::default() };
    let (client, reply) = crate::connect_and_register(&opts)
        .await
        .map_err(|s| anyhow::anyhow!("registering with the bench learner: {s}"))?;
    let shared = Shared::new();
    let task = tokio::spawn(crate::subscribe(client, reply, shared.clone()));
    Ok((shared, task))
}

/// What the acting loop produced.
#[derive(Debug)]
pub struct ActingReport {
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
) -> anyhow::Result<ActingReport> {
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
    Ok(ActingReport {
        env_steps: steps,
        seconds: (last - first).as_secs_f64(),
        policy_us_per_step: (policy_steps > 0).then(|| nanos as f64 / 1e3 / policy_steps as f64),
    })
}
