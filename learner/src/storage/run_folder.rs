//! The run folder users' scripts rely on (docs/interface.md): `manifest.json` (resolved
//! configuration, seeds, versions, host, times, status), `evals.csv` (one row per evaluation),
//! `evals.png` / `evals.svg` (the evaluation curve, redrawn after every evaluation), `tb/` (TensorBoard
//! event files: evaluations and training scalars, `storage::tensorboard`) and `checkpoints/`.

use crate::storage::tensorboard::{self, EventWriter};
use serde::Serialize;
use spikerl_algo::config::RunConfig;
use spikerl_algo::seeds::Seeds;
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
    /// The seeds this run trained beside in one process (`spikerl train --sync --seeds`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed_group: Option<SeedGroupInfo>,
}

/// A run trained as one seed of several in one process.
#[derive(Clone, Debug, Serialize)]
pub struct SeedGroupInfo {
    /// Every seed of the group, this run's among them.
    pub seeds: Vec<u64>,
    pub batching: spikerl_algo::SeedBatching,
}

impl Manifest {
    /// The manifest of a run starting now: status "running", this host, seeds derived from the config's
    /// seed. `mode` is "sync" or "distributed"; `git_commit` names the build.
    pub fn starting(
        cfg: &RunConfig,
        run_id: &str,
        mode: &str,
        actors: usize,
        git_commit: &str,
    ) -> Result<Manifest, spikerl_envs::EnvError> {
        Ok(Manifest {
            run_id: run_id.to_string(),
            status: "running".into(),
            mode: mode.into(),
            config: cfg.clone(),
            env: spikerl_envs::spec(&cfg.env_id)?,
            seeds: Seeds::from_run(cfg.seed),
            versions: Versions::current(git_commit),
            host: host_name(),
            actors,
            started_at: now_rfc3339(),
            ended_at: None,
            error: None,
            resumed_from: None,
            seed_group: None,
        })
    }
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
    /// Firing rate of the encoder population. None for an ANN (and in checkpoints older than the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_firing_rate: Option<f64>,
    /// Each spiking layer `layers.{i}` (the last is the output population). Empty for an ANN (and in
    /// checkpoints older than the field).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerActivity>,
}

/// One spiking layer's activity over an evaluation's inferences.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct LayerActivity {
    /// Spikes per neuron and time step.
    pub firing_rate: f64,
    /// Neurons that never fired.
    pub dead: u64,
    /// Neurons that fired at every time step of every inference.
    pub saturated: u64,
}

impl EvalRecord {
    pub fn mean(&self) -> f64 {
        self.returns.iter().sum::<f64>() / self.returns.len().max(1) as f64
    }

    pub fn std(&self) -> f64 {
        let m = self.mean();
        (self.returns.iter().map(|r| (r - m) * (r - m)).sum::<f64>() / self.returns.len().max(1) as f64)
            .sqrt()
    }
}

/// evals.png and evals.svg in the run folder.
pub const PLOT_STEM: &str = "evals";

/// evals.csv's columns for every policy. A spiking policy's run appends [`population_columns`].
pub const EVALS_HEADER: &str = "step,avg_return,std_return,min_return,max_return,episodes,iterations,policy_version,wall_seconds,sops_per_inference,firing_rate,energy_nj_per_inference";

/// The columns evals.csv adds for a spiking policy of `layers` spiking layers (none for an ANN): the
/// firing rate of each population, then dead and saturated neurons of each spiking layer, named by the
/// populations' labels in the `spikerl_snn_layer_firing_rate` metric.
pub fn population_columns(layers: Option<usize>) -> Vec<String> {
    let Some(n) = layers else { return Vec::new() };
    let mut cols = vec!["firing_rate_encoder".to_string()];
    for what in ["firing_rate_", "dead_", "saturated_"] {
        cols.extend((0..n).map(|i| format!("{what}layers.{i}")));
    }
    cols
}

/// Spiking layers of the run's policy (None: an ANN, no populations).
fn spiking_layers(manifest: &Manifest) -> Option<usize> {
    let (cfg, env) = (&manifest.config, &manifest.env);
    let policy = cfg.policy_config(env.obs_dim, env.act_dim, vec![1.0; env.act_dim]);
    match policy.network {
        spikerl_snn::NetworkConfig::Snn(_) => Some(policy.layer_dims().len()),
        spikerl_snn::NetworkConfig::Ann { .. } => None,
    }
}

