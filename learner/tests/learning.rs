//! Short learning runs, one per algorithm, in the lockstep protocol on Pendulum-v1: cheap enough for CI,
//! and they fail if learning breaks (a wrong TD target, a detached actor gradient, a target that never
//! moves...). A random policy scores about -1200 to -1500 on Pendulum; each algorithm must improve by a
//! clear margin within a few thousand steps.

use spikerl_algo::{Algo, RunConfig};
use spikerl_learner::storage::run_folder::{Manifest, RunFolder};
use spikerl_learner::training::lockstep;
use spikerl_snn::NeuronKind;
use std::sync::atomic::AtomicBool;

fn run(algo: Algo, neuron: NeuronKind, steps: u64, seed: u64) -> Vec<f64> {
    tch::set_num_threads(1);
    let mut cfg = RunConfig::paper("Pendulum-v1", algo, neuron, seed);
    cfg.steps = steps;
    cfg.random_steps = 1000;
    cfg.eval_every = 1000;
    cfg.eval_episodes = 5;
    let dir = std::env::temp_dir()
        .join(format!("spikerl-learning-{algo}-{neuron}-{seed}-{steps}-{}", std::process::id()));
    let manifest = Manifest::starting(&cfg, "test", "sync", 1, "test").unwrap();
    let mut run_folder = RunFolder::create(&dir, manifest).unwrap();
    let trainer =
        lockstep::run(&cfg, tch::Device::Cpu, &mut run_folder, &AtomicBool::new(false), |_| {}).unwrap();
    assert_eq!(trainer.td3.iterations, steps, "one training iteration per env step after the random ones");
    let returns: Vec<f64> = trainer.evals.iter().map(|e| e.mean()).collect();
    let _ = std::fs::remove_dir_all(&dir);
    returns
}

fn assert_learns(algo: Algo, neuron: NeuronKind, steps: u64, margin: f64) {
    let returns = run(algo, neuron, steps, 1);
    let initial = returns[0];
    let best = returns.iter().copied().fold(f64::MIN, f64::max);
    eprintln!("{algo} {neuron}: {returns:?}");
    assert!(
        best > initial + margin,
        "{algo}/{neuron} did not learn: initial {initial:.0}, best {best:.0}, curve {returns:?}"
    );
}

#[test]
fn ann_td3_learns_pendulum() {
    assert_learns(Algo::Ann, NeuronKind::Lif, 5000, 600.0);
}

#[test]
fn vanilla_snn_learns_pendulum() {
    // The vanilla SNN learns more slowly and less steadily (the paper's point): seed 1 reached -804
    // from -1180 in 5k steps here (lockstep runs are deterministic on a given machine).
    assert_learns(Algo::Vanilla, NeuronKind::Lif, 5000, 300.0);
}

#[test]
fn proxy_snn_learns_pendulum() {
    assert_learns(Algo::Proxy, NeuronKind::Lif, 5000, 400.0);
}

#[test]
fn lockstep_is_reproducible() {
    let a = run(Algo::Proxy, NeuronKind::Lif, 300, 5);
    let b = run(Algo::Proxy, NeuronKind::Lif, 300, 5);
    assert_eq!(a, b, "the same seed must give the same evaluation returns");
}
