//! The paper's lockstep protocol in one process (`spikerl train --sync`): one environment, exactly one
//! training iteration per env step after `random_steps` uniform-random steps, evaluation every
//! `eval_every` steps. Deterministic on CPU for a given seed (every stream derives from it).

use crate::storage::run_folder::{EvalRecord, RunFolder};
use crate::training::replay_service::ReplayService;
use crate::training::seed_group::SeedGroup;
use crate::training::trainer::{Trainer, max_action};
use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use spikerl_algo::SeedBatching;
use spikerl_algo::config::RunConfig;

use spikerl_algo::replay::Transitions;
use spikerl_algo::seeds::{Seeds, derive_seed};

use spikerl_metrics::seed_label::SeedScope;
use spikerl_metrics::{actor, learner};
use spikerl_snn::Policy;

use std::collections::BTreeMap;
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

/// One seed's acting side of the lockstep protocol: its environment, exploration noise and the policy
/// it acts with (rebuilt from the learner's weights after each actor update).
struct Lane {
    env: Box<dyn spikerl_envs::Env>,
    obs: Vec<f64>,
    rng: ChaCha8Rng,
    noise: Normal<f64>,
    max_action: Vec<f32>,
    random_steps: u64,
    policy_config: spikerl_snn::PolicyConfig,
    policy: Policy,
    policy_version: u64,
    obs32: Vec<f32>,
    next32: Vec<f32>,
    action: Vec<f32>,
    transition: Transitions,
    episode_return: f64,
    episode_length: u64,
    episodes: u64,
}

impl Lane {
    /// The environment and exploration of a single run with `cfg.seed`, acting with `weights` (version
    /// `version`) once the random steps are over.
    fn new(
        cfg: &RunConfig,
        policy_config: &spikerl_snn::PolicyConfig,
        weights: &spikerl_snn::NamedTensors,
        version: u64,
    ) -> anyhow::Result<Lane> {
        let spec = spikerl_envs::spec(&cfg.env_id)?;
        let actor_seed = derive_seed(cfg.seed, Seeds::from_run(cfg.seed).actor_base);
        let mut env = spikerl_envs::make(&spec.id)?;
        let obs = env.reset(Some(actor_seed));
        Ok(Lane {
            env,
            obs,
            rng: ChaCha8Rng::seed_from_u64(derive_seed(actor_seed, 1)),
            noise: Normal::new(0.0, cfg.td3.exploration_noise).context("exploration noise")?,
            max_action: max_action(&spec)?,
            random_steps: cfg.random_steps,
            policy_config: policy_config.clone(),
            policy: Policy::new(policy_config, weights)?,
            policy_version: version,
            obs32: vec![0.0; spec.obs_dim],
            next32: vec![0.0; spec.obs_dim],
            action: vec![0.0; spec.act_dim],
            transition: Transitions::with_capacity(1, spec.obs_dim, spec.act_dim),
            episode_return: 0.0,
            episode_length: 0,
            episodes: 0,
        })
    }

    /// Env step `t`: a uniform-random action during the random steps, else the policy's with Gaussian
    /// exploration noise (the policy rebuilt from `weights()` first if the learner's `version` moved on);
    /// the transition goes into `replay`.
    fn step(
        &mut self,
        t: u64,
        version: u64,
        weights: impl FnOnce() -> spikerl_snn::NamedTensors,
        replay: &ReplayService,
    ) -> anyhow::Result<()> {
        for (o, &x) in self.obs32.iter_mut().zip(&self.obs) {
            *o = x as f32;
        }
        if t < self.random_steps {
            for (a, &m) in self.action.iter_mut().zip(&self.max_action) {
                *a = self.rng.random_range(-m..m);
            }
        } else {
            if version != self.policy_version {
                self.policy = Policy::new(&self.policy_config, &weights())?;
                self.policy_version = version;
                metrics::gauge!(learner::POLICY_VERSION).set(version as f64);
            }
            self.policy.act(&self.obs32, &mut self.action);
            for (a, &m) in self.action.iter_mut().zip(&self.max_action) {
                *a = (*a + m * self.noise.sample(&mut self.rng) as f32).clamp(-m, m);
            }
        }
        let step = self.env.step(&self.action);
        self.episode_return += step.reward;
        self.episode_length += 1;
        for (o, &x) in self.next32.iter_mut().zip(&step.obs) {
            *o = x as f32;
        }
        self.transition.clear();
        self.transition.push(&self.obs32, &self.action, step.reward as f32, &self.next32, step.terminated);
        if replay.try_insert(&self.transition).ok().flatten().is_none() {
            bail!("lockstep insert refused by the rate limiter (update ratio must be >= 1 per step here)");
        }
        metrics::counter!(actor::ENV_STEPS_TOTAL).increment(1);
        metrics::counter!(learner::TRANSITIONS_INSERTED_TOTAL).increment(1);
        if step.terminated || step.truncated {
            metrics::counter!(actor::EPISODES_TOTAL).increment(1);
            metrics::gauge!(actor::EPISODE_RETURN_LAST).set(self.episode_return);
            metrics::gauge!(actor::EPISODE_LENGTH_LAST).set(self.episode_length as f64);
            (self.episode_return, self.episode_length) = (0.0, 0);
            self.episodes += 1;
            self.obs = self.env.reset(None);
        } else {
            self.obs = step.obs;
        }
        Ok(())
    }
}

