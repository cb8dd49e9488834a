//! (b) Broadcast: M subscribers receive a new weight version every 100 ms (the learner's publish
//! interval); the latency is the actor's own histogram, publish to the decoded, validated version held.

use super::Loopback;
use super::actor_side::subscriber;
use super::learner_side::{self as learner, Limiter};
use crate::bench::measure::{percentile_ms, sorted};
use serde::Serialize;
use spikerl_algo::Algo;
use spikerl_snn::NeuronKind;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
pub struct BroadcastFigures {
    pub subscribers: usize,
    pub network: String,
    pub parameters: usize,
    pub versions: usize,
    /// (version, subscriber) pairs received; subscribers x versions when none skipped a version.
    pub received: usize,
    pub expected: usize,
    /// Weight file per update (safetensors + metadata) and over all subscribers.
    pub bytes_per_update: usize,
    pub bytes_per_broadcast: usize,
    /// Encoding the weights (before the publish time stamp).
    pub encode_ms_mean: f64,
    /// Publish (watch send) to the subscriber holding the decoded, validated version.
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
}

/// Records the values of one histogram (the actor's `spikerl_actor_broadcast_latency_seconds`, recorded
/// just before a received version is stored) and ignores every other metric.
struct Capture {
    name: &'static str,
    values: Arc<Mutex<Vec<f64>>>,
}

struct Sink(Arc<Mutex<Vec<f64>>>);

impl metrics::HistogramFn for Sink {
    fn record(&self, value: f64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(value);
    }
}

impl metrics::Recorder for Capture {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        if key.name() == self.name {
            metrics::Histogram::from_arc(Arc::new(Sink(self.values.clone())))
        } else {
            metrics::Histogram::noop()
        }
    }
}

/// Installs the process's metrics recorder, which keeps the values of the actor's broadcast latency
/// histogram in the returned vector (seconds).
pub fn capture_latencies() -> anyhow::Result<Arc<Mutex<Vec<f64>>>> {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    metrics::set_global_recorder(Capture {
        name: "spikerl_actor_broadcast_latency_seconds",
        values: latencies.clone(),
    })
    .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed in this process"))?;
    Ok(latencies)
}

pub fn measure(lo: &Loopback<'_>, latencies: &Mutex<Vec<f64>>) -> anyhow::Result<BroadcastFigures> {
    let o = lo.o;
    let mut trainer = learner::trainer(&o.env, Algo::Proxy, NeuronKind::Lif, 1_000, Limiter::IngestOnly)?;
    let parameters = trainer.learner.export_policy().values().map(|t| t.data.len()).sum();
    let server = lo.learner_rt.block_on(learner::Server::start(&trainer, o.server_nodelay))?;
    let url = server.url();
    let subs = lo.client_rt.block_on(async {
        let mut subs = Vec::new();
        for i in 0..o.subscribers {
            subs.push(subscriber(url.clone(), format!("sub-{i}")).await?);
        }
        anyhow::Ok(subs)
    })?;
    let all_hold = |v: u64| subs.iter().all(|(s, _)| s.policy.version() == Some(v));
    let wait_all = |v: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !all_hold(v) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // A first version warms every stream up; it is not counted.
    let first = learner::publish_next(&mut trainer, &server.policy)?;
    wait_all(first.version);
    latencies.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let mut published = Vec::new();
    let started = Instant::now();
    while started.elapsed() < lo.duration {
        published.push(learner::publish_next(&mut trainer, &server.policy)?);
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = published.last().map_or(first.version, |p| p.version);
    wait_all(last);
    let values = sorted(std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner())));
    for (_, task) in &subs {
        task.abort();
    }
    lo.learner_rt.block_on(server.shutdown());
    let bytes = published.first().map_or(first.bytes, |p| p.bytes);
    Ok(BroadcastFigures {
        subscribers: o.subscribers,
        network: format!("PT-LIF actor ({} -> 256 -> 256 -> {}, T=5)", lo.obs_dim * 10, lo.act_dim * 10),
        parameters,
        versions: published.len(),
        received: values.len(),
        expected: published.len() * o.subscribers,
        bytes_per_update: bytes,
        bytes_per_broadcast: bytes * o.subscribers,
        encode_ms_mean: 1e3 * published.iter().map(|p| p.encode_seconds).sum::<f64>()
            / published.len().max(1) as f64,
        latency_ms_p50: percentile_ms(&values, 50.0),
        latency_ms_p99: percentile_ms(&values, 99.0),
        latency_ms_max: percentile_ms(&values, 100.0),
    })
}
