//! `spikerl train` (a whole run on this machine) and `spikerl learner` (the learner role).

use crate::cli::{
    AlgoArg, BaseArg, DeviceArg, ImitationArg, LearnerArgs, NeuronArg, RunArgs, SeedBatchingArg, TrainArgs,
};
use crate::{Incomplete, UsageError, install_metrics, shutdown_signal};
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use spikerl_algo::SeedBatching;
use spikerl_algo::{Algo, Base, Imitation, ProxyConfig, RunConfig};
use spikerl_learner::service::runtime::{self, LearnerOptions, ProgressHandle};
use spikerl_learner::service::security::TlsFiles;
use spikerl_learner::storage::checkpoint::{self, Loaded};
use spikerl_learner::storage::run_folder::{Manifest, RunFolder, SeedGroupInfo};
use spikerl_learner::training::lockstep::{self, LockstepOptions, Progress};
use spikerl_learner::training::trainer::Trainer;
use spikerl_snn::NeuronKind;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) fn base_of(b: BaseArg) -> Base {
    match b {
        BaseArg::Td3 => Base::Td3,
        BaseArg::Sac => Base::Sac,
        BaseArg::Ddpg => Base::Ddpg,
    }
}

pub(crate) fn algo_of(a: AlgoArg) -> Algo {
    match a {
        AlgoArg::Ann => Algo::Ann,
        AlgoArg::Vanilla => Algo::Vanilla,
        AlgoArg::Proxy => Algo::Proxy,
    }
}

pub(crate) fn neuron_of(n: NeuronArg) -> NeuronKind {
    match n {
        NeuronArg::Lif => NeuronKind::Lif,
        NeuronArg::Clif => NeuronKind::Clif,
        NeuronArg::Dn => NeuronKind::Dn,
        NeuronArg::Plif => NeuronKind::Plif,
        NeuronArg::If => NeuronKind::If,
    }
}

/// Resolves the command line into a validated run configuration.
pub fn run_config(a: &RunArgs) -> anyhow::Result<RunConfig> {
    let (algo, neuron) = (algo_of(a.algo), neuron_of(a.neuron));
    spikerl_envs::spec(&a.env)?; // unknown ids fail here, listing the known ones
    let mut cfg = RunConfig::paper(&a.env, algo, neuron, a.seed).with_base(base_of(a.base));
    cfg.sac.imitation = match a.proxy_imitation {
        ImitationArg::Mse => Imitation::Mse,
        ImitationArg::Kl => Imitation::Kl,
    };
    cfg.steps = a.steps;
    cfg.random_steps = a.random_steps;
    cfg.eval_every = a.eval_every;
    cfg.eval_episodes = a.eval_episodes;
    cfg.video_every = a.video_every;
    cfg.td3.batch_size = a.batch_size;
    cfg.replay_capacity = a.replay_capacity;
    cfg.update_ratio = a.update_ratio;
    let paper_proxy = ProxyConfig::paper(neuron, &a.env);
    cfg.proxy.steps = a.proxy_steps.unwrap_or(paper_proxy.steps);
    cfg.proxy.lr = a.proxy_lr.unwrap_or(paper_proxy.lr);
    if let Some(h) = &a.snn_hidden {
        cfg.snn.hidden = h.clone();
    }
    if let Some(t) = a.timesteps {
        cfg.snn.timesteps = t;
    }
    cfg.validate().map_err(UsageError)?;
    if cfg.video_every > 0 {
        // Fail now rather than log a failed video every N steps of a long run.
        spikerl_envs::render::Renderer::new(&cfg.env_id, Default::default())
            .map_err(|e| anyhow::anyhow!("--video-every: cannot render {}: {e}", cfg.env_id))?;
    }
    Ok(cfg)
}

pub(crate) fn device(d: DeviceArg) -> anyhow::Result<tch::Device> {
    match d {
        DeviceArg::Cpu => Ok(tch::Device::Cpu),
        DeviceArg::Cuda if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
        DeviceArg::Cuda => Err(UsageError(
            "--device cuda: no CUDA device visible to libtorch (install the CUDA libtorch with scripts/setup_native.py --cuda)".into(),
        )
        .into()),
    }
}

fn set_threads(requested: Option<usize>, actor_cores: usize) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    // libtorch's OpenMP threads spin while waiting: never give it cores that actors use.
    let threads = requested.unwrap_or_else(|| cores.saturating_sub(actor_cores).max(1));
    tch::set_num_threads(threads as i32);
    tch::set_num_interop_threads(1);
}

fn manifest(cfg: &RunConfig, run_id: &str, mode: &str, actors: usize) -> anyhow::Result<Manifest> {
    Ok(Manifest::starting(cfg, run_id, mode, actors, env!("SPIKERL_GIT_COMMIT"))?)
}

