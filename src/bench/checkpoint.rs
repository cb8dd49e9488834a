//! `spikerl bench checkpoint`: what lockstep checkpoints cost at paper scale. A trainer of the given
//! configuration gets a replay buffer filled to `--replay` transitions (1M: the paper's buffer, full)
//! and an episode of 1,000 recorded actions, as `train --sync` would checkpoint them; it is checkpointed
//! `--repeats` times into a folder (size per file, seconds per checkpoint), then trains for `--seconds`
//! without checkpoints and for `--seconds` with one every `--every-secs`, on minibatches sampled from
//! that buffer as the trainer samples them. A lockstep checkpoint is written on the training thread, so
//! its cost at the default cadence (`--checkpoint-secs 300`, or the 10 minutes) is its time
//! over the interval; both the measured slowdown and that projection are printed.

use crate::bench::measure;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use spikerl_algo::config::RunConfig;
use spikerl_algo::replay::Transitions;
use spikerl_algo::td3::Batch;
use spikerl_learner::storage::checkpoint::{LockstepState, RngState};
use spikerl_learner::training::trainer::Trainer;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
pub struct CheckpointReport {
    env: String,
    algo: String,
    neuron: String,
    replay_transitions: usize,
    /// Bytes on disk of one checkpoint, per file, and in all.
    files: Vec<(String, u64)>,
    checkpoint_bytes: u64,
    /// Seconds per checkpoint (every repeat, in order), and their median.
    checkpoint_seconds: Vec<f64>,
    checkpoint_seconds_median: f64,
    /// Training iterations/s without checkpoints, and with one every `every_seconds`.
    iterations_per_second: f64,
    iterations_per_second_with_checkpoints: f64,
    every_seconds: f64,
    checkpoints_during_training: usize,
    /// 1 - (with / without), in percent: measured at `every_seconds`.
    measured_slowdown_percent: f64,
    /// The median checkpoint's time over 300 s and over 600 s, in percent.
    projected_slowdown_percent_every_5_min: f64,
    projected_slowdown_percent_every_10_min: f64,
    load_before: Option<f64>,
    load_after: Option<f64>,
}

pub struct CheckpointOptions {
    pub cfg: RunConfig,
    pub replay: usize,
    pub repeats: usize,
    pub seconds: f64,
    pub every_seconds: f64,
    pub dir: Option<PathBuf>,
}

pub fn checkpoint(opts: CheckpointOptions) -> anyhow::Result<CheckpointReport> {
    let (dir, temporary) = match &opts.dir {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("spikerl-bench-checkpoint-{}", std::process::id())), true),
    };
    std::fs::create_dir_all(&dir)?;
    let result = measure_checkpoints(&opts, &dir);
    if temporary {
        // Best effort: a leftover temporary folder is only disk space.
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn measure_checkpoints(opts: &CheckpointOptions, dir: &Path) -> anyhow::Result<CheckpointReport> {
    let load_before = measure::load_average();
    let mut cfg = opts.cfg.clone();
    cfg.replay_capacity = opts.replay.max(cfg.td3.batch_size);
    let mut trainer = Trainer::build(&cfg, tch::Device::Cpu)?;
    let (od, ad) = (trainer.spec.obs_dim, trainer.spec.act_dim);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    fill_replay(&trainer, opts.replay, &mut rng);
    let lockstep = LockstepState {
        env_steps: opts.replay as u64,
        exploration_rng: RngState::of(&rng),
        episode_seed: None,
        episode_rng: Some(RngState::of(&rng)),
        episode_actions: (0..1000 * ad).map(|_| rng.random_range(-1.0f32..1.0).to_bits()).collect(),
        observation: vec![0f64.to_bits(); od],
        episode_return: 0f64.to_bits(),
        episode_length: 1000,
        episodes: opts.replay as u64 / 1000,
    };
    let checkpoints = dir.join("checkpoints");
    let mut checkpoint_seconds = Vec::new();
    let mut last = None;
    for _ in 0..opts.repeats {
        let started = Instant::now();
        last = Some(trainer.save_lockstep_checkpoint(&lockstep, &checkpoints)?);
        checkpoint_seconds.push(started.elapsed().as_secs_f64());
    }
    let last = last.expect("at least one repeat");
    let mut files: Vec<(String, u64)> = std::fs::read_dir(&last)?
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().map_or(0, |m| m.len())))
        .collect();
    files.sort();
    let checkpoint_bytes = files.iter().map(|(_, b)| b).sum();

    let seconds = Duration::from_secs_f64(opts.seconds);
    let (without, _) = train_for(&mut trainer, seconds, None, &lockstep, &checkpoints)?;
    let every = Duration::from_secs_f64(opts.every_seconds);
    let (with, written) = train_for(&mut trainer, seconds, Some(every), &lockstep, &checkpoints)?;
    let median = measure::percentile_ms(&measure::sorted(checkpoint_seconds.clone()), 50.0) / 1e3;
    Ok(CheckpointReport {
        env: cfg.env_id.clone(),
        algo: cfg.algo.to_string(),
        neuron: cfg.snn.neuron.to_string(),
        replay_transitions: opts.replay,
        files,
        checkpoint_bytes,
        checkpoint_seconds,
        checkpoint_seconds_median: median,
        iterations_per_second: without,
        iterations_per_second_with_checkpoints: with,
        every_seconds: opts.every_seconds,
        checkpoints_during_training: written,
        measured_slowdown_percent: 100.0 * (1.0 - with / without),
        projected_slowdown_percent_every_5_min: 100.0 * median / (300.0 + median),
        projected_slowdown_percent_every_10_min: 100.0 * median / (600.0 + median),
        load_before,
        load_after: measure::load_average(),
    })
}

