//! `spikerl sweep --backend slurm` on a real one-node Slurm cluster that the test starts in a temporary
//! folder (MUNGE with its own key and socket, slurmctld and slurmd as root, no cgroups, no accounting
//! database): a 2-method x 2-seed lockstep grid on Pendulum-v1 is submitted as a job array; one task is
//! requeued half way (`scontrol requeue`, as preemption does), another gets SIGTERM in its batch shell
//! alone (what `--signal=B:TERM@N` sends before the time limit) and requeues itself; both resume from
//! their checkpoints, and the sweep's `table1.csv` equals that of the same grid run by the local backend.
//!
//! Needs Debian's slurm-wlm and munge (scripts/setup_test_deps.sh installs them) and root; skips loudly
//! without them, and fails instead where SPIKERL_REQUIRE lists `slurm` or `CI` is set.

mod common;

use common::*;
use serde_json::Value;
use spikerl_experiments::run_folder::read_evals;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Small but not trivial: long enough to requeue a run half way, short enough for two sweeps of four
/// runs on two cores in well under three minutes. Evaluations every 250 steps give the report its
/// numbers and the test its progress marks.
const GRID: &str = r#"
description = "tests/slurm.rs"
envs = ["Pendulum-v1"]
algos = ["ann", "proxy"]
neurons = ["lif"]
seeds = 2

[train]
steps = 2_000
random_steps = 256
eval_every = 250
eval_episodes = 2
sync = true
snn_hidden = [64, 64]
batch_size = 64
proxy_steps = 1

[slurm]
time = "00:10:00"
stop_before_limit_secs = 60
"#;

/// The run the test requeues, and its task (the grid's order: seed 0's methods, then seed 1's).
const REQUEUED: &str = "Pendulum-v1/proxy-lif/seed0";
const REQUEUED_TASK: usize = 1;
/// The run whose task gets the time limit's warning signal.
const SIGNALLED: &str = "Pendulum-v1/proxy-lif/seed1";
const SIGNALLED_TASK: usize = 3;
const RUNS: [&str; 4] = [
    "Pendulum-v1/ann/seed0",
    "Pendulum-v1/proxy-lif/seed0",
    "Pendulum-v1/ann/seed1",
    "Pendulum-v1/proxy-lif/seed1",
];

/// A one-node Slurm cluster of the test's own: every daemon and every job process is stopped when it is
/// dropped, also when the test fails.
struct SlurmCluster {
    conf: PathBuf,
    daemons: Processes,
    logs: PathBuf,
}

impl SlurmCluster {
    fn start(dir: &Path) -> SlurmCluster {
        let tool = |name: &str| system_tool(name).unwrap_or_else(|| panic!("{name} not found"));
        let munge = dir.join("munge");
        let logs = dir.join("log");
        for d in [&munge, &logs, &dir.join("state"), &dir.join("spool")] {
            fs::create_dir_all(d).unwrap();
        }
        // MUNGE refuses keys and folders that others could read.
        fs::set_permissions(&munge, fs::Permissions::from_mode(0o700)).unwrap();
        let key = munge.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        fs::File::open("/dev/urandom").unwrap().read_exact(&mut bytes).unwrap();
        fs::write(&key, &bytes).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();
        let socket = munge.join("munge.socket");

        let mut cluster = SlurmCluster { conf: dir.join("slurm.conf"), daemons: Processes::default(), logs };
        let mut munged = Command::new(tool("munged"));
        munged.arg("--foreground").arg("--force").arg(format!("--key-file={}", key.display()));
        munged.arg(format!("--socket={}", socket.display()));
        munged.arg(format!("--pid-file={}", munge.join("munged.pid").display()));
        munged.arg(format!("--seed-file={}", munge.join("munged.seed").display()));
        cluster.daemons.spawn("munged", munged, &cluster.logs.join("munged.log"));
        wait_for("munged's socket", Duration::from_secs(20), || socket.exists());

        let conf = format!(
            "# A one-node cluster for tests/slurm.rs: no cgroups, no accounting database.\n\
             ClusterName=spikerltest\n\
             SlurmctldHost=localhost(127.0.0.1)\n\
             SlurmctldPort={ctld}\nSlurmdPort={slurmd}\n\
             SlurmUser=root\nSlurmdUser=root\n\
             AuthType=auth/munge\nCredType=cred/munge\n\
             # cred_expire is also how long a requeued job waits before it may start again (default 120 s).\n\
             AuthInfo=socket={socket},cred_expire=5\n\
             StateSaveLocation={dir}/state\nSlurmdSpoolDir={dir}/spool\n\
             SlurmctldPidFile={dir}/slurmctld.pid\nSlurmdPidFile={dir}/slurmd.pid\n\
             SlurmctldLogFile={logs}/slurmctld.log\nSlurmdLogFile={logs}/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/none\nMpiDefault=none\n\
             SchedulerType=sched/backfill\nSelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n\
             SchedulerParameters=sched_interval=1\n\
             ReturnToService=2\n\
             # Time for a run to checkpoint between SIGTERM and SIGKILL.\n\
             KillWait=60\n\
             MinJobAge=600\n\
             # Two tasks at once on any machine: the test's schedule does not depend on its size.\n\
             NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n\
             PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
            ctld = free_port(),
            slurmd = free_port(),
            socket = socket.display(),
            dir = dir.display(),
            logs = cluster.logs.display(),
        );
        fs::write(&cluster.conf, conf).unwrap();
        let mut ctld = cluster.command(&tool("slurmctld"));
        ctld.args(["-D", "-i"]);
        cluster.daemons.spawn("slurmctld", ctld, &cluster.logs.join("slurmctld.out"));
        let mut slurmd = cluster.command(&tool("slurmd"));
        slurmd.args(["-D", "-N", "localhost"]);
        cluster.daemons.spawn("slurmd", slurmd, &cluster.logs.join("slurmd.out"));
        let idle = || {
            let o = cluster.command(&tool("sinfo")).args(["--noheader", "--format", "%t"]).output().ok();
            o.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !idle() {
            assert!(Instant::now() < deadline, "the Slurm node never became idle:\n{}", cluster.logs_text());
            std::thread::sleep(Duration::from_millis(250));
        }
        cluster
    }

    /// A command that talks to this cluster (SLURM_CONF), with the test's thread settings.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SLURM_CONF", &self.conf).env("OMP_NUM_THREADS", "1").stdin(Stdio::null());
        cmd
    }

