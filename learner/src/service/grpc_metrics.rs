//! The gRPC service's metrics: series initialised when the service starts, per-actor series created at
//! registration, the connected actors' policy lag, and a server wrapper that counts calls, codes and
//! durations per method. Every name is defined in docs/metrics.md; label values are bounded (method
//! names from a fixed list, gRPC codes, actor ids).

use crate::service::rejection::Rejection;
use spikerl_metrics::{grpc, learner};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::codegen::http;

/// gRPC methods the learner serves; any other path is counted as "other".
pub const GRPC_METHODS: [&str; 3] = ["Register", "StreamTransitions", "SubscribePolicy"];

/// Initialises the series of the gRPC service that dashboards and alerts read, before any actor connects.
/// Histograms are registered empty (`_count` 0): a dashboard's rate or quantile then reads 0 or nothing
/// rather than a missing series.
pub fn service_started() {
    metrics::gauge!(learner::CONNECTED_ACTORS).set(0.0);
    // No actor connected yet: no lag to report (NaN, not a misleading 0).
    metrics::gauge!(learner::POLICY_LAG).set(f64::NAN);
    let _ = metrics::histogram!(learner::BATCH_POLICY_LAG);
    let _ = metrics::histogram!(learner::INSERT_WAIT_SECONDS);
    // No actor has reported an episode yet.
    metrics::gauge!(learner::EPISODE_RETURN_LAST).set(f64::NAN);
    metrics::gauge!(learner::EPISODE_LENGTH_LAST).set(f64::NAN);
    metrics::counter!(learner::DUPLICATE_BATCHES_TOTAL).increment(0);
    metrics::counter!(learner::UNAUTHENTICATED_REQUESTS_TOTAL).increment(0);
    for reason in Rejection::ALL_LABELS {
        metrics::counter!(learner::TRANSITIONS_REJECTED_TOTAL, "reason" => reason).increment(0);
    }
    for method in GRPC_METHODS {
        metrics::counter!(grpc::SERVER_STARTED_TOTAL, "method" => method).increment(0);
        metrics::counter!(grpc::SERVER_HANDLED_TOTAL, "method" => method, "code" => "Ok").increment(0);
        let _ = metrics::histogram!(grpc::SERVER_HANDLING_SECONDS, "method" => method);
        metrics::gauge!(grpc::SERVER_IN_FLIGHT, "method" => method).set(0.0);
    }
}

/// A resumed learner's known actor: its insert count continues from the checkpoint's ledger.
pub fn actor_known(actor_id: u32, inserted: u64) {
    metrics::counter!(learner::TRANSITIONS_INSERTED_TOTAL, "actor" => actor_id.to_string())
        .absolute(inserted);
}

/// Creates an actor's per-actor series when it registers, so they exist before its first batch.
pub fn actor_registered(actor_id: u32) {
    let actor = actor_id.to_string();
    metrics::counter!(learner::TRANSITIONS_RECEIVED_TOTAL, "actor" => actor.clone()).increment(0);
    metrics::counter!(learner::TRANSITIONS_INSERTED_TOTAL, "actor" => actor.clone()).increment(0);
    metrics::counter!(learner::EPISODES_TOTAL, "actor" => actor).increment(0);
}

/// The policy lag of the connected actors, exported without an actor label: a per-actor gauge would
/// keep an actor's last value after it leaves (a gauge series only ends when the exporter stops
/// writing it), and actor ids are not bounded over a long run. Instead the learner exports
/// `spikerl_learner_policy_lag`, the largest lag among the transition streams open now (recomputed when
/// one closes; NaN with none), and `spikerl_learner_batch_policy_lag`, a histogram over stored batches.
/// Per-actor lag is computed in PromQL from the actor's own `spikerl_actor_policy_version`, whose series
/// ends with the actor.
#[derive(Default)]
pub struct PolicyLag {
    /// Latest lag per open transition stream (keyed by stream, not actor: a reconnecting actor can
    /// briefly hold two streams).
    streams: std::sync::Mutex<HashMap<u64, u64>>,
    next_stream: std::sync::atomic::AtomicU64,
}

impl PolicyLag {
    /// Registers an open transition stream; it leaves the maximum when the handle is dropped.
    pub fn open_stream(self: &Arc<Self>) -> LagStream {
        let id = self.next_stream.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        LagStream { lag: self.clone(), id }
    }

