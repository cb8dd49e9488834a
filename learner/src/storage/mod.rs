//! Layer 1: what a run leaves on disk. Imports only `spikerl_algo` (and the plot crate).
//!
//! - [`run_folder`]: the run folder: `manifest.json`, `evals.csv`, the evaluation curve, `tb/`.
//! - [`checkpoint`]: verified, atomic, complete checkpoints and their loading.
//! - [`tensorboard`]: TensorBoard event files (TFRecord-framed `Event` protobufs, scalars only).

pub mod checkpoint;
pub mod run_folder;
pub mod tensorboard;
