//! `spikerl sweep SPEC.toml --out DIR`: expands the grid (spec.rs), decides per run what to do from its
//! folder (plan.rs: skip completed, start new, resume unfinished from their checkpoints, restart what
//! cannot resume), and either runs `spikerl train` child processes a few at a time on this machine
//! (`--backend local`, here) or hands the grid to a cluster engine (`--backend slurm|k8s`, cluster.rs).
//! Every run's outcome is recorded in `DIR/sweep.json`.
//!
//! Ctrl-C / SIGTERM: no new run starts; the signal is forwarded to running runs, which checkpoint, mark
//! themselves interrupted and exit; the sweep then returns. A second signal kills the runs at once.
//! Re-running the same command continues where it stopped: interrupted runs resume.

use crate::cluster::{self, Backend, SubmitOptions};
use crate::plan::{self, Action, Job};
use crate::runner::{self, Active, Group};
use crate::signals;
use crate::spec::{RunPlan, Spec};
use crate::state::{self, SweepState, state_path};
use crate::time::now_rfc3339;
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Scheduling options of a sweep.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SweepOptions {
    /// Runs executed at once (default: the machine's cores divided by the cores one run uses, i.e. its
    /// --threads (1 unless the spec says otherwise) plus its actors unless --sync). With a cluster
    /// backend: tasks at once (Slurm's array limit `%N`, the Kubernetes Job's parallelism).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print what each run would do (skip, start, resume, restart) and its command line, or with a
    /// cluster backend the sbatch script or Job manifest; start and submit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Start every unfinished run again from scratch (its folder cleared) instead of resuming it from its
    /// newest checkpoint.
    #[arg(long)]
    pub fresh: bool,
    /// Where the runs execute: this machine (local), one Slurm job array (slurm; resources from the
    /// spec's [slurm] section), or one Kubernetes Indexed Job (k8s; the spec's [k8s] section).
    #[arg(long, value_enum, default_value = "local")]
    pub backend: Backend,
}

fn default_jobs(plans: &[RunPlan]) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_run = plans.iter().map(RunPlan::cores).max().unwrap_or(1);
    (cores / per_run).max(1)
}

pub fn run(spec_path: &Path, out: &Path, opts: &SweepOptions) -> anyhow::Result<()> {
    if opts.backend != Backend::Local {
        let submit = SubmitOptions { fresh: opts.fresh, dry_run: opts.dry_run, at_once: opts.jobs };
        return cluster::submit(spec_path, out, opts.backend, submit);
    }
    let spec = Spec::load(spec_path)?;
    let plans = spec.expand().with_context(|| format!("in {}", spec_path.display()))?;
    let exe = std::env::current_exe().context("locating the spikerl binary")?;
    plan::check_train_options(&exe, spec_path, &plans)?;
    let jobs_at_once = match opts.jobs {
        Some(0) => bail!("--jobs must be at least 1"),
        Some(j) => j,
        None => default_jobs(&plans),
    };

    if !opts.dry_run {
        fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    }
    let _lock = if opts.dry_run { None } else { Some(state::lock(out)?) };
    let mut state = state::load_state(out)?;
    if !opts.dry_run {
        cluster::refuse_if_cluster_busy(&state, out)?;
    }

    let actions = plan::decide_all(out, &plans, &state, opts.fresh)?;
    announce(spec_path, out, &plans, &actions, jobs_at_once);
    let queue: Vec<(&RunPlan, &Action)> =
        plans.iter().zip(&actions).filter(|(_, a)| **a != Action::Skip).collect();
    let jobs = Job::all(&queue, spec.group_seeds);
    if opts.dry_run {
        print_dry_run(&exe, out, &plans, &actions, &jobs);
        return Ok(());
    }

    state.begin(spec_path, &spec, &exe, jobs_at_once);
    record_plans(&mut state, out, &plans, &actions, &jobs);
    state::save_state(out, &mut state)?;

    let outcome = schedule(&exe, out, &jobs, jobs_at_once, &mut state)?;
    sum_up(out, &plans, &state, &outcome)
}

/// The sweep's first line: how many runs, and what happens to them.
fn announce(spec_path: &Path, out: &Path, plans: &[RunPlan], actions: &[Action], jobs_at_once: usize) {
    let count = |f: fn(&Action) -> bool| actions.iter().filter(|a| f(a)).count();
    eprintln!(
        "sweep {}: {} runs ({} completed already, {} to start, {} to resume, {} to restart), {} at once, into {}",
        spec_path.display(),
        plans.len(),
        count(|a| *a == Action::Skip),
        count(|a| *a == Action::Start),
        count(Action::is_resume),
        count(|a| matches!(a, Action::Restart(_))),
        jobs_at_once,
        out.display()
    );
}

