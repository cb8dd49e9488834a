//! `spikerl sweep SPEC.toml --out DIR` (placeholder until implemented).
use std::path::Path;

/// Scheduling options of a sweep.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SweepOptions {
    /// Runs executed at once (default: one per two cores).
    #[arg(long)]
    pub jobs: Option<usize>,
}

pub fn run(_spec: &Path, _out: &Path, _opts: &SweepOptions) -> anyhow::Result<()> {
    anyhow::bail!("spikerl sweep is not implemented yet")
}
