//! The learner's gRPC service: registration, transition ingest (validated, deduplicated by sequence,
//! rate-limited) and policy broadcast. Every field from the network is checked before it touches the
//! replay buffer; bad input gets INVALID_ARGUMENT (or the right status) and a metric, never a panic.

use crate::service::grpc_metrics::{LagStream, PolicyLag};
use crate::service::rejection::Rejection;
use crate::storage::checkpoint::ActorRecord;
use crate::training::replay_service::{Origin, ReplayService, Stored};
use spikerl_algo::replay::Transitions;
use spikerl_algo::seeds::derive_seed;
use spikerl_metrics::learner;
use spikerl_proto::learner_server::Learner;
use spikerl_proto::{
    BatchAck, PROTOCOL_VERSION, PolicyUpdate, RegisterReply, RegisterRequest, SubscribeRequest,
    TransitionBatch,
};
use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, WatchStream};
use tonic::{Request, Response, Status, Streaming};

/// What registration hands to actors, fixed for the run.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub run_id: String,
    pub env_id: String,
    pub seed: u64,
    pub obs_dim: usize,
    pub act_dim: usize,
    pub exploration_noise: f32,
    pub random_steps: u64,
    pub max_batch_transitions: usize,
}

/// Registered actors' ids, keyed by the name each chose so that a restarted actor keeps its id. What
/// was stored from each (the deduplication sequence, the ledger) is the replay service's, under its lock.
#[derive(Default)]
pub struct Registry {
    by_name: HashMap<String, u32>,
    by_id: BTreeMap<u32, String>,
}

impl Registry {
    pub fn from_records(records: &[ActorRecord]) -> Registry {
        let mut r = Registry::default();
        for a in records {
            r.by_name.insert(a.name.clone(), a.id);
            r.by_id.insert(a.id, a.name.clone());
        }
        r
    }

    /// Every registered actor's name, by id.
    pub fn names(&self) -> BTreeMap<u32, String> {
        self.by_id.clone()
    }
}

pub type SharedRegistry = Arc<Mutex<Registry>>;

pub struct LearnerService {
    info: RunInfo,
    replay: Arc<ReplayService>,
    policy: watch::Receiver<Option<Arc<PolicyUpdate>>>,
    registry: SharedRegistry,
    lag: Arc<PolicyLag>,
}

impl LearnerService {
    pub fn new(
        info: RunInfo,
        replay: Arc<ReplayService>,
        policy: watch::Receiver<Option<Arc<PolicyUpdate>>>,
        registry: SharedRegistry,
    ) -> Self {
        LearnerService { info, replay, policy, registry, lag: Arc::default() }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_actor(&self, run_id: &str, actor_id: u32) -> Result<(), Status> {
        check_actor(&self.info, &self.registry(), run_id, actor_id).map_err(reject)
    }
}

/// The run id must be this learner's and the actor id one it handed out.
fn check_actor(info: &RunInfo, registry: &Registry, run_id: &str, actor_id: u32) -> Result<(), Rejection> {
    if run_id != info.run_id {
        return Err(Rejection::UnknownRun { got: run_id.to_string(), expected: info.run_id.clone() });
    }
    if !registry.by_id.contains_key(&actor_id) {
        return Err(Rejection::UnknownActor(actor_id));
    }
    Ok(())
}

/// Checks a registration's protocol version and actor name (before any registry change).
pub fn validate_register(req: &RegisterRequest) -> Result<(), Status> {
    if req.protocol_version != PROTOCOL_VERSION {
        return Err(Status::failed_precondition(format!(
            "protocol version {} is not supported by this learner (it speaks {PROTOCOL_VERSION}); use matching images",
            req.protocol_version
        )));
    }
    if req.actor_name.is_empty() || req.actor_name.len() > 256 {
        return Err(Status::invalid_argument("actor_name must be 1 to 256 bytes"));
    }
    Ok(())
}

/// The kinds of request message the learner decodes from the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteMessage {
    Register,
    TransitionBatch,
    Subscribe,
}

/// A remote message that passed every check, as the handlers would go on to use it.
#[derive(Debug)]
pub enum Accepted {
    Register(RegisterRequest),
    /// The batch's replay rows (what `ReplayService::insert` would receive).
    Batch(Transitions),
    Subscribe(SubscribeRequest),
}

