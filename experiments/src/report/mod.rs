//! `spikerl report RUNS_DIR --out DIR`: every run folder under RUNS_DIR (any depth: a sweep's folder,
//! or folders written by `spikerl train --out`) aggregated into the paper's tables.
//!
//! Per run: the maximum over its evaluations of the average return (the paper's metric). Per
//! environment x method: mean and population std (ddof = 0, numpy's default, as the paper's code) over
//! seeds. Per method: APG against the ANN row, the proxy's gain over the vanilla SNN of the same
//! neuron, the seed spread std/|mean|. Only completed runs count; the others are listed with why.
//!
//! A method includes its base (`config.base`: TD3, SAC, DDPG): each base has its own rows, named
//! after it (`SAC PT-LIF`; TD3's keep the paper's names), and is compared with its own ANN and vanilla
//! rows. The paper's published numbers are TD3's and stand beside TD3's rows only.
//!
//! Writes DIR/report.md, DIR/report.html, DIR/table1.csv, DIR/methods.csv, DIR/energy.csv,
//! DIR/curves.csv, DIR/runs.csv, DIR/summary.json (every aggregated number) and DIR/plots/.

mod blocks;
pub mod doc;
mod files;
pub mod paper;
mod plot;
pub mod stats;

use crate::method::{Algo, Base, Method, env_order};
use crate::run_folder::{self, Eval, RunInfo};
use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;
use stats::CurvePoint;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// One completed run, read and reduced.
#[derive(Clone, Debug)]
pub struct RunData {
    /// Relative to RUNS_DIR.
    pub dir: String,
    pub info: RunInfo,
    pub evals: Vec<Eval>,
    pub max_avg_return: f64,
    /// Env steps (random ones included) at the last evaluation.
    pub env_steps: f64,
    /// Training steps at the last evaluation: env steps less the random ones (what `--steps` counts).
    pub train_steps: f64,
}

/// A run folder that does not count, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Excluded {
    pub dir: String,
    pub status: String,
    pub reason: String,
}

/// Table 1's cell: one environment x method over its seeds.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub env: String,
    pub method: String,
    pub label: String,
    /// The RL algorithm under the method (`td3`, `sac`, `ddpg`); also the prefix of other bases' keys.
    pub base: Base,
    pub n_seeds: usize,
    pub seeds: Vec<u64>,
    pub runs: Vec<String>,
    /// Per seed (same order as `seeds`): max over evaluations of the average return.
    pub max_avg_returns: Vec<f64>,
    pub mean: f64,
    /// Population std (ddof = 0).
    pub std: f64,
    /// Sample std (ddof = 1), for those who prefer it; null below 2 seeds.
    pub std_sample: Option<f64>,
    /// std / |mean|.
    pub seed_spread: Option<f64>,
    /// Mean over seeds of the last evaluation's average return.
    pub final_avg_return_mean: f64,
    pub train_steps_min: f64,
    pub train_steps_max: f64,
    pub env_steps_max: f64,
    /// The paper's published mean and std for this cell, if any (NOT our runs).
    pub paper_mean: Option<f64>,
    pub paper_std: Option<f64>,
    /// Configuration fields (besides the seed) in which this cell's runs differ.
    pub config_differences: Vec<String>,
}

/// Per method, across environments.
#[derive(Clone, Debug, Serialize)]
pub struct MethodSummary {
    pub method: String,
    pub label: String,
    pub base: Base,
    pub envs: usize,
    /// Mean over envs of (return / ANN return - 1), as (R - R_ann) / |R_ann|, against the ANN of the
    /// same base.
    pub apg: Option<f64>,
    pub apg_envs: usize,
    /// Proxy rows: mean over envs of (return / vanilla return of the same neuron - 1).
    pub gain_over_vanilla: Option<f64>,
    pub gain_envs: usize,
    /// Mean over envs of std / |mean|.
    pub mean_seed_spread: Option<f64>,
    pub seeds_min: usize,
    pub seeds_max: usize,
    pub train_steps_min: f64,
    pub train_steps_max: f64,
    /// The same three figures computed from the paper's published numbers over the same cells.
    pub paper_apg: Option<f64>,
    pub paper_gain_over_vanilla: Option<f64>,
    pub paper_mean_seed_spread: Option<f64>,
}

