//! `--backend slurm`: the sweep as one Slurm job array, one array task per grid task
//! ([`crate::plan::Task`]: one run, or one configuration's seeds), its index the task's number.
//!
//! Every array task runs `spikerl sweep task DIR --index $SLURM_ARRAY_TASK_ID`, which starts, resumes or
//! skips its runs from their folders. Slurm sends the task SIGTERM some minutes before its time limit
//! (`--signal=B:TERM@N`): the runs checkpoint and stop ("interrupted", exit 75), and the task requeues
//! itself (`scontrol requeue`) to continue them in its next life. A preempted or administratively
//! requeued task is requeued by Slurm itself (`--requeue`) and resumes the same way.
//!
//! What is queued or running comes from `squeue` (no accounting database needed); what is done comes
//! from the run folders.

use crate::spec::{RunPlan, SlurmSection};
use anyhow::{Context, bail, ensure};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

/// Default seconds between the SIGTERM and the time limit: a checkpoint of a full 1M replay buffer
/// takes well under a minute, with room for a slow shared filesystem.
const DEFAULT_STOP_BEFORE_LIMIT_SECS: u32 = 300;

/// `#SBATCH` values are single words: anything else would be split, or end the line, in the script.
fn single_word<'a>(field: &str, value: &'a str) -> anyhow::Result<&'a str> {
    ensure!(
        !value.is_empty() && !value.chars().any(|c| c.is_whitespace() || c.is_control()),
        "[slurm] {field} = {value:?}: expected one word without spaces"
    );
    Ok(value)
}

/// A path that can go into the script as it is: Slurm expands `%` in file names and the shell would
/// read quotes, `$` and spaces.
pub fn plain_path(what: &str, path: &Path) -> anyhow::Result<String> {
    let text = path.to_str().with_context(|| format!("{what} {} is not UTF-8", path.display()))?;
    ensure!(path.is_absolute(), "{what} {text:?} must be an absolute path");
    let bad = |c: char| c.is_whitespace() || c.is_control() || "%'\"\\$`!*?[]{}()<>|&;#~".contains(c);
    ensure!(
        !text.chars().any(bad),
        "{what} {text:?} has characters that a Slurm batch script cannot hold as they are (spaces, %, quotes, \
         shell symbols); use a plainer path"
    );
    Ok(text.to_string())
}

/// Array indices in sbatch's form: runs of consecutive numbers as ranges (`0-3,5,7-9`).
pub fn array_indices(indices: &[usize]) -> String {
    let sorted: BTreeSet<usize> = indices.iter().copied().collect();
    let mut parts = Vec::new();
    let mut iter = sorted.into_iter().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last = iter.next().unwrap_or(last);
        }
        parts.push(if first == last { first.to_string() } else { format!("{first}-{last}") });
    }
    parts.join(",")
}

/// What a job array's script needs beyond the `[slurm]` section.
pub struct ScriptInputs<'a> {
    /// The sweep folder (absolute, as the compute nodes see it).
    pub out: &'a Path,
    /// The spikerl binary the tasks run.
    pub exe: &'a Path,
    /// The grid's task numbers to run, the array's indices.
    pub tasks: &'a [usize],
    /// At most this many tasks at once (`--jobs`: the array's `%N`).
    pub at_once: Option<usize>,
    /// Every run of the grid, for the defaults of CPUs and GPUs.
    pub plans: &'a [RunPlan],
    /// The job's name when `[slurm] job_name` does not give one.
    pub default_name: &'a str,
    /// For the header: when, and which submission of the sweep.
    pub written_at: &'a str,
    pub submission: usize,
}

