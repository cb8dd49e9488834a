//! Micro-benchmarks behind `spikerl bench` (figures, not pass/fail): one training iteration per
//! algorithm with its phases, and plain-Rust inference per action. Synthetic minibatches of the
//! environment's shapes, so the numbers measure the learner alone.

use crate::config::{Algo, RunConfig};
use crate::lockstep::max_action;
use crate::td3::{Batch, Td3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use spikerl_snn::{NeuronKind, Policy};
use std::time::Instant;
use tch::{Device, Tensor};

#[derive(Debug, Serialize)]
pub struct UpdateBench {
    pub env: String,
    pub algo: String,
    pub neuron: String,
    pub device: String,
    pub batch: usize,
    pub threads: i32,
    pub iterations: usize,
    /// One full training iteration (proxy steps, critic, and the delayed actor every other iteration).
    pub ms_per_iteration: f64,
    pub iterations_per_second: f64,
    /// Phases, each timed alone over the same number of repetitions.
    pub ms_proxy_step: Option<f64>,
    pub ms_snn_forward_no_grad: f64,
    pub ms_sample_to_tensors: f64,
}

fn random_batch(rng: &mut ChaCha8Rng, n: usize, od: usize, ad: usize, device: Device) -> Batch {
    let mut v = |len: usize, scale: f32| -> Tensor {
        let data: Vec<f32> = (0..len).map(|_| rng.random_range(-scale..scale)).collect();
        Tensor::from_slice(&data).to_device(device)
    };
    let (n64, od64, ad64) = (n as i64, od as i64, ad as i64);
    Batch {
        obs: v(n * od, 2.0).view([n64, od64]),
        actions: v(n * ad, 1.0).view([n64, ad64]),
        rewards: v(n, 1.0).view([n64, 1]),
        next_obs: v(n * od, 2.0).view([n64, od64]),
        not_done: Tensor::ones([n64, 1], (tch::Kind::Float, device)),
    }
}

fn time_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..reps {
        f();
    }
    started.elapsed().as_secs_f64() * 1e3 / reps as f64
}

pub fn update(env: &str, algo: Algo, neuron: NeuronKind, batch: usize, device: Device, iterations: usize) -> anyhow::Result<UpdateBench> {
    let spec = spikerl_envs::spec(env)?;
    let mut cfg = RunConfig::paper(env, algo, neuron, 0);
    cfg.td3.batch_size = batch;
    let policy = cfg.policy_config(spec.obs_dim, spec.act_dim, max_action(&spec)?);
    tch::manual_seed(0);
    let mut td3 = Td3::new(&cfg, policy, device, 0);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (od, ad) = (spec.obs_dim, spec.act_dim);
    let pool: Vec<Batch> = (0..8).map(|_| random_batch(&mut rng, batch, od, ad, device)).collect();
    let mut k = 0;
    let mut next = || {
        k += 1;
        let b = &pool[k % pool.len()];
        Batch {
            obs: b.obs.shallow_clone(),
            actions: b.actions.shallow_clone(),
            rewards: b.rewards.shallow_clone(),
            next_obs: b.next_obs.shallow_clone(),
            not_done: b.not_done.shallow_clone(),
        }
    };
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    for _ in 0..(iterations / 10).max(4) {
        td3.update(&mut next);
    }
    sync();
    let reps = iterations.max(2);
    let ms = time_ms(reps, || {
        td3.update(&mut next);
    });
    sync();
    let obs = pool[0].obs.shallow_clone();
    let ms_fwd = time_ms(reps, || {
        let _ = td3.act(&obs);
    });
    let ms_proxy = td3.has_proxy().then(|| time_ms(reps, || {
        td3.proxy_step(&obs);
    }));
    let mut host = crate::replay::Transitions::default();
    for _ in 0..batch {
        host.push(&vec![0.1; od], &vec![0.2; ad], 1.0, &vec![0.3; od], false);
    }
    let ms_sample = time_ms(reps, || {
        let _ = Batch::from_transitions(&host, od, ad, device);
    });
    Ok(UpdateBench {
        env: env.to_string(),
        algo: algo.to_string(),
        neuron: neuron.to_string(),
        device: format!("{device:?}"),
        batch,
        threads: tch::get_num_threads(),
        iterations: reps,
        ms_per_iteration: ms,
        iterations_per_second: 1e3 / ms,
        ms_proxy_step: ms_proxy,
        ms_snn_forward_no_grad: ms_fwd,
        ms_sample_to_tensors: ms_sample,
    })
}

#[derive(Debug, Serialize)]
pub struct InferenceBench {
    pub env: String,
    pub network: String,
    pub batch: usize,
    pub actions: usize,
    pub us_per_action: f64,
    pub actions_per_second: f64,
    pub sops_per_inference: f64,
    pub firing_rate: f64,
    pub energy_nj_per_inference: f64,
    pub ann_equivalent_energy_nj: f64,
}

/// Plain-Rust inference of the paper's network (random initial weights, random observations in the
/// typical range), one core.
pub fn inference(env: &str, algo: Algo, neuron: NeuronKind, batch: usize, actions: usize) -> anyhow::Result<InferenceBench> {
    let spec = spikerl_envs::spec(env)?;
    let cfg = RunConfig::paper(env, algo, neuron, 0).policy_config(spec.obs_dim, spec.act_dim, max_action(&spec)?);
    let mut policy = Policy::new(&cfg, &spikerl_snn::initial_tensors(&cfg, 0)?)?;
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
