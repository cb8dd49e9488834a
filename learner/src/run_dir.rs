//! The run folder users' scripts rely on (../shared/docs/interface.md): `manifest.json` (resolved
//! configuration, seeds, versions, host, times, status), `evals.csv` (one row per evaluation) and
//! `checkpoints/`.

use crate::config::RunConfig;
use serde::Serialize;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Versions of everything that decides a run's numbers.
#[derive(Clone, Debug, Serialize)]
pub struct Versions {
    pub spikerl: String,
    pub git_commit: String,
    pub libtorch: String,
    pub mujoco: String,
    pub protocol: u32,
}

impl Versions {
    pub fn current(git_commit: &str) -> Versions {
        Versions {
            spikerl: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: git_commit.to_string(),
            libtorch: "2.13.0".to_string(),
            mujoco: "3.17.0".to_string(),
            protocol: spikerl_proto::PROTOCOL_VERSION,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    pub run_id: String,
    /// "running", "completed", "failed" or "interrupted".
    pub status: String,
    /// "sync" (lockstep, in one process) or "distributed".
    pub mode: String,
    pub config: RunConfig,
    pub env: spikerl_envs::EnvSpec,
    pub seeds: Seeds,
    pub versions: Versions,
    pub host: String,
    pub actors: usize,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub error: Option<String>,
    /// The checkpoint this life of the run resumed from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
}

/// Every random stream's seed, derived from the run seed.
#[derive(Clone, Debug, Serialize)]
pub struct Seeds {
    pub run: u64,
    pub torch: u64,
    pub replay: u64,
    /// TD3's target policy smoothing noise.
    pub target_noise: u64,
    pub eval_env: u64,
    /// Actor i's seed is `derive_seed(run, 1000 + i)`; in lockstep mode the single actor is 0.
    pub actor_base: u64,
}

impl Seeds {
    pub fn from_run(seed: u64) -> Seeds {
        Seeds { run: seed, torch: derive_seed(seed, 1), replay: derive_seed(seed, 2), target_noise: derive_seed(seed, 3), eval_env: seed + 100, actor_base: 1000 }
    }
}

/// Derives an independent stream seed (SplitMix64 finaliser over seed and stream index).
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One evaluation's result (also kept in checkpoints, as the run's history).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct EvalRecord {
    /// Env steps taken by training actors when the evaluation ran (random ones included).
    pub step: u64,
    pub iterations: u64,
    pub policy_version: u64,
    pub returns: Vec<f64>,
    pub wall_seconds: f64,
    /// Spiking statistics of the evaluated policy over the evaluation episodes (plain-Rust inference).
    pub sops_per_inference: f64,
    pub firing_rate: f64,
    /// The paper's energy model: SOPs x 77 fJ (SNN) or MACs x 3.97 pJ (ANN), in nJ per inference.
    pub energy_nj_per_inference: f64,
}

impl EvalRecord {
    pub fn mean(&self) -> f64 {
        self.returns.iter().sum::<f64>() / self.returns.len().max(1) as f64
    }

    pub fn std(&self) -> f64 {
        let m = self.mean();
        (self.returns.iter().map(|r| (r - m) * (r - m)).sum::<f64>() / self.returns.len().max(1) as f64).sqrt()
    }
}

pub const EVALS_HEADER: &str = "step,avg_return,std_return,min_return,max_return,episodes,iterations,policy_version,wall_seconds,sops_per_inference,firing_rate,energy_nj_per_inference";

pub struct RunDir {
    path: PathBuf,
    manifest: Manifest,
    evals: File,
}

impl RunDir {
    /// Creates the folder (and `checkpoints/`), writes the manifest and a fresh evals.csv. A new run in
    /// a folder that held an older one replaces its evaluations and checkpoints (a resumed run rewrites
    /// evals.csv from its checkpoint instead, see `rewrite_evals`).
    pub fn create(path: &Path, manifest: Manifest) -> std::io::Result<RunDir> {
        let checkpoints = path.join("checkpoints");
        fs::create_dir_all(&checkpoints)?;
        if manifest.resumed_from.is_none() {
            for entry in fs::read_dir(&checkpoints)?.flatten() {
                if entry.file_name().to_string_lossy().starts_with("ckpt-") {
                    tracing::warn!(path = %entry.path().display(), "a new run replaces an older run's checkpoint");
                    fs::remove_dir_all(entry.path())?;
                }
            }
        }
        let csv = path.join("evals.csv");
        let mut evals = File::create(&csv)?;
        writeln!(evals, "{EVALS_HEADER}")?;
        let dir = RunDir { path: path.to_path_buf(), manifest, evals };
        dir.write_manifest()?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    /// Rewrites evals.csv from `history` (a resumed run's authoritative record: rows written after
    /// the checkpoint it resumed from are dropped, they will be evaluated again).
    pub fn rewrite_evals(&mut self, history: &[EvalRecord]) -> std::io::Result<()> {
        let csv = self.path.join("evals.csv");
        let tmp = csv.with_extension("csv.tmp");
        {
            let mut f = File::create(&tmp)?;
            writeln!(f, "{EVALS_HEADER}")?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &csv)?;
        self.evals = OpenOptions::new().append(true).open(&csv)?;
        history.iter().try_for_each(|e| self.append_eval(e))
    }

    pub fn append_eval(&mut self, e: &EvalRecord) -> std::io::Result<()> {
        let min = e.returns.iter().copied().fold(f64::INFINITY, f64::min);
        let max = e.returns.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        writeln!(
            self.evals,
            "{},{:.6},{:.6},{:.6},{:.6},{},{},{},{:.3},{:.1},{:.6},{:.4}",
            e.step,
            e.mean(),
            e.std(),
            min,
            max,
            e.returns.len(),
            e.iterations,
            e.policy_version,
            e.wall_seconds,
            e.sops_per_inference,
            e.firing_rate,
            e.energy_nj_per_inference
        )?;
        self.evals.flush()
    }

    /// Records the final status and end time.
    pub fn finish(&mut self, status: &str, error: Option<String>) -> std::io::Result<()> {
        self.manifest.status = status.to_string();
        self.manifest.ended_at = Some(now_rfc3339());
        self.manifest.error = error;
        self.write_manifest()
    }

    fn write_manifest(&self) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(&self.manifest).map_err(std::io::Error::other)?;
        write_atomic(&self.path.join("manifest.json"), &json)
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
