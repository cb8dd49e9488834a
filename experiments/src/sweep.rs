//! `spikerl sweep SPEC.toml --out DIR`: expands the grid (spec.rs), decides per run what to do from its
//! folder (skip completed, start new, restart interrupted or failed), runs `spikerl train` child
//! processes a few at a time, and records every run's outcome in `DIR/sweep.json`.
//!
//! Ctrl-C / SIGTERM: no new run starts; the signal is forwarded to running runs, which checkpoint, mark
//! themselves interrupted and exit; the sweep then returns. A second signal kills the runs at once.
//! Re-running the same command continues where it stopped.

use crate::run_folder::{self, RunInfo, Status};
use crate::signals;
use crate::spec::{RunPlan, Spec, TrainOptions};
use crate::time::now_rfc3339;
use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Scheduling options of a sweep.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SweepOptions {
    /// Runs executed at once (default: the machine's cores divided by the cores one run uses, i.e. its
    /// --threads (1 unless the spec says otherwise) plus its actors unless --sync).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print what each run would do (skip, start, restart) and its command line, and start nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The sweep state file, `DIR/sweep.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SweepState {
    pub spec: String,
    pub description: String,
    /// The spec's text when the sweep last started.
    pub spec_toml: String,
    pub exe: String,
    pub jobs: usize,
    pub started_at: String,
    pub updated_at: String,
    /// By run id (`{env}/{method}/seed{N}`, the folder under DIR).
    pub runs: BTreeMap<String, RunRecord>,
}

/// One run as the sweep saw it last.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    /// pending | running | completed | failed | interrupted
    pub status: String,
    pub options: TrainOptions,
    pub command: Vec<String>,
    /// Times the sweep started it (restarts included).
    pub attempts: u32,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub wall_seconds: Option<f64>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// Max over evaluations of the average return (the paper's metric), when completed.
    pub max_avg_return: Option<f64>,
}

/// What to do with a run, decided from its folder before anything starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Completed with the same options: nothing to do.
    Skip,
    /// Never started.
    Start,
    /// Started before but did not complete (the reason says how it ended).
    Restart(String),
}

/// Decides from the run folder's status (and, when known, its manifest and the options it was started
/// with) what to do with `plan`. Errors when a completed run does not match the spec any more: its
/// numbers would be reported as the spec's but are not.
pub fn decide(
    plan: &RunPlan,
    status: &Status,
    manifest: Option<&RunInfo>,
    recorded: Option<&TrainOptions>,
) -> anyhow::Result<Action> {
    Ok(match status {
        Status::Missing => Action::Start,
        Status::Completed => {
            let stale = |why: String| {
                anyhow!(
                    "run {} completed with different settings ({why}); the spec changed since. Use another --out, \
                     or delete that run folder to run it again",
                    plan.id
                )
            };
            if let Some(info) = manifest {
                if info.env != plan.env || info.method != plan.method || info.seed != plan.seed {
                    return Err(stale(format!(
                        "its manifest says {} {} seed {}",
                        info.env, info.method, info.seed
                    )));
                }
                for (opt, got) in [("steps", info.steps), ("random-steps", info.random_steps)] {
                    if let (Some(want), Some(got)) =
                        (plan.option(opt).and_then(|s| s.parse::<u64>().ok()), got)
                        && want != got
                    {
                        return Err(stale(format!("--{opt} {got}, the spec says {want}")));
                    }
                }
            }
            if let Some(rec) = recorded
                && rec != &plan.options
            {
                return Err(stale(describe_difference(rec, &plan.options)));
            }
            Action::Skip
        }
        Status::Running => {
            Action::Restart("it was still marked running: its sweep or machine stopped".into())
        }
        Status::Interrupted => Action::Restart("it was interrupted".into()),
        Status::Failed => Action::Restart("it failed".into()),
        Status::Unreadable(why) => Action::Restart(format!("its manifest is unreadable: {why}")),
    })
}

