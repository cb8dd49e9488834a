//! The paper's lockstep protocol in one process (`spikerl train --sync`): one environment, exactly one
//! training iteration per env step after `random_steps` uniform-random steps, evaluation every
//! `eval_every` steps. Deterministic on CPU for a given seed (every stream derives from it).
//!
//! Checkpoints (periodic, on a stop, at the end) hold the learner's state and each seed's acting side
//! ([`LockstepState`]), taken between two env steps; a run resumed from one continues bit for bit as the
//! uninterrupted run would have (same evaluations, same final policy) on the same device and threads.

use crate::storage::checkpoint::{Loaded, LockstepState, RngState};
use crate::storage::run_folder::{EvalRecord, RunFolder};
use crate::training::replay_service::ReplayService;
use crate::training::seed_group::SeedGroup;
use crate::training::trainer::{Trainer, max_action};
use anyhow::{Context, bail, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal};
use spikerl_algo::SeedBatching;
use spikerl_algo::config::RunConfig;

use spikerl_algo::replay::Transitions;
use spikerl_algo::seeds::{Seeds, derive_seed};

use spikerl_metrics::seed_label::SeedScope;
use spikerl_metrics::{actor, learner};
use spikerl_snn::Policy;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// A Gaussian policy's standard normal draws for one action.
    eps: Vec<f32>,
    transition: Transitions,
    episode_return: f64,
    episode_length: u64,
    episodes: u64,
    /// How the current episode began (see [`LockstepState`]): the seed of the first reset, or the
    /// environment's random stream before an unseeded one.
    episode_seed: Option<u64>,
    episode_rng: Option<ChaCha8Rng>,
    /// The current episode's actions, to rebuild the environment on resume.
    episode_actions: Vec<f32>,
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
            eps: Vec::with_capacity(spec.act_dim),
            transition: Transitions::with_capacity(1, spec.obs_dim, spec.act_dim),
            episode_return: 0.0,
            episode_length: 0,
            episodes: 0,
            episode_seed: Some(actor_seed),
            episode_rng: None,
            episode_actions: Vec::new(),
        })
    }

    /// The acting side as a checkpoint keeps it, `env_steps` steps into the run.
    fn state(&self, env_steps: u64) -> LockstepState {
        LockstepState {
            env_steps,
            exploration_rng: RngState::of(&self.rng),
            episode_seed: self.episode_seed,
            episode_rng: self.episode_rng.as_ref().map(RngState::of),
            episode_actions: self.episode_actions.iter().map(|a| a.to_bits()).collect(),
            observation: self.obs.iter().map(|x| x.to_bits()).collect(),
            episode_return: self.episode_return.to_bits(),
            episode_length: self.episode_length,
            episodes: self.episodes,
        }
    }

    /// Continues from a checkpoint's acting side: the environment is rebuilt by restarting the episode
    /// as it began and replaying its actions, and must arrive at the checkpoint's observation. The
    /// policy is rebuilt from `weights` (the restored learner's, version `version`).
    fn restore(
        &mut self,
        state: &LockstepState,
        weights: &spikerl_snn::NamedTensors,
        version: u64,
    ) -> anyhow::Result<()> {
        let spec = self.env.spec().clone();
        ensure!(
            state.episode_actions.len() == state.episode_length as usize * spec.act_dim
                && state.observation.len() == spec.obs_dim,
            "the checkpoint's episode does not fit {} ({} action values for {} steps, {} observation values)",
            spec.id,
            state.episode_actions.len(),
            state.episode_length,
            state.observation.len()
        );
        let mut env = spikerl_envs::make(&spec.id)?;
        let mut obs = match (state.episode_seed, &state.episode_rng) {
            (Some(seed), None) => env.reset(Some(seed)),
            (None, Some(rng)) => {
                env.set_random_stream(rng.restore()?);
                env.reset(None)
            }
            _ => bail!("the checkpoint's episode has no single start (a seed or a random stream)"),
        };
        let actions: Vec<f32> = state.episode_actions.iter().map(|&b| f32::from_bits(b)).collect();
        for (i, action) in actions.chunks_exact(spec.act_dim.max(1)).enumerate() {
            let step = env.try_step(action)?;
            // A checkpoint is taken between steps, after an ended episode was reset: none ends here.
            ensure!(
                !(step.terminated || step.truncated),
                "replaying the checkpoint's episode ended it at step {i}"
            );
            obs = step.obs;
        }
        let expected: Vec<f64> = state.observation.iter().map(|&b| f64::from_bits(b)).collect();
        if obs.iter().map(|x| x.to_bits()).ne(state.observation.iter().copied()) {
            bail!(
                "replaying the checkpoint's episode did not reach its observation (got {obs:?}, expected {expected:?}): \
                 was it written by another build of spikerl or MuJoCo?"
            );
        }
        self.env = env;
        self.obs = obs;
        self.rng = state.exploration_rng.restore()?;
        self.episode_seed = state.episode_seed;
        self.episode_rng = state.episode_rng.as_ref().map(RngState::restore).transpose()?;
        self.episode_actions = actions;
        self.episode_return = f64::from_bits(state.episode_return);
        self.episode_length = state.episode_length;
        self.episodes = state.episodes;
        self.policy = Policy::new(&self.policy_config, weights)?;
        self.policy_version = version;
        Ok(())
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
            if self.policy.is_gaussian() {
                // SAC explores with its own Gaussian.
                self.eps.clear();
                self.eps
                    .extend(self.max_action.iter().map(|_| -> f32 { StandardNormal.sample(&mut self.rng) }));
                self.policy.sample(&self.obs32, &self.eps, &mut self.action);
            } else {
                self.policy.act(&self.obs32, &mut self.action);
                for (a, &m) in self.action.iter_mut().zip(&self.max_action) {
                    *a = (*a + m * self.noise.sample(&mut self.rng) as f32).clamp(-m, m);
                }
            }
        }
        let step = self.env.step(&self.action);
        self.episode_actions.extend_from_slice(&self.action);
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
            (self.episode_seed, self.episode_rng) = (None, Some(self.env.random_stream()));
            self.episode_actions.clear();
            self.obs = self.env.reset(None);
        } else {
            self.obs = step.obs;
        }
        Ok(())
    }
}

