//! `spikerl report RUNS_DIR --out DIR`: every run folder under RUNS_DIR (any depth: a sweep's folder,
//! or folders written by `spikerl train --out`) aggregated into the paper's tables.
//!
//! Per run: the maximum over its evaluations of the average return (the paper's metric). Per
//! environment x method: mean and population std (ddof = 0, numpy's default, as the paper's code) over
//! seeds. Per method: APG against the ANN row, the proxy's gain over the vanilla SNN of the same
//! neuron, the seed spread std/|mean|. Only completed runs count; the others are listed with why.
//!
//! Writes DIR/report.md, DIR/report.html, DIR/table1.csv, DIR/methods.csv, DIR/energy.csv,
//! DIR/curves.csv, DIR/runs.csv, DIR/summary.json (every aggregated number) and DIR/plots/.

pub mod doc;
pub mod paper;
mod plot;
pub mod stats;

use crate::method::{Algo, Method, env_order};
use crate::run_folder::{self, Eval, RunInfo};
use anyhow::{Context, bail};
use doc::Block;
use serde::Serialize;
use serde_json::Value;
use stats::CurvePoint;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
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
    pub envs: usize,
    /// Mean over envs of (return / ANN return - 1), as (R - R_ann) / |R_ann|.
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
    pub n: usize,
    /// SNN: synaptic operations per inference.
    pub sops_per_inference: Option<f64>,
    /// ANN: multiply-accumulates per inference (energy / 3.97 pJ).
    pub macs_per_inference: Option<f64>,
    pub firing_rate: Option<f64>,
    pub energy_nj_per_inference: Option<f64>,
    /// The ANN's energy on this env divided by this method's.
    pub ann_energy_ratio: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Curve {
    #[serde(skip)]
    pub m: Method,
    pub env: String,
    pub method: String,
    pub label: String,
    pub points: Vec<CurvePoint>,
}

/// One counted run (runs.csv).
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    pub dir: String,
    pub env: String,
    pub method: String,
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
    write_report(out, &summary)?;
    println!("{}", doc::markdown(&table1_blocks(&summary)));
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