fn describe_difference(old: &TrainOptions, new: &TrainOptions) -> String {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let show = |o: Option<&crate::spec::OptValue>| match o {
        None => "unset".to_string(),
        Some(crate::spec::OptValue::Flag(b)) => b.to_string(),
        Some(crate::spec::OptValue::Value(v)) => v.clone(),
    };
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| format!("--{k}: was {}, now {}", show(old.get(k)), show(new.get(k))))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Makes `dir` ready for a fresh start of its run.
///
/// This is the one place that decides how an unfinished run continues. Today `spikerl train` has no
/// `--resume`, so the run starts over: its folder is cleared. When it gains one, keep the folder here for
/// an interrupted run that has a checkpoint and add `--resume` to its command in `launch`.
fn prepare(dir: &Path, action: &Action) -> anyhow::Result<()> {
    if matches!(action, Action::Restart(_) | Action::Start) && dir.exists() {
        clear_run_folder(dir)?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Deletes a run folder, but only one that holds nothing except what `spikerl train` and the sweep
/// write there: a mistyped --out must never cost someone their files.
pub fn clear_run_folder(dir: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let ours = matches!(
            name.as_str(),
            "manifest.json" | "evals.csv" | "evals.png" | "evals.svg" | "checkpoints" | "train.log"
        ) || (name == "tb" && only_event_files(&dir.join("tb")))
            || (name == "videos" && only_videos(&dir.join("videos")))
            || (name.starts_with("actor-") && name.ends_with(".log"))
            || name.starts_with("manifest.tmp")
            || name.starts_with("evals.csv.tmp")
            // Temporary files of the curve's atomic writes (spikerl_plot::write_atomic).
            || name.starts_with(".evals.png.tmp")
            || name.starts_with(".evals.svg.tmp");
        if !ours {
            bail!(
                "refusing to delete {} to restart its run: it holds {name:?}, which spikerl does not write there",
                dir.display()
            );
        }
    }
    fs::remove_dir_all(dir).with_context(|| format!("deleting {}", dir.display()))
}

/// Whether `dir` holds nothing but TensorBoard event files (what a run writes into its `tb/`).
fn only_event_files(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().all(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents."))
    })
}

/// Whether `dir` holds nothing but `train --video-every`'s videos (`step-*.mp4|gif`).
fn only_videos(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("step-") && (name.ends_with(".mp4") || name.ends_with(".gif"))
        })
    })
}

/// Long option names `spikerl train` accepts, read from its `--help`.
fn train_option_names(exe: &Path) -> anyhow::Result<BTreeSet<String>> {
    let out = Command::new(exe)
        .args(["train", "--help"])
        .env_clear_spikerl()
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} train --help", exe.display()))?;
    if !out.status.success() {
        bail!("{} train --help failed: {}", exe.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(parse_option_names(&String::from_utf8_lossy(&out.stdout)))
}

/// Option names from clap's help text (`      --snn-hidden <SNN_HIDDEN>`, `  -h, --help`).
pub fn parse_option_names(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|line| {
            let l = line.trim_start();
            let l = if l.len() > 4 && l.starts_with('-') && !l.starts_with("--") && l[2..].starts_with(", ") {
                &l[4..]
            } else {
                l
            };
            let name = l.strip_prefix("--")?;
            let end = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).unwrap_or(name.len());
            (end > 0).then(|| name[..end].to_string())
        })
        .collect()
}

/// Children get no `SPIKERL_*` variables: the spec alone decides a run (they would override defaults
/// silently otherwise, and `SPIKERL_OUT` is the sweep's own).
trait ClearSpikerlEnv {
    fn env_clear_spikerl(&mut self) -> &mut Self;
}

impl ClearSpikerlEnv for Command {
    fn env_clear_spikerl(&mut self) -> &mut Self {
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SPIKERL_") {
                self.env_remove(k);
            }
        }
        self
    }
}

/// Holds `DIR/sweep.lock` (flock) so two sweeps never drive the same folder; released on exit, even a
/// crash.
struct Lock(#[allow(dead_code)] File);

fn lock(out: &Path) -> anyhow::Result<Lock> {
    use std::os::fd::AsRawFd;
    let path = out.join("sweep.lock");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!("another sweep is running in {} (it holds {})", out.display(), path.display());
    }
    Ok(Lock(file))
}

fn state_path(out: &Path) -> PathBuf {
    out.join("sweep.json")
}