/// The energy table's row: the last evaluation's columns, mean over seeds.
#[derive(Clone, Debug, Serialize)]
pub struct EnergyRow {
    pub env: String,
    pub method: String,
    pub label: String,
    pub base: Base,
    pub n: usize,
    /// SNN: synaptic operations per inference.
    pub sops_per_inference: Option<f64>,
    /// ANN: multiply-accumulates per inference (energy / 3.97 pJ).
    pub macs_per_inference: Option<f64>,
    pub firing_rate: Option<f64>,
    pub energy_nj_per_inference: Option<f64>,
    /// The energy of the ANN of the same base on this env divided by this method's.
    pub ann_energy_ratio: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Curve {
    #[serde(skip)]
    pub m: Method,
    pub env: String,
    pub method: String,
    pub label: String,
    pub base: Base,
    pub points: Vec<CurvePoint>,
}

/// One counted run (runs.csv).
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    pub dir: String,
    pub env: String,
    pub method: String,
    pub base: Base,
    pub seed: u64,
    pub max_avg_return: f64,
    pub final_avg_return: f64,
    pub env_steps: f64,
    pub train_steps: f64,
    pub evaluations: usize,
}

/// Everything the report says, as numbers (summary.json).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub runs_dir: String,
    pub generated_at: String,
    pub metric: &'static str,
    pub std: &'static str,
    pub envs: Vec<String>,
    pub methods: Vec<String>,
    pub completed_runs: usize,
    pub table1: Vec<Cell>,
    pub method_summaries: Vec<MethodSummary>,
    pub energy: Vec<EnergyRow>,
    pub curves: Vec<Curve>,
    pub runs: Vec<RunRow>,
    pub excluded: Vec<Excluded>,
    /// Whether the budget matches the paper's protocol (1M training steps, 25k random, 5 seeds).
    pub paper_protocol: bool,
    pub notes: Vec<String>,
}

const MAC_ENERGY_PJ: f64 = 3.97;

pub fn run(runs_dir: &Path, out: &Path) -> anyhow::Result<()> {
    let folders = find_run_folders(runs_dir)?;
    if folders.is_empty() {
        bail!("no run folders (a folder with manifest.json) under {}", runs_dir.display());
    }
    let (runs, excluded) = load_runs(runs_dir, &folders);
    let summary = summarize(runs_dir, &runs, excluded);
    files::write_report(out, &summary)?;
    println!("{}", doc::markdown(&blocks::table1_blocks(&summary)));
    println!(
        "report: {} (and report.html, table1.csv, summary.json, plots/)",
        out.join("report.md").display()
    );
    Ok(())
}

/// Folders holding a manifest.json, in path order; `checkpoints/` and the inside of a run are not
/// searched.
pub fn find_run_folders(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if run_folder::manifest_path(&dir).is_file() {
            found.push(dir);
            continue;
        }
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if dir == root => {
                return Err(e).with_context(|| format!("reading {}", root.display()));
            }
            Err(_) => continue,
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name() != "checkpoints" {
                stack.push(e.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

fn relative(root: &Path, dir: &Path) -> String {
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    if rel.as_os_str().is_empty() { ".".to_string() } else { rel.display().to_string() }
}

/// Reads every folder; completed runs with evaluations count, one per (env, method, seed).
pub fn load_runs(root: &Path, folders: &[PathBuf]) -> (Vec<RunData>, Vec<Excluded>) {
    let mut runs: Vec<RunData> = Vec::new();
    let mut excluded = Vec::new();
    for dir in folders {
        let rel = relative(root, dir);
        let mut exclude = |status: &str, reason: String| {
            excluded.push(Excluded { dir: rel.clone(), status: status.to_string(), reason })
        };
        let info = match run_folder::read_manifest(dir).and_then(|m| run_folder::run_info(&m)) {
            Ok(i) => i,
            Err(e) => {
                exclude("unreadable", format!("{e:#}"));
                continue;
            }
        };
        if info.status != "completed" {
            let why = match &info.error {
                Some(e) => format!("not completed: {}", e.lines().next().unwrap_or("")),
                None => "not completed".to_string(),
            };
            exclude(&info.status, why);
            continue;
        }
        let evals = match run_folder::read_evals(dir) {
            Ok(e) => e,
            Err(e) => {
                exclude("completed", format!("{e:#}"));
                continue;
            }
        };
        let returns: Vec<f64> = evals.iter().map(|e| e.avg_return).collect();
        let Some(max_avg_return) = stats::max_average_return(&returns) else {
            exclude("completed", "no evaluations in evals.csv".into());
            continue;
        };
        if let Some(first) = runs
            .iter()
            .find(|r| r.info.env == info.env && r.info.method == info.method && r.info.seed == info.seed)
        {
            exclude("completed", format!("the same env, method and seed as {} (counted once)", first.dir));
            continue;
        }
        let env_steps = evals.last().map_or(0.0, |e| e.step);
        let train_steps = (env_steps - info.random_steps.unwrap_or(0) as f64).max(0.0);
        runs.push(RunData { dir: rel, info, evals, max_avg_return, env_steps, train_steps });
    }
    (runs, excluded)
}

/// Configuration fields (dotted paths) whose values differ among `configs`, the seed aside.
pub fn config_differences(configs: &[&Value]) -> Vec<String> {
    fn flatten(v: &Value, prefix: String, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    flatten(v, if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, out);
                }
            }
            other => {
                out.insert(prefix, other.to_string());
            }
        }
    }
    let flat: Vec<BTreeMap<String, String>> = configs
        .iter()
        .map(|c| {
            let mut m = BTreeMap::new();
            flatten(c, String::new(), &mut m);
            m
        })
        .collect();
    let keys: BTreeSet<&String> = flat.iter().flat_map(|m| m.keys()).collect();
    keys.into_iter()
        .filter(|k| k.as_str() != "seed" && !k.ends_with(".seed"))
        .filter(|k| flat.iter().any(|m| m.get(*k) != flat[0].get(*k)))
        .cloned()
        .collect()
}