/// The sbatch script of one submission.
pub fn script(section: &SlurmSection, inputs: &ScriptInputs<'_>) -> anyhow::Result<String> {
    ensure!(!inputs.tasks.is_empty(), "no task to submit");
    let out = plain_path("--out", inputs.out)?;
    let exe = plain_path("[slurm] binary", inputs.exe)?;
    let name = single_word("job_name", section.job_name.as_deref().unwrap_or(inputs.default_name))?;
    let stop = section.stop_before_limit_secs.unwrap_or(DEFAULT_STOP_BEFORE_LIMIT_SECS);
    let cpus = match section.cpus_per_task {
        Some(0) => bail!("[slurm] cpus_per_task must be at least 1"),
        Some(n) => n as usize,
        None => inputs.plans.iter().map(RunPlan::cores).max().unwrap_or(1),
    };
    let gpus = section.gpus.unwrap_or(u32::from(inputs.plans.iter().any(RunPlan::uses_cuda)));
    let mut array = array_indices(inputs.tasks);
    if let Some(n) = inputs.at_once {
        array.push_str(&format!("%{n}"));
    }

    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!(
        "# Written by `spikerl sweep --backend slurm` at {}: submission {} of the sweep in {out}.\n\
         # One array task per task of {out}/slurm/tasks.tsv (one run, or one configuration's seeds). Each runs\n\
         # `spikerl sweep task`, which starts its runs, resumes them from their checkpoints, or skips them when\n\
         # they completed. Slurm sends SIGTERM {stop} s before the time limit: the runs checkpoint and stop, and\n\
         # the task requeues itself to continue them. Preempted or requeued tasks resume the same way.\n",
        inputs.written_at, inputs.submission
    ));
    let mut option = |o: String| s.push_str(&format!("#SBATCH {o}\n"));
    option(format!("--job-name={name}"));
    option(format!("--array={array}"));
    // One log per task over all its lives and submissions: `%a` is the array index, the task's number.
    option(format!("--output={out}/slurm/logs/task-%a.log"));
    option("--open-mode=append".into());
    option("--requeue".into());
    option(format!("--signal=B:TERM@{stop}"));
    option(format!("--cpus-per-task={cpus}"));
    if gpus > 0 {
        option(format!("--gres=gpu:{gpus}"));
    }
    for (flag, value) in [
        ("partition", &section.partition),
        ("account", &section.account),
        ("mem", &section.mem),
        ("time", &section.time),
    ] {
        if let Some(v) = value {
            option(format!("--{flag}={}", single_word(flag, v)?));
        }
    }
    for line in &section.extra {
        let line = line.trim();
        ensure!(
            line.starts_with('-') && !line.chars().any(char::is_control),
            "[slurm] extra = {line:?}: each entry is one sbatch option on one line, e.g. \"--qos=long\""
        );
        option(line.to_string());
    }
    // `exec`: the task is the batch shell itself, so `--signal=B:...` reaches it.
    s.push_str(&format!("exec '{exe}' sweep task '{out}' --index \"$SLURM_ARRAY_TASK_ID\"\n"));
    Ok(s)
}

/// Submits `script` (a file) with sbatch; returns the array's job id.
pub fn sbatch(script: &Path) -> anyhow::Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run sbatch ({e}): is this a Slurm login node?"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("sbatch {} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let id = stdout.trim().split(';').next().unwrap_or_default().to_string();
    ensure!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
        "sbatch printed {stdout:?}, not a job id"
    );
    Ok(id)
}

/// The grid tasks of `job_ids` (array job ids) that Slurm still holds, queued or running, with their
/// state (PENDING, RUNNING, COMPLETING, ...): these must not be submitted or touched again.
pub fn active_tasks(job_ids: &[String]) -> anyhow::Result<BTreeMap<usize, String>> {
    if job_ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    // Every job of this user, one line per array task (`-r`): asking by id fails as a whole once Slurm
    // has forgotten one of them.
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let out = Command::new("squeue")
        .args(["--noheader", "--array", "--user", &uid.to_string(), "--format", "%F %K %T"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run squeue ({e}): is this a Slurm login node?"))?;
    if !out.status.success() {
        bail!(
            "squeue failed, so which tasks of the sweep are still queued or running is unknown: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse_squeue(&String::from_utf8_lossy(&out.stdout), job_ids))
}

/// `squeue --array --format "%F %K %T"` lines (array job id, task id, state), those of `job_ids`.
pub fn parse_squeue(text: &str, job_ids: &[String]) -> BTreeMap<usize, String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (array, task, state) = (fields.next()?, fields.next()?, fields.next()?);
            (job_ids.iter().any(|j| j == array)).then_some(())?;
            Some((task.parse().ok()?, state.to_string()))
        })
        .collect()
}

/// This array task's own id as scontrol and squeue take it: `ARRAY_TASK` (`SLURM_JOB_ID` alone would
/// name the whole array when it is the array's first task).
pub fn own_task_id() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        (Some(array), Some(task)) => Some(format!("{array}_{task}")),
        _ => var("SLURM_JOB_ID"),
    }
}

