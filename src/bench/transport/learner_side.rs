//! The learner's half of `bench transport`: the real gRPC stack (`server::LearnerService` behind the same
//! token interceptor, gRPC metrics layer and message limits as `runtime::run`, through `runtime::serve`),
//! the real replay service and rate limiter, the real publish path (`runtime::publish`: encode, then
//! `watch` send) and the real training iteration (`Trainer::iterate`). What differs from `runtime::run`:
//! no run folder, no checkpoints, no evaluation, and a rate limiter chosen per measurement (below).

use spikerl_algo::config::{Algo, RunConfig};
use spikerl_algo::rate_limiter::RateLimiter;
use spikerl_algo::replay::{ReplayBuffer, Transitions};
use spikerl_learner::service::runtime::{self, Served, serve};
use spikerl_learner::service::server::{LearnerService, Registry, RunInfo};
use spikerl_learner::training::replay_service::ReplayService;
use spikerl_learner::training::trainer::Trainer;
use spikerl_proto::PolicyUpdate;
use spikerl_snn::NeuronKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// How the bench's replay service gates inserts and updates.
#[derive(Clone, Copy, Debug)]
pub enum Limiter {
    /// Inserts are never held and training never starts (as a run still in its random phase): the
    /// transport alone.
    IngestOnly,
    /// Neither inserts nor updates are ever held: training runs flat out on whatever is in the buffer
    /// while ingest goes on beside it, so the two only compete for the CPU and the replay lock.
    Free,
}

/// A trainer for `env` with the paper's configuration of `algo`/`neuron`, on CPU, whose replay service
/// uses `limiter` and holds `capacity` transitions.
pub fn trainer(
    env: &str,
    algo: Algo,
    neuron: NeuronKind,
    capacity: usize,
    limiter: Limiter,
) -> anyhow::Result<Trainer> {
    let mut cfg = RunConfig::paper(env, algo, neuron, 0);
    cfg.replay_capacity = capacity;
    let mut trainer = Trainer::build(&cfg, tch::Device::Cpu)?;
    let limiter = match limiter {
        Limiter::IngestOnly => RateLimiter::new(1.0, u64::MAX, f64::INFINITY),
        Limiter::Free => RateLimiter::new(1e12, 0, f64::INFINITY),
    };
    let buffer = ReplayBuffer::new(capacity, trainer.spec.obs_dim, trainer.spec.act_dim, 0);
    trainer.replay = Arc::new(ReplayService::new(buffer, limiter));
    Ok(trainer)
}

/// Fills the replay service with `n` synthetic transitions (values in the usual range) so that training
/// can sample from the start.
pub fn prefill(replay: &ReplayService, obs_dim: usize, act_dim: usize, n: usize) -> anyhow::Result<()> {
    let mut t = Transitions::default();
    let chunk = 1024;
    for i in 0..chunk {
        let x = (i as f32 * 0.618).fract() - 0.5;
        t.push(&vec![x; obs_dim], &vec![x; act_dim], x, &vec![-x; obs_dim], false);
    }
    let mut done = 0;
    while done < n {
        match replay.try_insert(&t) {
            Ok(Some(_)) => done += chunk,
            _ => anyhow::bail!("the bench replay service refused its prefill"),
        }
    }
    Ok(())
}

/// A running learner gRPC server on loopback.
pub struct Server {
    pub addr: SocketAddr,
    pub policy: watch::Sender<Option<Arc<PolicyUpdate>>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Server {
    /// Serves `trainer`'s replay service on 127.0.0.1 (a free port) on the current tokio runtime.
    /// `nodelay` sets TCP_NODELAY on accepted connections, as `runtime::run` does; false shows what
    /// Nagle's algorithm would cost.
    pub async fn start(trainer: &Trainer, nodelay: bool) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let info = RunInfo {
            run_id: "bench".into(),
            env_id: trainer.spec.id.clone(),
            seed: 0,
            obs_dim: trainer.spec.obs_dim,
            act_dim: trainer.spec.act_dim,
            exploration_noise: trainer.cfg.td3.exploration_noise as f32,
            random_steps: 0,
            max_batch_transitions: 4096,
        };
        let (policy, policy_rx) = watch::channel(None);
        let registry = Arc::new(Mutex::new(Registry::default()));
        let (stop, stopped) = oneshot::channel::<()>();
        let service = LearnerService::new(info, trainer.replay.clone(), policy_rx, registry);
        // The learner's own serving code; no token configured, as in a run without --auth-token-file.
        let how = Served { max_message_bytes: 64 << 20, auth_token: None, tls: None, nodelay, health: None };
        let task = serve(service, listener, &how, async {
            let _ = stopped.await;
        })?;
        Ok(Server { addr, policy, stop: Some(stop), task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving; streams still open are given a second.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.task).await;
        self.task.abort();
    }
}

/// One broadcast: what it took to encode and how large it is.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub version: u64,
    pub encode_seconds: f64,
    pub bytes: usize,
}

/// Publishes the trainer's current actor weights as the next version, through the learner's own
/// publish path (encode into the weight format, stamp the time, replace the newest in the watch channel).
pub fn publish_next(
    trainer: &mut Trainer,
    tx: &watch::Sender<Option<Arc<PolicyUpdate>>>,
) -> anyhow::Result<Published> {
    // A new version without training: the version is the actor-update count, as in a run.
    trainer.learner.td3_mut().expect("a TD3 learner").actor_updates += 1;
    let started = Instant::now();
    runtime::publish(trainer, tx)?;
    let encode_seconds = started.elapsed().as_secs_f64();
    let bytes = tx.borrow().as_ref().map_or(0, |p| p.weights.len());
    Ok(Published { version: trainer.learner.actor_updates(), encode_seconds, bytes })
}

/// Training iterations done in a measured window.
#[derive(Debug, Clone, Copy)]
pub struct TrainWindow {
    pub iterations: u64,
    pub seconds: f64,
}

/// Runs `Trainer::iterate` until `duration` has passed or `stop` is set, publishing the weights at most
/// every 100 ms after an actor update, as the learner's training thread does.
pub fn train_for(
    trainer: &mut Trainer,
    duration: Duration,
    publish: Option<&watch::Sender<Option<Arc<PolicyUpdate>>>>,
    stop: &AtomicBool,
) -> anyhow::Result<TrainWindow> {
    let started = Instant::now();
    let mut last_publish = Instant::now();
    let mut published = trainer.learner.actor_updates();
    let first = trainer.learner.iterations();
    while started.elapsed() < duration && !stop.load(Ordering::Relaxed) {
        if trainer.iterate().is_none() {
            anyhow::bail!("the bench replay service closed");
        }
        if let Some(tx) = publish
            && trainer.learner.actor_updates() != published
            && last_publish.elapsed() >= Duration::from_millis(100)
        {
            runtime::publish(trainer, tx)?;
            published = trainer.learner.actor_updates();
            last_publish = Instant::now();
        }
    }
    Ok(TrainWindow {
        iterations: trainer.learner.iterations() - first,
        seconds: started.elapsed().as_secs_f64(),
    })
}