/// The scalars an evaluation adds to the TensorBoard files (tags: docs/interface.md).
fn eval_scalars(e: &EvalRecord, min: f64, max: f64) -> Vec<(String, f64)> {
    let mut out = vec![
        ("eval/return_mean".to_string(), e.mean()),
        ("eval/return_std".to_string(), e.std()),
        ("eval/return_min".to_string(), min),
        ("eval/return_max".to_string(), max),
        ("eval/energy_nj_per_inference".to_string(), e.energy_nj_per_inference),
    ];
    if let Some(encoder) = e.encoder_firing_rate {
        out.push(("eval/sops_per_inference".into(), e.sops_per_inference));
        out.push(("firing_rate/network".into(), e.firing_rate));
        out.push(("firing_rate/encoder".into(), encoder));
    }
    for (i, l) in e.layers.iter().enumerate() {
        out.push((format!("firing_rate/layers.{i}"), l.firing_rate));
        out.push((format!("dead_neurons/layers.{i}"), l.dead as f64));
        out.push((format!("saturated_neurons/layers.{i}"), l.saturated as f64));
    }
    out
}

/// The run folder's TensorBoard files. Watching a run must never end it: a failed write (a full disk)
/// is logged, and the next write tries again.
struct Tensorboard {
    dir: PathBuf,
    /// This machine's name, in the file's name.
    host: String,
    /// None until the file could be created.
    writer: Option<EventWriter>,
    /// The last write failed (logged once until one succeeds again).
    failing: bool,
}

impl Tensorboard {
    fn write(&mut self, what: impl FnOnce(&mut EventWriter) -> std::io::Result<()>) {
        let result = match &mut self.writer {
            Some(w) => what(w),
            None => EventWriter::create(&self.dir, &self.host).and_then(|mut w| {
                let written = what(&mut w);
                self.writer = Some(w);
                written
            }),
        };
        match (result, self.failing) {
            (Ok(()), true) => {
                tracing::info!(dir = %self.dir.display(), "TensorBoard files written again");
                self.failing = false;
            }
            (Err(e), false) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "could not write the TensorBoard files; training goes on");
                self.failing = true;
            }
            _ => {}
        }
    }
}

/// Folder of `train --video-every`'s videos in a run folder.
pub const VIDEOS_DIR: &str = "videos";

/// The file of the video recorded at the evaluation at `step` (zero-padded so that names sort by step).
pub fn video_path(run_folder: &Path, step: u64, extension: &str) -> PathBuf {
    run_folder.join(VIDEOS_DIR).join(format!("step-{step:010}.{extension}"))
}

/// Removes an older run's videos (`step-*.mp4|gif`); anything else in the folder is left alone.
fn remove_videos(dir: &Path) -> std::io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("step-") && (name.ends_with(".mp4") || name.ends_with(".gif")) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

pub struct RunFolder {
    path: PathBuf,
    manifest: Manifest,
    evals: File,
    /// The curve drawn into evals.png / evals.svg: (step, mean, min, max) of every evaluation so far.
    curve: Vec<spikerl_plot::Point>,
    /// Evaluation episodes of the latest evaluation (for the legend).
    episodes: usize,
    /// Spiking layers of the run's policy (None for an ANN): evals.csv's population columns.
    spiking_layers: Option<usize>,
    tb: Tensorboard,
}

