//! `spikerl bench inference`: plain-Rust inference of the paper's network per action (the actors' hot
//! path), with its spike operations and energy.

use super::policies::trained_weights;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use spikerl_algo::{Algo, RunConfig};
use spikerl_learner::training::trainer::max_action;
use spikerl_snn::{NeuronKind, Policy};
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct InferenceBench {
    pub env: String,
    pub network: String,
    /// The trained weights measured (`--policy`); none: initial weights.
    pub policy: Option<String>,
    pub batch: usize,
    pub actions: usize,
    pub us_per_action: f64,
    pub actions_per_second: f64,
    pub sops_per_inference: f64,
    pub firing_rate: f64,
    pub energy_nj_per_inference: f64,
    pub ann_equivalent_energy_nj: f64,
}

/// Plain-Rust inference of the paper's network (random initial weights, or trained ones from
/// `policy_file`; random observations in the typical range), one core.
pub fn inference(
    env: &str,
    algo: Algo,
    neuron: NeuronKind,
    batch: usize,
    actions: usize,
    policy_file: Option<&std::path::Path>,
) -> anyhow::Result<InferenceBench> {
    let spec = spikerl_envs::spec(env)?;
    let cfg =
        RunConfig::paper(env, algo, neuron, 0).policy_config(spec.obs_dim, spec.act_dim, max_action(&spec)?);
    let weights = match policy_file {
        Some(p) => trained_weights(p, &cfg)?,
        None => spikerl_snn::initial_tensors(&cfg, 0)?,
    };
    let mut policy = Policy::new(&cfg, &weights)?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let obs: Vec<f32> = (0..batch * spec.obs_dim * 16).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut out = vec![0f32; batch * spec.act_dim];
    let chunk = batch * spec.obs_dim;
    let rounds = (actions / batch).max(1);
    for i in 0..rounds.min(100) {
        let o = &obs[(i % 16) * chunk..(i % 16 + 1) * chunk];
        policy.act_batch(o, &mut out);
    }
    policy.reset_stats();
    let started = Instant::now();
    for i in 0..rounds {
        let o = &obs[(i % 16) * chunk..(i % 16 + 1) * chunk];
        policy.act_batch(o, &mut out);
    }
    let secs = started.elapsed().as_secs_f64();
    let n = rounds * batch;
    let stats = policy.stats();
    Ok(InferenceBench {
        env: env.to_string(),
        network: if algo == Algo::Ann { "ann".into() } else { format!("snn-{neuron}") },
        policy: policy_file.map(|p| p.display().to_string()),
        batch,
        actions: n,
        us_per_action: secs * 1e6 / n as f64,
        actions_per_second: n as f64 / secs,
        sops_per_inference: stats.sops_per_inference(),
        firing_rate: stats.firing_rate(),
        energy_nj_per_inference: stats.energy_nj_per_inference(),
        ann_equivalent_energy_nj: spikerl_snn::ann_equivalent_macs(&cfg) as f64 * 3.97e-3,
    })
}

pub fn print(r: &InferenceBench) {
    println!(
        "{} {} batch {}: {:.2} us/action ({:.0} actions/s), {:.0} SOPs, firing {:.1}%, {:.2} nJ (ANN equivalent {:.1} nJ)",
        r.env,
        r.network,
        r.batch,
        r.us_per_action,
        r.actions_per_second,
        r.sops_per_inference,
        100.0 * r.firing_rate,
        r.energy_nj_per_inference,
        r.ann_equivalent_energy_nj
    );
}
