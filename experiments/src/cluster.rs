//! Handing a sweep to a cluster engine: `spikerl sweep SPEC --out DIR --backend slurm|k8s`.
//!
//! The sweep folder stays the one source of truth: the submission writes the spec's copy
//! (`DIR/spec.toml`), records every run in `DIR/sweep.json` and the submission itself, and the engine's
//! tasks (`spikerl sweep task`, task.rs) read the spec from the folder and write their run folders and
//! records there. Submitting again submits only the tasks that have a run left to do and are not queued
//! or running already; runs that cannot resume are cleared now, while nothing runs them.

use crate::k8s;
use crate::plan::{self, Action, Job, Task};
use crate::runner::{record_of, write_file};
use crate::slurm;
use crate::spec::{RunPlan, Spec};
use crate::state::{self, Submission, SweepState};
use crate::time::now_rfc3339;
use anyhow::{Context, anyhow, bail};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a sweep's runs execute.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// `spikerl train` processes on this machine, a few at a time (--jobs).
    #[default]
    Local,
    /// One Slurm job array: a task per run (per seed group with group_seeds), requeued to resume.
    Slurm,
    /// One Kubernetes Indexed Job on a PersistentVolumeClaim (`kubectl apply`).
    K8s,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Slurm => "slurm",
            Backend::K8s => "k8s",
        }
    }
}

/// The command-line choices a submission takes.
#[derive(Clone, Copy, Debug, Default)]
pub struct SubmitOptions {
    /// Restart every unfinished run from scratch instead of resuming it.
    pub fresh: bool,
    /// Print what would be submitted; submit and change nothing.
    pub dry_run: bool,
    /// Tasks at once (`--jobs`): the array's `%N`, the Job's parallelism.
    pub at_once: Option<usize>,
}

/// The ids of the jobs `backend` was given for this sweep.
pub fn submitted_jobs(state: &SweepState, backend: Backend) -> Vec<String> {
    state.submissions.iter().filter(|s| s.backend == backend.as_str()).map(|s| s.job.clone()).collect()
}

/// Grid tasks that Slurm holds queued or running, by task number, with their state. Empty when the
/// sweep was never given to Slurm.
pub fn slurm_active(state: &SweepState) -> anyhow::Result<BTreeMap<usize, String>> {
    slurm::active_tasks(&submitted_jobs(state, Backend::Slurm))
}

/// Refuses to run the sweep on this machine while a cluster engine still runs tasks of it: both would
/// train the same runs into the same folders. Cannot ask (no squeue/kubectl here): a warning.
pub fn refuse_if_cluster_busy(state: &SweepState, out: &Path) -> anyhow::Result<()> {
    if !submitted_jobs(state, Backend::Slurm).is_empty() {
        match slurm_active(state) {
            Ok(active) if !active.is_empty() => bail!(
                "{} task(s) of the sweep in {} are queued or running on Slurm (jobs {}): go on with --backend \
                 slurm, or scancel them first",
                active.len(),
                out.display(),
                submitted_jobs(state, Backend::Slurm).join(", ")
            ),
            Ok(_) => {}
            Err(e) => eprintln!("sweep: warning: this sweep was submitted to Slurm, and {e:#}"),
        }
    }
    if let Some(last) = state.submissions.iter().rev().find(|s| s.backend == Backend::K8s.as_str()) {
        let namespace = load_k8s_namespace(state);
        match k8s::job_active(&last.job, namespace.as_deref()) {
            Some(true) => bail!(
                "the sweep's Kubernetes Job {} is still running: wait for it, or delete it (kubectl delete job {})",
                last.job,
                last.job
            ),
            Some(false) => {}
            None => eprintln!(
                "sweep: warning: this sweep was submitted to Kubernetes as Job {}, and kubectl cannot say whether it \
                 still runs",
                last.job
            ),
        }
    }
    Ok(())
}

/// The namespace of the sweep's Job, from the spec it was submitted with.
fn load_k8s_namespace(state: &SweepState) -> Option<String> {
    Spec::parse(&state.spec_toml).ok()?.k8s?.namespace
}

