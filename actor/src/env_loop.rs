//! The acting loop on its own OS thread: steps a vectorised environment with the newest policy plus
//! Gaussian exploration (uniform-random actions until the learner has `random_steps` transitions), and
//! hands fixed-size batches to the streamer. A full channel blocks this thread: that is how the
//! learner's backpressure reaches the physics.

use crate::policy_slot::PolicySlot;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal};
use spikerl_envs::vector::VecEnv;
use spikerl_metrics::actor;
use spikerl_proto::{EpisodeSummary, TransitionBatch};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::mpsc;

pub struct EnvLoopConfig {
    pub env_id: String,
    pub num_envs: usize,
    /// Threads stepping the envs (this one plus workers; see `VecEnv::with_threads`). Results do not
    /// depend on it; 1 steps them all on the acting thread.
    pub env_threads: usize,
    pub seed: u64,
    /// Environment steps (of all envs together: one step = num_envs transitions) per batch.
    pub steps_per_batch: usize,
    pub exploration_noise: f32,
    pub random_steps: u64,
}

/// State the streamer shares with the loop.
pub struct Shared {
    pub policy: PolicySlot,
    /// Total transitions the learner reports inserted (from acks): ends the random phase.
    pub learner_inserted: AtomicU64,
    pub stop: AtomicBool,
    /// Time spent choosing actions with the policy (inference plus exploration noise), nanoseconds, and
    /// the env steps those actions served: what the policy costs inside the loop (`spikerl bench actor`).
    pub policy_nanos: AtomicU64,
    pub policy_env_steps: AtomicU64,
    /// The delivery ledger: transitions handed to the streamer, and those of them the learner
    /// acknowledged (each once), also exported as `spikerl_actor_transitions_{produced,acked}_total`.
    pub produced: AtomicU64,
    pub acked: AtomicU64,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            policy: PolicySlot::default(),
            learner_inserted: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            policy_nanos: AtomicU64::new(0),
            policy_env_steps: AtomicU64::new(0),
            produced: AtomicU64::new(0),
            acked: AtomicU64::new(0),
        })
    }
}

pub fn run(
    cfg: EnvLoopConfig,
    shared: Arc<Shared>,
    out: mpsc::Sender<TransitionBatch>,
) -> anyhow::Result<()> {
    let mut venv = VecEnv::with_threads(&cfg.env_id, cfg.num_envs, cfg.seed, cfg.env_threads)?;
    tracing::info!(env = %cfg.env_id, envs = cfg.num_envs, threads = venv.threads(), "stepping environments");
    let spec = venv.spec().clone();
    let (n, od, ad) = (cfg.num_envs, spec.obs_dim, spec.act_dim);
    let max_action: Vec<f32> = spec.act_high.iter().map(|&h| h as f32).collect();
    let low: Vec<f32> = spec.act_low.iter().map(|&l| l as f32).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5EED_AC70);
    let noise = Normal::new(0.0f32, cfg.exploration_noise.max(0.0))?;
    let mut policy = None;
    let mut policy_version: Option<u64> = None;
    let mut obs32 = vec![0f32; n * od];
    let mut actions = vec![0f32; n * ad];
    let mut eps = Vec::with_capacity(ad);

    while !shared.stop.load(Ordering::Relaxed) {
        let cap = cfg.steps_per_batch * n;
        let mut batch = TransitionBatch {
            obs: Vec::with_capacity(cap * od),
            actions: Vec::with_capacity(cap * ad),
            rewards: Vec::with_capacity(cap),
            next_obs: Vec::with_capacity(cap * od),
            terminated: Vec::with_capacity(cap),
            truncated: Vec::with_capacity(cap),
            ..Default::default()
        };
        for _ in 0..cfg.steps_per_batch {
            if let Some((p, v)) = shared.policy.newer_than(policy_version) {
                policy = Some(p);
                policy_version = Some(v);
            }
            for (o, &x) in obs32.iter_mut().zip(venv.obs()) {
                *o = x as f32;
            }
            let random_phase = shared.learner_inserted.load(Ordering::Relaxed) < cfg.random_steps;
            match policy.as_mut() {
                Some(p) if !random_phase => {
                    let started = std::time::Instant::now();
                    if p.is_gaussian() {
                        // SAC explores with its own Gaussian.
                        for (o, a) in obs32.chunks_exact(od).zip(actions.chunks_exact_mut(ad)) {
                            eps.clear();
                            eps.extend((0..ad).map(|_| -> f32 { StandardNormal.sample(&mut rng) }));
                            p.sample(o, &eps, a);
                        }
                    } else {
                        p.act_batch(&obs32, &mut actions);
                        for (i, a) in actions.iter_mut().enumerate() {
                            let m = max_action[i % ad];
                            *a = (*a + m * noise.sample(&mut rng)).clamp(low[i % ad], m);
                        }
                    }
                    shared.policy_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    shared.policy_env_steps.fetch_add(n as u64, Ordering::Relaxed);
                }
                _ => {
                    for (i, a) in actions.iter_mut().enumerate() {
                        *a = rng.random_range(low[i % ad]..max_action[i % ad]);
                    }
                }
            }
            let step = venv.step(&actions)?;
            batch.obs.extend_from_slice(&obs32);
            batch.actions.extend_from_slice(&actions);
            batch.rewards.extend(step.rewards.iter().map(|&r| r as f32));
            batch.next_obs.extend(step.next_obs.iter().map(|&x| x as f32));
            batch.terminated.extend_from_slice(&step.terminated);
            batch.truncated.extend_from_slice(&step.truncated);
            for ep in step.finished.iter().flatten() {
                batch.episodes.push(EpisodeSummary { episode_return: ep.ret, length: ep.len as u32 });
                metrics::counter!(actor::EPISODES_TOTAL).increment(1);
                metrics::gauge!(actor::EPISODE_RETURN_LAST).set(ep.ret);
                metrics::gauge!(actor::EPISODE_LENGTH_LAST).set(ep.len as f64);
            }
            metrics::counter!(actor::ENV_STEPS_TOTAL).increment(n as u64);
        }
        batch.count = batch.rewards.len() as u32;
        batch.policy_version = policy_version.unwrap_or(0);
        let count = u64::from(batch.count);
        if out.blocking_send(batch).is_err() {
            break; // the streamer is gone: the actor is shutting down
        }
        shared.produced.fetch_add(count, Ordering::Relaxed);
        metrics::counter!(actor::TRANSITIONS_PRODUCED_TOTAL).increment(count);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first `batches` batches the loop sends in the random phase (no policy yet).
    fn batches(env_threads: usize, batches: usize) -> Vec<TransitionBatch> {
        let cfg = EnvLoopConfig {
            env_id: "Hopper-v4".into(),
            num_envs: 5,
            env_threads,
            seed: 3,
            steps_per_batch: 40,
            exploration_noise: 0.1,
            random_steps: u64::MAX,
        };
        let (tx, mut rx) = mpsc::channel(1);
        let looping = std::thread::spawn(move || run(cfg, Shared::new(), tx));
        let got = (0..batches).map(|_| rx.blocking_recv().expect("the loop sends batches")).collect();
        drop(rx); // the loop's next send fails: it returns
        looping.join().unwrap().unwrap();
        got
    }

    #[test]
    fn env_threads_do_not_change_the_transitions() {
        let one = batches(1, 4);
        // Hopper falls within tens of steps under random actions: episodes end inside these batches.
        assert!(one.iter().map(|b| b.episodes.len()).sum::<usize>() > 5);
        assert!(batches(2, 4) == one);
        assert!(batches(3, 4) == one);
    }
}
