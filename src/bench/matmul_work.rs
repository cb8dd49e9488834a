//! The dense matrix-product side of `bench update`: the multiply-adds of the networks a training
//! iteration runs, and the rates this machine reaches on the same shapes (libtorch's matmul and
//! `spikerl_algo::dense::matmul`), against which the phases' achieved GFLOP/s are put.

use std::time::Instant;
use tch::{Device, Tensor};

/// Multiply-adds of one forward of an MLP `inp -> hidden... -> out`.
pub fn mlp_macs(inp: usize, hidden: &[usize], out: usize) -> f64 {
    let mut prev = inp;
    let mut macs = 0.0;
    for &h in hidden.iter().chain(std::iter::once(&out)) {
        macs += (prev * h) as f64;
        prev = h;
    }
    macs
}

/// Multiply-adds of one forward of the actor: an ANN, or the SNN's synaptic layers over T steps
/// (population encoder and decoder are elementwise / grouped, negligible and not matmuls).
pub fn actor_macs(cfg: &spikerl_snn::PolicyConfig) -> f64 {
    match &cfg.network {
        spikerl_snn::NetworkConfig::Ann { hidden } => mlp_macs(cfg.obs_dim, hidden, cfg.act_dim),
        spikerl_snn::NetworkConfig::Snn(s) => {
            s.timesteps as f64 * mlp_macs(cfg.obs_dim * s.pop_size, &s.hidden, cfg.act_dim * s.pop_size)
        }
    }
}

/// GFLOP/s of `[m x k] x [k x n]` in libtorch on `device`: the best of `rounds` rounds of about
/// `round_gflop` of work each. Long rounds (20 ms) see the same time slicing as the phases timed beside
/// them on a shared machine; short ones (1 ms) often fit into one slice and approach the core's own rate.
pub fn sgemm_gflops(m: i64, k: i64, n: i64, device: Device, round_gflop: f64, rounds: usize) -> f64 {
    let a = Tensor::randn([m, k], (tch::Kind::Float, device));
    let b = Tensor::randn([k, n], (tch::Kind::Float, device));
    let flop = 2.0 * (m * k * n) as f64;
    let reps = ((round_gflop * 1e9 / flop) as usize).clamp(1, 20_000);
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..reps {
            let _ = a.matmul(&b);
        }
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        best = best.min(started.elapsed().as_secs_f64() / reps as f64);
    }
    flop / best / 1e9
}

/// GFLOP/s of `[m x k] x [k x n]` through `spikerl_algo::dense::matmul`, one product per thread of libtorch's
/// OpenMP team at once, summed over the threads: the best of `rounds` rounds of about 2 GFLOP a thread.
pub fn dense_gflops(m: usize, k: usize, n: usize, rounds: usize) -> f64 {
    let threads = tch::get_num_threads().max(1) as usize;
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let outs: Vec<std::sync::Mutex<Vec<f32>>> =
        (0..threads).map(|_| std::sync::Mutex::new(vec![0.0; m * n])).collect();
    let flop = 2.0 * (m * k * n) as f64;
    let reps = ((2e9 / flop) as usize).clamp(1, 20_000);
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let started = Instant::now();
        spikerl_algo::omp::parallel(threads, &|i| {
            let mut c = outs[i].lock().unwrap_or_else(|p| p.into_inner());
            for _ in 0..reps {
                spikerl_algo::dense::matmul(
                    m,
                    n,
                    k,
                    &mut c,
                    n,
                    false,
                    spikerl_algo::dense::View::rows(&a, k),
                    spikerl_algo::dense::View::rows(&b, n),
                );
            }
        });
        best = best.min(started.elapsed().as_secs_f64() / reps as f64);
    }
    threads as f64 * flop / best / 1e9
}
