//! The learner: everything that trains.
//!
//! - [`td3`]: the pure algorithm core (TD3 with a Polyak target actor, or with the proxy target); no I/O.
//! - [`nets`]: critics and parameter averaging; the actor and proxy come from `spikerl_snn::torch`.
//! - [`replay`], [`rate_limiter`], [`replay_service`]: storage and the update-to-data ratio.
//! - [`trainer`]: the loop around the core (sampling, evaluation, metrics), shared by both modes.
//! - [`lockstep`]: the paper's protocol in one process; [`runtime`] + [`server`]: the distributed learner.
//! - [`run_dir`], [`checkpoint`]: what a run leaves on disk.
//! - [`ensemble`]: S seeds of one configuration as one batched learner (stacked weights); not yet used by `train`.

pub mod bench;
pub mod bench_transport;
pub mod checkpoint;
pub mod config;
pub mod ensemble;
pub mod lockstep;
pub mod nets;
pub mod omp;
pub mod optim;
pub mod rate_limiter;
pub mod replay;
pub mod replay_service;
pub mod run_dir;
pub mod runtime;
pub mod security;
pub mod server;
pub mod td3;
pub mod telemetry;
pub mod trainer;

pub use config::{Algo, ProxyConfig, RunConfig, Td3Config};

/// Makes glibc keep freed large blocks for reuse. libtorch allocates every CPU tensor with malloc; blocks
/// above glibc's mmap threshold (128 kB at start, e.g. one [256, 512] f32 activation) are otherwise mapped
/// fresh and page-faulted on every use, and a training iteration allocates dozens of them: a proxy MLP
/// forward with autograd took 1.05 ms with the defaults and 0.63 ms with these settings (2 threads, idle
/// machine). Costs at most the learner's peak tensor memory, which it needs again next iteration anyway.
/// Process-wide; call once at start-up of a process that trains.
pub fn tune_host_allocator() {
    // SAFETY: mallopt only changes glibc's allocation thresholds; it is safe to call at any time.
    unsafe {
        // glibc caps the mmap threshold at 32 MiB on 64-bit: larger blocks are still mapped.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
