//! The learner: everything around the pure learning core (`spikerl_algo`) that stores, loops and serves.
//!
//! Three layers; each imports only from the layers below it and from `spikerl_algo` (checked in CI by
//! `scripts/check_layers.py`):
//!
//! 1. [`storage`]: what a run leaves on disk: the run folder (manifest, evals.csv, the evaluation curve)
//!    and checkpoints.
//! 2. [`training`]: the loops: the replay service (buffer + rate limiter behind one lock), the trainer
//!    (sampling, evaluation, metrics), the lockstep protocol and seed groups.
//! 3. [`service`]: the distributed learner: gRPC service, serving stack, security, its metrics, and the
//!    runtime that ties the training thread, broadcast and periodic checkpoints together.

pub mod service;
pub mod storage;
pub mod training;