fn load_state(out: &Path) -> anyhow::Result<SweepState> {
    let path = state_path(out);
    if !path.exists() {
        return Ok(SweepState::default());
    }
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn save_state(out: &Path, state: &mut SweepState) -> anyhow::Result<()> {
    state.updated_at = now_rfc3339();
    let path = state_path(out);
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(state)?)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

fn default_jobs(plans: &[RunPlan]) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_run = plans.iter().map(RunPlan::cores).max().unwrap_or(1);
    (cores / per_run).max(1)
}

pub fn run(spec_path: &Path, out: &Path, opts: &SweepOptions) -> anyhow::Result<()> {
    let spec = Spec::load(spec_path)?;
    let plans = spec.expand().with_context(|| format!("in {}", spec_path.display()))?;
    let exe = std::env::current_exe().context("locating the spikerl binary")?;
    check_train_options(&exe, spec_path, &plans)?;
    let jobs_at_once = match opts.jobs {
        Some(0) => bail!("--jobs must be at least 1"),
        Some(j) => j,
        None => default_jobs(&plans),
    };

    if !opts.dry_run {
        fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    }
    let _lock = if opts.dry_run { None } else { Some(lock(out)?) };
    let mut state = load_state(out)?;

    let actions = decide_all(out, &plans, &state)?;
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
    save_state(out, &mut state)?;

    let outcome = schedule(&exe, out, &jobs, jobs_at_once, &mut state)?;
    sum_up(out, &plans, &state, &outcome)
}

/// Refuses a spec with an option that `spikerl train` does not have, before anything starts.
fn check_train_options(exe: &Path, spec_path: &Path, plans: &[RunPlan]) -> anyhow::Result<()> {
    let known = train_option_names(exe)?;
    for plan in plans {
        for k in plan.options.keys() {
            if !known.contains(k) {
                bail!(
                    "`{k}` in {} is not an option of `spikerl train` (see spikerl train --help)",
                    spec_path.display()
                );
            }
        }
    }
    Ok(())
}

/// What to do with each plan (same order), from its folder and what `state` recorded of it.
fn decide_all(out: &Path, plans: &[RunPlan], state: &SweepState) -> anyhow::Result<Vec<Action>> {
    let mut actions = Vec::with_capacity(plans.len());
    for plan in plans {
        let dir = out.join(&plan.id);
        let status = run_folder::status(&dir);
        let info = run_folder::read_manifest(&dir).ok().and_then(|m| run_folder::run_info(&m).ok());
        let recorded = state.runs.get(&plan.id).filter(|r| !r.options.is_empty()).map(|r| &r.options);
        actions.push(decide(plan, &status, info.as_ref(), recorded)?);
    }
    Ok(actions)
}

/// The sweep's first line: how many runs, and what happens to them.
fn announce(spec_path: &Path, out: &Path, plans: &[RunPlan], actions: &[Action], jobs_at_once: usize) {
    let count = |f: fn(&Action) -> bool| actions.iter().filter(|a| f(a)).count();
    let (skip, start, restart) = (
        count(|a| *a == Action::Skip),
        count(|a| *a == Action::Start),
        count(|a| matches!(a, Action::Restart(_))),
    );
    eprintln!(
        "sweep {}: {} runs ({} completed already, {} to start, {} to restart), {} at once, into {}",
        spec_path.display(),
        plans.len(),
        skip,
        start,
        restart,
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
        let what = match action {
            Action::Skip => "skip (completed)".to_string(),
            Action::Start => "start".to_string(),
            Action::Restart(why) => format!("restart ({why})"),
        };
        let args = command_line(jobs, out, plan);
        println!("{:<44} {what}\n    {} {}", plan.id, exe.display(), args.join(" "));
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
        let rec = state.runs.entry(plan.id.clone()).or_default();
        rec.options = plan.options.clone();
        rec.command = command_line(jobs, out, plan);
        if *action == Action::Skip {
            rec.status = "completed".into();
            if rec.max_avg_return.is_none() {
                rec.max_avg_return = max_avg_return(&out.join(&plan.id));
            }
        } else {
            rec.status = "pending".into();
        }
    }
}

/// The sweep's last line, and its error when a signal stopped it or runs failed.
fn sum_up(out: &Path, plans: &[RunPlan], state: &SweepState, outcome: &Outcome) -> anyhow::Result<()> {
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for plan in plans {
        *by_status.entry(state.runs[&plan.id].status.as_str()).or_default() += 1;
    }
    let summary = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", ");
    eprintln!(
        "sweep: {summary} (state: {}; report: spikerl report {} --out REPORT_DIR)",
        state_path(out).display(),
        out.display()
    );
    let failed: Vec<&str> =
        plans.iter().filter(|p| state.runs[&p.id].status == "failed").map(|p| p.id.as_str()).collect();
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

