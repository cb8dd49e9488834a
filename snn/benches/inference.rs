//! Inference speed and activity of the plain-Rust policy on HalfCheetah shapes (obs 17, act 6), freshly
//! initialised, on random observations. `cargo bench -p spikerl-snn [--features torch]`.
//!
//! Prints, per network: microseconds per action at batch 1, 8 and 64 (one core), SOPs per inference,
//! firing rate (hidden + output layers), and energy per inference under the paper's model. With the
//! `torch` feature it also times the tch network's training-size forward and backward (batch 256).

use std::hint::black_box;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spikerl_snn::{
    NetworkConfig, NeuronKind, Policy, PolicyConfig, SnnConfig, ann_equivalent_macs, initial_tensors,
};

const OBS: usize = 17;
const ACT: usize = 6;

fn cheetah(network: NetworkConfig) -> PolicyConfig {
    PolicyConfig { gaussian: None, obs_dim: OBS, act_dim: ACT, max_action: vec![1.0; ACT], network }
}

/// Fastest of a few rounds of the time per action, each round running for about `budget`. The minimum,
/// not the median: on a shared machine, interference only ever adds time.
fn us_per_action(policy: &mut Policy, obs: &[f32], batch: usize, budget: Duration) -> f64 {
    let n_batches = obs.len() / OBS / batch;
    let mut actions = vec![0.0f32; batch * ACT];
    let mut rounds = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        let mut done = 0usize;
        while start.elapsed() < budget {
            for b in 0..n_batches {
                policy.act_batch(black_box(&obs[b * batch * OBS..(b + 1) * batch * OBS]), &mut actions);
            }
            done += n_batches * batch;
        }
        rounds.push(start.elapsed().as_secs_f64() * 1e6 / done as f64);
        black_box(&actions);
    }
    rounds.into_iter().fold(f64::INFINITY, f64::min)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 5 } else { 30 });
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // Observations of HalfCheetah's magnitude: positions ~0.5, velocities up to ~10.
    let obs: Vec<f32> = (0..64 * 16)
        .flat_map(|_| (0..OBS).map(|d| if d < 8 { 0.5 } else { 5.0 }).collect::<Vec<f32>>())
        .map(|scale| rng.random_range(-1.0f32..1.0) * scale)
        .collect();

    let mut nets: Vec<(String, PolicyConfig)> = NeuronKind::ALL
        .iter()
        .map(|&k| (k.to_string(), cheetah(NetworkConfig::Snn(SnnConfig::paper(k)))))
        .collect();
    nets.push(("ann 256-256".into(), cheetah(NetworkConfig::Ann { hidden: vec![256, 256] })));
    // `SNN_BENCH=lif` (a substring of the name) narrows the run, e.g. for profiling.
    if let Ok(only) = std::env::var("SNN_BENCH") {
        nets.retain(|(name, _)| name.contains(&only));
    }

    // `SNN_BENCH_FIXED=N`: exactly N batch-1 actions per network and nothing else, for `perf stat`
    // (instruction and cycle counts are steadier than wall time on a shared machine).
    if let Some(n) = std::env::var("SNN_BENCH_FIXED").ok().and_then(|s| s.parse::<usize>().ok()) {
        for (_, cfg) in &nets {
            let mut policy = Policy::new(cfg, &initial_tensors(cfg, 1).unwrap()).unwrap();
            let mut a = [0.0f32; ACT];
            for i in 0..n {
                let o = i % (obs.len() / OBS);
                policy.act(black_box(&obs[o * OBS..(o + 1) * OBS]), &mut a);
            }
            black_box(a);
        }
        return;
    }
    println!("HalfCheetah shapes (obs {OBS}, act {ACT}); SNN 170-256-256-60, T = 5; random init; one core");
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>10} {:>8} {:>8} {:>11}",
        "network", "us/act b1", "b8", "b64", "SOPs/inf", "rate", "enc rate", "nJ/inf"
    );
    for (name, cfg) in &nets {
        let mut policy = Policy::new(cfg, &initial_tensors(cfg, 1).unwrap()).unwrap();
        let t1 = us_per_action(&mut policy, &obs, 1, budget);
        let t8 = us_per_action(&mut policy, &obs, 8, budget);
        let t64 = us_per_action(&mut policy, &obs, 64, budget);
        policy.reset_stats();
        let mut a = vec![0.0f32; obs.len() / OBS * ACT];
        policy.act_batch(&obs, &mut a);
        let s = policy.stats();
        println!(
            "{:<12} {:>9.2} {:>9.2} {:>9.2} {:>10.0} {:>8.3} {:>8.3} {:>11.3}",
            name,
            t1,
            t8,
            t64,
            s.sops_per_inference(),
            s.firing_rate(),
            s.encoder_firing_rate(),
            s.energy_nj_per_inference()
        );
    }
    let macs = ann_equivalent_macs(&nets[0].1);
    println!("ANN-equivalent MACs {macs}: {:.1} nJ per inference at 3.97 pJ/MAC", macs as f64 * 3.97e-3);

    #[cfg(feature = "torch")]
    if std::env::var("SNN_BENCH").is_err() {
        torch_bench(quick);
    }
}

#[cfg(feature = "torch")]
fn torch_bench(quick: bool) {
    use spikerl_snn::torch::TorchPolicy;
    use tch::{Device, Kind, Tensor, nn};
    let threads: i32 = std::env::var("TORCH_NUM_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    tch::set_num_threads(threads);
    println!("\ntch, batch 256, {threads} thread(s): forward (no grad) / forward + backward, ms");
    let reps = if quick { 3 } else { 10 };
    for k in NeuronKind::ALL {
        let cfg = cheetah(NetworkConfig::Snn(SnnConfig::paper(k)));
        let vs = nn::VarStore::new(Device::Cpu);
        let net = TorchPolicy::new(&vs.root(), &cfg);
        let obs = Tensor::randn([256, OBS as i64], (Kind::Float, Device::Cpu));
        let time = |f: &dyn Fn()| {
            f();
            let start = Instant::now();
            for _ in 0..reps {
                f();
            }
            start.elapsed().as_secs_f64() * 1e3 / reps as f64
        };
        let fwd = time(&|| {
            let _ = black_box(tch::no_grad(|| net.forward(&obs)));
        });
        let bwd = time(&|| {
            net.forward(&obs).sum(Kind::Float).backward();
        });
        println!("{:<12} {:>8.2} {:>8.2}", k.to_string(), fwd, bwd);
    }
}