/// The completed runs by (environment, method).
type Groups<'r> = BTreeMap<(String, Method), Vec<&'r RunData>>;

/// Reduces the counted runs to every table of the report: Table 1's cells, per method, energy, curves, runs.
pub fn summarize(runs_dir: &Path, runs: &[RunData], excluded: Vec<Excluded>) -> Summary {
    let mut groups: Groups = BTreeMap::new();
    for r in runs {
        groups.entry((r.info.env.clone(), r.info.method)).or_default().push(r);
    }
    let mut envs: Vec<String> =
        groups.keys().map(|(e, _)| e.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    envs.sort_by_key(|e| env_order(e));
    let methods: Vec<Method> = groups.keys().map(|(_, m)| *m).collect::<BTreeSet<_>>().into_iter().collect();

    let cells: Vec<Cell> =
        in_table_order(&groups, &envs, &methods).map(|(e, m, rs)| cell(e, m, rs)).collect();
    let method_summaries = methods.iter().map(|m| method_summary(m, &envs, &cells)).collect();
    let energy = envs.iter().flat_map(|env| energy_rows(env, &methods, &groups)).collect();
    let curves = in_table_order(&groups, &envs, &methods).map(|(e, m, rs)| curve(e, m, rs)).collect();
    let paper_protocol = follows_paper_protocol(&cells, runs);
    let notes = config_notes(&cells);
    Summary {
        runs_dir: runs_dir.display().to_string(),
        generated_at: crate::time::now_rfc3339(),
        metric: "max over evaluations of the average evaluation return (per run), then mean and std over seeds",
        std: "population (ddof = 0, as numpy.std in the paper's code)",
        envs,
        methods: methods.iter().map(Method::key).collect(),
        completed_runs: runs.len(),
        table1: cells,
        method_summaries,
        energy,
        curves,
        runs: run_rows(runs),
        excluded,
        paper_protocol,
        notes,
    }
}

/// The groups that have runs, environments outer and methods inner (Table 1's order).
fn in_table_order<'a, 'r>(
    groups: &'a Groups<'r>,
    envs: &'a [String],
    methods: &'a [Method],
) -> impl Iterator<Item = (&'a String, &'a Method, &'a [&'r RunData])> {
    envs.iter().flat_map(move |env| {
        methods.iter().filter_map(move |m| groups.get(&(env.clone(), *m)).map(|rs| (env, m, rs.as_slice())))
    })
}