/// What one `spikerl train` process runs: one run, or (`group_seeds`) the seeds of one configuration.
pub struct Job<'a> {
    pub runs: Vec<(&'a RunPlan, &'a Action)>,
    grouped: bool,
}

impl<'a> Job<'a> {
    /// The queue's runs as processes, in queue order: one each, or with `group_seeds` one per
    /// configuration (`{env}/{method}`), holding its seeds in the order they are queued.
    pub fn all(queue: &[(&'a RunPlan, &'a Action)], group_seeds: bool) -> Vec<Job<'a>> {
        let mut jobs: Vec<Job<'a>> = Vec::new();
        for &(plan, action) in queue {
            match jobs.iter_mut().find(|j| group_seeds && j.runs[0].0.group_id() == plan.group_id()) {
                Some(job) => job.runs.push((plan, action)),
                None => jobs.push(Job { runs: vec![(plan, action)], grouped: group_seeds }),
            }
        }
        jobs
    }

    /// How the sweep's messages name it.
    fn name(&self) -> String {
        match self.grouped {
            false => self.runs[0].0.id.clone(),
            true => format!(
                "{}/seed{{{}}}",
                self.runs[0].0.group_id(),
                self.seeds().iter().map(u64::to_string).collect::<Vec<_>>().join(",")
            ),
        }
    }

    fn seeds(&self) -> Vec<u64> {
        self.runs.iter().map(|(p, _)| p.seed).collect()
    }

    /// `spikerl train`'s arguments for this job under the sweep folder `out`.
    pub fn args(&self, out: &Path) -> Vec<std::ffi::OsString> {
        let first = self.runs[0].0;
        match self.grouped {
            false => first.train_args(&out.join(&first.id)),
            true => first.group_train_args(&self.seeds(), &out.join(first.group_id())),
        }
    }

    /// Where the process's output goes: the run folder's `train.log`, or the configuration folder's
    /// `train-seeds.log` beside the seeds' run folders.
    fn log(&self, out: &Path) -> PathBuf {
        let first = self.runs[0].0;
        match self.grouped {
            false => out.join(&first.id).join("train.log"),
            true => out.join(first.group_id()).join("train-seeds.log"),
        }
    }
}

struct Active<'a> {
    plans: Vec<&'a RunPlan>,
    name: String,
    log: PathBuf,
    child: Child,
    started: Instant,
    index: usize,
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
            save_state(out, state)?;
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
    let (runs, why) = prepare_runs(out, job, index, total, state);
    if runs.is_empty() {
        return None;
    }
    let job = Job { runs, grouped: job.grouped };
    let log = job.log(out);
    let plans: Vec<&RunPlan> = job.runs.iter().map(|&(p, _)| p).collect();
    match launch(exe, &job.args(out), &log) {
        Ok(child) => {
            for plan in &plans {
                state.runs.get_mut(&plan.id).expect("recorded above").status = "running".into();
            }
            eprintln!("[{index}/{total}] start {}{why}", job.name());
            Some(Active { plans, name: job.name(), log, child, started: Instant::now(), index })
        }
        Err(e) => {
            for plan in &plans {
                record_start_failure(state.runs.get_mut(&plan.id).expect("recorded above"), &e);
            }
            eprintln!("[{index}/{total}] {} could not start: {e:#}", job.name());
            None
        }
    }
}

/// Counts a new attempt of each of `job`'s runs and prepares its folder. Returns the runs that can
/// start and, for the start message, why this is a restart (empty when it is not).
fn prepare_runs<'a>(
    out: &Path,
    job: &Job<'a>,
    index: usize,
    total: usize,
    state: &mut SweepState,
) -> (Vec<(&'a RunPlan, &'a Action)>, String) {
    let mut why = String::new();
    // A grouped run whose folder could not be prepared stays out; its seeds go on without it.
    let mut runs = Vec::with_capacity(job.runs.len());
    for &(plan, action) in &job.runs {
        let rec = state.runs.get_mut(&plan.id).expect("recorded above");
        rec.attempts += 1;
        rec.started_at = Some(now_rfc3339());
        rec.ended_at = None;
        rec.exit_code = None;
        rec.error = None;
        rec.wall_seconds = None;
        rec.max_avg_return = None;
        if let Action::Restart(reason) = action {
            why = format!(" (restart: {reason})");
        }
        match prepare(&out.join(&plan.id), action) {
            Ok(()) => runs.push((plan, action)),
            Err(e) => {
                record_start_failure(rec, &e);
                eprintln!("[{index}/{total}] {} could not start: {e:#}", plan.id);
            }
        }
    }
    (runs, why)
}