/// The learner's path for untrusted bytes, minus the sockets: protobuf-decode `bytes` as tonic's codec
/// does, then run the same checks as the handlers (`validate_register`; `check_actor` and
/// `validate_batch` for a batch; `check_actor` for a subscription) against `info` and `registry`.
/// Returns the status a handler would answer with (a registration's own, or the rejection's), without
/// counting anything. Must never panic, whatever the bytes: the fuzz target
/// (`fuzz/fuzz_targets/remote_input.rs`) and a stable test over its corpus call it.
pub fn check_remote_input(
    kind: RemoteMessage,
    bytes: &[u8],
    info: &RunInfo,
    registry: &Registry,
) -> Result<Accepted, Status> {
    use prost::Message;
    let undecodable = |e| Rejection::undecodable(e).status();
    let rejected = |r: Rejection| r.status();
    match kind {
        RemoteMessage::Register => {
            let req = RegisterRequest::decode(bytes).map_err(undecodable)?;
            validate_register(&req)?;
            Ok(Accepted::Register(req))
        }
        RemoteMessage::TransitionBatch => {
            let batch = TransitionBatch::decode(bytes).map_err(undecodable)?;
            check_actor(info, registry, &batch.run_id, batch.actor_id).map_err(rejected)?;
            Ok(Accepted::Batch(validate_batch(&batch, info).map_err(rejected)?))
        }
        RemoteMessage::Subscribe => {
            let req = SubscribeRequest::decode(bytes).map_err(undecodable)?;
            check_actor(info, registry, &req.run_id, req.actor_id).map_err(rejected)?;
            Ok(Accepted::Subscribe(req))
        }
    }
}

/// Counts a rejection by reason and builds the status for it.
fn reject(rejection: Rejection) -> Status {
    rejection.count();
    rejection.status()
}

/// Checks a batch against the run's spaces and limits and converts it to replay rows.
pub fn validate_batch(b: &TransitionBatch, info: &RunInfo) -> Result<Transitions, Rejection> {
    let n = b.count as usize;
    if n == 0 {
        return Err(Rejection::Empty);
    }
    if n > info.max_batch_transitions {
        return Err(Rejection::Oversized { count: n, max: info.max_batch_transitions });
    }
    let (od, ad) = (info.obs_dim, info.act_dim);
    let lens = [
        ("obs", b.obs.len(), n * od),
        ("actions", b.actions.len(), n * ad),
        ("rewards", b.rewards.len(), n),
        ("next_obs", b.next_obs.len(), n * od),
        ("terminated", b.terminated.len(), n),
        ("truncated", b.truncated.len(), n),
    ];
    for (field, got, want) in lens {
        if got != want {
            return Err(Rejection::Shape { field, got, want, count: n, obs_dim: od, act_dim: ad });
        }
    }
    for (field, values) in
        [("obs", &b.obs), ("actions", &b.actions), ("rewards", &b.rewards), ("next_obs", &b.next_obs)]
    {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Rejection::NonFinite { field, index: i, value: values[i] });
        }
    }
    Ok(Transitions {
        obs: b.obs.clone(),
        actions: b.actions.clone(),
        rewards: b.rewards.clone(),
        next_obs: b.next_obs.clone(),
        terminated: b.terminated.iter().map(|&t| if t { 1.0 } else { 0.0 }).collect(),
    })
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Keeps `spikerl_learner_connected_actors` right however a stream ends.
struct ConnectionGuard;

impl ConnectionGuard {
    fn new() -> Self {
        metrics::gauge!(learner::CONNECTED_ACTORS).increment(1.0);
        ConnectionGuard
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        metrics::gauge!(learner::CONNECTED_ACTORS).decrement(1.0);
    }
}