/// Requeues this task when Slurm still has it running, i.e. when the stop came from the warning signal
/// before the time limit or from `--stop-after`. A cancelled task (scancel) or one that Slurm requeues
/// itself (preemption, `scontrol requeue`) is already completing: requeueing it then would undo a
/// cancel, or requeue it twice. Returns what happened, for the log.
pub fn requeue_self() -> anyhow::Result<String> {
    let Some(id) = own_task_id() else {
        bail!("not in a Slurm job (no SLURM_JOB_ID)");
    };
    let out = Command::new("squeue")
        .args(["--noheader", "--jobs", &id, "--format", "%T"])
        .stdin(Stdio::null())
        .output()
        .context("running squeue")?;
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if state != "RUNNING" {
        return Ok(format!("not requeued by the task: Slurm has job {id} {}", state.to_lowercase()));
    }
    let out = Command::new("scontrol")
        .args(["requeue", &id])
        .stdin(Stdio::null())
        .output()
        .context("running scontrol requeue")?;
    if !out.status.success() {
        bail!("scontrol requeue {id} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(format!("requeued job {id}: it continues from the checkpoints when Slurm starts it again"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Spec;

    #[test]
    fn array_indices_compress_runs() {
        assert_eq!(array_indices(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_indices(&[7, 0, 2, 3, 9, 8]), "0,2-3,7-9");
        assert_eq!(array_indices(&[5]), "5");
    }

    fn plans(extra: &str) -> Vec<RunPlan> {
        let text = format!(
            "envs=[\"Pendulum-v1\"]\nalgos=[\"ann\", \"proxy\"]\nneurons=[\"lif\"]\nseeds=2\n[train]\nsync=true\n{extra}"
        );
        Spec::parse(&text).unwrap().expand().unwrap()
    }

    fn inputs<'a>(plans: &'a [RunPlan], tasks: &'a [usize]) -> ScriptInputs<'a> {
        ScriptInputs {
            out: Path::new("/shared/runs/grid"),
            exe: Path::new("/opt/spikerl/bin/spikerl"),
            tasks,
            at_once: None,
            plans,
            default_name: "spikerl-sweep-grid",
            written_at: "2026-12-07T10:00:00Z",
            submission: 1,
        }
    }

    #[test]
    fn script_has_the_array_resources_and_the_task_command() {
        let plans = plans("");
        let section: SlurmSection = toml::from_str(
            "partition = \"cpu\"\naccount = \"proj7\"\nmem = \"4G\"\ntime = \"04:00:00\"\nextra = [\"--qos=long\"]",
        )
        .unwrap();
        let mut inp = inputs(&plans, &[0, 1, 3]);
        inp.at_once = Some(2);
        let s = script(&section, &inp).unwrap();
        for line in [
            "#SBATCH --array=0-1,3%2",
            "#SBATCH --job-name=spikerl-sweep-grid",
            "#SBATCH --output=/shared/runs/grid/slurm/logs/task-%a.log",
            "#SBATCH --open-mode=append",
            "#SBATCH --requeue",
            "#SBATCH --signal=B:TERM@300",
            "#SBATCH --cpus-per-task=1",
            "#SBATCH --partition=cpu",
            "#SBATCH --account=proj7",
            "#SBATCH --mem=4G",
            "#SBATCH --time=04:00:00",
            "#SBATCH --qos=long",
            "exec '/opt/spikerl/bin/spikerl' sweep task '/shared/runs/grid' --index \"$SLURM_ARRAY_TASK_ID\"",
        ] {
            assert!(s.lines().any(|l| l == line), "{line} missing from\n{s}");
        }
        assert!(!s.contains("--gres"), "no GPU for CPU runs");
        assert!(s.starts_with("#!/bin/bash\n"));
        // Every #SBATCH line comes before the first command: sbatch stops reading them there.
        let lines: Vec<&str> = s.lines().collect();
        let last_option = lines.iter().rposition(|l| l.starts_with("#SBATCH")).unwrap();
        let first_command = lines.iter().position(|l| !l.starts_with('#')).unwrap();
        assert!(last_option < first_command);
    }

    #[test]
    fn gpu_runs_ask_for_a_gpu_and_bad_values_are_refused() {
        let cuda = plans("device = \"cuda\"\nthreads = 4");
        let s = script(&SlurmSection::default(), &inputs(&cuda, &[0])).unwrap();
        assert!(s.contains("#SBATCH --gres=gpu:1\n") && s.contains("#SBATCH --cpus-per-task=4\n"), "{s}");
        let cpu = plans("");
        let err = |section: &str, out: &str| {
            let section: SlurmSection = toml::from_str(section).unwrap();
            let mut inp = inputs(&cpu, &[0]);
            inp.out = Path::new(out);
            format!("{:#}", script(&section, &inp).unwrap_err())
        };
        assert!(err("partition = \"a b\"", "/r").contains("one word"));
        assert!(err("extra = [\"--qos=x\\n#SBATCH --x\"]", "/r").contains("one sbatch option"));
        assert!(err("", "/runs/my grid").contains("plainer path"));
        assert!(err("", "/runs/100%").contains("plainer path"));
        assert!(err("", "relative").contains("absolute"));
        assert!(err("cpus_per_task = 0", "/r").contains("at least 1"));
    }

    #[test]
    fn squeue_lines_of_our_arrays_only() {
        let text = "12 0 RUNNING\n12 3 PENDING\n99 0 RUNNING\n13 N/A RUNNING\n14 2 COMPLETING\n";
        let active = parse_squeue(text, &["12".into(), "14".into()]);
        assert_eq!(
            active.into_iter().collect::<Vec<_>>(),
            [(0, "RUNNING".into()), (2, "COMPLETING".into()), (3, "PENDING".into())]
        );
        assert!(parse_squeue("", &["12".into()]).is_empty());
    }
}