/// Runs a whole lockstep training run. `stop` interrupts it between steps (the run folder then says
/// "interrupted"). A group of one seed trained by its own learner.
pub fn run(
    cfg: &RunConfig,
    device: tch::Device,
    run_folder: &mut RunFolder,
    stop: &AtomicBool,
    progress: impl FnMut(&Progress),
) -> anyhow::Result<Trainer> {
    let mut trainers = run_seeds(
        cfg,
        &[cfg.seed],
        SeedBatching::Separate,
        device,
        std::slice::from_mut(run_folder),
        stop,
        progress,
    )?;
    Ok(trainers.pop().expect("one trainer per seed"))
}

/// Runs the lockstep protocol for several seeds of `cfg` at once (`spikerl train --sync --seeds`): seed
/// s acts in its own environment, exactly as a single run with that seed would, and writes its own run
/// folder `run_folders[s]`; after each env step of every seed, every seed trains one iteration (as one
/// stacked ensemble or seed by seed, `batching`). Progress reports the mean over seeds of the latest
/// evaluations, and the best of them. When the run folders are a seed group's (`train --seeds`), every
/// series a seed records carries `seed="N"` (`spikerl_metrics::seed_label`); a single run's carry none.
pub fn run_seeds(
    cfg: &RunConfig,
    seeds: &[u64],
    batching: SeedBatching,
    device: tch::Device,
    run_folders: &mut [RunFolder],
    stop: &AtomicBool,
    mut progress: impl FnMut(&Progress),
) -> anyhow::Result<Vec<Trainer>> {
    anyhow::ensure!(
        run_folders.len() == seeds.len(),
        "{} run folders for {} seeds",
        run_folders.len(),
        seeds.len()
    );
    let seed_labels = run_folders.iter().any(RunFolder::in_seed_group);
    let mut group = SeedGroup::new(cfg, seeds, batching, device)?;
    let mut lanes = Vec::with_capacity(seeds.len());
    for (s, (&seed, dir)) in seeds.iter().zip(run_folders.iter()).enumerate() {
        let run_name = dir.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let trainer = &mut group.trainers()?[s];
        if seed_labels {
            trainer.label_metrics_with_seed();
        }
        trainer.announce(&run_name, "sync", None);
        let seed_cfg = RunConfig { seed, ..cfg.clone() };
        lanes.push(Lane::new(
            &seed_cfg,
            &trainer.td3.policy_config,
            &trainer.policy_weights(),
            trainer.td3.actor_updates,
        )?);
    }
    let mut p = Progress { total_steps: cfg.random_steps + cfg.steps, ..Progress::default() };

    for t in 0..p.total_steps {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if cfg.eval_every > 0 && t % cfg.eval_every == 0 {
            evaluate_seeds(&mut group, run_folders, &mut p, t, true)?;
        }
        let version = group.policy_version();
        for (s, lane) in lanes.iter_mut().enumerate() {
            let _seed = SeedScope::enter(seed_labels.then_some(seeds[s]));
            lane.step(t, version, || group.policy_weights(s), group.replay(s))?;
        }
        if t >= cfg.random_steps {
            while group.owed() >= 1.0 && !group.done() {
                group.iterate().context("replay closed during a lockstep run")?;
            }
            group.write_training_scalars_if_due(t + 1, run_folders);
        }
        p.env_steps = t + 1;
        p.episodes = lanes.iter().map(|l| l.episodes).sum();
        p.iterations = group.iterations();
        progress(&p);
    }
    let evaluated_last =
        group.trainers()?.iter().all(|t| t.evals.last().map(|e| e.step) == Some(p.env_steps));
    if !stop.load(Ordering::Relaxed) && !evaluated_last {
        let step = p.env_steps;
        evaluate_seeds(&mut group, run_folders, &mut p, step, false)?;
        progress(&p);
    }
    let trainers = group.into_trainers()?;
    for (trainer, dir) in trainers.iter().zip(run_folders.iter()) {
        trainer.save_checkpoint("lockstep", BTreeMap::new, &dir.checkpoints())?;
    }
    Ok(trainers)
}

/// Runs every seed's evaluation at env step `step` (only where one is due, with `due_only`), each into its
/// own run folder, and records the mean over seeds of the evaluations just run, and the best so far, in `p`.
fn evaluate_seeds(
    group: &mut SeedGroup,
    run_folders: &mut [RunFolder],
    p: &mut Progress,
    step: u64,
    due_only: bool,
) -> anyhow::Result<()> {
    let mut latest = Vec::new();
    for (trainer, dir) in group.trainers()?.iter_mut().zip(run_folders.iter_mut()) {
        if due_only {
            trainer.evaluate_if_due(step, Some(dir))?;
        } else {
            trainer.evaluate(step, Some(dir))?;
        }
        latest.extend(trainer.evals.last().filter(|e| e.step == step).map(EvalRecord::mean));
    }
    if !latest.is_empty() {
        p.last_eval = Some(latest.iter().sum::<f64>() / latest.len() as f64);
        p.best_eval = p.best_eval.into_iter().chain(p.last_eval).reduce(f64::max);
    }
    Ok(())
}