pub fn summarize(runs_dir: &Path, runs: &[RunData], excluded: Vec<Excluded>) -> Summary {
    let mut groups: BTreeMap<(String, Method), Vec<&RunData>> = BTreeMap::new();
    for r in runs {
        groups.entry((r.info.env.clone(), r.info.method)).or_default().push(r);
    }
    let mut envs: Vec<String> =
        groups.keys().map(|(e, _)| e.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    envs.sort_by_key(|e| env_order(e));
    let methods: Vec<Method> = groups.keys().map(|(_, m)| *m).collect::<BTreeSet<_>>().into_iter().collect();

    let mut cells = Vec::new();
    for env in &envs {
        for m in &methods {
            let Some(rs) = groups.get(&(env.clone(), *m)) else {
                continue;
            };
            let mut rs = rs.clone();
            rs.sort_by_key(|r| r.info.seed);
            let vals: Vec<f64> = rs.iter().map(|r| r.max_avg_return).collect();
            let finals: Vec<f64> = rs.iter().filter_map(|r| r.evals.last().map(|e| e.avg_return)).collect();
            let mean = stats::mean(&vals).unwrap_or(f64::NAN);
            let std = stats::std_pop(&vals).unwrap_or(f64::NAN);
            let paper = paper::table1(env, m);
            let train: Vec<f64> = rs.iter().map(|r| r.train_steps).collect();
            cells.push(Cell {
                env: env.clone(),
                method: m.key(),
                label: m.label(),
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
                config_differences: config_differences(
                    &rs.iter().map(|r| &r.info.config).collect::<Vec<_>>(),
                ),
            });
        }
    }
    let cell = |env: &str, m: &Method| cells.iter().find(|c| c.env == env && c.method == m.key());

    let mut method_summaries = Vec::new();
    for m in &methods {
        let mine: Vec<&Cell> = envs.iter().filter_map(|e| cell(e, m)).collect();
        // (ours, the paper's): mean relative difference and the number of environments it covers.
        type Relative = Option<(f64, usize)>;
        let vs = |base: &Method| -> (Relative, Relative) {
            let pairs: Vec<(&Cell, &Cell)> =
                mine.iter().filter_map(|c| cell(&c.env, base).map(|b| (*c, b))).collect();
            let ours = stats::mean_relative(pairs.iter().map(|(c, b)| (c.mean, b.mean)));
            let theirs =
                stats::mean_relative(pairs.iter().filter_map(|(c, b)| Some((c.paper_mean?, b.paper_mean?))));
            (ours, theirs)
        };
        let (apg, paper_apg) = if m.algo == Algo::Ann { (None, None) } else { vs(&Method::ANN) };
        let (gain, paper_gain) = match (m.algo, m.neuron) {
            (Algo::Proxy, Some(n)) => vs(&Method::new(Algo::Vanilla, n)),
            _ => (None, None),
        };
        let spreads: Vec<f64> = mine.iter().filter_map(|c| c.seed_spread).collect();
        let paper_spreads: Vec<f64> =
            mine.iter().filter_map(|c| stats::spread(c.paper_mean?, c.paper_std?)).collect();
        method_summaries.push(MethodSummary {
            method: m.key(),
            label: m.label(),
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
        });
    }

    let mut energy = Vec::new();
    for env in &envs {
        let mut rows = Vec::new();
        for m in &methods {
            let Some(rs) = groups.get(&(env.clone(), *m)) else {
                continue;
            };
            let last: Vec<&Eval> = rs.iter().filter_map(|r| r.evals.last()).collect();
            let avg = |f: fn(&Eval) -> Option<f64>| {
                stats::mean(&last.iter().filter_map(|e| f(e)).collect::<Vec<_>>())
            };
            let nj = avg(|e| e.energy_nj_per_inference);
            let spiking = m.algo.is_spiking();
            rows.push(EnergyRow {
                env: env.clone(),
                method: m.key(),
                label: m.label(),
                n: last.len(),
                sops_per_inference: if spiking { avg(|e| e.sops_per_inference) } else { None },
                macs_per_inference: if spiking { None } else { nj.map(|nj| nj * 1000.0 / MAC_ENERGY_PJ) },
                firing_rate: if spiking { avg(|e| e.firing_rate) } else { None },
                energy_nj_per_inference: nj,
                ann_energy_ratio: None,
            });
        }
        let ann_nj =
            rows.iter().find(|r| r.method == Method::ANN.key()).and_then(|r| r.energy_nj_per_inference);
        for r in &mut rows {
            r.ann_energy_ratio = match (ann_nj, r.energy_nj_per_inference) {
                (Some(a), Some(e)) if e > 0.0 => Some(a / e),
                _ => None,
            };
        }
        energy.extend(rows);
    }

    let mut curves = Vec::new();
    for env in &envs {
        for m in &methods {
            let Some(rs) = groups.get(&(env.clone(), *m)) else {
                continue;
            };
            let per_seed: Vec<Vec<(f64, f64)>> =
                rs.iter().map(|r| r.evals.iter().map(|e| (e.step, e.avg_return)).collect()).collect();
            curves.push(Curve {
                m: *m,
                env: env.clone(),
                method: m.key(),
                label: m.label(),
                points: stats::average_curves(&per_seed),
            });
        }
    }

    let mut sorted: Vec<&RunData> = runs.iter().collect();
    sorted.sort_by_key(|r| (env_order(&r.info.env), r.info.method, r.info.seed));
    let run_rows: Vec<RunRow> = sorted
        .into_iter()
        .map(|r| RunRow {
            dir: r.dir.clone(),
            env: r.info.env.clone(),
            method: r.info.method.key(),
            seed: r.info.seed,
            max_avg_return: r.max_avg_return,
            final_avg_return: r.evals.last().map_or(f64::NAN, |e| e.avg_return),
            env_steps: r.env_steps,
            train_steps: r.train_steps,
            evaluations: r.evals.len(),
        })
        .collect();

    let paper_protocol = !cells.is_empty()
        && cells.iter().all(|c| c.n_seeds == paper::SEEDS && c.train_steps_min >= paper::STEPS as f64)
        && runs.iter().all(|r| r.info.random_steps == Some(paper::RANDOM_STEPS));
    let mut notes = Vec::new();
    for c in &cells {
        if !c.config_differences.is_empty() {
            notes.push(format!(
                "{} on {}: its runs differ in {}",
                c.label,
                c.env,
                c.config_differences.join(", ")
            ));
        }
    }
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
        runs: run_rows,
        excluded,
        paper_protocol,
        notes,
    }
}