fn run_id_for(dir: &Path) -> String {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    format!("{name}-{}", std::process::id())
}

fn progress_bar(enabled: bool, total: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} env steps ({per_sec}, ETA {eta}) {msg}",
        )
        .expect("valid template"),
    );
    bar
}

fn show(bar: &ProgressBar, p: &Progress) {
    bar.set_position(p.env_steps);
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    bar.set_message(format!("it {} | eval {} (best {})", p.iterations, fmt(p.last_eval), fmt(p.best_eval)));
}

fn summary(trainer: &Trainer, out: &Path, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    let first = trainer.evals.first().map(|e| e.mean());
    let last = trainer.evals.last().map(|e| e.mean());
    println!(
        "run finished in {secs:.1} s: {} training iterations ({:.1} it/s)",
        trainer.learner.iterations(),
        trainer.learner.iterations() as f64 / secs
    );
    if let (Some(first), Some(last)) = (first, last) {
        println!(
            "evaluation return: initial {first:.1}, final {last:.1}, best {:.1} ({} evaluations)",
            trainer.best_return().unwrap_or(last),
            trainer.evals.len()
        );
    }
    let videos = if trainer.cfg.video_every > 0 { ", videos/" } else { "" };
    println!(
        "run folder: {} (manifest.json, evals.csv, evals.png/.svg, tb/{videos}, checkpoints/)",
        out.display()
    );
}

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let cfg = run_config(&args.run)?;
    let device = device(args.run.device)?;
    if !args.sync && args.actors == 0 {
        return Err(UsageError("--actors must be at least 1 (or use --sync)".into()).into());
    }
    if !args.sync && (args.envs == 0 || args.env_threads == 0) {
        return Err(UsageError("--envs and --env-threads must be positive".into()).into());
    }
    let run_id = run_id_for(&args.out);
    let started = Instant::now();
    if let Some(seeds) = &args.seeds {
        if !args.sync {
            return Err(UsageError(
                "--seeds trains the seeds in one process with the lockstep protocol: add --sync".into(),
            )
            .into());
        }
        let batching = match args.seed_batching {
            SeedBatchingArg::Auto if device.is_cuda() => SeedBatching::Stacked,
            SeedBatchingArg::Auto => SeedBatching::Separate,
            SeedBatchingArg::Stacked => SeedBatching::Stacked,
            SeedBatchingArg::Separate => SeedBatching::Separate,
        };
        return train_seeds(&args, &cfg, &seeds.0, batching, device, started);
    }
    if args.sync {
        set_threads(args.run.threads, 0);
        let resume = match args.resume {
            true => Some(vec![load_checkpoint(&args.out)?]),
            false => None,
        };
        // On --resume the checkpoint's configuration wins; the run options are still parsed and checked.
        let cfg = resume.as_ref().map_or(cfg, |l| l[0].state.config.clone());
        let mut m = manifest(&cfg, &run_id, "sync", 1)?;
        m.resumed_from = resume.as_ref().map(|l| l[0].path.display().to_string());
        let mut dir = RunFolder::create(&args.out, m)?;
        let opts = LockstepOptions { resume, checkpoint_interval: checkpoint_interval(args.checkpoint_secs) };
        let (result, status) = in_foreground(&args, cfg.random_steps + cfg.steps, &[], |stop, progress| {
            lockstep::run(&cfg, device, &mut dir, opts, stop, progress)
        })?;
        dir.finish(status, result.as_ref().err().map(|e| format!("{e:#}")))?;
        summary(&result?, &args.out, started);
        return incomplete_if(status == "interrupted", &args.out);
    }

    // A local cluster: the learner in this process, actors as child processes on loopback.
    // Each actor keeps up to --env-threads cores busy; the learner gets the rest (at least one).
    set_threads(args.run.threads, args.actors.saturating_mul(args.env_threads));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        if let Some(addr) = args.metrics {
            install_metrics(addr, "learner")?;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
        let exe = std::env::current_exe()?;
        let mut children = Vec::new();
        for i in 0..args.actors {
            let log = std::fs::File::create(args.out.join(format!("actor-{i}.log")))?;
            let child = tokio::process::Command::new(&exe)
                .args([
                    "actor",
                    "--learner",
                    &format!("http://{addr}"),
                    "--name",
                    &format!("{run_id}-actor-{i}"),
                ])
                .args([
                    "--envs",
                    &args.envs.to_string(),
                    "--env-threads",
                    &args.env_threads.to_string(),
                    "--log",
                    "info",
                ])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .context("starting an actor process")?;
            children.push(child);
        }
        let progress: ProgressHandle = Arc::new(Mutex::new(Progress::default()));
        let bar = progress_bar(!args.no_progress, cfg.random_steps + cfg.steps);
        let ticker = {
            let (bar, progress) = (bar.clone(), progress.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let p = progress.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    show(&bar, &p);
                }
            })
        };
        let opts = LearnerOptions {
            cfg: cfg.clone(),
            run_id: run_id.clone(),
            run_folder: args.out.clone(),
            resume: args.resume,
            device,
            publish_interval: Duration::from_millis(100),
            checkpoint_interval: checkpoint_interval(args.checkpoint_secs),
            max_batch_transitions: 4096,
            max_message_bytes: 64 << 20,
            auth_token: None,
            tls: None,
        };
        let actors = args.actors;
        let describe = move |cfg: &RunConfig, id: &str| manifest(cfg, id, "distributed", actors);
        let result = runtime::run(opts, listener, describe, progress, stop_requested(args.stop_after)).await;
        ticker.abort();
        bar.finish_and_clear();
        for mut child in children {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        let trainer = result?;
        summary(&trainer, &args.out, started);
        incomplete_if(!trainer.done(), &args.out)
    })
}

