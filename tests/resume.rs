//! `spikerl train --resume`: a lockstep run killed with SIGKILL at a random point after its first
//! checkpoint, or stopped by `--stop-after` (exit 75), and resumed ends with the very evaluations
//! (every column of evals.csv but wall time) and the very final policy, bit for bit, of the same run
//! left alone. For PT-LIF (proxy target, LIF neurons) and for a `--seeds` group trained as one stacked
//! ensemble (the separate batching is the single run's code, seed after seed).

mod common;
use common::{Processes, spikerl, temp_dir};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A short PT-LIF lockstep run on Pendulum-v1: 256 random steps, 1,400 training iterations, an
/// evaluation every 200 steps.
fn train(out: &Path, extra: &[&str]) -> Command {
    let mut cmd = spikerl();
    cmd.args(["train", "--sync", "--env", "Pendulum-v1", "--algo", "proxy", "--neuron", "lif"])
        .args(["--snn-hidden", "32,32", "--steps", "1400", "--random-steps", "256"])
        .args(["--eval-every", "200", "--eval-episodes", "2", "--threads", "1", "--no-progress"])
        .args(extra)
        .arg("--out")
        .arg(out);
    cmd
}

/// The wall-time column of evals.csv: the only one a resume may change.
const WALL_COLUMN: &str = "wall_seconds";