    fn tool(&self, name: &str) -> Command {
        self.command(&system_tool(name).unwrap_or_else(|| panic!("{name} not found")))
    }

    /// `spikerl sweep ...` against this cluster.
    fn spikerl(&self, args: &[&str]) -> Output {
        self.command(Path::new(env!("CARGO_BIN_EXE_spikerl"))).arg("sweep").args(args).output().unwrap()
    }

    /// The array tasks Slurm still holds: (task, state).
    fn queue(&self) -> Vec<(String, String)> {
        let o = self.tool("squeue").args(["--noheader", "--array", "--format", "%K %T"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
            .collect()
    }

    fn logs_text(&self) -> String {
        let mut text = String::new();
        for name in ["munged.log", "slurmctld.out", "slurmctld.log", "slurmd.out", "slurmd.log"] {
            let body = fs::read_to_string(self.logs.join(name)).unwrap_or_default();
            let tail: Vec<&str> = body.lines().rev().take(15).collect();
            text.push_str(&format!(
                "--- {name}\n{}\n",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        text
    }
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        // Jobs first: slurmstepd and the job's processes are not children of slurmd once started.
        let _ = self.tool("scancel").args(["--user", "root"]).output();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.queue().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
        }
        // Whatever is left of this cluster (its daemons, step daemons, tasks and runs) carries its
        // configuration's path in its environment; nothing else on the machine does.
        kill_processes_with_env(&format!("SLURM_CONF={}", self.conf.display()));
        // `daemons` kills and reaps what is still its own when it drops.
    }
}

/// SIGKILLs every process (but this one) whose environment holds `entry` exactly.
fn kill_processes_with_env(entry: &str) {
    let me = std::process::id();
    let Ok(procs) = fs::read_dir("/proc") else { return };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == me {
            continue;
        }
        let environ = fs::read(p.path().join("environ")).unwrap_or_default();
        if environ.split(|b| *b == 0).any(|e| e == entry.as_bytes()) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// Waits until `run` is running and has evaluated at or past half of its 2,256 steps; returns the step.
fn wait_half_way(cluster: &SlurmCluster, run: &Path) -> u64 {
    let half = (2_000 + 256) / 2;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let at = last_step(run);
        if at >= half && manifest(run)["status"] == "running" {
            return at;
        }
        assert!(
            Instant::now() < deadline,
            "{} never got half way (step {at}); queue {:?}\n{}",
            run.display(),
            cluster.queue(),
            cluster.logs_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `run` continued from a checkpoint (only a resumed run's manifest names one); returns it.
fn wait_resumed(run: &Path) -> String {
    wait_for("the run to resume", Duration::from_secs(120), || {
        manifest(run)["resumed_from"].is_string() && manifest(run)["status"] != "interrupted"
    });
    manifest(run)["resumed_from"].as_str().unwrap_or_default().to_string()
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Env steps at the run's last evaluation (0 before its first).
fn last_step(run: &Path) -> u64 {
    read_evals(run).ok().and_then(|e| e.last().map(|e| e.step as u64)).unwrap_or(0)
}

/// A checkpoint's path from its run folder on.
fn short(path: &str) -> &str {
    path.find("Pendulum-v1").map_or(path, |i| &path[i..])
}

fn manifest(run: &Path) -> Value {
    fs::read_to_string(run.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// evals.csv without the wall-clock column: what resuming must not change.
fn numbers(run: &Path) -> Vec<String> {
    let text = fs::read_to_string(run.join("evals.csv")).unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let wall = header.iter().position(|h| *h == "wall_seconds");
    lines
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| Some(*i) != wall)
                .map(|(_, f)| f)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

#[test]
fn a_sweep_on_slurm_requeued_half_way_resumes_and_matches_the_local_sweep() {
    let probe = Need::Slurm.probe();
    if let Err(why) = &probe
        && std::env::var_os("CI").is_some()
    {
        panic!("CI runs the Slurm test, but: {why}");
    }
    if !available(Need::Slurm, probe) {
        return;
    }
    let dir = temp_dir("slurm");
    let spec = dir.join("grid.toml");
    fs::write(&spec, GRID).unwrap();
    let started = Instant::now();
    let mut timeline: Vec<String> = Vec::new();
    let mut mark = |what: String| {
        let line = format!("{:6.1} s  {what}", started.elapsed().as_secs_f64());
        eprintln!("{line}");
        timeline.push(line);
    };
    let cluster = SlurmCluster::start(&dir.join("cluster"));
    mark("one-node Slurm cluster up (munged, slurmctld, slurmd)".into());

    // The same grid on this machine, at the same time, for the reference table.
    let local_out = dir.join("local");
    let mut local = spikerl();
    local.arg("sweep").arg(&spec).arg("--out").arg(&local_out).args(["--jobs", "2"]);
    let mut procs = Processes::default();
    let local_sweep = procs.spawn("local sweep", local, &dir.join("local-sweep.log"));

    let out = dir.join("on-slurm");
    let (spec_arg, out_arg) = (spec.to_str().unwrap(), out.to_str().unwrap());
    let o = cluster.spikerl(&[spec_arg, "--out", out_arg, "--backend", "slurm", "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    let script = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        script.contains("#SBATCH --array=0-3\n") && script.contains("#SBATCH --time=00:10:00\n"),
        "{script}"
    );
    assert!(script.contains("#SBATCH --signal=B:TERM@60\n") && script.contains(" sweep task "), "{script}");
    assert!(!out.exists() && cluster.queue().is_empty(), "a dry run submits nothing");

    let o = cluster.spikerl(&[spec_arg, "--out", out_arg, "--backend", "slurm"]);
    assert!(o.status.success(), "submission failed: {}\n{}", text(&o), cluster.logs_text());
    assert!(text(&o).contains("submitted 4 task(s) to slurm"), "{}", text(&o));
    let state: Value = serde_json::from_str(&fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    let job = state["submissions"][0]["job"].as_str().unwrap().to_string();
    mark(format!("submitted: job array {job}, tasks 0-3 (2 at once on the 2 CPUs of the node)"));
    assert!(out.join("spec.toml").is_file() && out.join("slurm/tasks.tsv").is_file());
    // While Slurm holds the tasks: submitting again adds nothing, and a local sweep of the folder is refused.
    let o = cluster.spikerl(&[spec_arg, "--out", out_arg, "--backend", "slurm"]);
    assert!(o.status.success() && text(&o).contains("4 task(s) queued or running on slurm"), "{}", text(&o));
    assert!(text(&o).contains("nothing to submit"), "{}", text(&o));
    let o = cluster.spikerl(&[spec_arg, "--out", out_arg]);
    assert!(!o.status.success() && text(&o).contains("queued or running on Slurm"), "{}", text(&o));

    // Preemption's way: Slurm stops the task (SIGTERM to every process of it) and queues it again.
    let requeued = out.join(REQUEUED);
    let at = wait_half_way(&cluster, &requeued);
    mark(format!("{REQUEUED} at step {at} of 2256: scontrol requeue {job}_{REQUEUED_TASK}"));
    let o = cluster.tool("scontrol").args(["requeue", &format!("{job}_{REQUEUED_TASK}")]).output().unwrap();
    assert!(o.status.success(), "scontrol requeue: {}", text(&o));

    // The time limit's way: SIGTERM to the batch shell alone (`--signal=B:TERM@N` before the limit, here
    // sent at once); the task passes it on, its run checkpoints, and the task requeues itself.
    let signalled = out.join(SIGNALLED);
    let at = wait_half_way(&cluster, &signalled);
    mark(format!("{SIGNALLED} at step {at} of 2256: scancel --batch --signal=TERM {job}_{SIGNALLED_TASK}"));
    let o = cluster
        .tool("scancel")
        .args(["--batch", "--signal=TERM", &format!("{job}_{SIGNALLED_TASK}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "scancel --batch: {}", text(&o));

    for (id, run) in [(REQUEUED, &requeued), (SIGNALLED, &signalled)] {
        let from = wait_resumed(run);
        mark(format!("{id} resumed from {}", short(&from)));
    }

    let deadline = Instant::now() + Duration::from_secs(150);
    while !(cluster.queue().is_empty()
        && RUNS.iter().all(|id| manifest(&out.join(id))["status"] == "completed"))
    {
        assert!(
            Instant::now() < deadline,
            "the sweep on Slurm did not complete: queue {:?}\n{}\n{}",
            cluster.queue(),
            String::from_utf8_lossy(&cluster.spikerl(&["status", out_arg]).stdout),
            cluster.logs_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    mark("every task of the array completed".into());

    // Each task's log holds both of its lives; the state file counts the resumes.
    let task_log = |task: usize| fs::read_to_string(out.join(format!("slurm/logs/task-{task}.log"))).unwrap();
    let requeued = task_log(REQUEUED_TASK);
    eprintln!("--- task {REQUEUED_TASK}'s log\n{requeued}");
    assert!(
        requeued.contains("stopped early") && requeued.contains("(resume: it was interrupted"),
        "{requeued}"
    );
    assert!(requeued.contains("not requeued by the task"), "Slurm requeued it, not the task:\n{requeued}");
    let signalled = task_log(SIGNALLED_TASK);
    eprintln!("--- task {SIGNALLED_TASK}'s log\n{signalled}");
    assert!(
        signalled.contains("(requeued job ") && signalled.contains("(resume: it was interrupted"),
        "{signalled}"
    );
    let state: Value = serde_json::from_str(&fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    for id in [REQUEUED, SIGNALLED] {
        assert_eq!(state["runs"][id]["attempts"], 2, "{}", state["runs"][id]);
        assert_eq!(state["runs"][id]["resumes"], 1);
        assert!(state["runs"][id]["placement"].as_str().is_some_and(|p| p.starts_with("slurm ")));
    }
    let status = cluster.spikerl(&["status", out_arg]);
    eprintln!("{}", text(&status));
    assert!(text(&status).contains("4 runs: 4 completed"), "{}", text(&status));
    assert_eq!(text(&status).matches("2 (1 resumed)").count(), 2, "{}", text(&status));
    // Submitting again finds nothing left to do.
    let o = cluster.spikerl(&[spec_arg, "--out", out_arg, "--backend", "slurm"]);
    assert!(o.status.success() && text(&o).contains("nothing to submit"), "{}", text(&o));

    let local_exit = procs.wait(local_sweep, Duration::from_secs(150)).expect("the local sweep finished");
    assert!(local_exit.success(), "{}", fs::read_to_string(dir.join("local-sweep.log")).unwrap_or_default());
    mark("the local sweep of the same grid completed".into());

    // Lockstep on CPU with the same threads is deterministic and resuming is exact: the same numbers.
    for id in RUNS {
        assert_eq!(
            numbers(&out.join(id)),
            numbers(&local_out.join(id)),
            "{id}: evals.csv differs from the local run's"
        );
    }
    let table = |runs: &Path, name: &str| {
        let report = dir.join(name);
        let o = spikerl().arg("report").arg(runs).arg("--out").arg(&report).output().unwrap();
        assert!(o.status.success(), "report: {}", text(&o));
        fs::read_to_string(report.join("table1.csv")).unwrap()
    };
    assert_eq!(table(&out, "report-slurm"), table(&local_out, "report-local"), "table1.csv");
    mark("table1.csv of the Slurm sweep equals the local sweep's".into());
    eprintln!("timeline:\n{}", timeline.join("\n"));
    drop(cluster);
    let _ = fs::remove_dir_all(&dir);
}
