//! (a) Ingest: N actor streams push synthetic batches as fast as acknowledgements allow; no training.

use super::Loopback;
use super::actor_side::{ingest_client, synthetic_batch};
use super::learner_side::{self as learner, Limiter};
use crate::bench::measure::{percentile_ms, sorted, thread_cpu_seconds};
use serde::Serialize;
use spikerl_algo::Algo;
use spikerl_snn::NeuronKind;

#[derive(Debug, Serialize)]
pub struct IngestFigures {
    pub actors: usize,
    pub transitions_per_batch: usize,
    pub seconds: f64,
    pub transitions: u64,
    pub transitions_per_second: f64,
    pub batches: usize,
    /// Send (handed to the HTTP/2 stream) to acknowledgement, per batch; the actor keeps up to 4 in flight.
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    /// CPU seconds of the learner's runtime threads (gRPC, decode, validate, insert) and of the actor
    /// clients' runtime over the window, and the learner's CPU per transition: what bounds the rate on a
    /// machine whose cores are shared.
    pub learner_cpu_seconds: f64,
    pub clients_cpu_seconds: f64,
    pub learner_cpu_us_per_transition: f64,
}

pub fn measure(lo: &Loopback<'_>) -> anyhow::Result<IngestFigures> {
    let o = lo.o;
    let trainer = learner::trainer(&o.env, Algo::Proxy, NeuronKind::Lif, 1_000_000, Limiter::IngestOnly)?;
    let server = lo.learner_rt.block_on(learner::Server::start(&trainer, o.server_nodelay))?;
    let url = server.url();
    let cpu0 = (thread_cpu_seconds("learner-rt"), thread_cpu_seconds("actor-rt"));
    let reports = lo.client_rt.block_on(async {
        let tasks: Vec<_> = (0..o.ingest_actors)
            .map(|i| {
                let b = synthetic_batch(o.batch, lo.obs_dim, lo.act_dim, i as u32);
                tokio::spawn(ingest_client(url.clone(), format!("ingest-{i}"), b, None, lo.duration))
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await??);
        }
        anyhow::Ok(out)
    })?;
    let cpu = (thread_cpu_seconds("learner-rt") - cpu0.0, thread_cpu_seconds("actor-rt") - cpu0.1);
    lo.learner_rt.block_on(server.shutdown());
    let transitions: u64 = reports.iter().map(|r| r.acked_transitions).sum();
    let secs = reports.iter().map(|r| r.seconds).fold(0.0, f64::max);
    let lat = sorted(reports.iter().flat_map(|r| r.round_trips_s.iter().copied()).collect());
    Ok(IngestFigures {
        actors: o.ingest_actors,
        transitions_per_batch: o.batch,
        seconds: secs,
        transitions,
        transitions_per_second: transitions as f64 / secs,
        batches: lat.len(),
        latency_ms_p50: percentile_ms(&lat, 50.0),
        latency_ms_p99: percentile_ms(&lat, 99.0),
        latency_ms_max: percentile_ms(&lat, 100.0),
        learner_cpu_seconds: cpu.0,
        clients_cpu_seconds: cpu.1,
        learner_cpu_us_per_transition: cpu.0 * 1e6 / transitions.max(1) as f64,
    })
}
