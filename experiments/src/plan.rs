//! What happens to each run of a sweep, decided from its folder, and the `spikerl train` processes that
//! do it. Shared by every backend: the local scheduler, and the tasks a cluster engine runs.
//!
//! - [`decide`]: skip a completed run, start a new one, resume an unfinished one from its checkpoint, or
//!   restart it from scratch (no checkpoint, settings changed, `--fresh`).
//! - [`Job`]: one `spikerl train` process: one run, or (`group_seeds`) several seeds of one configuration
//!   that all start, or all resume.
//! - [`Task`]: what one cluster task runs: one run, or one configuration's seeds. Numbered over the whole
//!   grid, so the same spec always gives the same numbers (Slurm array indices).

use crate::run_folder::{self, RunInfo, Status};
use crate::spec::{OptValue, RunPlan, Spec, TrainOptions};
use crate::state::SweepState;
use anyhow::{Context, anyhow, bail};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What to do with a run, decided from its folder before anything starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Completed with the same options: nothing to do.
    Skip,
    /// Never started.
    Start,
    /// Started before, did not complete, and has a checkpoint: continue it (`spikerl train --resume`).
    /// The reason says how it ended.
    Resume(String),
    /// Start again from scratch: its folder is cleared first. The reason says why it cannot resume.
    Restart(String),
}

impl Action {
    pub fn is_resume(&self) -> bool {
        matches!(self, Action::Resume(_))
    }

    /// How dry runs and messages describe it.
    pub fn describe(&self) -> String {
        match self {
            Action::Skip => "skip (completed)".into(),
            Action::Start => "start".into(),
            Action::Resume(why) => format!("resume ({why})"),
            Action::Restart(why) => format!("restart ({why})"),
        }
    }
}

/// Decides from the run folder's status (and, when known, its manifest, the options the sweep started it
/// with, and its newest checkpoint) what to do with `plan`.
///
/// Errors when a completed run does not match the spec any more: its numbers would be reported as the
/// spec's but are not. An unfinished run that does not match is restarted from scratch instead, since its
/// checkpoint holds the old settings (a resumed run keeps its checkpoint's configuration).
pub fn decide(
    plan: &RunPlan,
    status: &Status,
    manifest: Option<&RunInfo>,
    recorded: Option<&TrainOptions>,
    checkpoint: Option<&str>,
) -> anyhow::Result<Action> {
    let how_it_ended = match status {
        Status::Missing => return Ok(Action::Start),
        Status::Completed => {
            if let Some(why) = difference(plan, manifest, recorded) {
                bail!(
                    "run {} completed with different settings ({why}); the spec changed since. Use another --out, \
                     or delete that run folder to run it again",
                    plan.id
                );
            }
            return Ok(Action::Skip);
        }
        Status::Unreadable(why) => {
            // Nothing says which run the checkpoint belongs to: start over rather than guess.
            return Ok(Action::Restart(format!("its manifest is unreadable: {why}")));
        }
        Status::Running => "it was still marked running: its process, sweep or machine stopped",
        Status::Interrupted => "it was interrupted",
        Status::Failed => "it failed",
    };
    Ok(match (difference(plan, manifest, recorded), checkpoint) {
        (Some(why), _) => Action::Restart(format!("{how_it_ended}, and the spec changed since: {why}")),
        (None, Some(ckpt)) => Action::Resume(format!("{how_it_ended}; from checkpoints/{ckpt}")),
        (None, None) => Action::Restart(format!("{how_it_ended}, before its first checkpoint")),
    })
}

/// How the run in the folder differs from `plan`, by its manifest and the options it was recorded with;
/// None when it does not (or nothing says).
fn difference(plan: &RunPlan, manifest: Option<&RunInfo>, recorded: Option<&TrainOptions>) -> Option<String> {
    if let Some(info) = manifest {
        if info.env != plan.env || info.method != plan.method || info.seed != plan.seed {
            return Some(format!("its manifest says {} {} seed {}", info.env, info.method, info.seed));
        }
        for (opt, got) in [("steps", info.steps), ("random-steps", info.random_steps)] {
            if let (Some(want), Some(got)) = (plan.option(opt).and_then(|s| s.parse::<u64>().ok()), got)
                && want != got
            {
                return Some(format!("--{opt} {got}, the spec says {want}"));
            }
        }
    }
    match recorded {
        Some(rec) if rec != &plan.options => Some(describe_difference(rec, &plan.options)),
        _ => None,
    }
}