/// Table 1's cell from one environment x method's runs.
fn cell(env: &str, m: &Method, rs: &[&RunData]) -> Cell {
    let mut rs = rs.to_vec();
    rs.sort_by_key(|r| r.info.seed);
    let vals: Vec<f64> = rs.iter().map(|r| r.max_avg_return).collect();
    let finals: Vec<f64> = rs.iter().filter_map(|r| r.evals.last().map(|e| e.avg_return)).collect();
    let mean = stats::mean(&vals).unwrap_or(f64::NAN);
    let std = stats::std_pop(&vals).unwrap_or(f64::NAN);
    let paper = paper::table1(env, m);
    let train: Vec<f64> = rs.iter().map(|r| r.train_steps).collect();
    Cell {
        env: env.to_string(),
        method: m.key(),
        label: m.label(),
        base: m.base,
        n_seeds: rs.len(),
        seeds: rs.iter().map(|r| r.info.seed).collect(),
        runs: rs.iter().map(|r| r.dir.clone()).collect(),
        max_avg_returns: vals.clone(),
        mean,
        std,
        std_sample: stats::std_sample(&vals),
        seed_spread: stats::spread(mean, std),
        final_avg_return_mean: stats::mean(&finals).unwrap_or(f64::NAN),
        train_steps_min: train.iter().copied().fold(f64::INFINITY, f64::min),
        train_steps_max: train.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        env_steps_max: rs.iter().map(|r| r.env_steps).fold(f64::NEG_INFINITY, f64::max),
        paper_mean: paper.map(|p| p.0),
        paper_std: paper.map(|p| p.1),
        config_differences: config_differences(&rs.iter().map(|r| &r.info.config).collect::<Vec<_>>()),
    }
}

fn find_cell<'c>(cells: &'c [Cell], env: &str, m: &Method) -> Option<&'c Cell> {
    cells.iter().find(|c| c.env == env && c.method == m.key())
}

/// (ours, the paper's): mean relative difference and the number of environments it covers.
type Relative = Option<(f64, usize)>;

/// `mine` against the cells of `base` on the same environments, ours and the paper's.
fn relative_to(mine: &[&Cell], base: &Method, cells: &[Cell]) -> (Relative, Relative) {
    let pairs: Vec<(&Cell, &Cell)> =
        mine.iter().filter_map(|c| find_cell(cells, &c.env, base).map(|b| (*c, b))).collect();
    let ours = stats::mean_relative(pairs.iter().map(|(c, b)| (c.mean, b.mean)));
    let theirs = stats::mean_relative(pairs.iter().filter_map(|(c, b)| Some((c.paper_mean?, b.paper_mean?))));
    (ours, theirs)
}

/// One method across environments: APG, the proxy's gain over vanilla, the seed spread. Both gains
/// compare within the method's base (SAC's PT-LIF against SAC's ANN and SAC's vanilla LIF).
fn method_summary(m: &Method, envs: &[String], cells: &[Cell]) -> MethodSummary {
    let mine: Vec<&Cell> = envs.iter().filter_map(|e| find_cell(cells, e, m)).collect();
    let (apg, paper_apg) =
        if m.algo == Algo::Ann { (None, None) } else { relative_to(&mine, &m.ann(), cells) };
    let (gain, paper_gain) = match (m.algo, m.neuron) {
        (Algo::Proxy, Some(n)) => relative_to(&mine, &Method::new(Algo::Vanilla, n).on(m.base), cells),
        _ => (None, None),
    };
    let spreads: Vec<f64> = mine.iter().filter_map(|c| c.seed_spread).collect();
    let paper_spreads: Vec<f64> =
        mine.iter().filter_map(|c| stats::spread(c.paper_mean?, c.paper_std?)).collect();
    MethodSummary {
        method: m.key(),
        label: m.label(),
        base: m.base,
        envs: mine.len(),
        apg: apg.map(|a| a.0),
        apg_envs: apg.map_or(0, |a| a.1),
        gain_over_vanilla: gain.map(|g| g.0),
        gain_envs: gain.map_or(0, |g| g.1),
        mean_seed_spread: stats::mean(&spreads),
        seeds_min: mine.iter().map(|c| c.n_seeds).min().unwrap_or(0),
        seeds_max: mine.iter().map(|c| c.n_seeds).max().unwrap_or(0),
        train_steps_min: mine.iter().map(|c| c.train_steps_min).fold(f64::INFINITY, f64::min),
        train_steps_max: mine.iter().map(|c| c.train_steps_max).fold(f64::NEG_INFINITY, f64::max),
        paper_apg: paper_apg.map(|a| a.0),
        paper_gain_over_vanilla: paper_gain.map(|g| g.0),
        paper_mean_seed_spread: stats::mean(&paper_spreads),
    }
}

