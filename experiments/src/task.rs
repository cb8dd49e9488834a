//! `spikerl sweep task DIR [--index I] [--pick A,B,...]`: what one task of a cluster engine runs (a Slurm
//! array task, a Kubernetes Job index). Hidden from `--help`: the scripts a submission writes call it.
//!
//! It reads the sweep's spec from DIR, finds its task (one run, or one configuration's seeds), decides
//! from the run folders what each run needs (skip, start, resume from the newest checkpoint, restart),
//! runs `spikerl train` for them one process after another in the foreground and records the outcome in
//! `DIR/sweep.json`. SIGTERM is passed on once: the runs checkpoint and stop. A task whose runs stopped
//! early exits 75 ("incomplete, resume me"), after requeueing itself when Slurm still had it running
//! (the warning signal before the time limit), so that its next life resumes them.

use crate::plan::{self, Action, Job, Task};
use crate::runner::{self, Active, Group};
use crate::signals;
use crate::slurm;
use crate::spec::RunPlan;
use crate::state::{self, SweepState};
use anyhow::{Context, anyhow, bail};
use std::path::Path;
use std::time::{Duration, Instant};

/// How a task ended; the binary turns it into the exit status: 0, 75 ("incomplete, resume me", as
/// `spikerl train` uses it), 1.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every run of the task completed.
    Completed,
    /// Runs stopped early after checkpointing (the text says which and what was done about it).
    Incomplete(String),
    /// Runs failed (the text names them).
    Failed(String),
}

/// The task's position from `--index`, else from the engine's variable: Slurm's array index or
/// Kubernetes' completion index.
fn position(index: Option<usize>) -> anyhow::Result<usize> {
    if let Some(i) = index {
        return Ok(i);
    }
    for var in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
        if let Ok(text) = std::env::var(var) {
            return text.trim().parse().map_err(|_| anyhow!("{var}={text:?} is not a task index"));
        }
    }
    bail!(
        "no task index: give --index, or run under Slurm (SLURM_ARRAY_TASK_ID) or as an Indexed Job (JOB_COMPLETION_INDEX)"
    )
}

/// Where this task runs, for `sweep.json` and `sweep status`.
fn placement() -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let host = var("SLURMD_NODENAME").or_else(|| var("HOSTNAME")).unwrap_or_else(|| "this machine".into());
    if let Some(id) = slurm::own_task_id() {
        format!("slurm {id} on {host}")
    } else if var("JOB_COMPLETION_INDEX").is_some() {
        format!("k8s pod {host}")
    } else {
        format!("task on {host}")
    }
}

/// Runs the task.
pub fn run(out: &Path, index: Option<usize>, pick: Option<&[usize]>) -> anyhow::Result<Outcome> {
    let position = position(index)?;
    let state = state::load_state(out)?;
    let (spec, plans) = plan::load_sweep_spec(out, &state)?;
    let tasks = Task::grid(&plans, spec.group_seeds);
    let number = match pick {
        Some(list) => *list
            .get(position)
            .ok_or_else(|| anyhow!("task index {position} is past the {} task(s) of --pick", list.len()))?,
        None => position,
    };
    let task = tasks.get(number).ok_or_else(|| {
        anyhow!(
            "the sweep in {} has {} tasks (0 to {}), not a task {number}",
            out.display(),
            tasks.len(),
            tasks.len().saturating_sub(1)
        )
    })?;
    let placement = placement();
    eprintln!("sweep task {number} of {}: {} ({placement})", tasks.len(), task.name());

    let mut actions = Vec::with_capacity(task.plans.len());
    for p in &task.plans {
        actions.push(plan::decide_one(out, p, &state)?);
    }
    let queue: Vec<(&RunPlan, &Action)> =
        task.plans.iter().copied().zip(&actions).filter(|(_, a)| **a != Action::Skip).collect();
    if queue.is_empty() {
        eprintln!("sweep task {number}: every run completed already");
        return Ok(Outcome::Completed);
    }
    let exe = std::env::current_exe().context("locating the spikerl binary")?;
    let catcher = signals::Catcher::install().context("installing signal handlers")?;
    let jobs = Job::all(&queue, spec.group_seeds);
    // What the task knows of the state when the file cannot be written (recording is best effort: the
    // run folders are the truth, and `sweep status` reads them).
    let mut fallback = state.clone();
    let mut stopped_early = false;
    for (n, job) in jobs.iter().enumerate() {
        if catcher.received() > 0 {
            stopped_early = true;
            eprintln!("sweep task {number}: stopped by a signal before {}", job.name());
            break;
        }
        run_job(out, &exe, job, n + 1, jobs.len(), &placement, &catcher, &mut fallback)?;
    }

    let statuses: Vec<(String, String)> = task
        .plans
        .iter()
        .map(|p| (p.id.clone(), crate::run_folder::status(&out.join(&p.id)).as_str().into()))
        .collect();
    let unfinished: Vec<&str> = statuses
        .iter()
        .filter(|(_, s)| s == "interrupted" || s == "running")
        .map(|(id, _)| id.as_str())
        .collect();
    let failed: Vec<&str> =
        statuses.iter().filter(|(_, s)| s == "failed").map(|(id, _)| id.as_str()).collect();
    if stopped_early || !unfinished.is_empty() {
        let mut what = match unfinished.is_empty() {
            true => format!("sweep task {number} stopped by a signal before its runs started"),
            false => format!(
                "sweep task {number} stopped early; to resume from checkpoints: {}",
                unfinished.join(", ")
            ),
        };
        if slurm::own_task_id().is_some() {
            match slurm::requeue_self() {
                Ok(done) => what.push_str(&format!(" ({done})")),
                Err(e) => {
                    what.push_str(&format!(" (could not requeue itself: {e:#}; submit the sweep again)"))
                }
            }
        }
        return Ok(Outcome::Incomplete(what));
    }
    if !failed.is_empty() {
        return Ok(Outcome::Failed(format!(
            "sweep task {number}: {} failed (errors in {} and the runs' train.log)",
            failed.join(", "),
            state::state_path(out).display()
        )));
    }
    eprintln!("sweep task {number}: completed");
    Ok(Outcome::Completed)
}

