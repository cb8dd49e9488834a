//! The distributed learner process: the gRPC service on the async runtime, training on a dedicated OS
//! thread, weights published through a `watch` channel (newest wins), run folder, periodic and final
//! checkpoints, and resume.

use crate::service::grpc_metrics;
use crate::service::security::{TlsFiles, TokenCheck};
use crate::service::server::{LearnerService, Registry, RunInfo, SharedRegistry};
use crate::storage::checkpoint::{self, ActorRecord};
use crate::storage::run_folder::{Manifest, RunFolder};
use crate::training::lockstep::Progress;
use crate::training::replay_service::ReplayService;
use crate::training::trainer::Trainer;
use anyhow::{Context, bail};
use spikerl_algo::config::RunConfig;
use spikerl_metrics::learner;
use spikerl_proto::PolicyUpdate;
use spikerl_proto::learner_server::LearnerServer;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How the learner process runs (the run's own settings are in `RunConfig`).
#[derive(Clone, Debug)]
pub struct LearnerOptions {
    /// The run's configuration; on resume the checkpoint's configuration is used instead.
    pub cfg: RunConfig,
    pub run_id: String,
    pub run_folder: PathBuf,
    /// Continue from the newest valid checkpoint in the run folder.
    pub resume: bool,
    pub device: tch::Device,
    /// Weights are published at most this often (the newest actor weights then).
    pub publish_interval: Duration,
    /// Periodic checkpoints (None: only at the end and on shutdown).
    pub checkpoint_interval: Option<Duration>,
    /// Largest transition batch accepted from an actor.
    pub max_batch_transitions: usize,
    /// Largest gRPC message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Shared token every actor must present (None: no authentication).
    pub auth_token: Option<String>,
    /// Serve over TLS (None: plaintext).
    pub tls: Option<TlsFiles>,
}

/// Shared view of the run for progress displays.
pub type ProgressHandle = Arc<Mutex<Progress>>;

/// Serves on `listener` and trains until the configured steps are done or `shutdown` resolves, then
/// evaluates (unless stopped early), checkpoints and returns the trainer. `manifest` describes the run
/// for its folder, given the effective configuration and run id.
pub async fn run(
    opts: LearnerOptions,
    listener: TcpListener,
    manifest: impl FnOnce(&RunConfig, &str) -> anyhow::Result<Manifest>,
    progress: ProgressHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Trainer> {
    let ckpt_dir = opts.run_folder.join("checkpoints");
    let Start { trainer, run_id, actors, resumed_from } = build_or_resume(&opts, &ckpt_dir).await?;

    let mut manifest = manifest(&trainer.cfg, &run_id)?;
    manifest.resumed_from = resumed_from.clone();
    let mut run_folder = RunFolder::create(&opts.run_folder, manifest)?;
    if resumed_from.is_some() {
        run_folder.rewrite_evals(&trainer.evals)?;
        run_folder.mark_resumed(trainer.replay.counters().inserted);
    }
    let registry: SharedRegistry = Arc::new(Mutex::new(Registry::from_records(&actors)));
    for a in &actors {
        // The ledger continues across the restart: the counter starts where the checkpoint left it.
        crate::service::grpc_metrics::actor_known(a.id, a.inserted);
    }
    let (policy_tx, policy_rx) = watch::channel(None);
    publish(&trainer, &policy_tx)?;
    announce(&trainer, &run_id, opts.checkpoint_interval);
    // Ready: the run is built or restored and its first policy published (grpc.health.v1: SERVING).
    let health = Health::serving().await;
    let (stopping_tx, stopping) = watch::channel(false);
    let server =
        Server::start(&opts, &trainer, &run_id, listener, policy_rx, registry.clone(), (&health, stopping))?;
    let replay = trainer.replay.clone();
    let stop = stop_on(shutdown, replay.clone(), health.clone(), stopping_tx);

    let ctx = TrainContext {
        run_id,
        ckpt_dir,
        registry,
        publish_interval: opts.publish_interval,
        checkpoint_interval: opts.checkpoint_interval,
    };
    let training = spawn_training(trainer, run_folder, policy_tx, stop, ctx, progress)?;
    let trainer = tokio::task::spawn_blocking(move || training.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the training thread panicked"))??;
    health.not_serving().await;
    replay.close();
    server.stop().await;
    Ok(trainer)
}

/// The trainer a run starts with.
struct Start {
    trainer: Trainer,
    /// The run's id: the option's, or the checkpoint's on resume.
    run_id: String,
    /// The actors a resumed checkpoint knew (ids and their delivery ledger); none for a new run.
    actors: Vec<ActorRecord>,
    /// The checkpoint resumed from.
    resumed_from: Option<String>,
}

/// Builds a fresh trainer for the options' configuration or, with `resume`, restores one from the newest
/// valid checkpoint in `ckpt_dir` (with the checkpoint's configuration and run id).
async fn build_or_resume(opts: &LearnerOptions, ckpt_dir: &Path) -> anyhow::Result<Start> {
    let loaded = if opts.resume {
        let dir = ckpt_dir.to_path_buf();
        Some(tokio::task::spawn_blocking(move || checkpoint::load_latest(&dir)).await??)
    } else {
        None
    };
    let (cfg, run_id) = match &loaded {
        Some(l) => (l.state.config.clone(), l.state.run_id.clone()),
        None => (opts.cfg.clone(), opts.run_id.clone()),
    };
    let device = opts.device;
    tokio::task::spawn_blocking(move || -> anyhow::Result<Start> {
        // Building the networks is libtorch work: keep it off the async workers.
        let mut trainer = Trainer::build(&cfg, device)?;
        let Some(l) = loaded else {
            return Ok(Start { trainer, run_id, actors: Vec::new(), resumed_from: None });
        };
        let actors = trainer.restore(&l).with_context(|| format!("restoring {}", l.path.display()))?;
        tracing::info!(checkpoint = %l.path.display(), iterations = trainer.learner.iterations(), "resumed");
        Ok(Start { trainer, run_id, actors, resumed_from: Some(l.path.display().to_string()) })
    })
    .await?
}

/// Publishes what describes the run and initialises the series that would otherwise appear only when
/// they first move (a checkpoint, an evaluation): dashboards and alerts read them from the start.
fn announce(trainer: &Trainer, run_id: &str, checkpoint_interval: Option<Duration>) {
    // The run's info and the trainer's counters (replay size, iterations, ...): `Trainer::announce`,
    // with the checkpoint series at their start (failures at 0, an empty duration histogram).
    trainer.announce(run_id, "distributed", checkpoint_interval);
}

/// The standard gRPC health service's statuses (`grpc.health.v1.Health`, what Kubernetes' gRPC probes
/// and `grpc_health_probe` ask): the server as a whole ("") and the learner's service.
#[derive(Clone)]
pub struct Health(HealthReporter);

impl Health {
    /// Both SERVING: the learner accepts actors and transitions.
    pub async fn serving() -> Health {
        let reporter = HealthReporter::new(); // "" starts SERVING
        reporter.set_serving::<LearnerServer<LearnerService>>().await;
        Health(reporter)
    }

    /// Both NOT_SERVING: the learner is shutting down (set before its streams are drained).
    pub async fn not_serving(&self) {
        self.0.set_service_status("", ServingStatus::NotServing).await;
        self.0.set_not_serving::<LearnerServer<LearnerService>>().await;
    }

    fn service(&self) -> tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService> {
        tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(self.0.clone()),
        )
    }
}

/// The learner's gRPC server, running on the async runtime.
struct Server {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Server {
    /// Initialises the service's series, then serves actors on `listener` with the options' limits,
    /// token and TLS.
    fn start(
        opts: &LearnerOptions,
        trainer: &Trainer,
        run_id: &str,
        listener: TcpListener,
        policy: watch::Receiver<Option<Arc<PolicyUpdate>>>,
        registry: SharedRegistry,
        // The health statuses to serve, and the signal to start a graceful shutdown.
        (health, mut stopping): (&Health, watch::Receiver<bool>),
    ) -> anyhow::Result<Server> {
        let info = RunInfo {
            run_id: run_id.to_string(),
            env_id: trainer.spec.id.clone(),
            seed: trainer.cfg.seed,
            obs_dim: trainer.spec.obs_dim,
            act_dim: trainer.spec.act_dim,
            exploration_noise: trainer.cfg.td3.exploration_noise as f32,
            random_steps: trainer.cfg.random_steps,
            max_batch_transitions: opts.max_batch_transitions,
        };
        grpc_metrics::service_started();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = LearnerService::new(info, trainer.replay.clone(), policy, registry);
        let how = Served {
            max_message_bytes: opts.max_message_bytes,
            auth_token: opts.auth_token.clone(),
            tls: opts.tls.as_ref(),
            nodelay: true,
            health: Some(health),
        };
        // Graceful shutdown (no new connections or calls; HTTP/2 GOAWAY to connected actors) as soon as a
        // stop is requested, before the training thread's final checkpoint, or when the run has ended.
        let task = serve(service, listener, &how, async move {
            tokio::select! {
                _ = stopped => {}
                _ = stopping.wait_for(|s| *s) => {}
            }
        })?;
        Ok(Server { stop, task })
    }

    /// Stops accepting calls and waits for the open ones to end.
    async fn stop(self) {
        let _ = self.stop.send(());
        // Streams still held open by actors would keep serve() waiting: give them a bounded time.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// A stop flag for the training thread, raised when `shutdown` resolves. First the health service says
/// NOT_SERVING and the server starts its graceful shutdown (`stopping`: GOAWAY to actors, no new calls);
/// closing `replay` then refuses further inserts (UNAVAILABLE: actors back off), wakes a training thread
/// waiting for data and releases inserts held by the rate limiter.
fn stop_on(
    shutdown: impl Future<Output = ()> + Send + 'static,
    replay: Arc<ReplayService>,
    health: Health,
    stopping: watch::Sender<bool>,
) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let raised = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!(
            "shutdown requested: not serving; finishing the current iteration, then checkpointing"
        );
        health.not_serving().await;
        let _ = stopping.send(true);
        raised.store(true, Ordering::SeqCst);
        replay.close();
    });
    stop
}

/// Trains on a dedicated OS thread (libtorch work never runs on the async workers), then records how the
/// run ended in its folder.
fn spawn_training(
    trainer: Trainer,
    mut run_folder: RunFolder,
    policy_tx: watch::Sender<Option<Arc<PolicyUpdate>>>,
    stop: Arc<AtomicBool>,
    ctx: TrainContext,
    progress: ProgressHandle,
) -> std::io::Result<std::thread::JoinHandle<anyhow::Result<Trainer>>> {
    std::thread::Builder::new().name("training".into()).spawn(move || {
        let result = train(trainer, &mut run_folder, &policy_tx, &stop, &ctx, &progress);
        let status = match (&result, stop.load(Ordering::SeqCst)) {
            (Err(_), _) => "failed",
            (Ok(_), true) => "interrupted",
            (Ok(_), false) => "completed",
        };
        let _ = run_folder.finish(status, result.as_ref().err().map(|e| format!("{e:#}")));
        result
    })
}

struct TrainContext {
    run_id: String,
    ckpt_dir: PathBuf,
    registry: SharedRegistry,
    publish_interval: Duration,
    checkpoint_interval: Option<Duration>,
}

impl TrainContext {
    /// Writes a checkpoint (timed and counted by `Trainer::save_checkpoint`); a failure (a full disk,
    /// say) is reported, and the previous checkpoint stays the valid one.
    fn checkpoint(&self, trainer: &Trainer) -> anyhow::Result<()> {
        let started = Instant::now();
        // Read under the replay lock (see `Trainer::save_checkpoint`): every actor in the snapshot's ledger
        // registered before its first batch, so its name is here.
        let names = || self.registry.lock().unwrap_or_else(|p| p.into_inner()).names();
        match trainer.save_checkpoint(&self.run_id, names, &self.ckpt_dir) {
            Ok(path) => {
                tracing::info!(path = %path.display(), secs = started.elapsed().as_secs_f64(), "checkpoint written");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "checkpoint failed; training goes on, the previous checkpoint stays valid");
                Err(e)
            }
        }
    }
}

/// How a learner's gRPC endpoint is served.
pub struct Served<'a> {
    pub max_message_bytes: usize,
    pub auth_token: Option<String>,
    pub tls: Option<&'a TlsFiles>,
    /// TCP_NODELAY on every accepted connection (what a learner does; false only to measure Nagle's cost).
    pub nodelay: bool,
    /// Serve `grpc.health.v1.Health` with these statuses (outside the token check: probes carry none).
    pub health: Option<&'a Health>,
}