#[tonic::async_trait]
impl Learner for LearnerService {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterReply>, Status> {
        let req = request.into_inner();
        validate_register(&req)?;
        let id = {
            let mut reg = self.registry();
            let next_id = reg.by_id.keys().max().map_or(0, |m| m + 1);
            let id = *reg.by_name.entry(req.actor_name.clone()).or_insert(next_id);
            reg.by_id.insert(id, req.actor_name.clone());
            id
        };
        // Read after registering (the registry's lock released first: the checkpoint takes the replay
        // lock, then the registry's). A stream of this actor still open from before may store one more
        // batch after this read; the actor then resends it and the duplicate check acknowledges it.
        let last_sequence = self.replay.delivered(id).last_sequence;
        tracing::info!(actor = %req.actor_name, id, envs = req.num_envs, "actor registered");
        crate::service::grpc_metrics::actor_registered(id);
        let i = &self.info;
        Ok(Response::new(RegisterReply {
            protocol_version: PROTOCOL_VERSION,
            run_id: i.run_id.clone(),
            actor_id: id,
            env_id: i.env_id.clone(),
            seed: derive_seed(i.seed, 1000 + id as u64),
            obs_dim: i.obs_dim as u32,
            act_dim: i.act_dim as u32,
            exploration_noise: i.exploration_noise,
            random_steps: i.random_steps,
            max_batch_transitions: i.max_batch_transitions as u32,
            last_sequence,
        }))
    }

    type StreamTransitionsStream = BoxStream<BatchAck>;