// ---- formatting ----

/// Returns with a precision that fits their size (the paper prints integers).
fn fmt_ret(x: f64, scale: f64) -> String {
    let decimals = if scale.abs() >= 100.0 {
        0
    } else if scale.abs() >= 1.0 {
        1
    } else {
        2
    };
    format!("{x:.decimals$}")
}

fn fmt_mean_std(mean: f64, std: f64) -> String {
    format!("{} ± {}", fmt_ret(mean, mean), fmt_ret(std, mean))
}

fn fmt_pct(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{:+.1}%", x * 100.0))
}

fn fmt_pct_plain(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{:.1}%", x * 100.0))
}

fn fmt_int(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

fn fmt_range(lo: f64, hi: f64) -> String {
    if lo == hi { fmt_int(lo) } else { format!("{}–{}", fmt_int(lo), fmt_int(hi)) }
}

fn fmt_opt(x: Option<f64>, decimals: usize) -> String {
    x.map_or("—".into(), |x| format!("{x:.decimals$}"))
}

/// "x/4 envs" when a figure used fewer environments than the method has.
fn with_envs(value: String, used: usize, of: usize) -> String {
    if used > 0 && used < of { format!("{value} ({used}/{of} envs)") } else { value }
}

fn table1_blocks(s: &Summary) -> Vec<Block> {
    let mut header = vec!["Method".to_string()];
    header.extend(s.envs.iter().cloned());
    header
        .extend(["APG vs ANN", "PT gain vs vanilla", "Seed spread", "Seeds", "Steps run"].map(String::from));
    let mut rows = Vec::new();
    for ms in &s.method_summaries {
        let mut row = vec![ms.label.clone()];
        for env in &s.envs {
            row.push(
                s.table1
                    .iter()
                    .find(|c| &c.env == env && c.method == ms.method)
                    .map_or("—".into(), |c| fmt_mean_std(c.mean, c.std)),
            );
        }
        row.push(with_envs(fmt_pct(ms.apg), ms.apg_envs, ms.envs));
        row.push(with_envs(fmt_pct(ms.gain_over_vanilla), ms.gain_envs, ms.envs));
        row.push(fmt_pct_plain(ms.mean_seed_spread));
        row.push(if ms.seeds_min == ms.seeds_max {
            ms.seeds_min.to_string()
        } else {
            format!("{}–{}", ms.seeds_min, ms.seeds_max)
        });
        row.push(fmt_range(ms.train_steps_min, ms.train_steps_max));
        rows.push(row);
    }
    vec![Block::Table { header, rows }]
}

fn paper_blocks(s: &Summary) -> Vec<Block> {
    let envs: Vec<&String> =
        s.envs.iter().filter(|e| s.table1.iter().any(|c| &c.env == *e && c.paper_mean.is_some())).collect();
    let rows_with_paper: Vec<&MethodSummary> = s
        .method_summaries
        .iter()
        .filter(|m| s.table1.iter().any(|c| c.method == m.method && c.paper_mean.is_some()))
        .collect();
    if envs.is_empty() || rows_with_paper.is_empty() {
        return vec![Block::Para(
            "The paper publishes no numbers for this grid's cells (its Table 1 covers InvertedDoublePendulum-v4, Ant-v4, \
             HalfCheetah-v4, Hopper-v4 and Walker2d-v4 with ANN, vanilla LIF/CLIF/DN and PT-LIF/CLIF/DN)."
                .into(),
        )];
    }
    let mut header = vec!["Method (paper)".to_string()];
    header.extend(envs.iter().map(|e| e.to_string()));
    header.extend(["APG vs ANN", "PT gain vs vanilla", "Seed spread"].map(String::from));
    let mut rows = Vec::new();
    for ms in rows_with_paper {
        let mut row = vec![format!("{} (paper)", ms.label)];
        for env in &envs {
            let c = s.table1.iter().find(|c| &&c.env == env && c.method == ms.method);
            row.push(c.and_then(|c| Some(fmt_mean_std(c.paper_mean?, c.paper_std?))).unwrap_or("—".into()));
        }
        row.push(fmt_pct(ms.paper_apg));
        row.push(fmt_pct(ms.paper_gain_over_vanilla));
        row.push(fmt_pct_plain(ms.paper_mean_seed_spread));
        rows.push(row);
    }
    let mut blocks = vec![
        Block::Para(
            "**The paper's published numbers** (Xu et al., NeurIPS 2025, Table 1: 1,000,000 training steps after 25,000 \
             random ones, 5 seeds) for the cells of this grid. These are not our runs. APG, gain and spread here are \
             computed from the published numbers over the same cells as above."
                .into(),
        ),
        Block::Table { header, rows },
    ];
    if !s.paper_protocol {
        blocks.push(Block::Note(
            "This grid's budget differs from the paper's protocol (steps, random steps or seeds): the published numbers \
             are a reference point, not an expected result."
                .into(),
        ));
    }
    blocks
}

fn energy_blocks(s: &Summary) -> Vec<Block> {
    let mut blocks = Vec::new();
    for env in &s.envs {
        let rows: Vec<Vec<String>> = s
            .energy
            .iter()
            .filter(|r| &r.env == env)
            .map(|r| {
                vec![
                    r.label.clone(),
                    r.sops_per_inference.map_or("—".into(), fmt_int),
                    r.macs_per_inference.map_or("—".into(), fmt_int),
                    fmt_pct_plain(r.firing_rate),
                    fmt_opt(r.energy_nj_per_inference, 2),
                    r.ann_energy_ratio.map_or("—".into(), |x| format!("{x:.1}x")),
                    r.n.to_string(),
                ]
            })
            .collect();
        blocks.push(Block::Heading(3, env.clone()));
        blocks.push(Block::Table {
            header: [
                "Method",
                "SOPs/inference",
                "MACs/inference",
                "Firing rate",
                "Energy (nJ/inference)",
                "ANN energy / this",
                "Seeds",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        });
    }
    let p = paper::energy();
    let paper_lines = p
        .iter()
        .map(|f| {
            let fr =
                f.firing_rate.map_or(String::new(), |r| format!(", firing rate about {:.0}%", r * 100.0));
            format!("{}: {}, about {:.0} nJ per inference{fr}", f.method.label(), f.ops, f.energy_nj)
        })
        .collect::<Vec<_>>()
        .join("; ");
    blocks.push(Block::Note(format!(
        "Energy model (the paper's, 45 nm): SNN = SOPs x 77 fJ, ANN = MACs x 3.97 pJ; from each run's last evaluation, \
         mean over seeds. Firing rate: spikes per neuron per time step of the hidden and output layers over the evaluation episodes. \
         **The paper reports** (environment not stated): {paper_lines}."
    )));
    blocks
}

fn report_blocks(s: &Summary) -> Vec<Block> {
    let mut b = vec![Block::Heading(1, "spikerl report".into())];
    let not_counted = match s.excluded.len() {
        0 => String::new(),
        n => format!(" ({n} run folder{} not counted, listed at the end)", if n == 1 { "" } else { "s" }),
    };
    b.push(Block::Para(format!(
        "{} completed runs from `{}`{not_counted}. Generated {}.",
        s.completed_runs, s.runs_dir, s.generated_at
    )));
    b.push(Block::Heading(2, "Table 1: max average return".into()));
    if s.table1.is_empty() {
        b.push(Block::Para("No completed runs: nothing to tabulate.".into()));
    } else {
        b.extend(table1_blocks(s));
        b.push(Block::Note(
            "Cells: per run the maximum over evaluations of the average evaluation return, then mean ± std over seeds \
             (population std, ddof = 0, as numpy.std in the paper's code; summary.json also has the sample std). \
             APG vs ANN: mean over environments of return / ANN return − 1 (computed as (R − R_ANN) / |R_ANN| so that \
             it keeps its sign for negative returns). PT gain vs vanilla: the same with the vanilla SNN of the same \
             neuron as the base. Seed spread: std / |mean|, averaged over environments. Steps run: training steps at \
             the last evaluation (after the random ones), min–max over runs."
                .into(),
        ));
        b.push(Block::Heading(3, "Published numbers".into()));
        b.extend(paper_blocks(s));
    }
    if !s.curves.is_empty() {
        b.push(Block::Heading(2, "Learning curves".into()));
        b.push(Block::Para(
            "Average evaluation return against environment steps: mean over seeds (line) ± one population std (band); \
             vanilla SNNs dashed, PT solid, one colour per neuron. Click for the SVG."
                .into(),
        ));
        for env in &s.envs {
            b.push(Block::Image {
                src: format!("plots/{env}.png"),
                alt: format!("learning curves on {env}"),
                link: Some(format!("plots/{env}.svg")),
            });
        }
    }
    if !s.energy.is_empty() {
        b.push(Block::Heading(2, "Energy per inference".into()));
        b.extend(energy_blocks(s));
    }
    if !s.excluded.is_empty() {
        b.push(Block::Heading(2, "Run folders not counted".into()));
        b.push(Block::List(
            s.excluded.iter().map(|e| format!("`{}` ({}): {}", e.dir, e.status, e.reason)).collect(),
        ));
    }
    if !s.notes.is_empty() {
        b.push(Block::Heading(2, "Notes".into()));
        b.push(Block::List(s.notes.clone()));
    }
    b.push(Block::Heading(2, "Files".into()));
    b.push(Block::List(
        [
            "`table1.csv`: one row per environment x method (per-seed values, mean, both stds, spread, steps, the paper's numbers)",
            "`methods.csv`: APG, gain over vanilla and seed spread per method, ours and the paper's",
            "`energy.csv`: the energy table",
            "`curves.csv`: the averaged learning curves (step, mean, std, seeds)",
            "`runs.csv`: every counted run (folder, seed, max average return, steps)",
            "`summary.json`: all of the above in one file",
            "`plots/ENV.png`, `plots/ENV.svg`: learning curves",
        ]
        .map(String::from)
        .to_vec(),
    ));
    b
}

// ---- files ----

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn num(x: Option<f64>) -> String {
    x.filter(|x| x.is_finite()).map_or(String::new(), |x| x.to_string())
}

fn csv(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = header.join(",");
    out.push('\n');
    for r in rows {
        let _ = writeln!(out, "{}", r.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
    }
    out
}

fn write_report(out: &Path, s: &Summary) -> anyhow::Result<()> {
    let plots = out.join("plots");
    fs::create_dir_all(&plots).with_context(|| format!("creating {}", plots.display()))?;
    let write = |name: &str, text: String| {
        fs::write(out.join(name), text).with_context(|| format!("writing {}", out.join(name).display()))
    };

    for env in &s.envs {
        let series: Vec<plot::Series> = s
            .curves
            .iter()
            .filter(|c| &c.env == env)
            .map(|c| plot::Series { method: c.m, points: c.points.clone() })
            .collect();
        plot::learning_curves(&plots.join(env), &format!("{env}: mean ± std over seeds"), &series)?;
    }

    let blocks = report_blocks(s);
    write("report.md", doc::markdown(&blocks))?;
    write("report.html", doc::html("spikerl report", &blocks))?;
    write(
        "table1.csv",
        csv(
            &[
                "env",
                "method",
                "label",
                "n_seeds",
                "seeds",
                "max_avg_returns",
                "mean",
                "std_pop",
                "std_sample",
                "seed_spread",
                "final_avg_return_mean",
                "train_steps_min",
                "train_steps_max",
                "paper_mean",
                "paper_std",
            ],
            s.table1.iter().map(|c| {
                vec![
                    c.env.clone(),
                    c.method.clone(),
                    c.label.clone(),
                    c.n_seeds.to_string(),
                    c.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(";"),
                    c.max_avg_returns.iter().map(f64::to_string).collect::<Vec<_>>().join(";"),
                    num(Some(c.mean)),
                    num(Some(c.std)),
                    num(c.std_sample),
                    num(c.seed_spread),
                    num(Some(c.final_avg_return_mean)),
                    num(Some(c.train_steps_min)),
                    num(Some(c.train_steps_max)),
                    num(c.paper_mean),
                    num(c.paper_std),
                ]
            }),
        ),
    )?;
    write(
        "methods.csv",
        csv(
            &[
                "method",
                "label",
                "envs",
                "apg",
                "apg_envs",
                "gain_over_vanilla",
                "gain_envs",
                "mean_seed_spread",
                "seeds_min",
                "seeds_max",
                "train_steps_min",
                "train_steps_max",
                "paper_apg",
                "paper_gain_over_vanilla",
                "paper_mean_seed_spread",
            ],
            s.method_summaries.iter().map(|m| {
                vec![
                    m.method.clone(),
                    m.label.clone(),
                    m.envs.to_string(),
                    num(m.apg),
                    m.apg_envs.to_string(),
                    num(m.gain_over_vanilla),
                    m.gain_envs.to_string(),
                    num(m.mean_seed_spread),
                    m.seeds_min.to_string(),
                    m.seeds_max.to_string(),
                    num(Some(m.train_steps_min)),
                    num(Some(m.train_steps_max)),
                    num(m.paper_apg),
                    num(m.paper_gain_over_vanilla),
                    num(m.paper_mean_seed_spread),
                ]
            }),
        ),
    )?;
    write(
        "energy.csv",
        csv(
            &[
                "env",
                "method",
                "label",
                "n",
                "sops_per_inference",
                "macs_per_inference",
                "firing_rate",
                "energy_nj_per_inference",
                "ann_energy_ratio",
            ],
            s.energy.iter().map(|r| {
                vec![
                    r.env.clone(),
                    r.method.clone(),
                    r.label.clone(),
                    r.n.to_string(),
                    num(r.sops_per_inference),
                    num(r.macs_per_inference),
                    num(r.firing_rate),
                    num(r.energy_nj_per_inference),
                    num(r.ann_energy_ratio),
                ]
            }),
        ),
    )?;
    write(
        "curves.csv",
        csv(
            &["env", "method", "step", "mean", "std", "n"],
            s.curves.iter().flat_map(|c| {
                c.points.iter().map(|p| {
                    vec![
                        c.env.clone(),
                        c.method.clone(),
                        num(Some(p.step)),
                        num(Some(p.mean)),
                        num(Some(p.std)),
                        p.n.to_string(),
                    ]
                })
            }),
        ),
    )?;
    write(
        "runs.csv",
        csv(
            &[
                "dir",
                "env",
                "method",
                "seed",
                "max_avg_return",
                "final_avg_return",
                "env_steps",
                "train_steps",
                "evaluations",
            ],
            s.runs.iter().map(|r| {
                vec![
                    r.dir.clone(),
                    r.env.clone(),
                    r.method.clone(),
                    r.seed.to_string(),
                    num(Some(r.max_avg_return)),
                    num(Some(r.final_avg_return)),
                    num(Some(r.env_steps)),
                    num(Some(r.train_steps)),
                    r.evaluations.to_string(),
                ]
            }),
        ),
    )?;
    write("summary.json", serde_json::to_string_pretty(s)? + "\n")?;
    Ok(())
}

#[cfg(test)]
mod tests;