/// Serves `service` on `listener` with the learner's layers (message limits, token check, gRPC metrics)
/// until `shutdown` completes. One function for the learner and `spikerl bench transport`, so that the
/// bench measures what runs.
pub fn serve(
    service: LearnerService,
    listener: tokio::net::TcpListener,
    how: &Served<'_>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>> {
    let service = LearnerServer::new(service)
        .max_decoding_message_size(how.max_message_bytes)
        .max_encoding_message_size(64 << 20);
    let service = tonic::service::interceptor::InterceptedService::new(
        service,
        TokenCheck::new(how.auth_token.clone()),
    );
    let service = grpc_metrics::GrpcMetrics::new(service);
    // TCP_NODELAY: tonic's own setting does not reach sockets from a listener stream, and with Nagle's
    // algorithm small acks and the tail of each policy message wait for the peer's delayed ACK (~40 ms:
    // the p99 of ingest and broadcast, see docs/performance.md).
    let nodelay = how.nodelay;
    let incoming =
        tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), move |conn| {
            if let Ok(c) = &conn {
                let _ = c.set_nodelay(nodelay);
            }
            conn
        });
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = how.tls {
        builder = builder.tls_config(tls.server_config()?)?;
    }
    let router = builder.add_service(service).add_optional_service(how.health.map(Health::service));
    Ok(tokio::spawn(router.serve_with_incoming_shutdown(incoming, shutdown)))
}