    async fn stream_transitions(
        &self,
        request: Request<Streaming<TransitionBatch>>,
    ) -> Result<Response<Self::StreamTransitionsStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let info = self.info.clone();
        let replay = self.replay.clone();
        let registry = self.registry.clone();
        let policy = self.policy.clone();
        let lag = self.lag.clone();
        let this = LearnerService {
            info: info.clone(),
            replay: replay.clone(),
            policy,
            registry: registry.clone(),
            lag,
        };
        tokio::spawn(async move {
            let _connected = ConnectionGuard::new();
            // Declared after the guard, so dropped before it: when the connected count falls, this
            // stream's lag has already left `spikerl_learner_policy_lag`.
            let lag = this.lag.open_stream();
            // Batches are handled one at a time: the next one is read only after this one is in the
            // buffer, so a held insert stops reading and HTTP/2 flow control pushes back on the actor.
            while let Some(next) = inbound.next().await {
                let batch = match next {
                    Ok(b) => b,
                    Err(status) => {
                        // A message that failed to decode (too large, malformed) or a broken connection:
                        // report it to the peer if it still listens (tonic's status as it is), and end
                        // this stream. Only the first two are rejections.
                        if let Some(rejection) = Rejection::from_stream_error(&status) {
                            rejection.count();
                        }
                        tracing::debug!(%status, "actor stream ended");
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                };
                // An insert held by the rate limiter must not outlive its actor: when the peer goes
                // away (the response stream is dropped) the batch is abandoned, never acknowledged.
                let ack = tokio::select! {
                    ack = ingest(&this, &batch, &lag) => ack,
                    _ = tx.closed() => break,
                };
                let failed = ack.is_err();
                if tx.send(ack).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type SubscribePolicyStream = BoxStream<PolicyUpdate>;

    async fn subscribe_policy(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribePolicyStream>, Status> {
        let req = request.into_inner();
        self.check_actor(&req.run_id, req.actor_id)?;
        let have = req.have_version;
        // WatchStream always yields the newest value: a slow subscriber skips versions and the learner
        // never waits for it.
        let stream = WatchStream::new(self.policy.clone())
            .filter_map(move |p| p.filter(|p| have.is_none_or(|h| p.version > h)))
            .map(|p| Ok((*p).clone()));
        Ok(Response::new(Box::pin(stream)))
    }
}

async fn ingest(svc: &LearnerService, batch: &TransitionBatch, lag: &LagStream) -> Result<BatchAck, Status> {
    svc.check_actor(&batch.run_id, batch.actor_id)?;
    let rows = validate_batch(batch, &svc.info).map_err(reject)?;
    let actor = batch.actor_id.to_string();
    metrics::counter!(learner::TRANSITIONS_RECEIVED_TOTAL, "actor" => actor.clone())
        .increment(rows.len() as u64);
    let waiting = std::time::Instant::now();
    let origin = Origin { actor_id: batch.actor_id, sequence: batch.sequence };
    let stored = svc
        .replay
        .insert_from(&rows, origin)
        .await
        .map_err(|_| Status::unavailable("the run has finished"))?;
    let total = match stored {
        Stored::New(total) => total,
        Stored::Duplicate(total) => {
            // Already stored (a resend after a lost ack): acknowledged, not inserted twice.
            metrics::counter!(learner::DUPLICATE_BATCHES_TOTAL).increment(1);
            return Ok(BatchAck { sequence: batch.sequence, inserted: 0, total_inserted: total });
        }
    };
    metrics::histogram!(learner::INSERT_WAIT_SECONDS).record(waiting.elapsed().as_secs_f64());
    let n = rows.len() as u64;
    // The learner's column of the delivery ledger (docs/runtime.md): stored once, whatever the resends.
    metrics::counter!(learner::TRANSITIONS_INSERTED_TOTAL, "actor" => actor.clone()).increment(n);
    let newest = svc.policy.borrow().as_ref().map(|p| p.version);
    if let Some(version) = newest {
        lag.record(version.saturating_sub(batch.policy_version));
    }
    for e in &batch.episodes {
        metrics::counter!(learner::EPISODES_TOTAL, "actor" => actor.clone()).increment(1);
        metrics::gauge!(learner::EPISODE_RETURN_LAST).set(e.episode_return);
        metrics::gauge!(learner::EPISODE_LENGTH_LAST).set(e.length as f64);
    }
    Ok(BatchAck { sequence: batch.sequence, inserted: n as u32, total_inserted: total })
}

/// Input framing shared by the fuzz target (`fuzz/fuzz_targets/remote_input.rs`) and the stable test
/// that replays its corpus (`learner/tests/remote_input.rs`), so both exercise exactly the same thing.
pub mod fuzzing {
    use super::{Accepted, ActorRecord, Registry, RemoteMessage, RunInfo, Status, check_remote_input};

    /// The run id registered actors use in seeds; anything else is an unknown run.
    pub const RUN_ID: &str = "fuzz-run";

    /// The runs a fuzz input can address: Pendulum-like and HalfCheetah-like spaces with the learner's
    /// default batch limit, and a one-dimensional run with a batch limit of 2 (edge sizes).
    pub fn run_info(spec: u8) -> RunInfo {
        let (obs_dim, act_dim, max_batch_transitions) = match spec % 3 {
            0 => (3, 1, 4096),
            1 => (17, 6, 4096),
            _ => (1, 1, 2),
        };
        RunInfo {
            run_id: RUN_ID.into(),
            env_id: "Fuzz-v0".into(),
            seed: 0,
            obs_dim,
            act_dim,
            exploration_noise: 0.1,
            random_steps: 0,
            max_batch_transitions,
        }
    }

    /// Actors 0 ("a0") and 1 ("a1") are registered.
    pub fn registry() -> Registry {
        Registry::from_records(&[
            ActorRecord { name: "a0".into(), id: 0, last_sequence: 0, inserted: 0 },
            ActorRecord { name: "a1".into(), id: 1, last_sequence: 0, inserted: 0 },
        ])
    }

    /// The message kind and run spec a first byte selects.
    pub fn frame(first: u8) -> (RemoteMessage, u8) {
        let kind = match first % 3 {
            0 => RemoteMessage::Register,
            1 => RemoteMessage::TransitionBatch,
            _ => RemoteMessage::Subscribe,
        };
        (kind, (first / 3) % 3)
    }

    /// The first byte of an input that addresses `kind` on run spec `spec`.
    pub fn first_byte(kind: RemoteMessage, spec: u8) -> u8 {
        let k = match kind {
            RemoteMessage::Register => 0,
            RemoteMessage::TransitionBatch => 1,
            RemoteMessage::Subscribe => 2,
        };
        (spec % 3) * 3 + k
    }

    /// One fuzz input: byte 0 frames (`frame`), the rest is the protobuf message. Returns the run spec
    /// used, so callers can check what was accepted against it.
    pub fn check(data: &[u8]) -> (RunInfo, Result<Accepted, Status>) {
        let Some((&first, bytes)) = data.split_first() else {
            return (run_info(0), Err(Status::invalid_argument("no input")));
        };
        let (kind, spec) = frame(first);
        let info = run_info(spec);
        let result = check_remote_input(kind, bytes, &info, &registry());
        (info, result)
    }
}
