//! Short learning runs, one per algorithm, in the lockstep protocol on Pendulum-v1: cheap enough for CI,
//! and they fail if learning breaks (a wrong TD target, a detached actor gradient, a target that never
//! moves...). The bar is absolute: uniform random actions, evaluated by the test itself on the same
//! evaluation episodes, score about -1,100 on Pendulum; the best AND the last evaluation of each run must
//! beat that level by a clear margin (comparing with the run's own first evaluation let a run that starts
//! at -1,500 pass at a random policy's level).

use rand::{Rng, SeedableRng};
use spikerl_algo::{Algo, Base, RunConfig};
use spikerl_learner::storage::run_folder::{Manifest, RunFolder};
use spikerl_learner::training::lockstep;
use spikerl_snn::NeuronKind;
use std::sync::atomic::AtomicBool;

const ENV: &str = "Pendulum-v1";
const EVAL_EPISODES: usize = 5;

fn run(base: Base, algo: Algo, neuron: NeuronKind, steps: u64, seed: u64) -> Vec<f64> {
    tch::set_num_threads(1);
    let mut cfg = RunConfig::paper(ENV, algo, neuron, seed).with_base(base);
    cfg.steps = steps;
    cfg.random_steps = 1000;
    cfg.eval_every = 1000;
    cfg.eval_episodes = EVAL_EPISODES;
    let dir = std::env::temp_dir()
        .join(format!("spikerl-learning-{base}-{algo}-{neuron}-{seed}-{steps}-{}", std::process::id()));
    let manifest = Manifest::starting(&cfg, "test", "sync", 1, "test").unwrap();
    let mut run_folder = RunFolder::create(&dir, manifest).unwrap();
    let trainer = lockstep::run(
        &cfg,
        tch::Device::Cpu,
        &mut run_folder,
        Default::default(),
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    assert_eq!(
        trainer.learner.iterations(),
        steps,
        "one training iteration per env step after the random ones"
    );
    let returns: Vec<f64> = trainer.evals.iter().map(|e| e.mean()).collect();
    let _ = std::fs::remove_dir_all(&dir);
    returns
}

/// Mean return of uniform random actions on the evaluation episodes of a run with `seed` (the learner
/// evaluates on an env seeded with seed + 100).
fn random_policy_return(seed: u64) -> f64 {
    let spec = spikerl_envs::spec(ENV).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let returns = spikerl_envs::evaluate(ENV, EVAL_EPISODES, seed + 100, |_, action| {
        for (i, a) in action.iter_mut().enumerate() {
            *a = rng.random_range(spec.act_low[i]..=spec.act_high[i]) as f32;
        }
    })
    .unwrap();
    returns.iter().sum::<f64>() / returns.len() as f64
}

/// The run's best and last evaluations must beat the random policy's level by `best_margin` and
/// `last_margin`.
fn assert_learns(algo: Algo, neuron: NeuronKind, steps: u64, best_margin: f64, last_margin: f64) {
    assert_base_learns(Base::Td3, algo, neuron, steps, best_margin, last_margin)
}

fn assert_base_learns(
    base: Base,
    algo: Algo,
    neuron: NeuronKind,
    steps: u64,
    best_margin: f64,
    last_margin: f64,
) {
    let seed = 1;
    let random = random_policy_return(seed);
    let returns = run(base, algo, neuron, steps, seed);
    let best = returns.iter().copied().fold(f64::MIN, f64::max);
    let last = *returns.last().unwrap();
    eprintln!(
        "{base} {algo} {neuron}: random policy {random:.0}, best {best:.0}, last {last:.0}, curve {returns:?}"
    );
    // The bar itself is sane: random actions score like a random policy on Pendulum.
    assert!((-1600.0..-900.0).contains(&random), "random-policy baseline {random:.0} is not Pendulum's");
    assert!(
        best > random + best_margin && last > random + last_margin,
        "{base} {algo}/{neuron} did not learn: best {best:.0} must exceed the random policy's {random:.0} by \
         {best_margin:.0} and last {last:.0} by {last_margin:.0} (curve {returns:?})"
    );
}

// Measured with seed 1 (lockstep runs are deterministic on a given machine; other CPUs take other paths):
// random policy -1080 on these 5 evaluation episodes; ANN best and last -479; vanilla SNN best -611, last
// -849; proxy SNN best and last -169. The margins leave 130 to 400 of headroom.

#[test]
fn ann_td3_learns_pendulum() {
    assert_learns(Algo::Ann, NeuronKind::Lif, 5000, 300.0, 300.0);
}

#[test]
fn vanilla_snn_learns_pendulum() {
    // The vanilla SNN learns more slowly and less steadily (the paper's point): its last evaluation may
    // fall back from its best, so the bar for the last one is lower.
    assert_learns(Algo::Vanilla, NeuronKind::Lif, 5000, 250.0, 100.0);
}

#[test]
fn proxy_snn_learns_pendulum() {
    assert_learns(Algo::Proxy, NeuronKind::Lif, 5000, 500.0, 500.0);
}

// SAC and DDPG (issue 22), ann and proxy with LIF. Seen (seed 1, 5000 steps): SAC ann best/last -125,
// DDPG ann -134, DDPG proxy -130, against the random policy's -1080.
#[test]
fn ann_sac_learns_pendulum() {
    assert_base_learns(Base::Sac, Algo::Ann, NeuronKind::Lif, 5000, 300.0, 300.0);
}

#[test]
fn proxy_sac_learns_pendulum() {
    // Seen: best -161, last -747 against the random policy's -1080 (its curve can dip after the best,
    // as the vanilla SNN's does), so the last bar is lower.
    assert_base_learns(Base::Sac, Algo::Proxy, NeuronKind::Lif, 5000, 500.0, 150.0);
}

#[test]
fn ann_ddpg_learns_pendulum() {
    assert_base_learns(Base::Ddpg, Algo::Ann, NeuronKind::Lif, 5000, 300.0, 300.0);
}

#[test]
fn proxy_ddpg_learns_pendulum() {
    assert_base_learns(Base::Ddpg, Algo::Proxy, NeuronKind::Lif, 5000, 300.0, 300.0);
}

#[test]
fn lockstep_is_reproducible() {
    let a = run(Base::Td3, Algo::Proxy, NeuronKind::Lif, 300, 5);
    let b = run(Base::Td3, Algo::Proxy, NeuronKind::Lif, 300, 5);
    assert_eq!(a, b, "the same seed must give the same evaluation returns");
}
