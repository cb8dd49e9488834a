//! Multi-seed experiments.
//!
//! - [`sweep`]: `spikerl sweep SPEC.toml --out DIR` expands a TOML grid ([`spec`]) of environments x
//!   algorithms x neuron types x RL algorithms (`bases`: TD3, SAC, DDPG) x seeds into runs, each a
//!   `spikerl train` process in its own folder `DIR/{env}/{method}/seed{N}`; [`plan`] decides per run from its folder whether to skip, start,
//!   resume it from its checkpoint or restart it. Locally the runs are scheduled a few at a time
//!   ([`runner`]); Ctrl-C stops cleanly; `DIR/sweep.json` ([`state`]) records every run's outcome.
//! - [`cluster`]: `--backend slurm|k8s` hands the grid to a cluster engine instead: one Slurm job array
//!   ([`slurm`]) or one Kubernetes Indexed Job ([`k8s`]), whose tasks run `spikerl sweep task` ([`task`])
//!   on the same folder, stop before their time limit or on preemption, and resume. [`status`]:
//!   `spikerl sweep status DIR`, whatever ran the runs.
//! - [`report`]: `spikerl report RUNS_DIR --out DIR` reads run folders ([`run_folder`]) and writes the
//!   paper's Table 1 (max average return, mean +- std over seeds, APG, proxy-over-vanilla gain, seed
//!   spread), learning curves, an energy table and the published numbers side by side.
//!
//! Training itself is never reimplemented here: a sweep only starts the `spikerl` binary.

pub mod cluster;
pub mod k8s;
pub mod method;
pub mod plan;
pub mod report;
pub mod run_folder;
pub mod runner;
mod signals;
pub mod slurm;
pub mod spec;
pub mod state;
pub mod status;
pub mod sweep;
pub mod task;
mod time;