/// Runs one `spikerl train` process of the task in the foreground, passing the first signal on.
#[allow(clippy::too_many_arguments)]
fn run_job(
    out: &Path,
    exe: &Path,
    job: &Job<'_>,
    index: usize,
    total: usize,
    placement: &str,
    catcher: &signals::Catcher,
    fallback: &mut SweepState,
) -> anyhow::Result<()> {
    let prepared = record(out, fallback, |s| {
        let (runs, how) = runner::prepare_runs(out, job, index, total, s);
        for (p, _) in &runs {
            runner::record_of(s, p).placement = Some(placement.to_string());
        }
        (runs, how)
    });
    let (runs, how) = prepared;
    if runs.is_empty() {
        return Ok(());
    }
    let job = Job { runs, grouped: job.grouped };
    let args = job.args(out);
    let log = job.log(out);
    let plans: Vec<&RunPlan> = job.runs.iter().map(|&(p, _)| p).collect();
    let command: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let child = match runner::launch(exe, &args, &log, Group::Shared) {
        Ok(child) => child,
        Err(e) => {
            record(out, fallback, |s| {
                for p in &plans {
                    runner::record_start_failure(runner::record_of(s, p), &e);
                }
            });
            eprintln!("[{index}/{total}] {} could not start: {e:#}", job.name());
            return Ok(());
        }
    };
    record(out, fallback, |s| {
        for p in &plans {
            let rec = runner::record_of(s, p);
            rec.status = "running".into();
            rec.command = command.clone();
        }
    });
    eprintln!("[{index}/{total}] start {}{how}", job.name());
    let mut active = Active { plans, name: job.name(), log, child, started: Instant::now(), index };
    let mut forwarded = false;
    let exit = loop {
        if !forwarded && catcher.received() > 0 {
            // Once: the run is checkpointing. Slurm and Kubernetes kill it themselves if it takes too long.
            eprintln!("[{index}/{total}] signal received: asking {} to checkpoint and stop", active.name);
            signals::send(active.child.id(), libc::SIGTERM);
            forwarded = true;
        }
        if let Some(exit) = active.child.try_wait().context("waiting for spikerl train")? {
            break exit;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    record(out, fallback, |s| runner::finish(out, &active, total, exit, s));
    Ok(())
}

/// Applies `change` to `DIR/sweep.json` under its lock; when the file cannot be updated, to `fallback`
/// instead, with a warning: a run goes on whether or not its record could be written.
fn record<T>(out: &Path, fallback: &mut SweepState, change: impl Fn(&mut SweepState) -> T) -> T {
    match state::update_state(out, &change) {
        Ok(result) => result,
        Err(e) => {
            eprintln!("sweep task: warning: could not update {}: {e:#}", state::state_path(out).display());
            change(fallback)
        }
    }
}