impl RunFolder {
    /// Creates the folder (and `checkpoints/`), writes the manifest and a fresh evals.csv, and opens a new
    /// TensorBoard event file in `tb/`. A new run in a folder that held an older one replaces its
    /// evaluations, checkpoints and event files (a resumed run rewrites evals.csv from its checkpoint
    /// instead, see `rewrite_evals`, and keeps the event files of its earlier lives, see `mark_resumed`).
    pub fn create(path: &Path, manifest: Manifest) -> std::io::Result<RunFolder> {
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
        let tb_dir = path.join("tb");
        if manifest.resumed_from.is_none()
            && let Err(e) = tensorboard::remove_event_files(&tb_dir)
        {
            // TensorBoard would show the older run's curves with this one's: say so, but train.
            tracing::warn!(error = %e, dir = %tb_dir.display(), "could not remove an older run's TensorBoard files");
        }
        if manifest.resumed_from.is_none() {
            remove_videos(&path.join(VIDEOS_DIR))?;
        }
        let spiking_layers = spiking_layers(&manifest);
        let csv = path.join("evals.csv");
        let mut evals = File::create(&csv)?;
        writeln!(evals, "{}", evals_header(spiking_layers))?;
        // An older run's curve would be shown as this run's until the first evaluation redraws it.
        for stale in [PLOT_STEM.to_string() + ".png", PLOT_STEM.to_string() + ".svg"] {
            match fs::remove_file(path.join(stale)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let mut tb = Tensorboard { dir: tb_dir, host: manifest.host.clone(), writer: None, failing: false };
        tb.write(|_| Ok(())); // the file now, so that TensorBoard shows the run from its start
        let dir = RunFolder {
            path: path.to_path_buf(),
            manifest,
            evals,
            curve: Vec::new(),
            episodes: 0,
            spiking_layers,
            tb,
        };
        dir.write_manifest()?;
        Ok(dir)
    }

    /// Whether this run is one seed of a seed group (`train --seeds`): its series carry `seed`.
    pub fn in_seed_group(&self) -> bool {
        self.manifest.seed_group.is_some()
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
            writeln!(f, "{}", evals_header(self.spiking_layers))?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &csv)?;
        self.evals = OpenOptions::new().append(true).open(&csv)?;
        self.curve.clear();
        history.iter().try_for_each(|e| self.write_eval(e))?;
        self.redraw_curve();
        Ok(())
    }

    /// Appends an evaluation to evals.csv and the TensorBoard files and redraws the curve (a failure
    /// to draw or to write the TensorBoard files is logged only).
    pub fn append_eval(&mut self, e: &EvalRecord) -> std::io::Result<()> {
        let scalars = eval_scalars(e, min_return(e), max_return(e));
        self.tb.write(|w| w.write_scalars(e.step, &scalars));
        self.write_eval(e)?;
        self.redraw_curve();
        Ok(())
    }

    /// Adds `scalars` (tag, value) at env step `step` to the TensorBoard files; a failure is logged only.
    pub fn write_scalars(&mut self, step: u64, scalars: &[(String, f64)]) {
        self.tb.write(|w| w.write_scalars(step, scalars));
    }

    /// Tells TensorBoard that this life of the run resumed from a checkpoint taken at env step `step`:
    /// what earlier lives wrote after that step is dropped (this life does it again).
    pub fn mark_resumed(&mut self, step: u64) {
        self.tb.write(|w| w.session_start(step + 1));
    }

    fn write_eval(&mut self, e: &EvalRecord) -> std::io::Result<()> {
        let (min, max) = (min_return(e), max_return(e));
        self.curve.push(spikerl_plot::Point { x: e.step as f64, y: e.mean(), lo: min, hi: max });
        self.episodes = e.returns.len();
        write!(
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
        if let Some(n) = self.spiking_layers {
            // Empty cells where the record has no figure (a row from a checkpoint older than the columns).
            let layer = |i: usize| e.layers.get(i);
            let mut cells = vec![e.encoder_firing_rate.map(|r| format!("{r:.6}"))];
            cells.extend((0..n).map(|i| layer(i).map(|l| format!("{:.6}", l.firing_rate))));
            cells.extend((0..n).map(|i| layer(i).map(|l| l.dead.to_string())));
            cells.extend((0..n).map(|i| layer(i).map(|l| l.saturated.to_string())));
            for c in cells {
                write!(self.evals, ",{}", c.unwrap_or_default())?;
            }
        }
        writeln!(self.evals)?;
        self.evals.flush()
    }

    /// Redraws evals.png and evals.svg from every evaluation so far. The curve is for people watching
    /// the run: a failure (a full disk, or a bug in drawing, even a panic) is logged and never stops
    /// training; the next evaluation tries again.
    fn redraw_curve(&self) {
        let chart = self.curve_chart();
        let stem = self.path.join(PLOT_STEM);
        let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| chart.write(&stem)));
        match drawn {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "could not draw the evaluation curve; training goes on")
            }
            Err(_) => tracing::error!("drawing the evaluation curve panicked; training goes on"),
        }
    }

    /// The evaluation curve: mean return per evaluation with the min-max band over its episodes.
    pub fn curve_chart(&self) -> spikerl_plot::Chart {
        let cfg = &self.manifest.config;
        let method = match cfg.algo {
            spikerl_algo::Algo::Ann => "ANN TD3".to_string(),
            algo => format!("{algo} {}", cfg.neuron),
        };
        let n = self.curve.len();
        let mut title = format!(
            "{} {method} ({}): {n} evaluation{}",
            cfg.env_id,
            self.manifest.run_id,
            if n == 1 { "" } else { "s" }
        );
        if let Some(best) = self.curve.iter().map(|p| p.y).filter(|y| y.is_finite()).reduce(f64::max) {
            title += &format!(", best {}", spikerl_plot::number_label(best));
        }
        spikerl_plot::Chart {
            title,
            x_desc: "environment steps (random ones included)".into(),
            y_desc: "evaluation return".into(),
            curves: vec![spikerl_plot::Curve {
                label: format!("mean of {} episodes (band: min to max)", self.episodes),
                color: (31, 119, 180),
                dashed: false,
                markers: true,
                points: self.curve.clone(),
            }],
        }
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

/// evals.csv's header for a policy of `spiking_layers` spiking layers (None: an ANN).
fn evals_header(spiking_layers: Option<usize>) -> String {
    std::iter::once(EVALS_HEADER.to_string())
        .chain(population_columns(spiking_layers))
        .collect::<Vec<_>>()
        .join(",")
}

fn min_return(e: &EvalRecord) -> f64 {
    e.returns.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max_return(e: &EvalRecord) -> f64 {
    e.returns.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    // On a full disk the partial temporary file would keep holding the space it took: remove it.
    write().inspect_err(|_| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use spikerl_algo::{Algo, RunConfig};
    use spikerl_snn::NeuronKind;

    fn run_folder(name: &str) -> (PathBuf, RunFolder) {
        let path = std::env::temp_dir().join(format!("spikerl-rundir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        let config = RunConfig::paper("Pendulum-v1", Algo::Proxy, NeuronKind::Lif, 3);
        let manifest = Manifest::starting(&config, "plot-test", "sync", 1, "test").unwrap();
        let dir = RunFolder::create(&path, manifest).unwrap();
        (path, dir)
    }

    fn record(step: u64, returns: Vec<f64>) -> EvalRecord {
        EvalRecord {
            step,
            iterations: step,
            policy_version: step / 2,
            returns,
            wall_seconds: 1.0,
            sops_per_inference: 0.0,
            firing_rate: 0.0,
            energy_nj_per_inference: 0.0,
            encoder_firing_rate: Some(0.25),
            layers: (0..3)
                .map(|i| LayerActivity { firing_rate: 0.1 * i as f64, dead: i, saturated: 1 })
                .collect(),
        }
    }

    fn svg(path: &Path) -> String {
        fs::read_to_string(path.join("evals.svg")).unwrap()
    }

    #[test]
    fn every_evaluation_redraws_the_curve() {
        let (path, mut dir) = run_folder("redraw");
        assert!(!path.join("evals.png").exists(), "no curve before the first evaluation");
        let mut previous = Vec::new();
        for i in 1..=3u64 {
            dir.append_eval(&record(i * 1000, vec![-1200.0 + i as f64 * 100.0, -1000.0 + i as f64 * 50.0]))
                .unwrap();
            let png = fs::read(path.join("evals.png")).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
            assert_ne!(png, previous, "evaluation {i} changed the PNG");
            previous = png;
            let text = svg(&path);
            let want = format!("{i} evaluation{}", if i == 1 { "" } else { "s" });
            assert!(
                text.contains(&want) && text.contains("Pendulum-v1 proxy lif (plot-test)"),
                "{want}: {text}"
            );
        }
        assert!(svg(&path).contains("best -875") && svg(&path).contains("mean of 2 episodes"));
        fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn a_resumed_history_is_drawn_and_a_new_run_removes_an_old_curve() {
        let (path, mut dir) = run_folder("resume");
        let history: Vec<EvalRecord> = (0..4).map(|i| record(i * 500, vec![-100.0 * i as f64])).collect();
        dir.rewrite_evals(&history).unwrap();
        assert!(svg(&path).contains("4 evaluations"));
        assert_eq!(fs::read_to_string(path.join("evals.csv")).unwrap().lines().count(), 5);
        // A new run in the same folder starts without the old run's curve.
        let manifest = dir.manifest.clone();
        drop(dir);
        let _dir = RunFolder::create(&path, manifest).unwrap();
        assert!(!path.join("evals.png").exists() && !path.join("evals.svg").exists());
        fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn a_spiking_run_has_a_column_per_population_and_old_records_leave_them_empty() {
        let (path, mut dir) = run_folder("columns");
        let mut old = record(0, vec![-1.0]);
        (old.encoder_firing_rate, old.layers) = (None, Vec::new());
        dir.rewrite_evals(&[old, record(100, vec![-2.0])]).unwrap();
        let text = fs::read_to_string(path.join("evals.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let extra = "firing_rate_encoder,firing_rate_layers.0,firing_rate_layers.1,firing_rate_layers.2,\
                     dead_layers.0,dead_layers.1,dead_layers.2,saturated_layers.0,saturated_layers.1,saturated_layers.2";
        assert_eq!(lines[0], format!("{EVALS_HEADER},{extra}"));
        assert!(lines[1].ends_with(",,,,,,,,,,"), "{}", lines[1]);
        assert!(lines[2].ends_with(",0.250000,0.000000,0.100000,0.200000,0,1,2,1,1,1"), "{}", lines[2]);
        assert!(lines.iter().all(|l| l.split(',').count() == lines[0].split(',').count()));
        // An older checkpoint's records (no population fields) still load.
        let json = serde_json::to_value(record(5, vec![1.0])).unwrap();
        let mut legacy = json.as_object().unwrap().clone();
        legacy.remove("encoder_firing_rate");
        legacy.remove("layers");
        let back: EvalRecord = serde_json::from_value(legacy.into()).unwrap();
        assert_eq!((back.encoder_firing_rate, back.layers.len()), (None, 0));
        // An ANN's evals.csv keeps the columns every run has.
        assert!(population_columns(None).is_empty());
        fs::remove_dir_all(&path).unwrap();
    }

    fn event_files(path: &Path) -> usize {
        fs::read_dir(path.join("tb")).map_or(0, |d| d.count())
    }

    #[test]
    fn a_resumed_run_adds_an_event_file_and_a_new_run_replaces_them() {
        let (path, mut dir) = run_folder("tb-lives");
        dir.append_eval(&record(0, vec![-1.0])).unwrap();
        assert_eq!(event_files(&path), 1);
        let mut manifest = dir.manifest.clone();
        drop(dir);
        manifest.resumed_from = Some("checkpoints/ckpt-1".into());
        let mut resumed = RunFolder::create(&path, manifest.clone()).unwrap();
        resumed.mark_resumed(0);
        assert_eq!(event_files(&path), 2, "each life of a run writes its own file");
        drop(resumed);
        manifest.resumed_from = None;
        let _fresh = RunFolder::create(&path, manifest).unwrap();
        assert_eq!(event_files(&path), 1, "a new run starts from its own file alone");
        fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn tensorboard_files_that_cannot_be_written_do_not_fail_the_run() {
        let path = std::env::temp_dir().join(format!("spikerl-rundir-tb-blocked-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        // A file where the folder should go: no event file can be made there.
        fs::write(path.join("tb"), "not a folder").unwrap();
        let config = RunConfig::paper("Pendulum-v1", Algo::Proxy, NeuronKind::Lif, 3);
        let manifest = Manifest::starting(&config, "tb-blocked", "sync", 1, "test").unwrap();
        let mut dir = RunFolder::create(&path, manifest).unwrap();
        dir.append_eval(&record(0, vec![-1.0])).unwrap();
        dir.write_scalars(10, &[("train/critic_loss".into(), 1.0)]);
        assert_eq!(fs::read_to_string(path.join("evals.csv")).unwrap().lines().count(), 2);
        // Once the way is clear, the next write makes the file.
        fs::remove_file(path.join("tb")).unwrap();
        dir.write_scalars(20, &[("train/critic_loss".into(), 1.0)]);
        assert_eq!(event_files(&path), 1);
        fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn a_curve_that_cannot_be_written_does_not_fail_the_evaluation() {
        let (path, mut dir) = run_folder("blocked");
        // A folder where the PNG should go: the rename fails, the evaluation is still recorded.
        fs::create_dir(path.join("evals.png")).unwrap();
        dir.append_eval(&record(0, vec![-1.0])).unwrap();
        dir.append_eval(&record(10, vec![f64::NAN])).unwrap();
        assert_eq!(fs::read_to_string(path.join("evals.csv")).unwrap().lines().count(), 3);
        let leftovers: Vec<_> = fs::read_dir(&path)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        fs::remove_dir_all(&path).unwrap();
    }
}