    /// The largest latest lag among open streams that have stored a batch.
    pub fn max(&self) -> Option<u64> {
        self.lock().values().copied().max()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the gauge while the map is locked, so the last value written is the current maximum.
    fn update(&self, change: impl FnOnce(&mut HashMap<u64, u64>)) {
        let mut streams = self.lock();
        change(&mut streams);
        let max = streams.values().copied().max().map_or(f64::NAN, |m| m as f64);
        metrics::gauge!(learner::POLICY_LAG).set(max);
    }
}

/// One transition stream's entry in `PolicyLag`.
pub struct LagStream {
    lag: Arc<PolicyLag>,
    id: u64,
}

impl LagStream {
    /// Records the lag of a stored batch: newest published version minus the version that acted.
    pub fn record(&self, lag: u64) {
        metrics::histogram!(learner::BATCH_POLICY_LAG).record(lag as f64);
        self.lag.update(|s| {
            s.insert(self.id, lag);
        });
    }
}

impl Drop for LagStream {
    fn drop(&mut self) {
        self.lag.update(|s| {
            s.remove(&self.id);
        });
    }
}

/// Wraps the learner's gRPC service: `spikerl_grpc_server_started_total{method}`,
/// `spikerl_grpc_server_handled_total{method,code}`, `spikerl_grpc_server_handling_seconds{method}` (until
/// the call completes: a stream's whole lifetime) and `spikerl_grpc_server_in_flight{method}`.
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S> GrpcMetrics<S> {
    pub fn new(inner: S) -> Self {
        GrpcMetrics { inner }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for GrpcMetrics<S> {
    const NAME: &'static str = S::NAME;
}

fn method_label(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or("");
    GRPC_METHODS.iter().find(|m| **m == name).copied().unwrap_or("other")
}

fn code_label(value: Option<&http::HeaderValue>) -> Option<&'static str> {
    let n: usize = value?.to_str().ok()?.trim().parse().ok()?;
    Some(spikerl_proto::GRPC_CODE_NAMES.get(n).copied().unwrap_or("Unknown"))
}

impl<S, ReqBody, ResBody> tonic::codegen::Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: tonic::codegen::Service<
            http::Request<ReqBody>,
            Response = http::Response<ResBody>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body + Send + 'static,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let method = method_label(req.uri().path());
        metrics::counter!(grpc::SERVER_STARTED_TOTAL, "method" => method).increment(1);
        metrics::gauge!(grpc::SERVER_IN_FLIGHT, "method" => method).increment(1.0);
        let call = Call { method, started: Instant::now(), code: None };
        // The service that was polled ready handles this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(req).await?;
            let (parts, body) = response.into_parts();
            // A trailers-only response (an error before any message) carries its status in the headers.
            let code = code_label(parts.headers.get("grpc-status"));
            let body = MeteredBody { inner: Box::pin(body), call: Some(Call { code, ..call }) };
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

struct Call {
    method: &'static str,
    started: Instant,
    code: Option<&'static str>,
}

impl Call {
    fn finish(self, fallback: &'static str) {
        let code = self.code.unwrap_or(fallback);
        metrics::counter!(grpc::SERVER_HANDLED_TOTAL, "method" => self.method, "code" => code).increment(1);
        metrics::histogram!(grpc::SERVER_HANDLING_SECONDS, "method" => self.method)
            .record(self.started.elapsed().as_secs_f64());
        metrics::gauge!(grpc::SERVER_IN_FLIGHT, "method" => self.method).decrement(1.0);
    }
}

/// A response body that records its call when the status trailers pass or the body ends or is dropped
/// (dropped early: the client went away, counted as Cancelled).
pub struct MeteredBody<B> {
    inner: Pin<Box<B>>,
    call: Option<Call>,
}

impl<B: http_body::Body> http_body::Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(|t| code_label(t.get("grpc-status")))
                    && let Some(call) = this.call.as_mut()
                {
                    call.code = Some(code);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = this.call.take() {
                    call.finish("Unknown");
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = this.call.take() {
                    call.finish("Ok");
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish("Cancelled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_lag_counts_only_open_streams() {
        let lag = Arc::new(PolicyLag::default());
        let a = lag.open_stream();
        let b = lag.open_stream();
        assert_eq!(lag.max(), None, "no batch stored yet");
        a.record(7);
        b.record(2);
        assert_eq!(lag.max(), Some(7));
        a.record(1);
        assert_eq!(lag.max(), Some(2), "a stream's latest batch replaces its earlier lag");
        a.record(9);
        drop(a);
        assert_eq!(lag.max(), Some(2), "a closed stream's lag is gone");
        drop(b);
        assert_eq!(lag.max(), None);
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label("/spikerl.Learner/Register"), "Register");
        assert_eq!(method_label("/spikerl.Learner/StreamTransitions"), "StreamTransitions");
        assert_eq!(method_label("/evil/AnythingElse"), "other");
        assert_eq!(method_label(""), "other");
        assert_eq!(code_label(Some(&http::HeaderValue::from_static("0"))), Some("Ok"));
        assert_eq!(code_label(Some(&http::HeaderValue::from_static("14"))), Some("Unavailable"));
        assert_eq!(code_label(Some(&http::HeaderValue::from_static("99"))), Some("Unknown"));
        assert_eq!(code_label(Some(&http::HeaderValue::from_static("x"))), None);
        assert_eq!(code_label(None), None);
    }
}
