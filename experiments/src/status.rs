//! `spikerl sweep status DIR [--json]`: every run of a sweep, whatever ran it (this machine, Slurm,
//! Kubernetes): its state, env steps done, last and best evaluation return, from the run folders
//! (`manifest.json`, `evals.csv`, `checkpoints/`) and `sweep.json`; for a sweep given to Slurm, also what
//! `squeue` says of its task.

use crate::cluster::{self, Backend};
use crate::plan::{self, Task};
use crate::run_folder::{self, Status};
use crate::spec::RunPlan;
use crate::state;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One run as `sweep status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunStatus {
    pub run: String,
    /// The grid task that runs it (the Slurm array index).
    pub task: usize,
    /// completed | running | interrupted | failed | not started | unreadable (its manifest's status).
    pub state: String,
    /// What the cluster engine says of its task (Slurm: PENDING, RUNNING, ...), when it holds it.
    pub scheduler: Option<String>,
    /// Env steps (random ones included) at its last evaluation.
    pub steps: Option<u64>,
    /// Env steps the whole run takes (random and training steps).
    pub total_steps: Option<u64>,
    pub last_return: Option<f64>,
    pub best_return: Option<f64>,
    /// The newest checkpoint's folder (`ckpt-...`), which a resume continues from.
    pub checkpoint: Option<String>,
    /// Starts by the sweep (resumes included), and of those the resumes.
    pub attempts: u32,
    pub resumes: u32,
    /// Where its last attempt ran, when a cluster engine ran it.
    pub placement: Option<String>,
    pub error: Option<String>,
}

/// The status of every run of the sweep in `out`, in the grid's order, and notes on what could not be
/// asked.
pub fn collect(out: &Path) -> anyhow::Result<(Vec<RunStatus>, Vec<String>)> {
    let state = state::load_state(out)?;
    let (spec, plans) = plan::load_sweep_spec(out, &state)?;
    let tasks = Task::grid(&plans, spec.group_seeds);
    let mut notes = Vec::new();
    let scheduler = if cluster::submitted_jobs(&state, Backend::Slurm).is_empty() {
        BTreeMap::new()
    } else {
        cluster::slurm_active(&state).unwrap_or_else(|e| {
            notes.push(format!("Slurm's view is missing: {e:#}"));
            BTreeMap::new()
        })
    };
    let mut rows = Vec::with_capacity(plans.len());
    for task in &tasks {
        for p in &task.plans {
            rows.push(run_status(out, p, task.index, scheduler.get(&task.index).cloned(), &state));
        }
    }
    Ok((rows, notes))
}

fn run_status(
    out: &Path,
    plan: &RunPlan,
    task: usize,
    scheduler: Option<String>,
    sweep: &state::SweepState,
) -> RunStatus {
    let dir = out.join(&plan.id);
    let status = run_folder::status(&dir);
    let manifest = run_folder::read_manifest(&dir).ok();
    let evals = run_folder::read_evals(&dir).unwrap_or_default();
    let record = sweep.runs.get(&plan.id);
    let config_steps = |m: &Value, key: &str| m.get("config")?.get(key)?.as_u64();
    let planned = |name: &str| plan.option(name).and_then(|v| v.parse::<u64>().ok());
    let total_steps = match &manifest {
        Some(m) => config_steps(m, "steps").zip(config_steps(m, "random_steps")).map(|(a, b)| a + b),
        None => planned("steps").zip(planned("random-steps")).map(|(a, b)| a + b),
    };
    RunStatus {
        run: plan.id.clone(),
        task,
        state: match &status {
            Status::Missing => "not started".into(),
            other => other.as_str().into(),
        },
        scheduler,
        steps: evals.last().map(|e| e.step as u64),
        total_steps,
        last_return: evals.last().map(|e| e.avg_return),
        best_return: evals.iter().map(|e| e.avg_return).reduce(f64::max),
        checkpoint: plan::newest_checkpoint(&dir),
        attempts: record.map_or(0, |r| r.attempts),
        resumes: record.map_or(0, |r| r.resumes),
        placement: record.and_then(|r| r.placement.clone()),
        error: manifest
            .as_ref()
            .and_then(|m| m.get("error")?.as_str().map(str::to_string))
            .or_else(|| record.and_then(|r| r.error.clone()).filter(|_| status == Status::Failed)),
    }
}

/// The table `sweep status` prints.
pub fn table(rows: &[RunStatus]) -> String {
    let width = rows.iter().map(|r| r.run.len()).max().unwrap_or(3).max(3);
    let number = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
    let mut text = format!(
        "{:<width$}  {:>4}  {:<11}  {:<10}  {:>17}  {:>11}  {:>11}  {}\n",
        "run", "task", "state", "scheduler", "steps", "last return", "best return", "attempts"
    );
    for r in rows {
        let steps = match (r.steps, r.total_steps) {
            (Some(s), Some(t)) => format!("{s}/{t}"),
            (Some(s), None) => s.to_string(),
            (None, Some(t)) => format!("0/{t}"),
            (None, None) => "-".into(),
        };
        let attempts = match r.resumes {
            0 => r.attempts.to_string(),
            n => format!("{} ({n} resumed)", r.attempts),
        };
        text.push_str(&format!(
            "{:<width$}  {:>4}  {:<11}  {:<10}  {:>17}  {:>11}  {:>11}  {attempts}\n",
            r.run,
            r.task,
            r.state,
            r.scheduler.as_deref().unwrap_or("-"),
            steps,
            number(r.last_return),
            number(r.best_return),
        ));
    }
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *by_state.entry(r.state.as_str()).or_default() += 1;
    }
    let summary: Vec<String> = by_state.iter().map(|(s, n)| format!("{n} {s}")).collect();
    text.push_str(&format!("{} runs: {}\n", rows.len(), summary.join(", ")));
    for r in rows.iter().filter(|r| r.error.is_some()) {
        let first = r.error.as_deref().unwrap_or_default().lines().next().unwrap_or_default();
        text.push_str(&format!("{}: {first}\n", r.run));
    }
    text
}

/// `spikerl sweep status DIR [--json]`.
pub fn run(out: &Path, json: bool) -> anyhow::Result<()> {
    let (rows, notes) = collect(out)?;
    for note in &notes {
        eprintln!("sweep status: {note}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "runs": rows, "notes": notes }))?);
    } else {
        print!("{}", table(&rows));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn runs_of_a_sweep_folder_with_steps_and_returns() {
        let root = std::env::temp_dir().join(format!("spikerl-status-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        fs::write(
            root.join("spec.toml"),
            "envs=[\"Pendulum-v1\"]\nalgos=[\"ann\"]\nseeds=2\n[train]\nsync=true\nsteps=1000\nrandom_steps=200",
        )
        .unwrap();
        let run = root.join("Pendulum-v1/ann/seed0");
        fs::create_dir_all(run.join("checkpoints/ckpt-000000000600")).unwrap();
        fs::write(
            run.join("manifest.json"),
            r#"{"status":"interrupted","config":{"env_id":"Pendulum-v1","algo":"ann","seed":0,"steps":1000,"random_steps":200}}"#,
        )
        .unwrap();
        fs::write(run.join("evals.csv"), "step,avg_return\n200,-900\n400,-300.25\n600,-450\n").unwrap();
        let (rows, notes) = collect(&root).unwrap();
        assert!(notes.is_empty());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].state, "interrupted");
        assert_eq!((rows[0].steps, rows[0].total_steps), (Some(600), Some(1200)));
        assert_eq!((rows[0].last_return, rows[0].best_return), (Some(-450.0), Some(-300.25)));
        assert_eq!(rows[0].checkpoint.as_deref(), Some("ckpt-000000000600"));
        assert_eq!(
            (rows[1].state.as_str(), rows[1].task, rows[1].total_steps),
            ("not started", 1, Some(1200))
        );
        let text = table(&rows);
        assert!(text.contains("600/1200") && text.contains("-300.2") && text.contains("0/1200"), "{text}");
        assert!(text.ends_with("2 runs: 1 interrupted, 1 not started\n"), "{text}");
        fs::remove_dir_all(&root).unwrap();
        assert!(format!("{:#}", collect(&root).unwrap_err()).contains("holds no sweep"));
    }
}
