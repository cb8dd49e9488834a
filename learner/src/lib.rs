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