/// How a lockstep run starts and keeps its checkpoints.
#[derive(Default)]
pub struct LockstepOptions {
    /// Each seed's checkpoint to continue from (`train --resume`), in seed order; a fresh run without.
    pub resume: Option<Vec<Loaded>>,
    /// Time between periodic checkpoints (besides the one on a stop and at the end); none without.
    pub checkpoint_interval: Option<Duration>,
}

/// Runs a whole lockstep training run. `stop` interrupts it between steps (the run folder then says
/// "interrupted"). A group of one seed trained by its own learner.
pub fn run(
    cfg: &RunConfig,
    device: tch::Device,
    run_folder: &mut RunFolder,
    opts: LockstepOptions,
    stop: &AtomicBool,
    progress: impl FnMut(&Progress),
) -> anyhow::Result<Trainer> {
    let mut trainers = run_seeds(
        cfg,
        &[cfg.seed],
        SeedBatching::Separate,
        device,
        std::slice::from_mut(run_folder),
        opts,
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
/// With `opts.resume`, every seed continues from its checkpoint (all taken at the same env step).
#[allow(clippy::too_many_arguments)]
pub fn run_seeds(
    cfg: &RunConfig,
    seeds: &[u64],
    batching: SeedBatching,
    device: tch::Device,
    run_folders: &mut [RunFolder],
    opts: LockstepOptions,
    stop: &AtomicBool,
    mut progress: impl FnMut(&Progress),
) -> anyhow::Result<Vec<Trainer>> {
    ensure!(run_folders.len() == seeds.len(), "{} run folders for {} seeds", run_folders.len(), seeds.len());
    let seed_labels = run_folders.iter().any(RunFolder::in_seed_group);
    let mut trainers = Vec::with_capacity(seeds.len());
    let mut resumed = Vec::new();
    for (s, &seed) in seeds.iter().enumerate() {
        let mut trainer = Trainer::build(&RunConfig { seed, ..cfg.clone() }, device)?;
        if let Some(loaded) = opts.resume.as_ref().map(|all| &all[s]) {
            let lockstep = resumable(loaded, seed)?;
            trainer.restore(loaded).with_context(|| format!("restoring {}", loaded.path.display()))?;
            run_folders[s].rewrite_evals(&trainer.evals)?;
            run_folders[s].mark_resumed(lockstep.env_steps);
            resumed.push(lockstep.clone());
        }
        trainers.push(trainer);
    }
    let start = resumed.first().map_or(0, |l| l.env_steps);
    ensure!(
        resumed.iter().all(|l| l.env_steps == start),
        "the seeds' checkpoints were taken at different env steps ({:?}): resume needs one step for all",
        resumed.iter().map(|l| l.env_steps).collect::<Vec<_>>()
    );
    let mut group = SeedGroup::of(cfg, trainers, batching)?;
    let mut lanes = Vec::with_capacity(seeds.len());
    for (s, dir) in run_folders.iter().enumerate() {
        let run_name = dir.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let trainer = &mut group.trainers()?[s];
        if seed_labels {
            trainer.label_metrics_with_seed();
        }
        trainer.announce(&run_name, "sync", opts.checkpoint_interval);
        let seed_cfg = RunConfig { seed: seeds[s], ..cfg.clone() };
        let weights = trainer.policy_weights();
        let version = trainer.learner.actor_updates();
        let mut lane = Lane::new(&seed_cfg, trainer.learner.policy_config(), &weights, version)?;
        if let Some(state) = resumed.get(s) {
            lane.restore(state, &weights, version).with_context(|| format!("resuming seed {}", seeds[s]))?;
            let _seed = trainer.seed_scope();
            metrics::counter!(actor::ENV_STEPS_TOTAL).absolute(start);
            metrics::counter!(actor::EPISODES_TOTAL).absolute(lane.episodes);
            tracing::info!(
                seed = seeds[s],
                env_steps = start,
                iterations = trainer.learner.iterations(),
                "resumed"
            );
        }
        lanes.push(lane);
    }
    let mut p = Progress { total_steps: cfg.random_steps + cfg.steps, ..Progress::default() };
    p.env_steps = start;
    p.iterations = group.iterations();
    p.episodes = lanes.iter().map(|l| l.episodes).sum();
    let mut last_checkpoint = Instant::now();

    for t in start..p.total_steps {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if opts.checkpoint_interval.is_some_and(|every| last_checkpoint.elapsed() >= every) {
            // A failed periodic checkpoint (a full disk) leaves the previous one valid: train on.
            if let Err(e) = checkpoint_seeds(&mut group, &lanes, t, run_folders) {
                tracing::error!(error = %format!("{e:#}"), "checkpoint failed; training goes on, the previous checkpoint stays valid");
            }
            last_checkpoint = Instant::now();
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
    checkpoint_seeds(&mut group, &lanes, p.env_steps, run_folders)?;
    group.into_trainers()
}

/// The acting side of a lockstep checkpoint of seed `seed`; an error for a distributed run's checkpoint
/// or another seed's.
fn resumable(loaded: &Loaded, seed: u64) -> anyhow::Result<&LockstepState> {
    let state = &loaded.state;
    ensure!(
        state.config.seed == seed,
        "{} is seed {}'s checkpoint, not seed {seed}'s",
        loaded.path.display(),
        state.config.seed
    );
    state.lockstep.as_ref().with_context(|| {
        format!(
            "{} is a distributed run's checkpoint (no lockstep state): resume it without --sync",
            loaded.path.display()
        )
    })
}

/// Checkpoints every seed, `env_steps` steps into the run, into its run folder (the learner's state and
/// the acting side; timed and counted by `Trainer::save_checkpoint`, as the distributed learner's).
fn checkpoint_seeds(
    group: &mut SeedGroup,
    lanes: &[Lane],
    env_steps: u64,
    run_folders: &[RunFolder],
) -> anyhow::Result<()> {
    for ((trainer, lane), dir) in group.trainers()?.iter().zip(lanes).zip(run_folders) {
        let started = Instant::now();
        let path = trainer
            .save_lockstep_checkpoint(&lane.state(env_steps), &dir.checkpoints())
            .with_context(|| format!("checkpointing {}", dir.path().display()))?;
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(path = %path.display(), secs, env_steps, "checkpoint written");
    }
    Ok(())
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