/// A run's command line: its process's (a completed run, in no job, its own).
fn command_line(jobs: &[Job<'_>], out: &Path, plan: &RunPlan) -> Vec<String> {
    let args = jobs
        .iter()
        .find(|j| j.runs.iter().any(|(p, _)| p.id == plan.id))
        .map_or_else(|| plan.train_args(&out.join(&plan.id)), |j| j.args(out));
    args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
}

/// `--dry-run`: each run, what would happen to it and its command line.
fn print_dry_run(exe: &Path, out: &Path, plans: &[RunPlan], actions: &[Action], jobs: &[Job<'_>]) {
    for (plan, action) in plans.iter().zip(actions) {
        let args = command_line(jobs, out, plan);
        println!("{:<44} {}\n    {} {}", plan.id, action.describe(), exe.display(), args.join(" "));
    }
}

impl SweepState {
    /// Records what this start of the sweep runs: the spec, its text, the binary, the jobs at once.
    fn begin(&mut self, spec_path: &Path, spec: &Spec, exe: &Path, jobs_at_once: usize) {
        let now = now_rfc3339();
        self.spec = spec_path.display().to_string();
        self.description = spec.description.clone();
        self.spec_toml = fs::read_to_string(spec_path).unwrap_or_default();
        self.exe = exe.display().to_string();
        self.jobs = jobs_at_once;
        self.started_at = now;
    }
}

/// Every plan's record before scheduling: its options and command, completed (skipped) or pending.
fn record_plans(state: &mut SweepState, out: &Path, plans: &[RunPlan], actions: &[Action], jobs: &[Job<'_>]) {
    for (plan, action) in plans.iter().zip(actions) {
        let rec = runner::record_of(state, plan);
        rec.options = plan.options.clone();
        rec.command = command_line(jobs, out, plan);
        if *action == Action::Skip {
            rec.status = "completed".into();
            if rec.max_avg_return.is_none() {
                rec.max_avg_return = runner::max_avg_return(&out.join(&plan.id));
            }
        } else {
            rec.status = "pending".into();
        }
    }
}

/// The sweep's last line, and its error when a signal stopped it or runs failed.
fn sum_up(out: &Path, plans: &[RunPlan], state: &SweepState, outcome: &Outcome) -> anyhow::Result<()> {
    let status_of = |p: &RunPlan| state.runs.get(&p.id).map_or("pending", |r| r.status.as_str());
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for plan in plans {
        *by_status.entry(status_of(plan)).or_default() += 1;
    }
    let summary = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", ");
    eprintln!(
        "sweep: {summary} (state: {}; report: spikerl report {} --out REPORT_DIR)",
        state_path(out).display(),
        out.display()
    );
    let failed: Vec<&str> =
        plans.iter().filter(|p| status_of(p) == "failed").map(|p| p.id.as_str()).collect();
    if outcome.stopped {
        bail!("sweep stopped by a signal: {summary}; run the same command again to continue");
    }
    if !failed.is_empty() {
        bail!(
            "{} run(s) failed: {} (errors in {} and each run's train.log)",
            failed.len(),
            failed.join(", "),
            state_path(out).display()
        );
    }
    Ok(())
}

struct Outcome {
    stopped: bool,
}

fn schedule(
    exe: &Path,
    out: &Path,
    queue: &[Job<'_>],
    jobs: usize,
    state: &mut SweepState,
) -> anyhow::Result<Outcome> {
    let catcher = signals::Catcher::install().context("installing signal handlers")?;
    let total = queue.len();
    let mut next = 0;
    let mut active: Vec<Active> = Vec::new();
    let mut forwarded = 0;
    loop {
        let signals = catcher.received();
        forward_signals(signals, &mut forwarded, &active);
        while signals == 0 && active.len() < jobs && next < total {
            let job = &queue[next];
            next += 1;
            active.extend(start_job(exe, out, job, next, total, state));
            state::save_state(out, state)?;
        }
        reap(out, total, &mut active, state)?;
        if active.is_empty() && (signals > 0 || next == total) {
            return Ok(Outcome { stopped: signals > 0 });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Passes a signal the sweep received since the last look on to the running runs.
fn forward_signals(signals: usize, forwarded: &mut usize, active: &[Active]) {
    if signals > *forwarded {
        let (sig, what) = if signals == 1 {
            (
                libc::SIGINT,
                "stopping: no new runs; asking running ones to checkpoint and stop (signal again to kill them)",
            )
        } else {
            (libc::SIGKILL, "killing the running runs")
        };
        eprintln!("sweep: {what}");
        for a in active {
            signals::send(a.child.id(), sig);
        }
        *forwarded = signals;
    }
}

/// Starts the queue's job number `index` (from 1) with those of its runs whose folders could be
/// prepared; None when none could start (each failure is recorded).
fn start_job<'a>(
    exe: &Path,
    out: &Path,
    job: &Job<'a>,
    index: usize,
    total: usize,
    state: &mut SweepState,
) -> Option<Active<'a>> {
    let (runs, how) = runner::prepare_runs(out, job, index, total, state);
    if runs.is_empty() {
        return None;
    }
    let job = Job { runs, grouped: job.grouped };
    let log = job.log(out);
    let plans: Vec<&RunPlan> = job.runs.iter().map(|&(p, _)| p).collect();
    match runner::launch(exe, &job.args(out), &log, Group::Own) {
        Ok(child) => {
            for plan in &plans {
                runner::record_of(state, plan).status = "running".into();
            }
            eprintln!("[{index}/{total}] start {}{how}", job.name());
            Some(Active { plans, name: job.name(), log, child, started: Instant::now(), index })
        }
        Err(e) => {
            for plan in &plans {
                runner::record_start_failure(runner::record_of(state, plan), &e);
            }
            eprintln!("[{index}/{total}] {} could not start: {e:#}", job.name());
            None
        }
    }
}

/// Records the runs of every process that has ended since the last look.
fn reap(out: &Path, total: usize, active: &mut Vec<Active>, state: &mut SweepState) -> anyhow::Result<()> {
    let mut i = 0;
    while i < active.len() {
        match active[i].child.try_wait().context("waiting for a run")? {
            None => i += 1,
            Some(exit) => {
                let a = active.swap_remove(i);
                runner::finish(out, &a, total, exit, state);
                state::save_state(out, state)?;
            }
        }
    }
    Ok(())
}
