//! The actor: registers with the learner, steps its environments with the newest policy it has
//! (plain-Rust inference, no libtorch), streams transitions in batches and picks up new weights as they
//! arrive. It survives the learner: on any connection error it retries with exponential backoff and
//! jitter, pauses the environments (the acting thread blocks on the full batch channel) and resumes by
//! itself; batches sent but not acknowledged are resent, and the learner drops any it already stored.
//!
//! Tasks: the acting thread ([`env_loop`]), the streamer (this module's [`run`]: connection, batches
//! out, acks in) and the policy subscriber (weights in, into a [`policy_slot::PolicySlot`]).

pub mod env_loop;
pub mod policy_slot;

use env_loop::{EnvLoopConfig, Shared};
use rand::Rng;
use spikerl_metrics::actor;
use spikerl_proto::learner_client::LearnerClient;
use spikerl_proto::{PROTOCOL_VERSION, RegisterReply, RegisterRequest, SubscribeRequest, TransitionBatch};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

/// The learner client with the token interceptor.
pub type Client = LearnerClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <token>` to every request when a token is configured.
#[derive(Clone)]
pub struct BearerToken(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert(spikerl_proto::AUTH_METADATA_KEY, v.clone());
        }
        Ok(request)
    }
}

/// TLS settings for reaching the learner (the URL must then be https://).
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// CA that signed the learner's certificate (default: the system's roots are not used; give one).
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate and key, for learners that require mutual TLS.
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Name to verify in the learner's certificate (default: the URL's host).
    pub domain: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ActorOptions {
    /// Learner address, e.g. `http://learner:50051`.
    pub learner: String,
    /// Stable name: an actor restarted under the same name keeps its id and sequence numbers.
    pub name: String,
    pub num_envs: usize,
    /// Threads stepping the envs (the acting thread plus `env_threads - 1` workers); same transitions
    /// for every value.
    pub env_threads: usize,
    /// Env steps (of all envs together) per transition batch.
    pub steps_per_batch: usize,
    /// Batches sent ahead of their acknowledgement.
    pub window: usize,
    /// Acknowledged batches kept for resending after a learner restarts from an older checkpoint
    /// (bytes of transition data; the oldest are dropped first).
    pub retain_bytes: usize,
    pub max_backoff: Duration,
    pub max_message_bytes: usize,
    /// How long an actor asked to stop keeps delivering what it has produced (the learner may be away,
    /// or its rate limiter may hold inserts while many actors stop at once).
    pub flush_timeout: Duration,
    /// Shared token the learner requires, if any.
    pub auth_token: Option<String>,
    pub tls: Option<ClientTls>,
}

impl Default for ActorOptions {
    fn default() -> Self {
        ActorOptions {
            learner: "http://127.0.0.1:50051".into(),
            name: default_name(),
            num_envs: 1,
            env_threads: 1,
            steps_per_batch: 32,
            window: 4,
            retain_bytes: 64 << 20,
            max_backoff: Duration::from_secs(10),
            max_message_bytes: 64 << 20,
            flush_timeout: FLUSH_TIMEOUT,
            auth_token: None,
            tls: None,
        }
    }
}

/// host name + process id: unique on a cluster unless set explicitly.
pub fn default_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "actor".into());
    format!("{host}-{}", std::process::id())
}

/// Errors worth a retry (the learner is away or restarting) versus ones that a retry cannot fix.
fn retryable(status: &Status) -> bool {
    let fatal = matches!(
        status.code(),
        Code::InvalidArgument | Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented
    );
    let wrong_protocol =
        status.code() == Code::FailedPrecondition && status.message().contains("protocol version");
    !fatal && !wrong_protocol
}

