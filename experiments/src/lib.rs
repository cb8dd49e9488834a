//! Multi-seed experiments.
//!
//! - [`sweep`]: `spikerl sweep SPEC.toml --out DIR` expands a TOML grid ([`spec`]) of environments x
//!   algorithms x neuron types x seeds into runs, each a `spikerl train` child process in its own folder
//!   `DIR/{env}/{method}/seed{N}`, scheduled a few at a time; re-running skips completed runs and
//!   restarts unfinished ones; Ctrl-C stops cleanly; `DIR/sweep.json` records every run's outcome.
//! - [`report`]: `spikerl report RUNS_DIR --out DIR` reads run folders ([`run_folder`]) and writes the
//!   paper's Table 1 (max average return, mean +- std over seeds, APG, proxy-over-vanilla gain, seed
//!   spread), learning curves, an energy table and the published numbers side by side.
//!
//! Training itself is never reimplemented here: a sweep only starts the `spikerl` binary.

pub mod method;
pub mod report;
pub mod run_folder;
mod signals;
pub mod spec;
pub mod sweep;
mod time;
