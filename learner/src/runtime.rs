//! The distributed learner process: the gRPC service on the async runtime, training on a dedicated OS
//! thread, weights published through a `watch` channel (newest wins), run folder and checkpoints.

use crate::checkpoint;
use crate::config::RunConfig;
use crate::lockstep::{Progress, build_trainer};
use crate::run_dir::RunDir;
use crate::server::{LearnerService, RunInfo};
use crate::trainer::Trainer;
use spikerl_proto::PolicyUpdate;
use spikerl_proto::learner_server::LearnerServer;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How the learner process runs (the run's own settings are in `RunConfig`).
#[derive(Clone, Debug)]
pub struct LearnerOptions {
    pub cfg: RunConfig,
    pub run_id: String,
    pub device: tch::Device,
    /// Weights are published at most this often (the newest actor weights then).
    pub publish_interval: Duration,
    /// Largest transition batch accepted from an actor.
    pub max_batch_transitions: usize,
    /// Largest gRPC message accepted, in bytes.
    pub max_message_bytes: usize,
}

/// Shared view of the run for progress displays.
pub type ProgressHandle = Arc<Mutex<Progress>>;

/// Serves on `listener` and trains until the configured steps are done or `shutdown` resolves, then
/// evaluates, checkpoints and returns the trainer.
pub async fn run(
    opts: LearnerOptions,
    listener: TcpListener,
    mut run_dir: RunDir,
    progress: ProgressHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Trainer> {
    let cfg = opts.cfg.clone();
    let device = opts.device;
    // Building the networks is libtorch work: keep it off the async workers.
    let trainer = tokio::task::spawn_blocking(move || build_trainer(&cfg, device)).await??;
    let info = RunInfo {
        run_id: opts.run_id.clone(),
        env_id: trainer.spec.id.clone(),
        seed: opts.cfg.seed,
        obs_dim: trainer.spec.obs_dim,
        act_dim: trainer.spec.act_dim,
        exploration_noise: opts.cfg.td3.exploration_noise as f32,
        random_steps: opts.cfg.random_steps,
        max_batch_transitions: opts.max_batch_transitions,
    };
    let (policy_tx, policy_rx) = watch::channel(None);
    publish(&trainer, &policy_tx)?;
    let replay = trainer.replay.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let (server_stop_tx, server_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = LearnerServer::new(LearnerService::new(info, replay.clone(), policy_rx))
        .max_decoding_message_size(opts.max_message_bytes)
        .max_encoding_message_size(64 << 20);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = server_stop_rx.await;
            }),
    );

    {
        let (stop, replay) = (stop.clone(), replay.clone());
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutdown requested: finishing the current iteration, then checkpointing");
            stop.store(true, Ordering::SeqCst);
            replay.close();
        });
    }

    let training = {
        let stop = stop.clone();
        let publish_interval = opts.publish_interval;
        std::thread::Builder::new().name("training".into()).spawn(move || {
            let result = train(trainer, &mut run_dir, &policy_tx, &stop, publish_interval, &progress);
            let status = match (&result, stop.load(Ordering::SeqCst)) {
                (Err(_), _) => "failed",
                (Ok(_), true) => "interrupted",
                (Ok(_), false) => "completed",
            };
            let _ = run_dir.finish(status, result.as_ref().err().map(|e| format!("{e:#}")));
            result
        })?
    };
    let trainer = tokio::task::spawn_blocking(move || training.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the training thread panicked"))??;
    replay.close();
    let _ = server_stop_tx.send(());
    // Streams still held open by actors would keep serve() waiting: give them a bounded time.
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    Ok(trainer)
}

fn train(
    mut trainer: Trainer,
    run_dir: &mut RunDir,
    policy_tx: &watch::Sender<Option<Arc<PolicyUpdate>>>,
    stop: &AtomicBool,
    publish_interval: Duration,
    progress: &ProgressHandle,
) -> anyhow::Result<Trainer> {
    let mut published = trainer.td3.actor_updates;
    let mut last_publish = Instant::now();
    let total_steps = trainer.cfg.random_steps + trainer.cfg.steps;
    let mut evaluated_at_start = false;
    while !trainer.done() && !stop.load(Ordering::SeqCst) {
        if !evaluated_at_start {
            trainer.evaluate_if_due(0, Some(run_dir))?;
            evaluated_at_start = true;
        }
        if trainer.iterate().is_none() {
            break;
        }
        let counters = trainer.replay.counters();
        if trainer.td3.actor_updates != published && last_publish.elapsed() >= publish_interval {
            publish(&trainer, policy_tx)?;
            published = trainer.td3.actor_updates;
            last_publish = Instant::now();
        }
        let eval = trainer.evaluate_if_due(counters.inserted, Some(run_dir))?;
        metrics::gauge!("spikerl_learner_replay_size").set(counters.replay_size as f64);
        metrics::gauge!("spikerl_learner_samples_per_insert").set(counters.ratio);
        let mut p = progress.lock().unwrap_or_else(|p| p.into_inner());
        p.env_steps = counters.inserted;
        p.total_steps = total_steps;
        p.iterations = trainer.td3.iterations;
        if eval.is_some() {
            p.last_eval = eval;
            p.best_eval = trainer.best_return();
        }
    }
    if !stop.load(Ordering::SeqCst) {
        let steps = trainer.replay.counters().inserted;
        let r = trainer.evaluate(steps, Some(run_dir))?;
        let mut p = progress.lock().unwrap_or_else(|p| p.into_inner());
        p.last_eval = Some(r);
        p.best_eval = trainer.best_return();
    }
    publish(&trainer, policy_tx)?;
    checkpoint::save(&trainer, &run_dir.checkpoints())?;
    Ok(trainer)
}

/// Encodes the current actor weights and makes them the newest version for every subscriber.
fn publish(trainer: &Trainer, tx: &watch::Sender<Option<Arc<PolicyUpdate>>>) -> anyhow::Result<()> {
    let td3 = &trainer.td3;
    let version = td3.actor_updates;
    let weights = spikerl_snn::encode_policy(&td3.policy_config, &td3.export_policy(), version)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
    tx.send_replace(Some(Arc::new(PolicyUpdate { version, weights, published_unix_nanos: now })));
    metrics::gauge!("spikerl_learner_policy_version").set(version as f64);
    Ok(())
}