/// The default [`ActorOptions::flush_timeout`]: within compose's default 10 s stop timeout.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the actor until `shutdown` resolves or a non-retryable error occurs. On `shutdown` the acting
/// loop stops producing and the streamer delivers every produced batch (at most `flush_timeout`), so
/// a stopped actor's ledger balances: produced == acknowledged == inserted by the learner.
pub async fn run(opts: ActorOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let shared = Shared::new();
    let flush_timeout = opts.flush_timeout;
    let inner = run_inner(opts, shared.clone());
    tokio::pin!(shutdown, inner);
    let result = tokio::select! {
        r = &mut inner => r,
        _ = &mut shutdown => {
            tracing::info!("actor shutting down: acting stops, produced batches are delivered first");
            shared.stop.store(true, Ordering::Relaxed);
            match tokio::time::timeout(flush_timeout, &mut inner).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!("the learner did not acknowledge everything in time; stopping anyway");
                    Ok(())
                }
            }
        }
    };
    let (produced, acked) = (shared.produced.load(Ordering::Relaxed), shared.acked.load(Ordering::Relaxed));
    tracing::info!(produced, acked, unacknowledged = produced.saturating_sub(acked), "actor stopped");
    result
}

async fn run_inner(opts: ActorOptions, shared: Arc<Shared>) -> anyhow::Result<()> {
    let (batch_tx, mut batch_rx) = mpsc::channel::<TransitionBatch>(1);
    let mut batch_tx = Some(batch_tx);
    let mut acting: Option<(String, std::thread::JoinHandle<anyhow::Result<()>>)> = None;
    let mut outbox = Outbox::new(opts.retain_bytes);
    let mut next_sequence = 1u64;
    let mut run_id: Option<String> = None;
    let mut backoff = Duration::from_millis(100);

    let _stop_on_exit = StopGuard(shared.clone());
    loop {
        let stopping = shared.stop.load(Ordering::Relaxed);
        if acting.as_ref().is_some_and(|(_, handle)| handle.is_finished()) {
            // The acting loop failed, or stopped with everything delivered; otherwise (stopping with
            // batches left) reconnect and deliver them first.
            if !stopping || (outbox.delivered() && batch_rx.is_empty()) {
                return join_acting(acting);
            }
        } else if stopping && acting.is_none() {
            return Ok(()); // asked to stop before producing anything
        }
        let session = connect_and_register(&opts).await;
        let (mut client, reply) = match session {
            Ok(s) => s,
            Err(status) if retryable(&status) => {
                sleep_backoff(&mut backoff, opts.max_backoff, &status).await;
                continue;
            }
            Err(status) => anyhow::bail!("the learner refused this actor: {status}"),
        };
        backoff = Duration::from_millis(100);
        tracing::info!(actor_id = reply.actor_id, run = %reply.run_id, env = %reply.env_id, "registered");
        metrics::gauge!(actor::INFO, "actor" => reply.actor_id.to_string(), "run_id" => reply.run_id.clone(), "env" => reply.env_id.clone())
            .set(1.0);
        metrics::gauge!(actor::CONNECTED).set(1.0);

        // Anything the learner has stored is done; everything after it (unacknowledged, or acknowledged
        // but lost when the learner went back to an older checkpoint) is resent in order.
        if run_id.as_ref().is_some_and(|r| *r != reply.run_id) {
            tracing::warn!(old = ?run_id, new = %reply.run_id, "the learner runs a new run: unsent data of the old one is dropped");
            outbox = Outbox::new(opts.retain_bytes);
            next_sequence = 1;
        }
        run_id = Some(reply.run_id.clone());
        let stored = outbox.rewind(reply.last_sequence, &reply.run_id, reply.actor_id);
        shared.acked.fetch_add(stored, Ordering::Relaxed);
        metrics::counter!(actor::TRANSITIONS_ACKED_TOTAL).increment(stored);
        next_sequence = next_sequence.max(reply.last_sequence + 1);
        match &acting {
            Some((env_id, _)) if *env_id != reply.env_id => {
                anyhow::bail!(
                    "the learner now runs {} but this actor steps {env_id}; restart the actor",
                    reply.env_id
                )
            }
            Some(_) => {}
            None => {
                let cfg = EnvLoopConfig {
                    env_id: reply.env_id.clone(),
                    num_envs: opts.num_envs,
                    env_threads: opts.env_threads,
                    seed: reply.seed,
                    steps_per_batch: opts.steps_per_batch,
                    exploration_noise: reply.exploration_noise,
                    random_steps: reply.random_steps,
                };
                let (shared, tx) = (shared.clone(), batch_tx.take().expect("the acting thread starts once"));
                let handle = std::thread::Builder::new()
                    .name("acting".into())
                    .spawn(move || env_loop::run(cfg, shared, tx))?;
                acting = Some((reply.env_id.clone(), handle));
            }
        }

        let subscriber = tokio::spawn(subscribe(client.clone(), reply.clone(), shared.clone()));
        let result =
            stream(&mut client, &reply, &opts, &shared, &mut outbox, &mut batch_rx, &mut next_sequence).await;
        subscriber.abort();
        metrics::gauge!(actor::CONNECTED).set(0.0);
        match result {
            Ok(()) => return join_acting(acting),
            Err(status) if retryable(&status) => sleep_backoff(&mut backoff, opts.max_backoff, &status).await,
            Err(status) => anyhow::bail!("the learner rejected this actor's data: {status}"),
        }
    }
}

