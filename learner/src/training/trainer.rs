//! The training loop around the pure TD3 core: waits on the rate limiter, samples minibatches, runs
//! iterations, evaluates on schedule and records results. Used by both the lockstep mode (one process,
//! `--sync`) and the distributed learner (a dedicated OS thread, never on the async runtime).

use crate::storage::checkpoint::{self, ActorRecord, Loaded, LockstepState, ReplaySnapshot, Snapshot};
use crate::storage::run_folder::{EvalRecord, LayerActivity, RunFolder};
use crate::training::replay_service::{Delivered, ReplayService};
use crate::training::telemetry;
use crate::training::video::{self, VideoRecorder};
use anyhow::bail;
use spikerl_algo::Learner;
use spikerl_algo::config::RunConfig;
use spikerl_algo::rate_limiter::RateLimiter;
use spikerl_algo::replay::ReplayBuffer;
use spikerl_algo::replay::Transitions;
use spikerl_algo::seeds::Seeds;
use spikerl_algo::td3::{Batch, UpdateStats};
use spikerl_envs::EnvSpec;
use spikerl_metrics::seed_label::SeedScope;
use spikerl_metrics::{eval, learner, snn};
use spikerl_snn::{NamedTensors, Policy};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Symmetric action bound per dimension (tanh * max_action policies need low = -high).
pub fn max_action(spec: &spikerl_envs::EnvSpec) -> anyhow::Result<Vec<f32>> {
    spec.act_low
        .iter()
        .zip(&spec.act_high)
        .map(|(&lo, &hi)| {
            if (lo + hi).abs() > 1e-9 * hi.abs().max(1.0) || hi <= 0.0 {
                bail!(
                    "{}: action bounds [{lo}, {hi}] are not symmetric; tanh*max_action policies need them so",
                    spec.id
                )
            }
            Ok(hi as f32)
        })
        .collect()
}

/// Training iterations between two writes of the training scalars (losses, Q estimates, iterations/s)
/// to the run folder's TensorBoard files; every evaluation writes them too. Each write is the mean over
/// the iterations since the last: a smooth curve, at a cost of one small file write per 1000 iterations.
pub const TRAINING_SCALARS_EVERY: u64 = 1000;

/// The training statistics since the last write to the TensorBoard files, summed.
#[derive(Default)]
struct TrainingWindow {
    iterations: u64,
    critic_loss: f64,
    q_mean: f64,
    target_mean: f64,
    /// Actor and proxy losses only come on some iterations (the delayed actor; the proxy algorithm).
    actor_loss: (f64, u64),
    proxy_loss: (f64, u64),
    /// SAC's temperature (sum, count).
    alpha: (f64, u64),
    /// When the window began: the previous write, or the start of its first iteration.
    started: Option<Instant>,
}

impl TrainingWindow {
    fn add(&mut self, s: &UpdateStats, took: Duration) {
        self.started.get_or_insert_with(|| Instant::now().checked_sub(took).unwrap_or_else(Instant::now));
        self.iterations += 1;
        self.critic_loss += s.critic_loss;
        self.q_mean += s.q_mean;
        self.target_mean += s.target_mean;
        if let Some(l) = s.actor_loss {
            self.actor_loss = (self.actor_loss.0 + l, self.actor_loss.1 + 1);
        }
        if let Some(l) = s.proxy_loss {
            self.proxy_loss = (self.proxy_loss.0 + l, self.proxy_loss.1 + 1);
        }
        if let Some(a) = s.alpha {
            self.alpha = (self.alpha.0 + a, self.alpha.1 + 1);
        }
    }

    /// The means as TensorBoard scalars (tags: docs/interface.md), and a fresh window from now.
    fn take(&mut self) -> Vec<(String, f64)> {
        let n = self.iterations as f64;
        let mut out = vec![
            ("train/critic_loss".to_string(), self.critic_loss / n),
            ("train/q_mean".to_string(), self.q_mean / n),
            ("train/td_target_mean".to_string(), self.target_mean / n),
        ];
        for (tag, (sum, count)) in [
            ("train/actor_loss", self.actor_loss),
            ("train/proxy_loss", self.proxy_loss),
            ("train/alpha", self.alpha),
        ] {
            if count > 0 {
                out.push((tag.to_string(), sum / count as f64));
            }
        }
        let secs = self.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        if secs > 0.0 {
            out.push(("train/iterations_per_second".to_string(), n / secs));
        }
        *self = TrainingWindow { started: Some(Instant::now()), ..TrainingWindow::default() };
        out
    }
}