/// Resolves on SIGINT or SIGTERM, or once `stop_after` (`--stop-after`) has passed.
async fn stop_requested(stop_after: Option<Duration>) {
    let deadline = async {
        match stop_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = deadline => tracing::info!("--stop-after reached: checkpointing and stopping"),
    }
}

/// The periodic checkpoint interval of `--checkpoint-secs` (none for 0).
fn checkpoint_interval(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// `train` stopped before its end (a signal, --stop-after): the run checkpointed and exits 75.
fn incomplete_if(stopped: bool, out: &Path) -> anyhow::Result<()> {
    match stopped {
        true => Err(Incomplete(format!(
            "stopped before the end; checkpointed in {}: continue with the same command and --resume",
            out.display()
        ))
        .into()),
        false => Ok(()),
    }
}

/// The newest valid checkpoint of the run folder `out`, for `--resume`.
fn load_checkpoint(out: &Path) -> anyhow::Result<Loaded> {
    checkpoint::load_latest(&out.join("checkpoints"))
        .with_context(|| format!("--resume: nothing to resume in {}", out.display()))
}

/// A seed group's checkpoints to resume from, one per seed folder: the newest checkpoint (named by env
/// step) that every seed has and that verifies. The seeds are checkpointed one after another, so a
/// process killed in between leaves the last seeds one checkpoint behind; the one before is kept.
fn load_group_checkpoints(folders: &[PathBuf]) -> anyhow::Result<Vec<Loaded>> {
    let names = |dir: &PathBuf| -> BTreeSet<PathBuf> {
        checkpoint::list(&dir.join("checkpoints"))
            .into_iter()
            .filter_map(|p| p.file_name().map(PathBuf::from))
            .collect()
    };
    let mut common = names(&folders[0]);
    for dir in &folders[1..] {
        common = common.intersection(&names(dir)).cloned().collect();
    }
    let mut problems = Vec::new();
    for name in common.iter().rev() {
        match folders.iter().map(|d| checkpoint::load(&d.join("checkpoints").join(name))).collect() {
            Ok(all) => return Ok(all),
            Err(e) => problems.push(format!("{}: {e:#}", name.display())),
        }
    }
    let dirs = folders.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
    match problems.is_empty() {
        true => bail!("--resume: no checkpoint that every seed has in {dirs}"),
        false => {
            bail!("--resume: no valid checkpoint that every seed has in {dirs}:\n  {}", problems.join("\n  "))
        }
    }
}

/// Runs lockstep training on this thread: `train(stop, progress)`, with a one-worker runtime that serves
/// the metrics endpoint (series labelled by seed for a seed group's `seeds`; none for a single run) and
/// turns SIGINT/SIGTERM into `stop`, and a progress bar over `total_steps`. Returns the result and the
/// status it gives the run folders.
fn in_foreground<T>(
    args: &TrainArgs,
    total_steps: u64,
    seeds: &[u64],
    train: impl FnOnce(&AtomicBool, &mut dyn FnMut(&Progress)) -> anyhow::Result<T>,
) -> anyhow::Result<(anyhow::Result<T>, &'static str)> {
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    if let Some(addr) = args.metrics {
        rt.block_on(async { crate::metrics::install_for_seeds(addr, "learner", seeds) })?;
    }
    let stop_on_signal = stop.clone();
    let stop_requested = stop_requested(args.stop_after);
    rt.spawn(async move {
        stop_requested.await;
        stop_on_signal.store(true, Ordering::SeqCst);
    });
    let bar = progress_bar(!args.no_progress, total_steps);
    let mut last_draw = Instant::now();
    let result = train(&stop, &mut |p| {
        if last_draw.elapsed() > Duration::from_millis(100) {
            show(&bar, p);
            last_draw = Instant::now();
        }
    });
    bar.finish_and_clear();
    let status = match (&result, stop.load(Ordering::SeqCst)) {
        (Err(_), _) => "failed",
        (Ok(_), true) => "interrupted",
        _ => "completed",
    };
    Ok((result, status))
}

/// `spikerl train --sync --seeds ...`: the seeds of one configuration in this process, each into its own
/// run folder OUT/seed{N}.
fn train_seeds(
    args: &TrainArgs,
    cfg: &RunConfig,
    seeds: &[u64],
    batching: SeedBatching,
    device: tch::Device,
    started: Instant,
) -> anyhow::Result<()> {
    set_threads(args.run.threads, 0);
    let folders: Vec<PathBuf> = seeds.iter().map(|seed| args.out.join(format!("seed{seed}"))).collect();
    let resume = if args.resume { Some(load_group_checkpoints(&folders)?) } else { None };
    // On --resume the checkpoints' configuration wins (the seeds' differ in their seed only).
    let cfg = resume.as_ref().map_or(cfg.clone(), |l| l[0].state.config.clone());
    let mut dirs = Vec::with_capacity(seeds.len());
    for (s, (&seed, out)) in seeds.iter().zip(&folders).enumerate() {
        let seed_cfg = RunConfig { seed, ..cfg.clone() };
        let mut m = manifest(&seed_cfg, &run_id_for(out), "sync", 1)?;
        m.seed_group = Some(SeedGroupInfo { seeds: seeds.to_vec(), batching });
        m.resumed_from = resume.as_ref().map(|l| l[s].path.display().to_string());
        dirs.push(RunFolder::create(out, m)?);
    }
    let opts = LockstepOptions { resume, checkpoint_interval: checkpoint_interval(args.checkpoint_secs) };
    let (result, status) = in_foreground(args, cfg.random_steps + cfg.steps, seeds, |stop, progress| {
        lockstep::run_seeds(&cfg, seeds, batching, device, &mut dirs, opts, stop, progress)
    })?;
    for dir in &mut dirs {
        dir.finish(status, result.as_ref().err().map(|e| format!("{e:#}")))?;
    }
    let trainers = result?;
    let secs = started.elapsed().as_secs_f64();
    let iterations = trainers.first().map_or(0, |t| t.learner.iterations());
    println!(
        "{} seeds ({batching}) finished in {secs:.1} s: {iterations} training iterations each ({:.1} seed-iterations/s)",
        seeds.len(),
        (iterations as usize * seeds.len()) as f64 / secs
    );
    for (seed, t) in seeds.iter().zip(&trainers) {
        if let (Some(first), Some(last)) = (t.evals.first(), t.evals.last()) {
            println!(
                "seed {seed}: evaluation return initial {:.1}, final {:.1}, best {:.1}",
                first.mean(),
                last.mean(),
                t.best_return().unwrap_or(last.mean())
            );
        }
    }
    let finals: Vec<f64> = trainers.iter().filter_map(|t| t.evals.last().map(|e| e.mean())).collect();
    if finals.len() > 1 {
        let mean = finals.iter().sum::<f64>() / finals.len() as f64;
        let sd = (finals.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / (finals.len() - 1) as f64).sqrt();
        println!("final return over the seeds: {mean:.1} +- {sd:.1} (sample standard deviation)");
    }
    println!(
        "run folders: {}/seed{{N}} (manifest.json, evals.csv, evals.png/.svg, checkpoints/)",
        args.out.display()
    );
    incomplete_if(status == "interrupted", &args.out)
}

pub fn learner(args: LearnerArgs) -> anyhow::Result<()> {
    // On --resume the checkpoint's configuration wins; the run options are still parsed and checked.
    let cfg = run_config(&args.run)?;
    let device = device(args.run.device)?;
    set_threads(args.run.threads, 0);
    let run_id = args.run_id.clone().unwrap_or_else(|| run_id_for(&args.run_folder));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        install_metrics(args.metrics, "learner")?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let opts = LearnerOptions {
            cfg,
            run_id,
            run_folder: args.run_folder.clone(),
            resume: args.resume,
            device,
            publish_interval: Duration::from_millis(100),
            checkpoint_interval: (args.checkpoint_secs > 0)
                .then(|| Duration::from_secs(args.checkpoint_secs)),
            max_batch_transitions: args.max_batch_transitions,
            max_message_bytes: args.max_message_bytes,
            auth_token: args.token.resolve()?,
            tls: args.tls_cert.clone().zip(args.tls_key.clone()).map(|(cert, key)| TlsFiles {
                cert,
                key,
                client_ca: args.tls_client_ca.clone(),
            }),
        };
        let started = Instant::now();
        let describe = |cfg: &RunConfig, id: &str| manifest(cfg, id, "distributed", 0);
        let trainer = runtime::run(opts, listener, describe, Arc::default(), shutdown_signal()).await?;
        summary(&trainer, &args.run_folder, started);
        Ok(())
    })
}