fn join_acting(acting: Option<(String, std::thread::JoinHandle<anyhow::Result<()>>)>) -> anyhow::Result<()> {
    let Some((_, handle)) = acting else { return Ok(()) };
    match handle.join() {
        Ok(result) => result.map_err(|e| e.context("the acting loop failed")),
        Err(_) => Err(anyhow::anyhow!("the acting thread panicked")),
    }
}

/// Stops the acting thread however `run` ends.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

async fn sleep_backoff(backoff: &mut Duration, max: Duration, why: &Status) {
    let jitter = rand::rng().random_range(0.5..1.5);
    let wait = backoff.mul_f64(jitter);
    tracing::warn!(error = %why.message(), code = ?why.code(), retry_in_ms = wait.as_millis() as u64, "learner unavailable");
    metrics::counter!(actor::RECONNECTS_TOTAL).increment(1);
    metrics::counter!(actor::GRPC_ERRORS_TOTAL, "code" => format!("{:?}", why.code())).increment(1);
    tokio::time::sleep(wait).await;
    *backoff = (*backoff * 2).min(max);
}

fn tls_config(tls: &ClientTls) -> Result<ClientTlsConfig, Status> {
    let read = |p: &std::path::PathBuf| {
        std::fs::read(p).map_err(|e| Status::invalid_argument(format!("reading {}: {e}", p.display())))
    };
    let mut cfg = ClientTlsConfig::new();
    if let Some(ca) = &tls.ca {
        cfg = cfg.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    if let Some((cert, key)) = &tls.identity {
        cfg = cfg.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    if let Some(domain) = &tls.domain {
        cfg = cfg.domain_name(domain.clone());
    }
    Ok(cfg)
}

/// Connects to `opts.learner` (TLS and token as configured) and registers as `opts.name`: the first step
/// of every session of [`run`]. Public so that `spikerl bench transport` measures this path, not a copy.
pub async fn connect_and_register(opts: &ActorOptions) -> Result<(Client, RegisterReply), Status> {
    let mut endpoint = Endpoint::from_shared(opts.learner.clone())
        .map_err(|e| Status::invalid_argument(format!("bad learner address '{}': {e}", opts.learner)))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20));
    if let Some(tls) = &opts.tls {
        endpoint = endpoint
            .tls_config(tls_config(tls)?)
            .map_err(|e| Status::invalid_argument(format!("TLS: {e}")))?;
    }
    let token = match &opts.auth_token {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse()
                .map_err(|_| Status::invalid_argument("the auth token must be printable ASCII"))?,
        ),
        None => None,
    };
    let channel = endpoint.connect().await.map_err(|e| Status::unavailable(format!("connect: {e}")))?;
    let mut client = LearnerClient::with_interceptor(channel, BearerToken(token))
        .max_decoding_message_size(opts.max_message_bytes)
        .max_encoding_message_size(opts.max_message_bytes);
    let reply = client
        .register(RegisterRequest {
            protocol_version: PROTOCOL_VERSION,
            actor_name: opts.name.clone(),
            num_envs: opts.num_envs as u32,
        })
        .await?
        .into_inner();
    Ok((client, reply))
}

