//! Starting `spikerl train` processes for a sweep and recording how their runs ended: shared by the
//! local scheduler (many processes at once) and a cluster task (its processes one after another).

use crate::plan::{Action, ClearSpikerlEnv, Job, prepare};
use crate::run_folder::{self, Status};
use crate::spec::RunPlan;
use crate::state::{RunRecord, SweepState};
use crate::time::now_rfc3339;
use anyhow::Context;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

/// A `spikerl train` process of the sweep and the runs it trains.
pub struct Active<'a> {
    pub plans: Vec<&'a RunPlan>,
    pub name: String,
    pub log: PathBuf,
    pub child: Child,
    pub started: Instant,
    /// Its number in the sweep's messages (`[index/total]`), from 1.
    pub index: usize,
}

/// The record of `plan`, made when the state file has none yet (a task's first look at a run).
pub fn record_of<'s>(state: &'s mut SweepState, plan: &RunPlan) -> &'s mut RunRecord {
    let rec = state.runs.entry(plan.id.clone()).or_default();
    if rec.options.is_empty() {
        rec.options = plan.options.clone();
    }
    rec
}

/// Counts a new attempt of each of `job`'s runs and prepares its folder (cleared for a start or restart,
/// kept for a resume). Returns the runs that can start and, for the start message, how they start.
pub fn prepare_runs<'a>(
    out: &Path,
    job: &Job<'a>,
    index: usize,
    total: usize,
    state: &mut SweepState,
) -> (Vec<(&'a RunPlan, &'a Action)>, String) {
    let mut how = String::new();
    // A grouped run whose folder could not be prepared stays out; its seeds go on without it.
    let mut runs = Vec::with_capacity(job.runs.len());
    for &(plan, action) in &job.runs {
        let rec = record_of(state, plan);
        rec.attempts += 1;
        rec.resumes += u32::from(action.is_resume());
        rec.started_at = Some(now_rfc3339());
        rec.ended_at = None;
        rec.exit_code = None;
        rec.error = None;
        rec.wall_seconds = None;
        rec.max_avg_return = None;
        match action {
            Action::Restart(why) => how = format!(" (restart: {why})"),
            Action::Resume(why) => how = format!(" (resume: {why})"),
            Action::Start | Action::Skip => {}
        }
        match prepare(&out.join(&plan.id), action) {
            Ok(()) => runs.push((plan, action)),
            Err(e) => {
                record_start_failure(rec, &e);
                eprintln!("[{index}/{total}] {} could not start: {e:#}", plan.id);
            }
        }
    }
    (runs, how)
}

/// Records a run that could not be started.
pub fn record_start_failure(rec: &mut RunRecord, error: &anyhow::Error) {
    rec.status = "failed".into();
    rec.error = Some(format!("{error:#}"));
    rec.ended_at = Some(now_rfc3339());
}

/// How a process's children relate to the sweep's own signals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Group {
    /// Its own process group: a terminal's Ctrl-C reaches the sweep only, which forwards it once.
    Own,
    /// The sweep's process group: a cluster engine that signals or tracks the task's process group
    /// (Slurm's proctrack/pgid) reaches the run too.
    Shared,
}

/// Starts `spikerl train` with `args`, its output appended to `log` after a line saying when and how.
pub fn launch(exe: &Path, args: &[std::ffi::OsString], log: &Path, group: Group) -> anyhow::Result<Child> {
    // Appended, not truncated: a resumed run's log keeps what its earlier lives wrote (a restarted run's
    // folder, and its log with it, was cleared before).
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let line: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    writeln!(file, "=== {} spikerl sweep: {} {}", now_rfc3339(), exe.display(), line.join(" "))
        .with_context(|| format!("writing {}", log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(args).env_clear_spikerl().stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
    if group == Group::Own {
        cmd.process_group(0);
    }
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
pub fn finish(out: &Path, a: &Active, total: usize, exit: ExitStatus, state: &mut SweepState) {
    for plan in &a.plans {
        let dir = out.join(&plan.id);
        let rec = record_of(state, plan);
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

pub fn max_avg_return(dir: &Path) -> Option<f64> {
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

/// Writes `path` whole and atomically (a temporary file renamed into place): tasks on other machines may
/// read it at any time.
pub fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp-sweep");
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(text.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
