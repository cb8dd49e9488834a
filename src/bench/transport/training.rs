//! (c) Training: iterations/s with no actor connected (before and after), and while `train_actors`
//! actors stream at the offered rate and receive every broadcast; with the CPU time of the training
//! thread, the learner's runtime and the actor clients, which tell load from interference.

use super::actor_side::{ingest_client, subscriber, synthetic_batch};
use super::learner_side::{self as learner, Limiter, TrainWindow};
use super::{Loopback, OfferedRate};
use crate::bench::measure::{own_thread_cpu_seconds, thread_cpu_seconds};
use serde::Serialize;
use spikerl_algo::Algo;
use spikerl_snn::NeuronKind;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[derive(Debug, Serialize)]
pub struct TrainingFigures {
    pub algo: String,
    pub threads: usize,
    /// Iterations/s with no actor connected, before and after the ingest window.
    pub iterations_per_second_idle_before: f64,
    pub iterations_per_second_idle_after: f64,
    /// Iterations/s while `actors` streams ingest and as many subscribers receive the weights.
    pub iterations_per_second_ingesting: f64,
    pub actors: usize,
    /// Transitions/s offered (the rate asked for) and acknowledged during the window.
    pub ingest_rate_offered: f64,
    pub ingest_rate_achieved: f64,
    /// Where the offered rate comes from.
    pub ingest_rate_source: String,
    /// Change of iterations/s against the mean of the two idle windows (negative: slower).
    pub change: f64,
    /// Cores the learner's runtime threads (ingest + broadcast) used during the ingest window.
    pub learner_runtime_cores_ingesting: f64,
    /// Cores the in-process actor clients (streaming, and decoding every broadcast) used meanwhile: on
    /// this one machine they compete with training, as separate actor machines would not.
    pub actor_clients_cores_ingesting: f64,
    /// The training thread's CPU time per iteration and its share of a core (CPU / wall seconds), idle
    /// (both idle windows) and while ingesting. The same CPU per iteration with a smaller share means the
    /// thread was waiting for a core (the machine is shared), not slowed by ingest's locks or caches.
    pub training_cpu_ms_per_iteration_idle: f64,
    pub training_cpu_ms_per_iteration_ingesting: f64,
    pub training_core_share_idle: f64,
    pub training_core_share_ingesting: f64,
}

pub fn measure(lo: &Loopback<'_>, offered: &OfferedRate) -> anyhow::Result<TrainingFigures> {
    let o = lo.o;
    let mut trainer = learner::trainer(&o.env, Algo::Proxy, NeuronKind::Lif, 1_000_000, Limiter::Free)?;
    learner::prefill(&trainer.replay, lo.obs_dim, lo.act_dim, 100_000)?;
    let server = lo.learner_rt.block_on(learner::Server::start(&trainer, o.server_nodelay))?;
    let stop = AtomicBool::new(false);
    let mut run = Training { trainer: &mut trainer, server: &server, stop: &stop };
    // Warm-up (first iterations allocate), then an idle window.
    learner::train_for(run.trainer, Duration::from_secs(1), Some(&server.policy), &stop)?;
    let idle_before = run.window(lo.duration)?;
    let ingesting = run.while_ingesting(lo, offered)?;
    let idle_after = run.window(lo.duration)?;
    lo.learner_rt.block_on(server.shutdown());
    Ok(figures(o, offered, idle_before, &ingesting, idle_after))
}

/// The trainer whose iterations are counted, and the server it publishes through.
struct Training<'a> {
    trainer: &'a mut spikerl_learner::training::trainer::Trainer,
    server: &'a learner::Server,
    stop: &'a AtomicBool,
}

/// A training window and the training thread's CPU seconds in it.
#[derive(Clone, Copy)]
struct CpuWindow {
    window: TrainWindow,
    cpu_seconds: f64,
}

/// The window with actors connected, and what the rest of the process used meanwhile.
struct IngestingWindow {
    training: CpuWindow,
    /// Cores the learner's runtime threads and the actor clients' used over the window.
    runtime_cores: f64,
    client_cores: f64,
    /// Transitions/s the learner acknowledged, over all actors.
    achieved_rate: f64,
}