/// Batches on their way to the learner: `queued` (to send, resends first), `in_flight` (sent, not
/// acknowledged) and `acked` (kept, up to a byte budget, in case the learner restarts from a checkpoint
/// older than their acknowledgement). Public so that `spikerl bench transport` drives [`stream`] with it.
pub struct Outbox {
    queued: VecDeque<TransitionBatch>,
    in_flight: VecDeque<TransitionBatch>,
    acked: VecDeque<TransitionBatch>,
    acked_bytes: usize,
    retain_bytes: usize,
    /// The highest sequence ever acknowledged: a batch resent after a learner went back to an older
    /// checkpoint is acknowledged again but counts in the ledger once.
    acked_through: u64,
    /// Send-to-acknowledgement times, kept only when `spikerl bench transport` asks (None in a real actor).
    timing: Option<AckTiming>,
}

/// When each in-flight batch was handed to the HTTP/2 stream, and the round trips of acknowledged ones.
#[derive(Default)]
struct AckTiming {
    sent: VecDeque<(u64, Instant)>,
    round_trips: Vec<Duration>,
}

impl Outbox {
    /// An empty outbox that keeps up to `retain_bytes` of acknowledged batches.
    pub fn new(retain_bytes: usize) -> Self {
        Outbox {
            queued: VecDeque::new(),
            in_flight: VecDeque::new(),
            acked: VecDeque::new(),
            acked_bytes: 0,
            retain_bytes,
            acked_through: 0,
            timing: None,
        }
    }

    /// Starts recording every batch's send-to-acknowledgement time (off in a real actor; `spikerl bench
    /// transport` reports them).
    pub fn time_acknowledgements(&mut self) {
        self.timing = Some(AckTiming::default());
    }

    /// The send-to-acknowledgement times recorded since [`Outbox::time_acknowledgements`], oldest first.
    pub fn round_trips(&self) -> &[Duration] {
        self.timing.as_ref().map_or(&[], |t| &t.round_trips)
    }

    fn size(b: &TransitionBatch) -> usize {
        4 * (b.obs.len() + b.actions.len() + b.rewards.len() + b.next_obs.len()) + 2 * b.terminated.len()
    }

    /// After (re)registration: everything newer than `last_stored` is queued again, in order.
    fn rewind(&mut self, last_stored: u64, run_id: &str, actor_id: u32) -> u64 {
        let mut all: Vec<TransitionBatch> =
            self.acked.drain(..).chain(self.in_flight.drain(..)).chain(self.queued.drain(..)).collect();
        self.acked_bytes = 0;
        if let Some(t) = &mut self.timing {
            t.sent.clear(); // resent batches are timed from their new send
        }
        all.sort_by_key(|b| b.sequence);
        let oldest_kept = all.first().map(|b| b.sequence);
        let stored_unacked: u64 = all
            .iter()
            .filter(|b| b.sequence > self.acked_through && b.sequence <= last_stored)
            .map(|b| u64::from(b.count))
            .sum();
        self.acked_through = self.acked_through.max(last_stored);
        all.retain(|b| b.sequence > last_stored);
        if let Some(oldest) = oldest_kept
            && oldest > last_stored + 1
            && last_stored > 0
        {
            let lost = oldest - last_stored - 1;
            tracing::warn!(
                lost_batches = lost,
                "the learner went back further than this actor retains; those batches are lost"
            );
            metrics::counter!(actor::LOST_BATCHES_TOTAL).increment(lost);
        }
        for mut b in all {
            b.run_id = run_id.to_string();
            b.actor_id = actor_id;
            self.queued.push_back(b);
        }
        stored_unacked
    }

    /// Applies a cumulative acknowledgement; returns the transitions it acknowledges for the first time.
    fn acknowledge(&mut self, sequence: u64) -> u64 {
        let mut first_time = 0;
        if let Some(t) = &mut self.timing {
            while t.sent.front().is_some_and(|(s, _)| *s <= sequence) {
                let (_, at) = t.sent.pop_front().expect("checked");
                t.round_trips.push(at.elapsed());
            }
        }
        while self.in_flight.front().is_some_and(|b| b.sequence <= sequence) {
            let b = self.in_flight.pop_front().expect("checked");
            if b.sequence > self.acked_through {
                first_time += u64::from(b.count);
            }
            self.acked_bytes += Self::size(&b);
            self.acked.push_back(b);
        }
        while self.acked_bytes > self.retain_bytes {
            let Some(b) = self.acked.pop_front() else { break };
            self.acked_bytes -= Self::size(&b);
        }
        self.acked_through = self.acked_through.max(sequence);
        first_time
    }