fn describe_difference(old: &TrainOptions, new: &TrainOptions) -> String {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let show = |o: Option<&OptValue>| match o {
        None => "unset".to_string(),
        Some(OptValue::Flag(b)) => b.to_string(),
        Some(OptValue::Value(v)) => v.clone(),
    };
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| format!("--{k}: was {}, now {}", show(old.get(k)), show(new.get(k))))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The newest complete checkpoint's folder name in `dir/checkpoints` (`ckpt-...`), if any: what
/// `spikerl train --resume` needs. Checkpoints are renamed into place only once complete, so a name
/// means a whole checkpoint; train itself checks its sums and falls back to an older one.
pub fn newest_checkpoint(dir: &Path) -> Option<String> {
    fs::read_dir(dir.join("checkpoints"))
        .ok()?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("ckpt-"))
        // Zero-padded counters: the greatest name is the newest.
        .max()
}

/// What to do with each plan (same order), from its folder and what `state` recorded of it. `fresh`
/// (`--fresh`) turns every resume into a restart from scratch.
pub fn decide_all(
    out: &Path,
    plans: &[RunPlan],
    state: &SweepState,
    fresh: bool,
) -> anyhow::Result<Vec<Action>> {
    let mut actions = Vec::with_capacity(plans.len());
    for plan in plans {
        let action = decide_one(out, plan, state)?;
        actions.push(match action {
            Action::Resume(why) if fresh => Action::Restart(format!("--fresh; {why}")),
            other => other,
        });
    }
    Ok(actions)
}

/// [`decide`] for one plan, from its folder under `out`.
pub fn decide_one(out: &Path, plan: &RunPlan, state: &SweepState) -> anyhow::Result<Action> {
    let dir = out.join(&plan.id);
    let status = run_folder::status(&dir);
    let info = run_folder::read_manifest(&dir).ok().and_then(|m| run_folder::run_info(&m).ok());
    let recorded = state.runs.get(&plan.id).filter(|r| !r.options.is_empty()).map(|r| &r.options);
    decide(plan, &status, info.as_ref(), recorded, newest_checkpoint(&dir).as_deref())
}

/// Makes `dir` ready for `action`: a start or restart gets an empty folder; a resumed run keeps its own.
pub fn prepare(dir: &Path, action: &Action) -> anyhow::Result<()> {
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

/// What one `spikerl train` process runs: one run, or (`group_seeds`) seeds of one configuration. The
/// runs of a grouped job either all start or all resume: `--resume` applies to every seed of a process.
pub struct Job<'a> {
    pub runs: Vec<(&'a RunPlan, &'a Action)>,
    pub grouped: bool,
}

impl<'a> Job<'a> {
    /// The queue's runs as processes, in queue order: one each, or with `group_seeds` one per
    /// configuration (`{env}/{method}`) and way of starting (fresh or resumed), holding its seeds in the
    /// order they are queued.
    pub fn all(queue: &[(&'a RunPlan, &'a Action)], group_seeds: bool) -> Vec<Job<'a>> {
        let mut jobs: Vec<Job<'a>> = Vec::new();
        for &(plan, action) in queue {
            let joins = |j: &&mut Job<'a>| {
                group_seeds
                    && j.runs[0].0.group_id() == plan.group_id()
                    && j.runs[0].1.is_resume() == action.is_resume()
            };
            match jobs.iter_mut().find(joins) {
                Some(job) => job.runs.push((plan, action)),
                None => jobs.push(Job { runs: vec![(plan, action)], grouped: group_seeds }),
            }
        }
        jobs
    }

    /// How the sweep's messages name it.
    pub fn name(&self) -> String {
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

    /// Whether its process continues from checkpoints.
    pub fn resumes(&self) -> bool {
        self.runs[0].1.is_resume()
    }

    /// `spikerl train`'s arguments for this job under the sweep folder `out`.
    pub fn args(&self, out: &Path) -> Vec<OsString> {
        let first = self.runs[0].0;
        let mut args = match self.grouped {
            false => first.train_args(&out.join(&first.id)),
            true => first.group_train_args(&self.seeds(), &out.join(first.group_id())),
        };
        if self.resumes() {
            args.push("--resume".into());
        }
        args
    }

    /// Where the process's output goes: the run folder's `train.log`, or the configuration folder's
    /// `train-seeds.log` beside the seeds' run folders.
    pub fn log(&self, out: &Path) -> PathBuf {
        let first = self.runs[0].0;
        match self.grouped {
            false => out.join(&first.id).join("train.log"),
            true => out.join(first.group_id()).join("train-seeds.log"),
        }
    }
}