/// The energy table's rows of one environment, each compared with that environment's ANN of its base.
fn energy_rows(env: &str, methods: &[Method], groups: &Groups) -> Vec<EnergyRow> {
    let mut rows: Vec<EnergyRow> = methods
        .iter()
        .filter_map(|m| groups.get(&(env.to_string(), *m)).map(|rs| energy_row(env, m, rs)))
        .collect();
    // Each base's ANN energy on this environment.
    let ann_nj: BTreeMap<Base, f64> = rows
        .iter()
        .filter(|r| r.method == Method::ANN.on(r.base).key())
        .filter_map(|r| Some((r.base, r.energy_nj_per_inference?)))
        .collect();
    for r in &mut rows {
        r.ann_energy_ratio = match (ann_nj.get(&r.base), r.energy_nj_per_inference) {
            (Some(a), Some(e)) if e > 0.0 => Some(a / e),
            _ => None,
        };
    }
    rows
}

/// One environment x method's energy figures from its runs' last evaluations (no ANN ratio yet).
fn energy_row(env: &str, m: &Method, rs: &[&RunData]) -> EnergyRow {
    let last: Vec<&Eval> = rs.iter().filter_map(|r| r.evals.last()).collect();
    let avg =
        |f: fn(&Eval) -> Option<f64>| stats::mean(&last.iter().filter_map(|e| f(e)).collect::<Vec<_>>());
    let nj = avg(|e| e.energy_nj_per_inference);
    let spiking = m.algo.is_spiking();
    EnergyRow {
        env: env.to_string(),
        method: m.key(),
        label: m.label(),
        base: m.base,
        n: last.len(),
        sops_per_inference: if spiking { avg(|e| e.sops_per_inference) } else { None },
        macs_per_inference: if spiking { None } else { nj.map(|nj| nj * 1000.0 / MAC_ENERGY_PJ) },
        firing_rate: if spiking { avg(|e| e.firing_rate) } else { None },
        energy_nj_per_inference: nj,
        ann_energy_ratio: None,
    }
}

/// One environment x method's learning curve, averaged over its seeds.
fn curve(env: &str, m: &Method, rs: &[&RunData]) -> Curve {
    let per_seed: Vec<Vec<(f64, f64)>> =
        rs.iter().map(|r| r.evals.iter().map(|e| (e.step, e.avg_return)).collect()).collect();
    Curve {
        m: *m,
        env: env.to_string(),
        method: m.key(),
        label: m.label(),
        base: m.base,
        points: stats::average_curves(&per_seed),
    }
}

/// runs.csv's rows, in Table 1's order and by seed.
fn run_rows(runs: &[RunData]) -> Vec<RunRow> {
    let mut sorted: Vec<&RunData> = runs.iter().collect();
    sorted.sort_by_key(|r| (env_order(&r.info.env), r.info.method, r.info.seed));
    sorted
        .into_iter()
        .map(|r| RunRow {
            dir: r.dir.clone(),
            env: r.info.env.clone(),
            method: r.info.method.key(),
            base: r.info.method.base,
            seed: r.info.seed,
            max_avg_return: r.max_avg_return,
            final_avg_return: r.evals.last().map_or(f64::NAN, |e| e.avg_return),
            env_steps: r.env_steps,
            train_steps: r.train_steps,
            evaluations: r.evals.len(),
        })
        .collect()
}

/// Whether every cell has the paper's seeds and steps and every run its random steps.
fn follows_paper_protocol(cells: &[Cell], runs: &[RunData]) -> bool {
    !cells.is_empty()
        && cells.iter().all(|c| c.n_seeds == paper::SEEDS && c.train_steps_min >= paper::STEPS as f64)
        && runs.iter().all(|r| r.info.random_steps == Some(paper::RANDOM_STEPS))
}

/// A note for each cell whose runs differ in more than the seed.
fn config_notes(cells: &[Cell]) -> Vec<String> {
    cells
        .iter()
        .filter(|c| !c.config_differences.is_empty())
        .map(|c| format!("{} on {}: its runs differ in {}", c.label, c.env, c.config_differences.join(", ")))
        .collect()
}

#[cfg(test)]
mod tests;