    /// Nothing left to send or to be acknowledged.
    fn delivered(&self) -> bool {
        self.queued.is_empty() && self.in_flight.is_empty()
    }
}

/// Sends batches (resent ones first) with at most `window` unacknowledged, and applies acks; returns
/// once `batches` has closed and everything taken from it is acknowledged. Public so that `spikerl bench
/// transport` measures the real streamer.
pub async fn stream(
    client: &mut Client,
    reply: &RegisterReply,
    opts: &ActorOptions,
    shared: &Shared,
    outbox: &mut Outbox,
    batches: &mut mpsc::Receiver<TransitionBatch>,
    next_sequence: &mut u64,
) -> Result<(), Status> {
    let window = opts.window.max(1);
    let (out_tx, out_rx) = mpsc::channel::<TransitionBatch>(window);
    let mut acks =
        client.stream_transitions(tokio_stream::wrappers::ReceiverStream::new(out_rx)).await?.into_inner();
    // The acting thread has stopped (its channel closed): deliver what is left, then return.
    let mut closed = batches.is_closed() && batches.is_empty();
    loop {
        if closed && outbox.delivered() {
            return Ok(());
        }
        // Resends go first; new batches are taken from the acting thread only when none are queued.
        while outbox.in_flight.len() < window {
            let Some(b) = outbox.queued.pop_front() else { break };
            if let Some(t) = &mut outbox.timing {
                t.sent.push_back((b.sequence, Instant::now()));
            }
            outbox.in_flight.push_back(b.clone());
            if out_tx.send(b).await.is_err() {
                return Err(Status::unavailable("the transition stream closed"));
            }
        }
        tokio::select! {
            next = batches.recv(), if !closed && outbox.in_flight.len() < window => {
                let Some(mut b) = next else {
                    closed = true;
                    continue;
                };
                b.run_id = reply.run_id.clone();
                b.actor_id = reply.actor_id;
                b.sequence = *next_sequence;
                *next_sequence += 1;
                outbox.queued.push_back(b);
            }
            ack = acks.next() => {
                let ack = match ack {
                    Some(Ok(ack)) => ack,
                    Some(Err(status)) => return Err(status),
                    None => return Err(Status::unavailable("the learner closed the transition stream")),
                };
                let acked = outbox.acknowledge(ack.sequence);
                shared.acked.fetch_add(acked, Ordering::Relaxed);
                metrics::counter!(actor::TRANSITIONS_ACKED_TOTAL).increment(acked);
                shared.learner_inserted.store(ack.total_inserted, Ordering::Relaxed);
            }
        }
    }
}