/// What one task of a cluster engine runs (a Slurm array task, a Kubernetes Job index): one run, or with
/// `group_seeds` every seed of one configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Task<'a> {
    /// Its number over the whole grid, from 0.
    pub index: usize,
    pub plans: Vec<&'a RunPlan>,
}

impl<'a> Task<'a> {
    /// The grid's tasks, numbered in the order their first run appears in `plans` (seed-major).
    pub fn grid(plans: &'a [RunPlan], group_seeds: bool) -> Vec<Task<'a>> {
        let mut tasks: Vec<Task<'a>> = Vec::new();
        for plan in plans {
            match tasks.iter_mut().find(|t| group_seeds && t.plans[0].group_id() == plan.group_id()) {
                Some(task) => task.plans.push(plan),
                None => tasks.push(Task { index: tasks.len(), plans: vec![plan] }),
            }
        }
        tasks
    }

    /// `{env}/{method}/seed{N}`, or `{env}/{method}/seed{a,b,...}` for a configuration's seeds.
    pub fn name(&self) -> String {
        match self.plans.as_slice() {
            [one] => one.id.clone(),
            many => format!(
                "{}/seed{{{}}}",
                many[0].group_id(),
                many.iter().map(|p| p.seed.to_string()).collect::<Vec<_>>().join(",")
            ),
        }
    }
}

/// The tasks as `DIR/slurm/tasks.tsv` lists them: `task<TAB>runs`, one line each, so that an array
/// index in the scheduler's output can be looked up.
pub fn tasks_table(tasks: &[Task<'_>]) -> String {
    let mut text = String::from("task\truns\n");
    for t in tasks {
        let ids: Vec<&str> = t.plans.iter().map(|p| p.id.as_str()).collect();
        text.push_str(&format!("{}\t{}\n", t.index, ids.join(" ")));
    }
    text
}

/// Children get no `SPIKERL_*` variables: the spec alone decides a run (they would override defaults
/// silently otherwise, and `SPIKERL_OUT` is the sweep's own; the images set `SPIKERL_RESUME`).
pub trait ClearSpikerlEnv {
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

/// Refuses a spec with an option that `spikerl train` does not have, before anything starts.
pub fn check_train_options(exe: &Path, spec_path: &Path, plans: &[RunPlan]) -> anyhow::Result<()> {
    let known = train_option_names(exe)?;
    // The sweep adds `--base` itself for runs not on TD3: a binary from before the option would fail
    // every one of them, after the TD3 runs started.
    if let Some(p) = plans.iter().find(|p| p.method.base != crate::method::Base::Td3)
        && !known.contains("base")
    {
        bail!(
            "{} lists base {:?}, but {} has no `spikerl train --base` (an older binary?)",
            spec_path.display(),
            p.method.base.as_str(),
            exe.display()
        );
    }
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

/// The copy of the spec a cluster sweep keeps in its folder, `DIR/spec.toml`: what its tasks read.
pub fn spec_copy_path(out: &Path) -> PathBuf {
    out.join("spec.toml")
}

/// The spec of the sweep in `out`: its copy `DIR/spec.toml`, else the text `sweep.json` recorded.
pub fn load_sweep_spec(out: &Path, state: &SweepState) -> anyhow::Result<(Spec, Vec<RunPlan>)> {
    let copy = spec_copy_path(out);
    let (text, from) = if copy.is_file() {
        (fs::read_to_string(&copy).with_context(|| format!("reading {}", copy.display()))?, copy)
    } else if !state.spec_toml.is_empty() {
        (state.spec_toml.clone(), crate::state::state_path(out))
    } else {
        return Err(anyhow!(
            "{} holds no sweep (neither spec.toml nor a sweep.json with the spec): is it the --out of a `spikerl sweep`?",
            out.display()
        ));
    };
    let spec = Spec::parse(&text).with_context(|| format!("in the spec of {}", from.display()))?;
    let plans = spec.expand().with_context(|| format!("in the spec of {}", from.display()))?;
    Ok((spec, plans))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{Algo, Method, Neuron};

    #[test]
    fn seed_groups_never_mix_bases() {
        let text = format!("group_seeds = true\n{}", crate::spec::tests::BASES);
        let plans = Spec::parse(&text).unwrap().expand().unwrap();
        let tasks = Task::grid(&plans, true);
        let names: Vec<String> = tasks.iter().map(Task::name).collect();
        assert_eq!(
            names,
            [
                "Hopper-v4/ann/seed{0,1}",
                "Hopper-v4/proxy-lif/seed{0,1}",
                "Hopper-v4/sac-ann/seed{0,1}",
                "Hopper-v4/sac-proxy-lif/seed{0,1}",
                "Hopper-v4/ddpg-ann/seed{0,1}",
                "Hopper-v4/ddpg-proxy-lif/seed{0,1}"
            ]
        );
        for t in &tasks {
            assert!(t.plans.iter().all(|p| p.method == t.plans[0].method), "{}", t.name());
        }
    }

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

    /// A run folder as `spikerl train` leaves it, with a checkpoint when `checkpointed`.
    fn fake_run(dir: &Path, status: &str, env: &str, steps: u64, checkpointed: bool) {
        fs::create_dir_all(dir.join("checkpoints")).unwrap();
        if checkpointed {
            fs::create_dir_all(dir.join("checkpoints/ckpt-000000000200")).unwrap();
            fs::create_dir_all(dir.join("checkpoints/ckpt-000000000100")).unwrap();
            // A checkpoint still being assembled is not one.
            fs::create_dir_all(dir.join("checkpoints/.tmp-ckpt-000000000300-7")).unwrap();
        }
        let m = serde_json::json!({"status": status, "mode": "sync",
            "config": {"env_id": env, "algo": "proxy", "neuron": "lif", "seed": 1, "steps": steps, "random_steps": 256}});
        fs::write(dir.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
        fs::write(dir.join("evals.csv"), "step,avg_return\n0,-10\n300,-4.5\n556,-7\n").unwrap();
    }

    fn decide_dir(dir: &Path, recorded: Option<&TrainOptions>) -> anyhow::Result<Action> {
        let info = run_folder::read_manifest(dir).ok().and_then(|m| run_folder::run_info(&m).ok());
        decide(&plan(), &run_folder::status(dir), info.as_ref(), recorded, newest_checkpoint(dir).as_deref())
    }

    #[test]
    fn unfinished_runs_resume_from_their_newest_checkpoint_and_restart_without_one() {
        let root = temp_dir("decide");
        assert_eq!(decide_dir(&root.join("none"), None).unwrap(), Action::Start);
        let completed = root.join("completed");
        fake_run(&completed, "completed", "Pendulum-v1", 300, true);
        assert_eq!(decide_dir(&completed, Some(&plan().options)).unwrap(), Action::Skip);
        for status in ["interrupted", "failed", "running"] {
            let with = root.join(format!("{status}-checkpointed"));
            fake_run(&with, status, "Pendulum-v1", 300, true);
            let a = decide_dir(&with, Some(&plan().options)).unwrap();
            assert!(
                matches!(&a, Action::Resume(why) if why.contains("checkpoints/ckpt-000000000200")),
                "{status}: {a:?}"
            );
            let without = root.join(format!("{status}-bare"));
            fake_run(&without, status, "Pendulum-v1", 300, false);
            let a = decide_dir(&without, Some(&plan().options)).unwrap();
            assert!(
                matches!(&a, Action::Restart(why) if why.contains("before its first checkpoint")),
                "{a:?}"
            );
        }
        let garbled = root.join("garbled");
        fs::create_dir_all(garbled.join("checkpoints/ckpt-000000000100")).unwrap();
        fs::write(garbled.join("manifest.json"), "{not json").unwrap();
        assert!(
            matches!(decide_dir(&garbled, None).unwrap(), Action::Restart(r) if r.contains("unreadable")),
            "an unreadable manifest does not say whose checkpoint it is"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn fresh_turns_every_resume_into_a_restart() {
        let root = temp_dir("fresh");
        let plans = vec![plan()];
        fake_run(&root.join(&plans[0].id), "interrupted", "Pendulum-v1", 300, true);
        let state = SweepState::default();
        assert!(decide_all(&root, &plans, &state, false).unwrap()[0].is_resume());
        let fresh = decide_all(&root, &plans, &state, true).unwrap();
        assert!(matches!(&fresh[0], Action::Restart(why) if why.starts_with("--fresh")), "{fresh:?}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_run_that_no_longer_matches_the_spec_is_an_error_when_completed_and_restarts_otherwise() {
        let root = temp_dir("stale");
        let other_steps = root.join("steps");
        fake_run(&other_steps, "completed", "Pendulum-v1", 999, true);
        assert!(
            format!("{:#}", decide_dir(&other_steps, None).unwrap_err())
                .contains("--steps 999, the spec says 300")
        );
        let other_env = root.join("env");
        fake_run(&other_env, "completed", "Hopper-v4", 300, true);
        assert!(decide_dir(&other_env, None).is_err());
        let ok = root.join("ok");
        fake_run(&ok, "completed", "Pendulum-v1", 300, true);
        let mut recorded = plan().options;
        recorded.insert("proxy-lr".into(), OptValue::Value("0.01".into()));
        let err = format!("{:#}", decide_dir(&ok, Some(&recorded)).unwrap_err());
        assert!(err.contains("--proxy-lr: was 0.01, now unset"), "{err}");
        // Its checkpoint holds the old settings, and a resumed run keeps them: start over instead.
        let unfinished = root.join("unfinished");
        fake_run(&unfinished, "interrupted", "Pendulum-v1", 999, true);
        let a = decide_dir(&unfinished, None).unwrap();
        assert!(matches!(&a, Action::Restart(why) if why.contains("the spec changed since")), "{a:?}");
        fake_run(&unfinished, "interrupted", "Pendulum-v1", 300, true);
        let a = decide_dir(&unfinished, Some(&recorded)).unwrap();
        assert!(matches!(&a, Action::Restart(why) if why.contains("--proxy-lr")), "{a:?}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn restart_clears_run_folders_but_nothing_else_and_resume_keeps_them() {
        let root = temp_dir("clear");
        let run = root.join("run");
        fake_run(&run, "interrupted", "Pendulum-v1", 300, true);
        fs::write(run.join("train.log"), "x").unwrap();
        prepare(&run, &Action::Resume("it was interrupted".into())).unwrap();
        assert!(run.join("checkpoints/ckpt-000000000200").is_dir() && run.join("train.log").is_file());
        fs::write(run.join("actor-0.log"), "x").unwrap();
        fs::create_dir_all(run.join("tb")).unwrap();
        fs::write(run.join("tb/events.out.tfevents.1.host.2"), "x").unwrap();
        fs::create_dir_all(run.join("videos")).unwrap();
        fs::write(run.join("videos/step-0000000000.mp4"), "x").unwrap();
        prepare(&run, &Action::Restart("it was interrupted".into())).unwrap();
        assert_eq!(fs::read_dir(&run).unwrap().count(), 0, "fresh and empty");
        let precious = root.join("precious");
        fake_run(&precious, "failed", "Pendulum-v1", 300, false);
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
    fn jobs_group_a_configurations_seeds_only_when_asked_and_never_mix_resumes_with_starts() {
        let text = "envs=[\"Pendulum-v1\"]\nalgos=[\"ann\", \"proxy\"]\nneurons=[\"lif\"]\nseeds=3\n[train]\nsync=true";
        let plans = Spec::parse(text).unwrap().expand().unwrap();
        let start = Action::Start;
        let resume = Action::Resume("it was interrupted".into());
        // Seed 1 of ann completed already: not in the queue. Seed 2 of proxy resumes.
        let queue: Vec<(&RunPlan, &Action)> = plans
            .iter()
            .filter(|p| p.id != "Pendulum-v1/ann/seed1")
            .map(|p| (p, if p.id == "Pendulum-v1/proxy-lif/seed2" { &resume } else { &start }))
            .collect();
        let names = |jobs: &[Job<'_>]| jobs.iter().map(Job::name).collect::<Vec<_>>();
        assert_eq!(Job::all(&queue, false).len(), 5);
        let grouped = Job::all(&queue, true);
        assert_eq!(
            names(&grouped),
            ["Pendulum-v1/ann/seed{0,2}", "Pendulum-v1/proxy-lif/seed{0,1}", "Pendulum-v1/proxy-lif/seed{2}"]
        );
        let out = Path::new("/o");
        let text_args = |job: &Job<'_>| {
            job.args(out).into_iter().map(|a| a.into_string().unwrap()).collect::<Vec<_>>().join(" ")
        };
        assert!(
            text_args(&grouped[0])
                .ends_with("--seeds 0,2 --sync --threads 1 --out /o/Pendulum-v1/ann --no-progress"),
            "{}",
            text_args(&grouped[0])
        );
        assert!(text_args(&grouped[2]).ends_with("--out /o/Pendulum-v1/proxy-lif --no-progress --resume"));
        assert!(!text_args(&grouped[1]).contains("--resume"));
        assert_eq!(grouped[1].log(out), Path::new("/o/Pendulum-v1/proxy-lif/train-seeds.log"));
        assert_eq!(Job::all(&queue, false)[0].log(out), Path::new("/o/Pendulum-v1/ann/seed0/train.log"));
    }

    #[test]
    fn tasks_are_numbered_over_the_whole_grid() {
        let text = "envs=[\"Pendulum-v1\"]\nalgos=[\"ann\", \"proxy\"]\nneurons=[\"lif\"]\nseeds=2\n[train]\nsync=true";
        let plans = Spec::parse(text).unwrap().expand().unwrap();
        let single: Vec<String> = Task::grid(&plans, false).iter().map(Task::name).collect();
        assert_eq!(
            single,
            [
                "Pendulum-v1/ann/seed0",
                "Pendulum-v1/proxy-lif/seed0",
                "Pendulum-v1/ann/seed1",
                "Pendulum-v1/proxy-lif/seed1"
            ]
        );
        let grouped = Task::grid(&plans, true);
        assert_eq!(
            grouped.iter().map(Task::name).collect::<Vec<_>>(),
            ["Pendulum-v1/ann/seed{0,1}", "Pendulum-v1/proxy-lif/seed{0,1}"]
        );
        assert_eq!(grouped[1].index, 1);
        assert_eq!(
            tasks_table(&grouped),
            "task\truns\n0\tPendulum-v1/ann/seed0 Pendulum-v1/ann/seed1\n\
             1\tPendulum-v1/proxy-lif/seed0 Pendulum-v1/proxy-lif/seed1\n"
        );
    }

    /// A stand-in `spikerl` named `name` whose `train --help` lists `options`.
    fn fake_binary(dir: &Path, name: &str, options: &[&str]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let exe = dir.join(name);
        let lines: String = options.iter().map(|o| format!("echo '      --{o} <X>'\n")).collect();
        fs::write(&exe, format!("#!/bin/sh\n{lines}")).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        exe
    }

    #[test]
    fn runs_on_other_bases_need_a_binary_with_base() {
        let root = temp_dir("base-flag");
        let text = |bases: &str| {
            format!("envs=[\"Pendulum-v1\"]\nalgos=[\"ann\"]\nseeds=1\nbases={bases}\n[train]\nsync=true")
        };
        let plans = |bases: &str| Spec::parse(&text(bases)).unwrap().expand().unwrap();
        // Both written before either runs: no file is written while a process of this test starts.
        let old = fake_binary(&root, "old", &["env", "algo", "sync", "threads"]);
        let new = fake_binary(&root, "new", &["env", "algo", "base", "sync", "threads"]);
        let spec = Path::new("s.toml");
        check_train_options(&old, spec, &plans("[\"td3\"]")).unwrap();
        let err = format!("{:#}", check_train_options(&old, spec, &plans("[\"td3\", \"sac\"]")).unwrap_err());
        assert!(err.contains("base \"sac\"") && err.contains("--base"), "{err}");
        check_train_options(&new, spec, &plans("[\"td3\", \"sac\"]")).unwrap();
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn option_names_from_help() {
        let help = "Usage: spikerl train [OPTIONS] --out <OUT>\n\nOptions:\n      --env <ENV>\n          Gymnasium id\n      \
                    --snn-hidden <SNN_HIDDEN>\n          widths, --not-this\n      --sync\n  -h, --help\n          Print help\n";
        let names: Vec<String> = parse_option_names(help).into_iter().collect();
        assert_eq!(names, ["env", "help", "snn-hidden", "sync"]);
    }
}