/// Records the runs of every process that has ended since the last look.
fn reap(out: &Path, total: usize, active: &mut Vec<Active>, state: &mut SweepState) -> anyhow::Result<()> {
    let mut i = 0;
    while i < active.len() {
        match active[i].child.try_wait().context("waiting for a run")? {
            None => i += 1,
            Some(exit) => {
                let a = active.swap_remove(i);
                finish(out, &a, total, exit, state);
                save_state(out, state)?;
            }
        }
    }
    Ok(())
}

/// Records a run that could not be started.
fn record_start_failure(rec: &mut RunRecord, error: &anyhow::Error) {
    rec.status = "failed".into();
    rec.error = Some(format!("{error:#}"));
    rec.ended_at = Some(now_rfc3339());
}

/// Starts `spikerl train` with `args`, output into `log`.
fn launch(exe: &Path, args: &[std::ffi::OsString], log: &Path) -> anyhow::Result<Child> {
    let log = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(args).env_clear_spikerl().stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    // Its own process group: a terminal's Ctrl-C reaches the sweep only, which forwards it once.
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls between fork and exec. If the sweep dies without
        // forwarding (SIGKILL), the run still gets SIGTERM and records itself as interrupted.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    cmd.spawn().with_context(|| format!("starting {}", exe.display()))
}

/// Records how a process's runs ended. The manifest is the truth; when the process died before writing
/// a run's outcome there, the manifest is marked failed with the exit status and the end of the log.
fn finish(out: &Path, a: &Active, total: usize, exit: ExitStatus, state: &mut SweepState) {
    for plan in &a.plans {
        let dir = out.join(&plan.id);
        let rec = state.runs.get_mut(&plan.id).expect("recorded");
        rec.ended_at = Some(now_rfc3339());
        rec.wall_seconds = Some((a.started.elapsed().as_secs_f64() * 10.0).round() / 10.0);
        rec.exit_code = exit.code();
        let status = run_folder::status(&dir);
        match status {
            Status::Completed | Status::Interrupted => {
                rec.status = status.as_str().into();
            }
            Status::Failed => {
                rec.status = "failed".into();
                rec.error = run_folder::read_manifest(&dir)
                    .ok()
                    .and_then(|m| m.get("error").and_then(|e| e.as_str()).map(str::to_string));
            }
            other => {
                let left = match other {
                    Status::Missing => "before writing its manifest",
                    Status::Running => "while its manifest still said running",
                    _ => "leaving an unreadable manifest",
                };
                let error = format!(
                    "spikerl train exited ({exit}) {left}; end of {}:\n{}",
                    a.log.display(),
                    log_tail(&a.log, 10)
                );
                mark_failed(&dir, &error);
                rec.status = "failed".into();
                rec.error = Some(error);
            }
        }
        if rec.status == "failed" && rec.error.is_none() {
            rec.error = Some(format!("spikerl train exited ({exit}); see {}", a.log.display()));
        }
        if rec.status == "completed" {
            rec.max_avg_return = max_avg_return(&dir);
        }
        let best = rec.max_avg_return.map_or(String::new(), |r| format!(", max average return {r:.1}"));
        let error =
            rec.error.as_deref().map_or(String::new(), |e| format!(": {}", e.lines().next().unwrap_or("")));
        let of = if a.plans.len() > 1 { format!(" (of {})", a.name) } else { String::new() };
        eprintln!(
            "[{}/{total}] {}{of} {} after {:.0} s{best}{error}",
            a.index,
            plan.id,
            rec.status,
            a.started.elapsed().as_secs_f64()
        );
    }
}

