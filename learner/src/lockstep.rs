//! The paper's lockstep protocol in one process (`spikerl train --sync`): one environment, exactly one
//! training iteration per env step after `random_steps` uniform-random steps, evaluation every
//! `eval_every` steps. Deterministic on CPU for a given seed (every stream derives from it).

use crate::checkpoint;
use crate::config::RunConfig;
use crate::rate_limiter::RateLimiter;
use crate::replay::{ReplayBuffer, Transitions};
use crate::replay_service::ReplayService;
use crate::run_dir::{RunDir, Seeds, derive_seed};
use crate::td3::Td3;
use crate::trainer::Trainer;
use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use spikerl_snn::Policy;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A snapshot for progress displays.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub env_steps: u64,
    pub total_steps: u64,
    pub iterations: u64,
    pub episodes: u64,
    pub last_eval: Option<f64>,
    pub best_eval: Option<f64>,
}

/// Symmetric action bound per dimension (tanh * max_action policies need low = -high).
pub fn max_action(spec: &spikerl_envs::EnvSpec) -> anyhow::Result<Vec<f32>> {
    spec.act_low
        .iter()
        .zip(&spec.act_high)
        .map(|(&lo, &hi)| {
            if (lo + hi).abs() > 1e-9 * hi.abs().max(1.0) || hi <= 0.0 {
                bail!("{}: action bounds [{lo}, {hi}] are not symmetric; tanh*max_action policies need them so", spec.id)
            }
            Ok(hi as f32)
        })
        .collect()
}

/// libtorch's generator is process-global: seeding it and drawing the initial weights happen under this
/// lock, so trainers built on parallel threads (tests, several seeds in one process) stay reproducible.
pub(crate) static TORCH_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Builds the trainer for a run: seeds libtorch, networks, replay and limiter.
pub fn build_trainer(cfg: &RunConfig, device: tch::Device) -> anyhow::Result<Trainer> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    let spec = spikerl_envs::spec(&cfg.env_id)?;
    let seeds = Seeds::from_run(cfg.seed);
    let policy_config = cfg.policy_config(spec.obs_dim, spec.act_dim, max_action(&spec)?);
    policy_config.validate()?;
    let td3 = {
        let _init = TORCH_INIT.lock().unwrap_or_else(|p| p.into_inner());
        tch::manual_seed(seeds.torch as i64);
        Td3::new(cfg, policy_config, device, seeds.target_noise)
    };
    let buffer = ReplayBuffer::new(cfg.replay_capacity, spec.obs_dim, spec.act_dim, seeds.replay);
    let limiter = RateLimiter::new(cfg.update_ratio, cfg.random_steps, cfg.ratio_tolerance);
    let replay = Arc::new(ReplayService::new(buffer, limiter));
    Ok(Trainer::new(cfg.clone(), spec, td3, replay))
}

/// Runs a whole lockstep training run. `stop` interrupts it between steps (the run folder then says
/// "interrupted").
pub fn run(
    cfg: &RunConfig,
    device: tch::Device,
    run_dir: &mut RunDir,
    stop: &AtomicBool,
    mut progress: impl FnMut(&Progress),
) -> anyhow::Result<Trainer> {
    let mut trainer = build_trainer(cfg, device)?;
    let run_name = run_dir.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    crate::telemetry::run_started(&trainer, &run_name, "sync", None);
    let spec = trainer.spec.clone();
    let max_action = max_action(&spec)?;
    let actor_seed = derive_seed(cfg.seed, Seeds::from_run(cfg.seed).actor_base);
    let mut env = spikerl_envs::make(&spec.id)?;
    let mut obs = env.reset(Some(actor_seed));
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(actor_seed, 1));
    let noise = Normal::new(0.0, cfg.td3.exploration_noise).context("exploration noise")?;

    let mut policy = Policy::new(&trainer.td3.policy_config, &trainer.policy_weights())?;
    let mut policy_version = trainer.td3.actor_updates;
    let (mut obs32, mut action) = (vec![0f32; spec.obs_dim], vec![0f32; spec.act_dim]);
    let mut next32 = vec![0f32; spec.obs_dim];
    let mut transition = Transitions::with_capacity(1, spec.obs_dim, spec.act_dim);
    let mut p = Progress { total_steps: cfg.random_steps + cfg.steps, ..Progress::default() };
    let (mut episode_return, mut episode_length) = (0.0, 0u64);

    for t in 0..p.total_steps {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(r) = trainer.evaluate_if_due(t, Some(run_dir))? {
            p.last_eval = Some(r);
            p.best_eval = trainer.best_return();
        }
        for (o, &x) in obs32.iter_mut().zip(&obs) {
            *o = x as f32;
        }
        if t < cfg.random_steps {
            for (a, &m) in action.iter_mut().zip(&max_action) {
                *a = rng.random_range(-m..m);
            }
        } else {
            if trainer.td3.actor_updates != policy_version {
                policy = Policy::new(&trainer.td3.policy_config, &trainer.policy_weights())?;
                policy_version = trainer.td3.actor_updates;
                metrics::gauge!("spikerl_learner_policy_version").set(policy_version as f64);
            }
            policy.act(&obs32, &mut action);
            for (a, &m) in action.iter_mut().zip(&max_action) {
                *a = (*a + m * noise.sample(&mut rng) as f32).clamp(-m, m);
            }
        }
        let step = env.step(&action);
        episode_return += step.reward;
        episode_length += 1;
        for (o, &x) in next32.iter_mut().zip(&step.obs) {
            *o = x as f32;
        }
        transition.clear();
        transition.push(&obs32, &action, step.reward as f32, &next32, step.terminated);
        if trainer.replay.try_insert(&transition).ok().flatten().is_none() {
            bail!("lockstep insert refused by the rate limiter (update ratio must be >= 1 per step here)");
        }
        metrics::counter!("spikerl_actor_env_steps_total").increment(1);
        metrics::counter!("spikerl_learner_transitions_inserted_total").increment(1);
        if step.terminated || step.truncated {
            metrics::counter!("spikerl_actor_episodes_total").increment(1);
            metrics::gauge!("spikerl_actor_episode_return_last").set(episode_return);
            metrics::gauge!("spikerl_actor_episode_length_last").set(episode_length as f64);
            (episode_return, episode_length) = (0.0, 0);
            p.episodes += 1;
            obs = env.reset(None);
        } else {
            obs = step.obs;
        }
        if t >= cfg.random_steps {
            while trainer.replay.counters().owed >= 1.0 && !trainer.done() {
                trainer.iterate().context("replay closed during a lockstep run")?;
            }
        }
        p.env_steps = t + 1;
        p.iterations = trainer.td3.iterations;
        progress(&p);
    }
    if !stop.load(Ordering::Relaxed) && trainer.evals.last().map(|e| e.step) != Some(p.env_steps) {
        p.last_eval = Some(trainer.evaluate(p.env_steps, Some(run_dir))?);
        p.best_eval = trainer.best_return();
        progress(&p);
    }
    checkpoint::save(&trainer, "lockstep", Vec::new(), &run_dir.checkpoints())?;
    Ok(trainer)
}