impl Training<'_> {
    /// Trains for `duration` on this thread, publishing as the learner does.
    fn window(&mut self, duration: Duration) -> anyhow::Result<CpuWindow> {
        let c0 = own_thread_cpu_seconds();
        let window = learner::train_for(self.trainer, duration, Some(&self.server.policy), self.stop)?;
        Ok(CpuWindow { window, cpu_seconds: own_thread_cpu_seconds() - c0 })
    }

    /// A training window while `train_actors` actors stream at the offered rate and subscribe to the
    /// weights; they connect first and stream a little longer than the window on both sides.
    fn while_ingesting(
        &mut self,
        lo: &Loopback<'_>,
        offered: &OfferedRate,
    ) -> anyhow::Result<IngestingWindow> {
        let o = lo.o;
        let url = self.server.url();
        let per_actor = offered.transitions_per_second / o.train_actors as f64;
        let lead = Duration::from_millis(500);
        let subs = lo.client_rt.block_on(async {
            let mut subs = Vec::new();
            for i in 0..o.train_actors {
                subs.push(subscriber(url.clone(), format!("train-sub-{i}")).await?);
            }
            anyhow::Ok(subs)
        })?;
        let clients: Vec<_> = (0..o.train_actors)
            .map(|i| {
                let b = synthetic_batch(o.batch, lo.obs_dim, lo.act_dim, i as u32);
                let d = lo.duration + 2 * lead;
                lo.client_rt.spawn(ingest_client(url.clone(), format!("train-{i}"), b, Some(per_actor), d))
            })
            .collect();
        std::thread::sleep(lead);
        let cpu0 = thread_cpu_seconds("learner-rt");
        let clients0 = thread_cpu_seconds("actor-rt");
        let training = self.window(lo.duration)?;
        let seconds = training.window.seconds;
        let runtime_cores = (thread_cpu_seconds("learner-rt") - cpu0) / seconds;
        let client_cores = (thread_cpu_seconds("actor-rt") - clients0) / seconds;
        let reports = lo.client_rt.block_on(async {
            let mut out = Vec::new();
            for c in clients {
                out.push(c.await??);
            }
            anyhow::Ok(out)
        })?;
        for (_, task) in &subs {
            task.abort();
        }
        let achieved_rate = reports.iter().map(|r| r.acked_transitions as f64 / r.seconds).sum::<f64>();
        Ok(IngestingWindow { training, runtime_cores, client_cores, achieved_rate })
    }
}

fn figures(
    o: &super::TransportOptions,
    offered: &OfferedRate,
    idle_before: CpuWindow,
    ingesting: &IngestingWindow,
    idle_after: CpuWindow,
) -> TrainingFigures {
    let (before, during, after) = (idle_before.window, ingesting.training.window, idle_after.window);
    let (cpu_idle_before, cpu_ingesting, cpu_idle_after) =
        (idle_before.cpu_seconds, ingesting.training.cpu_seconds, idle_after.cpu_seconds);
    let idle_iterations = (before.iterations + after.iterations).max(1) as f64;
    let idle_seconds = before.seconds + after.seconds;
    let rate = |w: TrainWindow| w.iterations as f64 / w.seconds;
    let idle = (rate(before) + rate(after)) / 2.0;
    TrainingFigures {
        algo: "proxy-lif".into(),
        threads: o.threads,
        iterations_per_second_idle_before: rate(before),
        iterations_per_second_idle_after: rate(after),
        iterations_per_second_ingesting: rate(during),
        actors: o.train_actors,
        ingest_rate_offered: offered.transitions_per_second,
        ingest_rate_achieved: ingesting.achieved_rate,
        ingest_rate_source: offered.source.clone(),
        change: rate(during) / idle - 1.0,
        learner_runtime_cores_ingesting: ingesting.runtime_cores,
        actor_clients_cores_ingesting: ingesting.client_cores,
        training_cpu_ms_per_iteration_idle: 1e3 * (cpu_idle_before + cpu_idle_after) / idle_iterations,
        training_cpu_ms_per_iteration_ingesting: 1e3 * cpu_ingesting / during.iterations.max(1) as f64,
        training_core_share_idle: (cpu_idle_before + cpu_idle_after) / idle_seconds,
        training_core_share_ingesting: cpu_ingesting / during.seconds,
    }
}