fn max_avg_return(dir: &Path) -> Option<f64> {
    run_folder::read_evals(dir).ok()?.iter().map(|e| e.avg_return).reduce(f64::max)
}

/// Sets `status: failed` and `error` in a manifest left `running` by a process that died.
fn mark_failed(dir: &Path, error: &str) {
    let Ok(mut m) = run_folder::read_manifest(dir) else {
        return;
    };
    if let Some(obj) = m.as_object_mut() {
        obj.insert("status".into(), "failed".into());
        obj.insert("error".into(), error.into());
        obj.insert("ended_at".into(), now_rfc3339().into());
        if let Ok(bytes) = serde_json::to_vec_pretty(&m) {
            let tmp = dir.join("manifest.tmp-sweep");
            if fs::write(&tmp, bytes).is_ok() {
                let _ = fs::rename(&tmp, run_folder::manifest_path(dir));
            }
        }
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{Algo, Method, Neuron};
    use crate::spec::OptValue;

    fn plan() -> RunPlan {
        let mut options = TrainOptions::new();
        options.insert("steps".into(), OptValue::Value("300".into()));
        options.insert("sync".into(), OptValue::Flag(true));
        RunPlan {
            id: "Pendulum-v1/proxy-lif/seed1".into(),
            env: "Pendulum-v1".into(),
            method: Method::new(Algo::Proxy, Neuron::Lif),
            seed: 1,
            options,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("spikerl-exp-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn fake_run(dir: &Path, status: &str, env: &str, steps: u64) {
        fs::create_dir_all(dir.join("checkpoints")).unwrap();
        let m = serde_json::json!({"status": status, "mode": "sync",
            "config": {"env_id": env, "algo": "proxy", "neuron": "lif", "seed": 1, "steps": steps, "random_steps": 256}});
        fs::write(dir.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
        fs::write(dir.join("evals.csv"), "step,avg_return\n0,-10\n300,-4.5\n556,-7\n").unwrap();
    }

    fn decide_dir(dir: &Path, recorded: Option<&TrainOptions>) -> anyhow::Result<Action> {
        let info = run_folder::read_manifest(dir).ok().and_then(|m| run_folder::run_info(&m).ok());
        decide(&plan(), &run_folder::status(dir), info.as_ref(), recorded)
    }

    #[test]
    fn decisions_from_fake_run_folders() {
        let root = temp_dir("decide");
        assert_eq!(decide_dir(&root.join("none"), None).unwrap(), Action::Start);
        for (status, restart) in
            [("completed", false), ("interrupted", true), ("failed", true), ("running", true)]
        {
            let d = root.join(status);
            fake_run(&d, status, "Pendulum-v1", 300);
            let a = decide_dir(&d, Some(&plan().options)).unwrap();
            assert_eq!(matches!(a, Action::Restart(_)), restart, "{status}: {a:?}");
            assert_eq!(a == Action::Skip, !restart);
        }
        let garbled = root.join("garbled");
        fs::create_dir_all(&garbled).unwrap();
        fs::write(garbled.join("manifest.json"), "{not json").unwrap();
        assert!(
            matches!(decide_dir(&garbled, None).unwrap(), Action::Restart(r) if r.contains("unreadable"))
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_completed_run_that_no_longer_matches_the_spec_is_an_error() {
        let root = temp_dir("stale");
        let other_steps = root.join("steps");
        fake_run(&other_steps, "completed", "Pendulum-v1", 999);
        assert!(
            format!("{:#}", decide_dir(&other_steps, None).unwrap_err())
                .contains("--steps 999, the spec says 300")
        );
        let other_env = root.join("env");
        fake_run(&other_env, "completed", "Hopper-v4", 300);
        assert!(decide_dir(&other_env, None).is_err());
        let ok = root.join("ok");
        fake_run(&ok, "completed", "Pendulum-v1", 300);
        let mut recorded = plan().options;
        recorded.insert("proxy-lr".into(), OptValue::Value("0.01".into()));
        let err = format!("{:#}", decide_dir(&ok, Some(&recorded)).unwrap_err());
        assert!(err.contains("--proxy-lr: was 0.01, now unset"), "{err}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn restart_clears_run_folders_but_nothing_else() {
        let root = temp_dir("clear");
        let run = root.join("run");
        fake_run(&run, "interrupted", "Pendulum-v1", 300);
        fs::write(run.join("train.log"), "x").unwrap();
        fs::write(run.join("actor-0.log"), "x").unwrap();
        fs::create_dir_all(run.join("checkpoints/ckpt-000000000300")).unwrap();
        fs::create_dir_all(run.join("tb")).unwrap();
        fs::write(run.join("tb/events.out.tfevents.1.host.2"), "x").unwrap();
        fs::create_dir_all(run.join("videos")).unwrap();
        fs::write(run.join("videos/step-0000000000.mp4"), "x").unwrap();
        prepare(&run, &Action::Restart("it was interrupted".into())).unwrap();
        assert_eq!(fs::read_dir(&run).unwrap().count(), 0, "fresh and empty");
        let precious = root.join("precious");
        fake_run(&precious, "failed", "Pendulum-v1", 300);
        // A `tb/` with more than event files in it is someone's own.
        fs::create_dir_all(precious.join("tb")).unwrap();
        fs::write(precious.join("tb/notes.txt"), "x").unwrap();
        assert!(prepare(&precious, &Action::Restart("failed".into())).is_err());
        fs::remove_dir_all(precious.join("tb")).unwrap();
        fs::write(precious.join("thesis.tex"), "x").unwrap();
        assert!(
            format!("{:#}", prepare(&precious, &Action::Restart("it failed".into())).unwrap_err())
                .contains("thesis.tex")
        );
        assert!(precious.join("thesis.tex").exists());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn jobs_group_a_configurations_seeds_only_when_asked() {
        let text = "envs=[\"Pendulum-v1\"]\nalgos=[\"ann\", \"proxy\"]\nneurons=[\"lif\"]\nseeds=3\n[train]\nsync=true";
        let plans = Spec::parse(text).unwrap().expand().unwrap();
        let start = Action::Start;
        // Seed 1 of ann completed already: not in the queue.
        let queue: Vec<(&RunPlan, &Action)> =
            plans.iter().filter(|p| p.id != "Pendulum-v1/ann/seed1").map(|p| (p, &start)).collect();
        let names = |jobs: &[Job<'_>]| jobs.iter().map(Job::name).collect::<Vec<_>>();
        assert_eq!(Job::all(&queue, false).len(), 5);
        let grouped = Job::all(&queue, true);
        assert_eq!(names(&grouped), ["Pendulum-v1/ann/seed{0,2}", "Pendulum-v1/proxy-lif/seed{0,1,2}"]);
        let out = Path::new("/o");
        let args: Vec<String> = grouped[0].args(out).into_iter().map(|a| a.into_string().unwrap()).collect();
        assert!(
            args.join(" ").contains("--seeds 0,2 --sync --threads 1 --out /o/Pendulum-v1/ann --no-progress"),
            "{args:?}"
        );
        assert_eq!(grouped[1].log(out), Path::new("/o/Pendulum-v1/proxy-lif/train-seeds.log"));
        assert_eq!(Job::all(&queue, false)[0].log(out), Path::new("/o/Pendulum-v1/ann/seed0/train.log"));
    }

    #[test]
    fn option_names_from_help() {
        let help = "Usage: spikerl train [OPTIONS] --out <OUT>\n\nOptions:\n      --env <ENV>\n          Gymnasium id\n      \
                    --snn-hidden <SNN_HIDDEN>\n          widths, --not-this\n      --sync\n  -h, --help\n          Print help\n";
        let names: Vec<String> = parse_option_names(help).into_iter().collect();
        assert_eq!(names, ["env", "help", "snn-hidden", "sync"]);
    }

    #[test]
    fn state_file_round_trips() {
        let root = temp_dir("state");
        let mut s = SweepState { jobs: 2, ..Default::default() };
        s.runs.insert(
            "a/ann/seed0".into(),
            RunRecord {
                status: "failed".into(),
                options: plan().options,
                error: Some("boom".into()),
                ..Default::default()
            },
        );
        save_state(&root, &mut s).unwrap();
        let back = load_state(&root).unwrap();
        assert_eq!(back.runs, s.runs);
        assert!(!back.updated_at.is_empty());
        let _l = lock(&root).unwrap();
        assert!(lock(&root).is_err(), "a second sweep on the same folder is refused");
        fs::remove_dir_all(&root).unwrap();
    }
}