/// The run id in lockstep runs' checkpoints (one process: no actors to tell runs apart).
pub const LOCKSTEP_RUN_ID: &str = "lockstep";

/// Training state that outlives single iterations.
pub struct Trainer {
    pub cfg: RunConfig,
    pub spec: EnvSpec,
    pub learner: Learner,
    pub replay: Arc<ReplayService>,
    scratch: Vec<Transitions>,
    /// Env-step count at which the next evaluation is due.
    next_eval: u64,
    pub evals: Vec<EvalRecord>,
    started: Instant,
    /// Wall seconds of earlier lives of this run (before a resume).
    wall_offset: f64,
    pub last_stats: UpdateStats,
    /// What the next write of training scalars to the TensorBoard files averages.
    window: TrainingWindow,
    /// The `--video-every` video being rendered.
    videos: VideoRecorder,
    /// `Some(seed)` in a seed group (`train --seeds`): this trainer's series carry `seed="N"`.
    metrics_seed: Option<u64>,
}

impl Trainer {
    /// Builds the trainer of a run: libtorch seeded, networks, replay buffer and rate limiter.
    pub fn build(cfg: &RunConfig, device: tch::Device) -> anyhow::Result<Trainer> {
        cfg.validate().map_err(anyhow::Error::msg)?;
        let spec = spikerl_envs::spec(&cfg.env_id)?;
        let seeds = Seeds::from_run(cfg.seed);
        let policy_config = cfg.policy_config(spec.obs_dim, spec.act_dim, max_action(&spec)?);
        policy_config.validate()?;
        let learner = Learner::seeded(cfg, policy_config, cfg.seed, device);
        let buffer = ReplayBuffer::new(cfg.replay_capacity, spec.obs_dim, spec.act_dim, seeds.replay);
        let limiter = RateLimiter::new(cfg.update_ratio, cfg.random_steps, cfg.ratio_tolerance);
        let replay = Arc::new(ReplayService::new(buffer, limiter));
        Ok(Trainer::new(cfg.clone(), spec, learner, replay))
    }

    pub fn new(cfg: RunConfig, spec: EnvSpec, learner: Learner, replay: Arc<ReplayService>) -> Trainer {
        Trainer {
            cfg,
            spec,
            learner,
            replay,
            scratch: Vec::new(),
            next_eval: 0,
            evals: Vec::new(),
            started: Instant::now(),
            wall_offset: 0.0,
            last_stats: UpdateStats::default(),
            window: TrainingWindow::default(),
            videos: VideoRecorder::default(),
            metrics_seed: None,
        }
    }

    /// Labels every series this trainer records with its seed (`spikerl_metrics::seed_label`): one of a
    /// seed group's learners in one process.
    pub fn label_metrics_with_seed(&mut self) {
        self.metrics_seed = Some(self.cfg.seed);
    }

    /// The seed scope this trainer's metrics are recorded in (none outside a seed group).
    pub fn seed_scope(&self) -> SeedScope {
        SeedScope::enter(self.metrics_seed)
    }

    /// The seed of the evaluation environment's first reset (`Seeds::eval_env`: the run seed + 100).
    fn eval_seed(&self) -> u64 {
        Seeds::from_run(self.cfg.seed).eval_env
    }

    /// Env-step count at which the next evaluation is due.
    pub fn next_eval(&self) -> u64 {
        self.next_eval
    }

    /// Wall-clock seconds this run has trained, across resumes.
    pub fn wall_seconds(&self) -> f64 {
        self.wall_offset + self.started.elapsed().as_secs_f64()
    }

    /// Writes a complete checkpoint of this run into `dir` (see `storage::checkpoint`). `actor_names`
    /// gives the distributed learner's actor names by id; it is called under the replay lock, with the
    /// delivery ledger as of the snapshot, so the records and the buffer agree (lockstep: no actors).
    /// Returns the checkpoint's folder. Every checkpoint is timed and counted here (duration, last
    /// success, failures), whoever writes it.
    pub fn save_checkpoint(
        &self,
        run_id: &str,
        actor_names: impl FnOnce() -> BTreeMap<u32, String>,
        dir: &Path,
    ) -> anyhow::Result<PathBuf> {
        self.save(run_id, actor_names, None, dir)
    }