/// Fills the trainer's replay buffer with `n` transitions of the usual ranges (observations in ±2,
/// actions and rewards in ±1, one in a thousand terminal), in chunks.
fn fill_replay(trainer: &Trainer, n: usize, rng: &mut ChaCha8Rng) {
    let (od, ad) = (trainer.spec.obs_dim, trainer.spec.act_dim);
    let chunk = 10_000;
    let mut t = Transitions::with_capacity(chunk, od, ad);
    let mut guard = trainer.replay.lock();
    let mut left = n;
    while left > 0 {
        t.clear();
        for _ in 0..left.min(chunk) {
            let mut v = |len: usize, scale: f32| -> Vec<f32> {
                (0..len).map(|_| rng.random_range(-scale..scale)).collect()
            };
            let (obs, action, next) = (v(od, 2.0), v(ad, 1.0), v(od, 2.0));
            t.push(&obs, &action, rng.random_range(-1.0..1.0), &next, rng.random_range(0..1000) == 0);
        }
        guard.buffer.insert(&t);
        left -= left.min(chunk);
    }
}

/// Trains for `seconds` on minibatches sampled from the replay buffer (as `Trainer::draw` samples, minus
/// the rate limiter), checkpointing every `every` if given, on this thread as lockstep runs do. Returns
/// the iterations/s and the checkpoints written.
fn train_for(
    trainer: &mut Trainer,
    seconds: Duration,
    every: Option<Duration>,
    lockstep: &LockstepState,
    checkpoints: &Path,
) -> anyhow::Result<(f64, usize)> {
    let (od, ad, bs) = (trainer.spec.obs_dim, trainer.spec.act_dim, trainer.cfg.td3.batch_size);
    let draws = 1 + if trainer.learner.has_proxy() { trainer.cfg.proxy.steps } else { 0 };
    let mut scratch = Transitions::with_capacity(bs, od, ad);
    let (started, mut last_checkpoint) = (Instant::now(), Instant::now());
    let (mut iterations, mut written) = (0u64, 0);
    while started.elapsed() < seconds {
        if every.is_some_and(|e| last_checkpoint.elapsed() >= e) {
            trainer.save_lockstep_checkpoint(lockstep, checkpoints)?;
            (last_checkpoint, written) = (Instant::now(), written + 1);
        }
        let batches: Vec<Batch> = {
            let mut guard = trainer.replay.lock();
            (0..draws)
                .map(|_| {
                    guard.buffer.sample_into(bs, &mut scratch);
                    Batch::from_transitions(&scratch, od, ad, tch::Device::Cpu)
                })
                .collect()
        };
        let mut batches = batches.into_iter();
        trainer.learner.update(|| batches.next().expect("one minibatch per draw"));
        iterations += 1;
    }
    Ok((iterations as f64 / started.elapsed().as_secs_f64(), written))
}

pub fn print(r: &CheckpointReport) {
    println!(
        "checkpoint of {} {} {} with {} replay transitions: {:.1} MB",
        r.env,
        r.algo,
        r.neuron,
        r.replay_transitions,
        r.checkpoint_bytes as f64 / 1e6
    );
    for (name, bytes) in &r.files {
        println!("  {name:<20} {:>10.1} MB", *bytes as f64 / 1e6);
    }
    let secs: Vec<String> = r.checkpoint_seconds.iter().map(|s| format!("{s:.2}")).collect();
    println!("seconds per checkpoint: {} (median {:.2})", secs.join(", "), r.checkpoint_seconds_median);
    println!(
        "training: {:.1} it/s without checkpoints, {:.1} it/s with one every {:.0} s ({} written): {:.2}% slower",
        r.iterations_per_second,
        r.iterations_per_second_with_checkpoints,
        r.every_seconds,
        r.checkpoints_during_training,
        r.measured_slowdown_percent
    );
    println!(
        "projected slowdown: {:.2}% with a checkpoint every 5 min, {:.2}% every 10 min",
        r.projected_slowdown_percent_every_5_min, r.projected_slowdown_percent_every_10_min
    );
    println!("load average before/after: {:?} / {:?}", r.load_before, r.load_after);
}
