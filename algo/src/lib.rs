//! The pure learning core of spikerl: everything the learner computes, nothing it stores or sends.
//!
//! No async runtime, no network, no files: every module here is tested directly, and the layers above
//! (`spikerl-learner`: run folder and checkpoints, training loops, gRPC service) take from it, never
//! the other way round.
//!
//! - [`config`]: a run's hyperparameters ([`RunConfig`], [`Td3Config`], [`ProxyConfig`], [`Algo`],
//!   [`SeedBatching`]).
//! - [`seeds`]: every random stream derived from the run seed; the process-wide libtorch init lock.
//! - [`td3`]: TD3 with a Polyak target actor or with the proxy target (one `update` per iteration).
//! - [`nets`]: twin critics and parameter averaging; the actor and proxy come from `spikerl_snn::torch`.
//! - [`dense`]: the dense MLPs' forward, backward and losses without autograd on CPU.
//! - [`optim`]: Adam with reachable state.
//! - [`ensemble`]: S seeds of one configuration as one learner with stacked parameters.
//! - [`replay`], [`rate_limiter`]: the replay buffer and the update-to-data ratio.

pub mod config;
pub mod dense;
pub mod ensemble;
pub mod learner;
pub mod nets;
pub mod optim;
pub mod rate_limiter;
pub mod replay;
pub mod sac;
pub mod seeds;
pub mod td3;

pub use config::{Algo, Base, Imitation, ProxyConfig, RunConfig, SacConfig, SeedBatching, Td3Config};
pub use learner::Learner;
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
