//! `spikerl bench ensemble`: S seeds of one configuration trained as one batched ensemble (stacked
//! weights, batched matmuls) against S separate learners in the same process, for each S.

use super::synthetic::random_batch;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use spikerl_algo::td3::{Batch, Td3};
use spikerl_algo::{Algo, RunConfig};
use spikerl_learner::training::trainer::max_action;
use spikerl_snn::NeuronKind;
use std::time::Instant;
use tch::Device;

/// `spikerl bench ensemble`: S seeds as one batched [`spikerl_algo::ensemble::Ensemble`] against S separate
/// `Td3` learners updated one after another in the same process, for each S.
#[derive(Debug, Serialize)]
pub struct EnsembleBench {
    pub env: String,
    pub algo: String,
    pub neuron: String,
    pub device: String,
    pub batch: usize,
    pub threads: i32,
    /// Timed iterations per S and side (after a warm-up).
    pub iterations: usize,
    pub rows: Vec<EnsembleRow>,
}

#[derive(Debug, Serialize)]
pub struct EnsembleRow {
    /// S, the seeds trained together.
    pub seeds: usize,
    /// One ensemble iteration: one training iteration of every member.
    pub ms_per_iteration: f64,
    pub iterations_per_second: f64,
    /// S x iterations/s: training iterations of single seeds per second.
    pub seed_iterations_per_second: f64,
    /// The baseline: S separate learners, each updated once per round, one after another.
    pub separate_ms_per_round: f64,
    pub separate_seed_iterations_per_second: f64,
    /// Ensemble seed-iterations/s over the baseline's.
    pub speedup: f64,
}

/// Each S: an ensemble of seeds 0..S and S separate learners with the same seeds, each member on its own
/// pool of synthetic minibatches (stacking the members' minibatches is inside the ensemble's timing).
/// The two sides alternate in four blocks (ensemble, separate, separate, ensemble) so that a drifting
/// machine load affects both alike.
pub fn ensemble(
    env: &str,
    algo: Algo,
    neuron: NeuronKind,
    batch: usize,
    device: Device,
    seeds: &[usize],
    iterations: usize,
) -> anyhow::Result<EnsembleBench> {
    use spikerl_algo::ensemble::Ensemble;
    let spec = spikerl_envs::spec(env)?;
    let mut cfg = RunConfig::paper(env, algo, neuron, 0);
    cfg.td3.batch_size = batch;
    let policy = cfg.policy_config(spec.obs_dim, spec.act_dim, max_action(&spec)?);
    let (od, ad) = (spec.obs_dim, spec.act_dim);
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    // Blocks of an even number of iterations, so that each holds as many delayed actor updates.
    let block = iterations.div_ceil(2).max(2).div_ceil(2) * 2;
    let mut rows = Vec::new();
    for &s in seeds {
        anyhow::ensure!(s > 0, "seed counts must be positive");
        let ids: Vec<u64> = (0..s as u64).collect();
        let mut ens = Ensemble::new(&cfg, policy.clone(), &ids, device).map_err(anyhow::Error::msg)?;
        let mut singles: Vec<Td3> =
            ids.iter().map(|&id| Td3::seeded(&cfg, policy.clone(), id, device)).collect();
        let pools: Vec<Vec<Batch>> = ids
            .iter()
            .map(|&id| {
                let mut rng = ChaCha8Rng::seed_from_u64(id);
                (0..8).map(|_| random_batch(&mut rng, batch, od, ad, device)).collect()
            })
            .collect();
        let mut drawn = vec![0usize; s];
        let mut next = |m: usize| {
            drawn[m] += 1;
            pools[m][drawn[m] % pools[m].len()].shallow_clone()
        };
        let mut run_ensemble = |n: usize, next: &mut dyn FnMut(usize) -> Batch| {
            let t = Instant::now();
            for _ in 0..n {
                ens.update(&mut *next);
            }
            sync();
            t.elapsed().as_secs_f64()
        };
        let mut run_separate = |n: usize, next: &mut dyn FnMut(usize) -> Batch| {
            let t = Instant::now();
            for _ in 0..n {
                for (m, td3) in singles.iter_mut().enumerate() {
                    td3.update(|| next(m));
                }
            }
            sync();
            t.elapsed().as_secs_f64()
        };
        // Warm-up: one block's worth of each (at least the first delayed actor update).
        run_ensemble(block.clamp(2, 4), &mut next);
        run_separate(block.clamp(2, 4), &mut next);
        let mut t_ens = run_ensemble(block, &mut next);
        let mut t_sep = run_separate(block, &mut next);
        t_sep += run_separate(block, &mut next);
        t_ens += run_ensemble(block, &mut next);
        let n = (2 * block) as f64;
        let ms = t_ens * 1e3 / n;
        let ms_sep = t_sep * 1e3 / n;
        let seed_its = s as f64 * 1e3 / ms;
        let seed_its_sep = s as f64 * 1e3 / ms_sep;
        rows.push(EnsembleRow {
            seeds: s,
            ms_per_iteration: ms,
            iterations_per_second: 1e3 / ms,
            seed_iterations_per_second: seed_its,
            separate_ms_per_round: ms_sep,
            separate_seed_iterations_per_second: seed_its_sep,
            speedup: seed_its / seed_its_sep,
        });
    }
    Ok(EnsembleBench {
        env: env.to_string(),
        algo: algo.to_string(),
        neuron: neuron.to_string(),
        device: format!("{device:?}"),
        batch,
        threads: tch::get_num_threads(),
        iterations: 2 * block,
        rows,
    })
}

/// The figures with the machine's load average around them.
#[derive(Serialize)]
pub struct EnsembleReport {
    #[serde(flatten)]
    pub bench: EnsembleBench,
    /// 1-minute load average before and after.
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
}

pub fn print(r: &EnsembleReport) {
    let b = &r.bench;
    let load = |l: Option<f64>| l.map_or("-".into(), |l| format!("{l:.2}"));
    println!(
        "{} {} {} batch {} on {} ({} libtorch threads), {} timed iterations per side; load {} -> {}",
        b.env,
        b.algo,
        b.neuron,
        b.batch,
        b.device,
        b.threads,
        b.iterations,
        load(r.load_before),
        load(r.load_after)
    );
    println!(
        "{:>5} {:>14} {:>12} {:>16} {:>20} {:>16} {:>8}",
        "S",
        "ms/ensemble-it",
        "ensemble it/s",
        "seed-it/s",
        "separate ms/round",
        "separate seed-it/s",
        "ratio"
    );
    for row in &b.rows {
        println!(
            "{:>5} {:>14.2} {:>12.2} {:>16.2} {:>20.2} {:>16.2} {:>7.2}x",
            row.seeds,
            row.ms_per_iteration,
            row.iterations_per_second,
            row.seed_iterations_per_second,
            row.separate_ms_per_round,
            row.separate_seed_iterations_per_second,
            row.speedup
        );
    }
}