    /// Writes a lockstep run's checkpoint: the learner's state and the acting side's `lockstep`.
    pub fn save_lockstep_checkpoint(&self, lockstep: &LockstepState, dir: &Path) -> anyhow::Result<PathBuf> {
        self.save(LOCKSTEP_RUN_ID, BTreeMap::new, Some(lockstep), dir)
    }

    fn save(
        &self,
        run_id: &str,
        actor_names: impl FnOnce() -> BTreeMap<u32, String>,
        lockstep: Option<&LockstepState>,
        dir: &Path,
    ) -> anyhow::Result<PathBuf> {
        let started = Instant::now();
        let saved = self.write(run_id, actor_names, lockstep, dir);
        let _seed = self.seed_scope();
        match &saved {
            Ok(_) => {
                metrics::histogram!(learner::CHECKPOINT_DURATION_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
                metrics::gauge!(learner::CHECKPOINT_LAST_SUCCESS_TIMESTAMP_SECONDS).set(now);
            }
            Err(_) => metrics::counter!(learner::CHECKPOINT_FAILURES_TOTAL).increment(1),
        }
        saved
    }

    fn write(
        &self,
        run_id: &str,
        actor_names: impl FnOnce() -> BTreeMap<u32, String>,
        lockstep: Option<&LockstepState>,
        dir: &Path,
    ) -> anyhow::Result<PathBuf> {
        let (replay, limiter, actors) = {
            let guard = self.replay.lock();
            let actors = actor_records(&actor_names(), &guard.delivered);
            (ReplaySnapshot::of(&guard.buffer), guard.limiter.clone(), actors)
        };
        let snapshot = Snapshot {
            cfg: &self.cfg,
            obs_dim: self.spec.obs_dim,
            act_dim: self.spec.act_dim,
            learner: &self.learner,
            replay,
            limiter,
            next_eval: self.next_eval,
            evals: &self.evals,
            lockstep,
            wall_seconds: self.wall_seconds(),
        };
        checkpoint::save(&snapshot, run_id, actors, dir)
    }

    /// Continues a checkpointed run in this freshly built trainer of the same configuration: networks,
    /// optimisers, replay, limiter, delivery ledger, random streams and schedule. Returns the actors'
    /// records (names, ids and their ledger).
    pub fn restore(&mut self, loaded: &Loaded) -> anyhow::Result<Vec<ActorRecord>> {
        let (od, ad, capacity) = (self.spec.obs_dim, self.spec.act_dim, self.cfg.replay_capacity);
        let restored = loaded.restore_into(&mut self.learner, od, ad, capacity)?;
        {
            let mut guard = self.replay.lock();
            guard.buffer = restored.buffer;
            guard.limiter = restored.limiter;
            guard.delivered = restored
                .actors
                .iter()
                .map(|a| (a.id, Delivered { last_sequence: a.last_sequence, inserted: a.inserted }))
                .collect();
        }
        self.restore_schedule(restored.next_eval, restored.evals, restored.wall_seconds);
        Ok(restored.actors)
    }

    /// Publishes the run's info series and initialises the series dashboards read, with this trainer's
    /// counters and evaluation history (restored ones after a resume). `mode`: "distributed" or "sync".
    pub fn announce(&self, run_id: &str, mode: &'static str, checkpoint_interval: Option<Duration>) {
        let _seed = self.seed_scope();
        telemetry::run_started(&self.cfg, self.learner.policy_config(), run_id, mode, checkpoint_interval);
        let c = self.replay.counters();
        metrics::counter!(learner::TRAIN_ITERATIONS_TOTAL).absolute(self.learner.iterations());
        if mode == "sync" {
            // One process steps and stores: the run's total (continues across resumes). A distributed
            // learner counts per actor instead (`actor` label, from registration).
            metrics::counter!(learner::TRANSITIONS_INSERTED_TOTAL).absolute(c.inserted);
        }
        metrics::gauge!(learner::REPLAY_SIZE).set(c.replay_size as f64);
        metrics::gauge!(learner::POLICY_VERSION).set(self.learner.actor_updates() as f64);
        // Exported from the start at 0, so that `increase()` (the alert rule) sees the first failure too.
        metrics::counter!(learner::CHECKPOINT_FAILURES_TOTAL).increment(0);
        // Empty until the first checkpoint (`--checkpoint-secs`, 5 min by default).
        let _ = metrics::histogram!(learner::CHECKPOINT_DURATION_SECONDS);
        if let (Some(first), Some(last)) = (self.evals.first(), self.evals.last()) {
            metrics::gauge!(eval::RETURN_INITIAL).set(first.mean());
            metrics::gauge!(eval::RETURN_LAST).set(last.mean());
            metrics::gauge!(eval::RETURN_BEST).set(self.best_return().unwrap_or(last.mean()));
        }
    }

    /// Continues a checkpointed run's evaluation schedule and history.
    pub fn restore_schedule(&mut self, next_eval: u64, evals: Vec<EvalRecord>, wall_seconds: f64) {
        self.next_eval = next_eval;
        self.evals = evals;
        self.wall_offset = wall_seconds;
        self.started = Instant::now();
    }

    /// Whether the run has done all its training iterations.
    pub fn done(&self) -> bool {
        self.learner.iterations() >= self.cfg.steps
    }

    /// One training iteration, once the rate limiter allows it. None when the replay service closed.
    pub fn iterate(&mut self) -> Option<&UpdateStats> {
        let mut batches = self.draw()?.into_iter();
        let started = Instant::now();
        let stats = self.learner.update(|| batches.next().expect("one sampled minibatch per draw"));
        self.record(stats, started.elapsed());
        Some(&self.last_stats)
    }

    /// Waits until the rate limiter allows an iteration, then draws its minibatches (K for the proxy
    /// steps, then one) as tensors on the learner's device. None when the replay service closed.
    pub fn draw(&mut self) -> Option<Vec<Batch>> {
        let batches = 1 + if self.learner.has_proxy() { self.cfg.proxy.steps } else { 0 };
        let waiting = Instant::now();
        if !self.replay.wait_and_sample(batches, self.cfg.td3.batch_size, &mut self.scratch) {
            return None;
        }
        let _seed = self.seed_scope();
        metrics::histogram!(learner::SAMPLE_WAIT_SECONDS).record(waiting.elapsed().as_secs_f64());
        let (od, ad, device) = (self.spec.obs_dim, self.spec.act_dim, self.learner.device());
        Some(self.scratch.iter().map(|t| Batch::from_transitions(t, od, ad, device)).collect())
    }

    /// Books an iteration on minibatches from [`Trainer::draw`]: the rate limiter's count, the latest
    /// statistics and the metrics.
    pub fn record(&mut self, stats: UpdateStats, took: std::time::Duration) {
        self.window.add(&stats, took);
        self.last_stats = stats;
        self.replay.record_update();
        let _seed = self.seed_scope();
        metrics::histogram!(learner::UPDATE_DURATION_SECONDS).record(took.as_secs_f64());
        record_update_metrics(&self.last_stats);
    }

    /// Writes the training scalars (means since the last write) to the run folder's TensorBoard files at
    /// env step `env_steps`, once [`TRAINING_SCALARS_EVERY`] iterations have gathered.
    pub fn write_training_scalars_if_due(&mut self, env_steps: u64, run_folder: &mut RunFolder) {
        if self.window.iterations >= TRAINING_SCALARS_EVERY {
            run_folder.write_scalars(env_steps, &self.window.take());
        }
    }

    /// Runs the evaluations due at `env_steps` (every `eval_every` steps, starting at 0).
    pub fn evaluate_if_due(
        &mut self,
        env_steps: u64,
        run_folder: Option<&mut RunFolder>,
    ) -> anyhow::Result<Option<f64>> {
        if self.cfg.eval_every == 0 || env_steps < self.next_eval {
            return Ok(None);
        }
        self.next_eval = (env_steps / self.cfg.eval_every + 1) * self.cfg.eval_every;
        self.evaluate(env_steps, run_folder).map(Some)
    }

    /// Evaluates the current policy: `eval_episodes` deterministic episodes (no exploration noise) on an
    /// environment seeded with seed + 100, in plain-Rust inference as the actors act, counting each
    /// spiking neuron's spikes (dead and saturated neurons). With a run folder, also writes the training
    /// scalars gathered since their last write.
    pub fn evaluate(&mut self, env_steps: u64, run_folder: Option<&mut RunFolder>) -> anyhow::Result<f64> {
        let _seed = self.seed_scope();
        let mut policy = Policy::new(self.learner.policy_config(), &self.learner.export_policy())?;
        policy.count_neuron_spikes();
        let returns = evaluate_policy(&mut policy, &self.spec.id, self.cfg.eval_episodes, self.eval_seed())?;
        let stats = policy.stats();
        let layers = layer_activity(stats, policy.neuron_spikes().unwrap_or_default());
        let record = EvalRecord {
            step: env_steps,
            iterations: self.learner.iterations(),
            policy_version: self.learner.actor_updates(),
            returns,
            wall_seconds: self.wall_seconds(),
            sops_per_inference: stats.sops_per_inference(),
            firing_rate: stats.firing_rate(),
            energy_nj_per_inference: stats.energy_nj_per_inference(),
            encoder_firing_rate: (stats.encoder_neurons > 0).then(|| stats.encoder_firing_rate()),
            layers,
        };
        let mean = record.mean();
        metrics::gauge!(eval::RETURN_LAST).set(mean);
        let best = self.evals.iter().map(EvalRecord::mean).fold(mean, f64::max);
        metrics::gauge!(eval::RETURN_BEST).set(best);
        metrics::gauge!(snn::FIRING_RATE).set(record.firing_rate);
        metrics::gauge!(snn::SOPS_PER_INFERENCE).set(record.sops_per_inference);
        metrics::gauge!(snn::ENERGY_NANOJOULES_PER_INFERENCE).set(record.energy_nj_per_inference);
        crate::training::telemetry::record_evaluation(
            self.evals.first().map_or(mean, EvalRecord::mean),
            self.learner.policy_config(),
            stats,
            &record.layers,
        );
        if let Some(dir) = run_folder {
            // A full disk must not end hours of training: the record stays in `self.evals` (and so in
            // checkpoints), and the buffered row is written at the next flush that succeeds.
            if let Err(e) = dir.append_eval(&record) {
                metrics::counter!(learner::EVAL_WRITE_FAILURES_TOTAL).increment(1);
                tracing::error!(error = %e, step = env_steps, "could not append the evaluation to evals.csv; training goes on");
            }
            if self.window.iterations > 0 {
                dir.write_scalars(env_steps, &self.window.take());
            }
            if video::due(self.cfg.video_every, self.evals.last().map(|e| e.step), env_steps) {
                self.videos.record(
                    dir.path(),
                    env_steps,
                    &self.spec.id,
                    self.eval_seed(),
                    self.learner.policy_config(),
                    self.learner.export_policy(),
                );
            }
        }
        self.evals.push(record);
        Ok(mean)
    }

    /// Current weights of the acting policy.
    pub fn policy_weights(&self) -> NamedTensors {
        self.learner.export_policy()
    }

    /// Best evaluation mean so far (the paper's "max average return").
    pub fn best_return(&self) -> Option<f64> {
        self.evals.iter().map(EvalRecord::mean).reduce(f64::max)
    }
}

/// Each spiking layer's firing rate (as `spikerl_snn_layer_firing_rate` has it), dead and saturated
/// neurons, from an evaluation's counters and its per-neuron spike counts `spikes[layer][neuron]`.
fn layer_activity(stats: &spikerl_snn::InferenceStats, spikes: &[Vec<u64>]) -> Vec<LayerActivity> {
    // A saturated neuron fired in every slot: every time step of every inference.
    let slots = stats.timesteps as u64 * stats.inferences;
    let layers = stats.spikes_per_layer.iter().zip(&stats.neurons_per_layer);
    layers
        .enumerate()
        .map(|(i, (&fired, &neurons))| {
            let counts = spikes.get(i).map_or(&[][..], Vec::as_slice);
            let all = slots as f64 * neurons as f64;
            LayerActivity {
                firing_rate: if all > 0.0 { fired as f64 / all } else { 0.0 },
                dead: counts.iter().filter(|&&c| c == 0).count() as u64,
                saturated: counts.iter().filter(|&&c| slots > 0 && c == slots).count() as u64,
            }
        })
        .collect()
}

/// Runs `episodes` deterministic episodes of `policy` and returns their returns.
pub fn evaluate_policy(
    policy: &mut Policy,
    env_id: &str,
    episodes: usize,
    seed: u64,
) -> anyhow::Result<Vec<f64>> {
    let mut obs32 = Vec::new();
    let returns = spikerl_envs::evaluate(env_id, episodes, seed, |obs, action| {
        obs32.clear();
        obs32.extend(obs.iter().map(|&x| x as f32));
        policy.act(&obs32, action);
    })?;
    Ok(returns)
}

fn record_update_metrics(s: &UpdateStats) {
    metrics::counter!(learner::TRAIN_ITERATIONS_TOTAL).increment(1);
    metrics::gauge!(learner::CRITIC_LOSS).set(s.critic_loss);
    metrics::gauge!(learner::Q_MEAN).set(s.q_mean);
    metrics::gauge!(learner::TD_TARGET_MEAN).set(s.target_mean);
    if let Some(l) = s.actor_loss {
        metrics::gauge!(learner::ACTOR_LOSS).set(l);
    }
    if let Some(l) = s.proxy_loss {
        metrics::gauge!(learner::PROXY_LOSS).set(l);
    }
    if let Some(a) = s.alpha {
        metrics::gauge!(learner::SAC_ALPHA).set(a);
    }
}

/// Every known actor (`names`) with what has been stored from it (`delivered`; nothing yet for an actor
/// registered but never heard from), ordered by id.
fn actor_records(names: &BTreeMap<u32, String>, delivered: &BTreeMap<u32, Delivered>) -> Vec<ActorRecord> {
    names
        .iter()
        .map(|(&id, name)| {
            let d = delivered.get(&id).copied().unwrap_or_default();
            ActorRecord { name: name.clone(), id, last_sequence: d.last_sequence, inserted: d.inserted }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::checkpoint;
    use crate::training::replay_service::{Origin, Stored};
    use spikerl_algo::Algo;
    use spikerl_snn::NeuronKind;

    fn rows(n: usize, act_dim: usize, obs_dim: usize) -> Transitions {
        let mut t = Transitions::default();
        for i in 0..n {
            let x = i as f32 * 0.1;
            t.push(&vec![x; obs_dim], &vec![x; act_dim], x, &vec![x; obs_dim], false);
        }
        t
    }

    /// A checkpoint carries each actor's ledger (last sequence, transitions stored); the restored learner
    /// treats the resend of a stored batch as a duplicate and continues the count.
    #[test]
    fn the_delivery_ledger_survives_a_checkpoint() {
        tch::set_num_threads(1);
        let mut cfg = RunConfig::paper("Pendulum-v1", Algo::Ann, NeuronKind::Lif, 0);
        cfg.ann_hidden = vec![8];
        cfg.td3.critic_hidden = vec![8];
        let trainer = Trainer::build(&cfg, tch::Device::Cpu).unwrap();
        let (od, ad) = (trainer.spec.obs_dim, trainer.spec.act_dim);
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let insert = |t: &Trainer, actor_id, sequence, n| {
            rt.block_on(t.replay.insert_from(&rows(n, ad, od), Origin { actor_id, sequence })).unwrap()
        };
        assert_eq!(insert(&trainer, 0, 1, 10), Stored::New(10));
        assert_eq!(insert(&trainer, 0, 2, 5), Stored::New(15));
        assert_eq!(insert(&trainer, 2, 1, 7), Stored::New(22));
        let dir = std::env::temp_dir().join(format!("spikerl-ledger-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Actor 1 registered but sent nothing; it keeps its id all the same.
        let names = || BTreeMap::from([(0, "a".to_string()), (1, "b".to_string()), (2, "c".to_string())]);
        trainer.save_checkpoint("run", names, &dir).unwrap();

        let mut fresh = Trainer::build(&cfg, tch::Device::Cpu).unwrap();
        let records = fresh.restore(&checkpoint::load_latest(&dir).unwrap()).unwrap();
        let r = |name: &str, id, last_sequence, inserted| ActorRecord {
            name: name.into(),
            id,
            last_sequence,
            inserted,
        };
        assert_eq!(records, [r("a", 0, 2, 15), r("b", 1, 0, 0), r("c", 2, 1, 7)]);
        assert_eq!(insert(&fresh, 0, 2, 5), Stored::Duplicate(22), "a resend after the restart");
        assert_eq!(insert(&fresh, 0, 3, 4), Stored::New(26));
        assert_eq!(fresh.replay.delivered(0), Delivered { last_sequence: 3, inserted: 19 });
        assert_eq!(fresh.replay.lock().buffer.len(), 26);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