fn train(
    mut trainer: Trainer,
    run_folder: &mut RunFolder,
    policy_tx: &watch::Sender<Option<Arc<PolicyUpdate>>>,
    stop: &AtomicBool,
    ctx: &TrainContext,
    progress: &ProgressHandle,
) -> anyhow::Result<Trainer> {
    let mut published = trainer.learner.actor_updates();
    let mut last_publish = Instant::now();
    let mut last_checkpoint = Instant::now();
    let total_steps = trainer.cfg.random_steps + trainer.cfg.steps;
    if trainer.evals.is_empty() {
        trainer.evaluate_if_due(0, Some(run_folder))?;
    }
    while !trainer.done() && !stop.load(Ordering::SeqCst) {
        if trainer.iterate().is_none() {
            break;
        }
        let counters = trainer.replay.counters();
        if trainer.learner.actor_updates() != published && last_publish.elapsed() >= ctx.publish_interval {
            publish(&trainer, policy_tx)?;
            published = trainer.learner.actor_updates();
            last_publish = Instant::now();
        }
        let eval = trainer.evaluate_if_due(counters.inserted, Some(run_folder))?;
        trainer.write_training_scalars_if_due(counters.inserted, run_folder);
        if ctx.checkpoint_interval.is_some_and(|every| last_checkpoint.elapsed() >= every) {
            let _ = ctx.checkpoint(&trainer);
            last_checkpoint = Instant::now();
        }
        metrics::gauge!(learner::SAMPLES_PER_INSERT).set(counters.ratio);
        let mut p = progress.lock().unwrap_or_else(|p| p.into_inner());
        p.env_steps = counters.inserted;
        p.total_steps = total_steps;
        p.iterations = trainer.learner.iterations();
        if eval.is_some() {
            p.last_eval = eval;
            p.best_eval = trainer.best_return();
        }
    }
    let stopped = stop.load(Ordering::SeqCst);
    if !stopped {
        let steps = trainer.replay.counters().inserted;
        let r = trainer.evaluate(steps, Some(run_folder))?;
        let mut p = progress.lock().unwrap_or_else(|p| p.into_inner());
        p.last_eval = Some(r);
        p.best_eval = trainer.best_return();
    }
    publish(&trainer, policy_tx)?;
    if let Err(e) = ctx.checkpoint(&trainer)
        && !stopped
    {
        bail!("the final checkpoint failed: {e:#}");
    }
    Ok(trainer)
}

/// Encodes the current actor weights and makes them the newest version for every subscriber. Public so
/// that `spikerl bench transport` measures the learner's own publish path.
pub fn publish(trainer: &Trainer, tx: &watch::Sender<Option<Arc<PolicyUpdate>>>) -> anyhow::Result<()> {
    let learner = &trainer.learner;
    let version = learner.actor_updates();
    let weights = spikerl_snn::encode_policy(learner.policy_config(), &learner.export_policy(), version)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
    tx.send_replace(Some(Arc::new(PolicyUpdate { version, weights, published_unix_nanos: now })));
    metrics::gauge!(learner::POLICY_VERSION).set(version as f64);
    Ok(())
}
