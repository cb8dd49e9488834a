//! `spikerl report RUNS_DIR --out DIR` (placeholder until implemented).
use std::path::Path;

pub fn run(_runs: &Path, _out: &Path) -> anyhow::Result<()> {
    anyhow::bail!("spikerl report is not implemented yet")
}
