//! Layer 2: the training loops. Imports `storage` and `spikerl_algo`, never `service`.
//!
//! - [`replay_service`]: the replay buffer and rate limiter behind one lock (inserts wait, updates wait).
//! - [`telemetry`]: the run's info series and the spiking network's activity at evaluations.
//! - [`trainer`]: one run's loop around `Td3` (sampling, evaluation, checkpoints, metrics).
//! - [`seed_group`]: several seeds' trainers, stacked into one ensemble or one after another.
//! - [`lockstep`]: the paper's protocol in one process (`spikerl train --sync`, `--seeds`).
//! - [`video`]: `train --video-every`: evaluation episodes rendered into the run folder's `videos/`.

pub mod lockstep;
pub mod replay_service;
pub mod seed_group;
pub mod telemetry;
pub mod trainer;
pub mod video;
