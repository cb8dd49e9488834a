//! The learner: everything that trains.
//!
//! - [`td3`]: the pure algorithm core (TD3 with a Polyak target actor, or with the proxy target); no I/O.
//! - [`nets`]: critics and parameter averaging; the actor and proxy come from `spikerl_snn::torch`.
//! - [`replay`], [`rate_limiter`], [`replay_service`]: storage and the update-to-data ratio.
//! - [`trainer`]: the loop around the core (sampling, evaluation, metrics), shared by both modes.
//! - [`lockstep`]: the paper's protocol in one process; [`runtime`] + [`server`]: the distributed learner.
//! - [`run_dir`], [`checkpoint`]: what a run leaves on disk.
//! - [`ensemble`]: S seeds of one configuration as one batched learner (stacked weights); [`seed_group`]:
//!   the seeds' trainers around it (or around their own learners) for `spikerl train --sync --seeds`.

pub mod bench;
pub mod bench_transport;
pub mod checkpoint;
pub mod config;
pub mod dense;
pub mod ensemble;
pub mod lockstep;
pub mod nets;
pub mod optim;
pub mod rate_limiter;
pub mod replay;
pub mod replay_service;
pub mod run_dir;
pub mod runtime;
pub mod security;
pub mod seed_group;
pub mod server;
pub mod td3;
pub mod telemetry;
pub mod trainer;

pub use config::{Algo, ProxyConfig, RunConfig, Td3Config};
/// Plain-Rust work on libtorch's OpenMP team (lives beside the networks in `spikerl_snn::torch`, whose
/// backward through time uses it too).
pub use spikerl_snn::torch::omp;

/// Process settings for fast CPU training; call once at start-up, before libtorch starts its threads
/// (they inherit the floating-point mode).
///
/// - glibc keeps freed large blocks for reuse. libtorch allocates every CPU tensor with malloc; blocks
///   above glibc's mmap threshold (128 kB at start, e.g. one [256, 512] f32 activation) are otherwise
///   mapped fresh and page-faulted on every use, and an iteration allocates dozens: a proxy MLP forward
///   with autograd took 1.05 ms with the defaults and 0.63 ms with this (2 threads, idle machine). Costs
///   at most the learner's peak tensor memory, which it needs again next iteration anyway.
/// - Subnormal floats are flushed to zero (x86 FTZ/DAZ, what `torch.set_flush_denormal(True)` does):
///   after a few hundred updates Adam's moments and some gradients underflow into the subnormal range,
///   where each operation costs about a hundred times more; a proxy step went from 6.8 to 4.7 ms. The
///   numerical difference: values below 1.2e-38 in magnitude become 0.
pub fn tune_process_for_training() {
    // SAFETY: mallopt only changes glibc's allocation thresholds; it is safe to call at any time.
    unsafe {
        // glibc caps the mmap threshold at 32 MiB on 64-bit: larger blocks are still mapped.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: sets the calling thread's SSE control flags FTZ (bit 15) and DAZ (bit 6); every x86-64 CPU
    // has both. Threads started afterwards inherit them.
    #[allow(deprecated)]
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | 0x8040);
    }
}
