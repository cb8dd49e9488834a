//! The actor's half of `bench transport`: `spikerl_actor`'s own streamer and policy subscriber, measured
//! rather than imitated. Only the environments are replaced (a synthetic producer stands in for the
//! acting thread) so that the figures are those of the wire, the outbox and the learner's ingest.

use spikerl_actor::env_loop::Shared;
use spikerl_actor::{ActorOptions, Outbox};
use spikerl_proto::TransitionBatch;
use std::sync::Arc;
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
    let (mut client, reply) = spikerl_actor::connect_and_register(&opts)
        .await
        .map_err(|s| anyhow::anyhow!("registering with the bench learner: {s}"))?;
    let shared = Shared::new();
    let (tx, mut rx) = mpsc::channel::<TransitionBatch>(1);
    let mut outbox = Outbox::new(opts.retain_bytes);
    outbox.time_acknowledgements();
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
        spikerl_actor::stream(&mut client, &reply, &opts, &shared, &mut outbox, &mut rx, &mut next_sequence)
            .await;
    let seconds = started.elapsed().as_secs_f64();
    producer.abort();
    result.map_err(|s| anyhow::anyhow!("the transition stream failed: {s}"))?;
    let round_trips = outbox.round_trips();
    Ok(IngestReport {
        acked_transitions: round_trips.len() as u64 * transitions_per_batch,
        round_trips_s: round_trips.iter().map(Duration::as_secs_f64).collect(),
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
    let (client, reply) = spikerl_actor::connect_and_register(&opts)
        .await
        .map_err(|s| anyhow::anyhow!("registering with the bench learner: {s}"))?;
    let shared = Shared::new();
    let task = tokio::spawn(spikerl_actor::subscribe(client, reply, shared.clone()));
    Ok((shared, task))
}