/// Whether an executable `tool` is on PATH (looked up, not run).
fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| {
            fs::metadata(d.join(tool)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// `DIR` as an absolute path (the tasks run elsewhere, from another working directory).
fn absolute(out: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(out).with_context(|| format!("resolving {}", out.display()))
}

/// `spikerl sweep SPEC --out DIR --backend slurm|k8s`.
pub fn submit(spec_path: &Path, out: &Path, backend: Backend, opts: SubmitOptions) -> anyhow::Result<()> {
    let spec = Spec::load(spec_path)?;
    let plans = spec.expand().with_context(|| format!("in {}", spec_path.display()))?;
    let exe = std::env::current_exe().context("locating the spikerl binary")?;
    plan::check_train_options(&exe, spec_path, &plans)?;
    if opts.at_once == Some(0) {
        bail!("--jobs must be at least 1");
    }
    let k8s_section = match backend {
        Backend::K8s => Some(spec.k8s.clone().ok_or_else(|| {
            anyhow!(
                "--backend k8s needs a [k8s] section in {} (at least `claim`, the PersistentVolumeClaim that holds \
                 the sweep folder; see docs/experiments.md)",
                spec_path.display()
            )
        })?),
        _ => None,
    };
    if !opts.dry_run {
        // Before anything is written: a submission that cannot reach its engine leaves the folder as it was.
        let tool = if backend == Backend::Slurm { "sbatch" } else { "kubectl" };
        if !on_path(tool) {
            bail!(
                "{tool} is not on PATH: submit from a machine where it reaches the cluster, or print what would be \
                 submitted with --dry-run"
            );
        }
    }
    let out = absolute(out)?;
    if !opts.dry_run {
        fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    }
    // Waiting, not failing: a task may be recording its run this instant.
    let _lock = match opts.dry_run {
        true => None,
        false => Some(state::lock_waiting(&out, Duration::from_secs(60))?),
    };
    let mut state = state::load_state(&out)?;

    let tasks = Task::grid(&plans, spec.group_seeds);
    let active = match backend {
        Backend::Slurm => match slurm_active(&state) {
            Ok(active) => active,
            Err(e) if opts.dry_run => {
                eprintln!("sweep: warning: {e:#}; assuming no task is queued or running");
                BTreeMap::new()
            }
            Err(e) => return Err(e),
        },
        _ => {
            if !opts.dry_run {
                refuse_if_cluster_busy(&state, &out)?;
            }
            BTreeMap::new()
        }
    };
    let actions = plan::decide_all(&out, &plans, &state, opts.fresh)?;
    let by_run: BTreeMap<&str, &Action> = plans.iter().map(|p| p.id.as_str()).zip(&actions).collect();
    // Every plan of a task is one of `plans`, so each has an action.
    let action_of = |p: &RunPlan| by_run.get(p.id.as_str()).copied().unwrap_or(&Action::Skip);
    let wanted: Vec<&Task> = tasks
        .iter()
        .filter(|t| !active.contains_key(&t.index) && t.plans.iter().any(|p| *action_of(p) != Action::Skip))
        .collect();
    announce(spec_path, &out, backend, &plans, &actions, &active, &wanted, &tasks);
    if wanted.is_empty() {
        eprintln!("sweep: nothing to submit (follow the sweep with: spikerl sweep status {})", out.display());
        return Ok(());
    }
    let picked: Vec<usize> = wanted.iter().map(|t| t.index).collect();
    let submission = state.submissions.iter().filter(|s| s.backend == backend.as_str()).count() + 1;
    let out_name = k8s::out_name(&out);
    let now = now_rfc3339();
    let rendered = match backend {
        Backend::Slurm => {
            let binary = spec.slurm.binary.clone().unwrap_or_else(|| exe.clone());
            let default_name = k8s::label(&format!("spikerl-sweep-{out_name}"), 63);
            slurm::script(
                &spec.slurm,
                &slurm::ScriptInputs {
                    out: &out,
                    exe: &binary,
                    tasks: &picked,
                    at_once: opts.at_once,
                    plans: &plans,
                    default_name: &default_name,
                    written_at: &now,
                    submission,
                },
            )?
        }
        Backend::K8s => {
            let section = k8s_section.as_ref().ok_or_else(|| anyhow!("no [k8s] section"))?;
            let inputs = k8s::JobInputs {
                tasks: &picked,
                out_name: &out_name,
                submission,
                at_once: opts.at_once,
                plans: &plans,
            };
            serde_json::to_string_pretty(&k8s::job(section, &inputs)?)? + "\n"
        }
        Backend::Local => bail!("the local backend runs the sweep itself; nothing to submit"),
    };
    if opts.dry_run {
        for task in &wanted {
            for p in &task.plans {
                eprintln!("  task {:<4} {:<44} {}", task.index, p.id, action_of(p).describe());
            }
        }
        print!("{rendered}");
        return Ok(());
    }

    // Runs that cannot resume start from an empty folder; cleared now, while no task runs them, so that
    // the task finds nothing to resume. One refused deletion stops the submission before anything is sent.
    for task in &wanted {
        for p in &task.plans {
            let action = action_of(p);
            if matches!(action, Action::Restart(_)) {
                plan::prepare(&out.join(&p.id), action)?;
            }
        }
    }
    write_file(&plan::spec_copy_path(&out), &fs::read_to_string(spec_path)?)?;
    let job = match backend {
        Backend::Slurm => {
            let dir = out.join("slurm");
            fs::create_dir_all(dir.join("logs")).with_context(|| format!("creating {}", dir.display()))?;
            write_file(&dir.join("tasks.tsv"), &plan::tasks_table(&tasks))?;
            let script = dir.join("sweep.sbatch");
            write_file(&script, &rendered)?;
            slurm::sbatch(&script)?
        }
        _ => {
            let dir = out.join("k8s");
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            write_file(&dir.join("tasks.tsv"), &plan::tasks_table(&tasks))?;
            let manifest: serde_json::Value = serde_json::from_str(&rendered)?;
            let name = manifest["metadata"]["name"].as_str().unwrap_or_default().to_string();
            write_file(&dir.join(format!("{name}.json")), &rendered)?;
            eprintln!("{}", k8s::apply(&manifest)?);
            name
        }
    };
    record(&mut state, spec_path, &spec, &exe, &out, &plans, &by_run, &wanted);
    state.submissions.push(Submission {
        backend: backend.as_str().into(),
        job: job.clone(),
        tasks: picked.clone(),
        submitted_at: now,
    });
    state::save_state(&out, &mut state)?;
    eprintln!(
        "sweep: submitted {} task(s) to {} as job {job}; follow with: spikerl sweep status {}",
        picked.len(),
        backend.as_str(),
        out.display()
    );
    Ok(())
}

/// The submission's first line: how many runs and tasks, and what happens to them.
#[allow(clippy::too_many_arguments)]
fn announce(
    spec_path: &Path,
    out: &Path,
    backend: Backend,
    plans: &[RunPlan],
    actions: &[Action],
    active: &BTreeMap<usize, String>,
    wanted: &[&Task],
    tasks: &[Task],
) {
    let in_wanted = |p: &RunPlan| wanted.iter().any(|t| t.plans.iter().any(|q| q.id == p.id));
    let count =
        |f: fn(&Action) -> bool| plans.iter().zip(actions).filter(|(p, a)| in_wanted(p) && f(a)).count();
    let completed = actions.iter().filter(|a| **a == Action::Skip).count();
    eprintln!(
        "sweep {}: {} runs in {} tasks ({completed} completed, {} task(s) queued or running on {}; submitting {} \
         task(s): {} runs to start, {} to resume, {} to restart), into {}",
        spec_path.display(),
        plans.len(),
        tasks.len(),
        active.len(),
        backend.as_str(),
        wanted.len(),
        count(|a| *a == Action::Start),
        count(Action::is_resume),
        count(|a| matches!(a, Action::Restart(_))),
        out.display()
    );
}

/// Records the submission's runs in the state: the spec, every run's options, and for the runs of the
/// submitted tasks `queued` and the command line their task will run (as this machine sees the folder).
#[allow(clippy::too_many_arguments)]
fn record(
    state: &mut SweepState,
    spec_path: &Path,
    spec: &Spec,
    exe: &Path,
    out: &Path,
    plans: &[RunPlan],
    by_run: &BTreeMap<&str, &Action>,
    wanted: &[&Task],
) {
    state.spec = spec_path.display().to_string();
    state.description = spec.description.clone();
    state.spec_toml = fs::read_to_string(spec_path).unwrap_or_default();
    state.exe = exe.display().to_string();
    state.started_at = now_rfc3339();
    for p in plans {
        let rec = record_of(state, p);
        rec.options = p.options.clone();
        if by_run.get(p.id.as_str()) == Some(&&Action::Skip) {
            rec.status = "completed".into();
        }
    }
    for task in wanted {
        let queue: Vec<(&RunPlan, &Action)> = task
            .plans
            .iter()
            .filter_map(|p| Some((*p, *by_run.get(p.id.as_str())?)))
            .filter(|(_, a)| **a != Action::Skip)
            .collect();
        for job in Job::all(&queue, spec.group_seeds) {
            let command: Vec<String> =
                job.args(out).iter().map(|a| a.to_string_lossy().into_owned()).collect();
            for (p, _) in &job.runs {
                let rec = record_of(state, p);
                rec.status = "queued".into();
                rec.command = command.clone();
            }
        }
    }
}
