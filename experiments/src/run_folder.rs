//! Reading run folders as `spikerl train` writes them (docs/interface.md): `manifest.json` and
//! `evals.csv`. Tolerant of added fields and columns; only what sweeps and reports need is read.

use crate::method::{Algo, Base, Method, Neuron};
use anyhow::{Context, anyhow, bail};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

/// `manifest.json`'s `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// No manifest: never started (or the process died before writing one).
    Missing,
    Running,
    Completed,
    Failed,
    Interrupted,
    /// A manifest that cannot be read or has an unknown status (the text says why).
    Unreadable(String),
}

impl Status {
    pub fn as_str(&self) -> &str {
        match self {
            Status::Missing => "missing",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::Unreadable(_) => "unreadable",
        }
    }
}

pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("manifest.json")
}

pub fn read_manifest(dir: &Path) -> anyhow::Result<Value> {
    let path = manifest_path(dir);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The status recorded in `dir/manifest.json`.
pub fn status(dir: &Path) -> Status {
    if !manifest_path(dir).exists() {
        return Status::Missing;
    }
    match read_manifest(dir) {
        Err(e) => Status::Unreadable(format!("{e:#}")),
        Ok(m) => match m.get("status").and_then(Value::as_str) {
            Some("running") => Status::Running,
            Some("completed") => Status::Completed,
            Some("failed") => Status::Failed,
            Some("interrupted") => Status::Interrupted,
            other => Status::Unreadable(format!("unknown status {other:?}")),
        },
    }
}

/// What the manifest says the run is.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    pub env: String,
    pub method: Method,
    pub seed: u64,
    pub steps: Option<u64>,
    pub random_steps: Option<u64>,
    pub mode: Option<String>,
    pub status: String,
    pub error: Option<String>,
    /// The resolved configuration (`config`), for spotting runs of one group that differ.
    pub config: Value,
}

pub fn run_info(manifest: &Value) -> anyhow::Result<RunInfo> {
    let config = manifest.get("config").ok_or_else(|| anyhow!("no `config`"))?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let env = text(config, "env_id").ok_or_else(|| anyhow!("no `config.env_id`"))?;
    let algo_name = text(config, "algo").ok_or_else(|| anyhow!("no `config.algo`"))?;
    let algo = Algo::parse(&algo_name).ok_or_else(|| anyhow!("unknown algo {algo_name:?}"))?;
    let neuron = match text(config, "neuron") {
        Some(n) => Neuron::parse(&n).ok_or_else(|| anyhow!("unknown neuron {n:?}"))?,
        None if !algo.is_spiking() => Neuron::Lif,
        None => bail!("no `config.neuron`"),
    };
    // Absent in manifests written before `--base` existed: those runs are TD3.
    let base = match text(config, "base") {
        Some(b) => Base::parse(&b).ok_or_else(|| anyhow!("unknown base {b:?}"))?,
        None => Base::Td3,
    };
    let seed = config.get("seed").and_then(Value::as_u64).ok_or_else(|| anyhow!("no `config.seed`"))?;
    Ok(RunInfo {
        env,
        method: Method::new(algo, neuron).on(base),
        seed,
        steps: config.get("steps").and_then(Value::as_u64),
        random_steps: config.get("random_steps").and_then(Value::as_u64),
        mode: text(manifest, "mode"),
        status: text(manifest, "status").unwrap_or_else(|| "unknown".into()),
        error: text(manifest, "error"),
        config: config.clone(),
    })
}

/// One row of `evals.csv`. Columns other than `step` and `avg_return` are optional (older files).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Eval {
    pub step: f64,
    pub avg_return: f64,
    pub iterations: Option<f64>,
    pub sops_per_inference: Option<f64>,
    pub firing_rate: Option<f64>,
    pub energy_nj_per_inference: Option<f64>,
}

pub fn read_evals(dir: &Path) -> anyhow::Result<Vec<Eval>> {
    let path = dir.join("evals.csv");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_evals(&text).with_context(|| format!("in {}", path.display()))
}

pub fn parse_evals(text: &str) -> anyhow::Result<Vec<Eval>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Ok(Vec::new());
    };
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let step = col("step").ok_or_else(|| anyhow!("no `step` column"))?;
    let ret = col("avg_return").ok_or_else(|| anyhow!("no `avg_return` column"))?;
    let (it, sops, fr, nj) =
        (col("iterations"), col("sops_per_inference"), col("firing_rate"), col("energy_nj_per_inference"));
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < cols.len() {
            // A row cut short by a crash while it was written: everything before it stands.
            break;
        }
        let num = |c: usize| {
            fields[c]
                .parse::<f64>()
                .with_context(|| format!("row {}: {:?} is not a number", i + 2, fields[c]))
        };
        let opt = |c: Option<usize>| c.and_then(|c| fields[c].parse::<f64>().ok());
        rows.push(Eval {
            step: num(step)?,
            avg_return: num(ret)?,
            iterations: opt(it),
            sops_per_inference: opt(sops),
            firing_rate: opt(fr),
            energy_nj_per_inference: opt(nj),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evals_by_header_name_and_cut_rows() {
        let text = "step,iterations,avg_return,extra\n0,0,-5.5,x\n100,50,-2,y\n200,1";
        let rows = parse_evals(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].step, 100.0);
        assert_eq!(rows[1].avg_return, -2.0);
        assert_eq!(rows[1].iterations, Some(50.0));
        assert_eq!(rows[1].firing_rate, None);
        assert!(parse_evals("avg_return\n1").is_err());
        assert!(parse_evals("").unwrap().is_empty());
    }

    #[test]
    fn manifest_fields() {
        let m: Value = serde_json::json!({"status": "completed", "mode": "sync",
            "config": {"env_id": "Hopper-v4", "algo": "ann", "neuron": "clif", "seed": 3, "steps": 10, "random_steps": 5}});
        let info = run_info(&m).unwrap();
        assert_eq!(info.method, Method::ANN);
        assert_eq!((info.seed, info.steps, info.random_steps), (3, Some(10), Some(5)));
        assert!(run_info(&serde_json::json!({"config": {"env_id": "x", "algo": "sac", "seed": 1}})).is_err());
        // `config.base`: absent is TD3 (older manifests); named bases make other rows.
        assert_eq!(info.method.base, Base::Td3);
        let on = |base: &str| {
            run_info(
                &serde_json::json!({"config": {"env_id": "x", "algo": "proxy", "neuron": "lif", "base": base, "seed": 1}}),
            )
        };
        assert_eq!(on("sac").unwrap().method, Method::new(Algo::Proxy, Neuron::Lif).on(Base::Sac));
        assert_eq!(on("td3").unwrap().method, Method::new(Algo::Proxy, Neuron::Lif));
        assert!(format!("{:#}", on("ppo").unwrap_err()).contains("unknown base"));
    }
}