/// Receives policy versions and stores the valid ones for the acting thread. Public so that `spikerl bench
/// transport` measures the real subscriber.
pub async fn subscribe(mut client: Client, reply: RegisterReply, shared: Arc<Shared>) {
    let request = SubscribeRequest {
        run_id: reply.run_id.clone(),
        actor_id: reply.actor_id,
        have_version: shared.policy.version(),
    };
    let mut updates = match client.subscribe_policy(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            tracing::warn!(%status, "policy subscription failed");
            return;
        }
    };
    while let Some(update) = updates.next().await {
        let update = match update {
            Ok(u) => u,
            Err(status) => {
                tracing::warn!(%status, "policy stream ended");
                return;
            }
        };
        match spikerl_snn::decode_policy(&update.weights) {
            Ok((cfg, tensors, _))
                if cfg.obs_dim == reply.obs_dim as usize && cfg.act_dim == reply.act_dim as usize =>
            {
                if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
                    let latency = (now.as_nanos() as i64 - update.published_unix_nanos).max(0) as f64 * 1e-9;
                    metrics::histogram!(actor::BROADCAST_LATENCY_SECONDS).record(latency);
                }
                shared.policy.store(update.version, cfg, tensors);
            }
            Ok((cfg, _, _)) => tracing::error!(
                obs = cfg.obs_dim,
                act = cfg.act_dim,
                "policy shapes do not match the run's spaces; ignored"
            ),
            Err(e) => {
                tracing::error!(error = %e, version = update.version, "undecodable policy weights ignored")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(sequence: u64) -> TransitionBatch {
        TransitionBatch { sequence, rewards: vec![0.0; 10], obs: vec![0.0; 30], ..Default::default() }
    }

    fn seqs(q: &VecDeque<TransitionBatch>) -> Vec<u64> {
        q.iter().map(|b| b.sequence).collect()
    }

    #[test]
    fn rewind_resends_everything_after_the_learners_last_stored_batch() {
        let mut o = Outbox::new(1 << 20);
        for s in 1..=5 {
            o.in_flight.push_back(batch(s));
        }
        o.acknowledge(3);
        assert_eq!(seqs(&o.acked), vec![1, 2, 3]);
        assert_eq!(seqs(&o.in_flight), vec![4, 5]);
        // The learner restarted from a checkpoint that had stored up to batch 2.
        o.rewind(2, "run", 7);
        assert_eq!(seqs(&o.queued), vec![3, 4, 5], "acked-but-lost and unacked batches are resent, in order");
        assert!(o.queued.iter().all(|b| b.actor_id == 7 && b.run_id == "run"));
        assert!(o.in_flight.is_empty() && o.acked.is_empty());
    }

    #[test]
    fn ack_timing_records_one_round_trip_per_acknowledged_batch() {
        let mut o = Outbox::new(1 << 20);
        o.timing = Some(AckTiming::default());
        for s in 1..=3 {
            o.timing.as_mut().unwrap().sent.push_back((s, Instant::now()));
            o.in_flight.push_back(batch(s));
        }
        o.acknowledge(2);
        assert_eq!(
            o.timing.as_ref().unwrap().round_trips.len(),
            2,
            "a cumulative ack times every batch it covers"
        );
        o.rewind(2, "run", 0);
        assert!(o.timing.as_ref().unwrap().sent.is_empty(), "a resend is timed from its new send");
        o.acknowledge(3);
        assert_eq!(o.timing.as_ref().unwrap().round_trips.len(), 2);
        let mut plain = Outbox::new(1 << 20);
        plain.in_flight.push_back(batch(1));
        plain.acknowledge(1);
        assert!(plain.timing.is_none(), "a real actor keeps no timings");
    }

    #[test]
    fn the_ledger_counts_each_acknowledged_transition_once() {
        let mut o = Outbox::new(1 << 20);
        for s in 1..=3 {
            o.in_flight.push_back(TransitionBatch { count: 10, ..batch(s) });
        }
        assert_eq!(o.acknowledge(2), 20);
        // The learner went back to a checkpoint holding batch 1 only: 2 and 3 are resent.
        o.rewind(1, "run", 0);
        o.in_flight.extend(o.queued.drain(..));
        assert_eq!(o.acknowledge(3), 10, "batch 2 was acknowledged before, batch 3 is new");
        assert!(o.delivered());
    }

    #[test]
    fn batches_stored_while_their_acks_were_lost_count_as_acknowledged_once() {
        let mut o = Outbox::new(1 << 20);
        for s in 1..=4 {
            o.in_flight.push_back(TransitionBatch { count: 10, ..batch(s) });
        }
        assert_eq!(o.acknowledge(1), 10);
        // A partition ate the acks of 2 and 3, which the learner stored; it says so at re-registration.
        assert_eq!(o.rewind(3, "run", 0), 20, "batches 2 and 3 are acknowledged by the registration");
        assert_eq!(seqs(&o.queued), vec![4]);
        o.in_flight.extend(o.queued.drain(..));
        assert_eq!(o.acknowledge(4), 10, "then only batch 4 is new");
        assert_eq!(o.rewind(4, "run", 0), 0, "a second registration acknowledges nothing again");
    }

    #[test]
    fn retention_is_bounded_by_bytes() {
        let size = Outbox::size(&batch(1));
        let mut o = Outbox::new(3 * size);
        for s in 1..=10 {
            o.in_flight.push_back(batch(s));
        }
        o.acknowledge(10);
        assert_eq!(seqs(&o.acked), vec![8, 9, 10], "only the newest batches within the budget are kept");
        o.rewind(5, "run", 0);
        assert_eq!(seqs(&o.queued), vec![8, 9, 10], "batches 6 and 7 are reported lost");
    }
}