/// evals.csv without its wall-time column.
fn evals_but_wall_time(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("evals.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let wall = header.iter().position(|c| *c == WALL_COLUMN).expect("evals.csv has a wall-time column");
    text.lines()
        .map(|l| {
            l.split(',').enumerate().filter(|(i, _)| *i != wall).map(|(_, c)| c).collect::<Vec<_>>().join(",")
        })
        .collect()
}

fn manifest(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap()
}

/// Asserts that `resumed` ended as `reference` did: the same evaluations and the same final policy.
fn assert_same_run(reference: &Path, resumed: &Path) {
    let (want, got) = (evals_but_wall_time(reference), evals_but_wall_time(resumed));
    assert!(want.len() > 5, "the reference run evaluated {} times", want.len() - 1);
    assert_eq!(got, want, "{}: evals.csv differs from the uninterrupted run's", resumed.display());
    let policy = |run: &Path| std::fs::read(run.join("checkpoints/policy.safetensors")).unwrap();
    assert!(
        policy(resumed) == policy(reference),
        "{}: the final policy differs from the uninterrupted run's",
        resumed.display()
    );
    let m = manifest(resumed);
    assert_eq!(m["status"], "completed", "{}", resumed.display());
    assert!(m["resumed_from"].as_str().is_some_and(|p| p.contains("ckpt-")), "{m}");
}

/// Runs `cmd` to its end (at most 5 minutes), returning how long it took; panics with its log otherwise.
fn run_to_end(cmd: Command, log: &Path, expect_code: i32) -> Duration {
    let mut procs = Processes::default();
    let started = Instant::now();
    let i = procs.spawn("train", cmd, log);
    let status = procs.wait(i, Duration::from_secs(300)).expect("train ends within 5 minutes");
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert_eq!(status.code(), Some(expect_code), "train exited {status}:\n{text}");
    started.elapsed()
}

/// The checkpoints of the run folder `run`.
fn checkpoints(run: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(run.join("checkpoints"))
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.to_string_lossy().contains("ckpt-")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Starts `cmd` and SIGKILLs it at a random point after its first new checkpoint in every one of
/// `runs`: once each has written a number of evaluations drawn from `evaluations` (of the 9 a run
/// writes), plus a random fraction of a second. Counted in evaluations rather than seconds, the point
/// falls before the end however fast the machine runs at the moment (asserted).
fn kill_at_random_after_first_checkpoint(
    cmd: Command,
    log: &Path,
    runs: &[PathBuf],
    evaluations: std::ops::RangeInclusive<usize>,
) {
    let before: Vec<Vec<PathBuf>> = runs.iter().map(|r| checkpoints(r)).collect();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let wanted = rng.random_range(evaluations);
    let extra = Duration::from_secs_f64(rng.random_range(0.0..1.0));
    let written = |r: &PathBuf| {
        std::fs::read_to_string(r.join("evals.csv")).map_or(0, |t| t.lines().count().saturating_sub(1))
    };
    let mut procs = Processes::default();
    let i = procs.spawn("train", cmd, log);
    let deadline = Instant::now() + Duration::from_secs(180);
    let checkpointed = |r: &PathBuf, old: &Vec<PathBuf>| checkpoints(r).iter().any(|c| !old.contains(c));
    while !runs.iter().zip(&before).all(|(r, old)| checkpointed(r, old) && written(r) >= wanted) {
        assert!(Instant::now() < deadline, "no checkpoint and {wanted} evaluations within 180 s");
        assert!(procs.0[i].1.try_wait().unwrap().is_none(), "train ended before the kill point");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(extra);
    assert!(procs.0[i].1.try_wait().unwrap().is_none(), "train ended before the kill");
    procs.kill(i); // SIGKILL
    let done = runs.iter().map(|r| evals_but_wall_time(r).len() - 1).collect::<Vec<_>>();
    eprintln!(
        "killed after {wanted} evaluations + {extra:.2?} (kill seed {seed}); evaluations written: {done:?}"
    );
}

#[test]
fn a_lockstep_run_killed_at_a_random_point_resumes_bit_for_bit() {
    let dir = temp_dir("resume-single");
    let (reference, resumed) = (dir.join("reference"), dir.join("resumed"));
    let took = run_to_end(train(&reference, &["--checkpoint-secs", "0"]), &dir.join("reference.log"), 0);
    eprintln!("uninterrupted run: {took:.1?}");

    // Checkpoints every second; killed between its 2nd and its 6th evaluation of 9.
    let cmd = train(&resumed, &["--checkpoint-secs", "1"]);
    kill_at_random_after_first_checkpoint(
        cmd,
        &dir.join("killed.log"),
        std::slice::from_ref(&resumed),
        2..=6,
    );
    assert_eq!(manifest(&resumed)["status"], "running", "SIGKILL leaves the manifest as it was");
    run_to_end(train(&resumed, &["--resume"]), &dir.join("resumed.log"), 0);
    assert_same_run(&reference, &resumed);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SAC (issue 22) resumes bit for bit too: the temperature, its optimiser and every Gaussian draw of
/// the learner and the actor are in the checkpoint.
#[test]
fn a_sac_lockstep_run_killed_at_a_random_point_resumes_bit_for_bit() {
    let dir = temp_dir("resume-sac");
    let (reference, resumed) = (dir.join("reference"), dir.join("resumed"));
    let sac = ["--base", "sac"];
    let took = run_to_end(
        train(&reference, &[&sac[..], &["--checkpoint-secs", "0"]].concat()),
        &dir.join("reference.log"),
        0,
    );
    eprintln!("uninterrupted SAC run: {took:.1?}");
    let cmd = train(&resumed, &[&sac[..], &["--checkpoint-secs", "1"]].concat());
    kill_at_random_after_first_checkpoint(
        cmd,
        &dir.join("killed.log"),
        std::slice::from_ref(&resumed),
        2..=6,
    );
    run_to_end(train(&resumed, &[&sac[..], &["--resume"]].concat()), &dir.join("resumed.log"), 0);
    assert_same_run(&reference, &resumed);
    assert_eq!(manifest(&resumed)["config"]["base"], "sac");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_seed_group_stopped_then_killed_resumes_bit_for_bit() {
    let dir = temp_dir("resume-group");
    let (reference, resumed) = (dir.join("reference"), dir.join("resumed"));
    let group = ["--seeds", "0,1", "--seed-batching", "stacked", "--snn-hidden", "16,16"];
    let took = run_to_end(train(&reference, &group), &dir.join("reference.log"), 0);
    eprintln!("uninterrupted group: {took:.1?}");

    // A wall-time limit first: checkpoint, exit 75, every seed "interrupted".
    let stop_after = format!("{}ms", took.mul_f64(0.3).as_millis());
    let cmd = train(&resumed, &[&group[..], &["--stop-after", &stop_after]].concat());
    run_to_end(cmd, &dir.join("stopped.log"), 75);
    let seeds: Vec<PathBuf> = [0, 1].iter().map(|s| resumed.join(format!("seed{s}"))).collect();
    for run in &seeds {
        assert_eq!(manifest(run)["status"], "interrupted", "{}", run.display());
        assert!(!checkpoints(run).is_empty(), "{}: --stop-after checkpoints", run.display());
    }
    // Then resumed and killed at a random point, and resumed again to the end.
    let cmd = train(&resumed, &[&group[..], &["--resume", "--checkpoint-secs", "1"]].concat());
    let stopped_with = seeds.iter().map(|r| evals_but_wall_time(r).len() - 1).max().unwrap();
    kill_at_random_after_first_checkpoint(
        cmd,
        &dir.join("killed.log"),
        &seeds,
        stopped_with + 1..=(stopped_with + 1).max(6),
    );
    run_to_end(train(&resumed, &[&group[..], &["--resume"]].concat()), &dir.join("resumed.log"), 0);
    for (s, run) in seeds.iter().enumerate() {
        assert_same_run(&reference.join(format!("seed{s}")), run);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resume_without_a_checkpoint_is_a_clear_error() {
    let dir = temp_dir("resume-nothing");
    let out = train(&dir.join("empty"), &["--resume"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nothing to resume"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A local cluster (learner and actor processes) stopped by `--stop-after` exits 75 with its
/// checkpoint, and `--resume` goes on from there (as `learner --resume`: nothing lost, not
/// bit-identical).
#[test]
fn a_local_cluster_stopped_by_stop_after_resumes_from_its_checkpoint() {
    let dir = temp_dir("resume-cluster");
    let out = dir.join("run");
    let cluster = |extra: &[&str]| {
        let mut cmd = spikerl();
        cmd.args(["train", "--env", "Pendulum-v1", "--algo", "ann", "--actors", "1", "--threads", "1"])
            .args([
                "--steps",
                "100000",
                "--random-steps",
                "256",
                "--eval-every",
                "1000",
                "--eval-episodes",
                "1",
            ])
            .args(["--no-progress"])
            .args(extra)
            .arg("--out")
            .arg(&out);
        cmd
    };
    run_to_end(cluster(&["--stop-after", "6s"]), &dir.join("stopped.log"), 75);
    let m = manifest(&out);
    assert_eq!(m["status"], "interrupted", "{m}");
    let stopped_at = evals_but_wall_time(&out).len() - 1;
    assert!(!checkpoints(&out).is_empty(), "--stop-after checkpoints");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(checkpoints(&out).last().unwrap().join("state.json")).unwrap())
            .unwrap();
    let iterations = state["iterations"].as_u64().unwrap();
    assert!(iterations > 0, "trained before the stop: {state}");

    // Resumed, and stopped again: it went on from the checkpoint, not from zero.
    run_to_end(cluster(&["--resume", "--stop-after", "6s"]), &dir.join("resumed.log"), 75);
    let m = manifest(&out);
    assert!(m["resumed_from"].as_str().is_some_and(|p| p.contains("ckpt-")), "{m}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(checkpoints(&out).last().unwrap().join("state.json")).unwrap())
            .unwrap();
    assert!(state["iterations"].as_u64().unwrap() > iterations, "the resumed run went on: {state}");
    assert!(evals_but_wall_time(&out).len() > stopped_at, "evaluations kept across the resume");
    let _ = std::fs::remove_dir_all(&dir);
}
