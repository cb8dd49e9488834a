//! `spikerl sweep` and `spikerl report` end to end with real training runs (tiny ones: Pendulum-v1,
//! 300 lockstep steps): the grid runs, a re-run skips what completed, an interrupted run resumes from its
//! checkpoint, a run restarted from scratch (`--fresh`) reproduces its numbers exactly, Ctrl-C stops
//! cleanly, a failing run is recorded and the others go on, and the report's numbers agree with the run
//! folders. (Sweeps on Slurm: tests/slurm.rs; the Kubernetes Job: tests/sweep_k8s.rs.)

mod common;

use common::*;
use serde_json::Value;
use spikerl_experiments::run_folder::{parse_evals, read_manifest};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TINY: &str = r#"
description = "integration test"
envs = ["Pendulum-v1"]
algos = ["ann", "proxy"]
neurons = ["lif"]
seeds = 2

[train]
steps = 300
random_steps = 256
eval_every = 200
eval_episodes = 2
sync = true
snn_hidden = [64, 64]
batch_size = 64
proxy_steps = 1
"#;

const RUNS: [&str; 4] = [
    "Pendulum-v1/ann/seed0",
    "Pendulum-v1/proxy-lif/seed0",
    "Pendulum-v1/ann/seed1",
    "Pendulum-v1/proxy-lif/seed1",
];

fn sweep(spec: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut cmd = spikerl();
    cmd.arg("sweep").arg(spec).arg("--out").arg(out).args(extra);
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn status_of(run: &Path) -> String {
    read_manifest(run).unwrap()["status"].as_str().unwrap().to_string()
}

fn sweep_state(out: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap()
}

/// evals.csv without the wall-clock column: what must be identical between two runs of one grid point.
fn numbers(run: &Path) -> Vec<String> {
    let text = fs::read_to_string(run.join("evals.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let wall = header.iter().position(|h| *h == "wall_seconds").unwrap();
    lines
        .map(|l| {
            l.split(',').enumerate().filter(|(i, _)| *i != wall).map(|(_, f)| f).collect::<Vec<_>>().join(",")
        })
        .collect()
}

#[test]
fn tiny_sweep_skips_reproduces_and_reports() {
    let dir = temp_dir("sweep");
    let spec = dir.join("tiny.toml");
    fs::write(&spec, TINY).unwrap();
    let out = dir.join("runs");

    let started = Instant::now();
    let o = sweep(&spec, &out, &["--jobs", "2"]);
    assert!(o.status.success(), "sweep failed: {}", stderr(&o));
    eprintln!("tiny sweep: {:.1} s", started.elapsed().as_secs_f64());
    for id in RUNS {
        assert_eq!(status_of(&out.join(id)), "completed", "{id}");
        assert!(out.join(id).join("train.log").is_file());
    }
    let state = sweep_state(&out);
    for id in RUNS {
        assert_eq!(state["runs"][id]["status"], "completed");
        assert_eq!(state["runs"][id]["attempts"], 1);
        assert_eq!(state["runs"][id]["options"]["snn-hidden"], "64,64");
    }

    // Re-running the same spec starts nothing.
    let before = fs::metadata(out.join(RUNS[1]).join("evals.csv")).unwrap().modified().unwrap();
    let o = sweep(&spec, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("4 runs (4 completed already, 0 to start, 0 to resume, 0 to restart)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::metadata(out.join(RUNS[1]).join("evals.csv")).unwrap().modified().unwrap(), before);

    // An interrupted run resumes from its checkpoint; with --fresh it starts again from scratch instead, and
    // lockstep on CPU reproduces its numbers exactly.
    let proxy = out.join(RUNS[1]);
    let first = numbers(&proxy);
    let mut manifest = read_manifest(&proxy).unwrap();
    manifest["status"] = "interrupted".into();
    fs::write(proxy.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    let o = sweep(&spec, &out, &["--dry-run"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("resume (it was interrupted; from checkpoints/ckpt-")
    );
    let o = sweep(&spec, &out, &["--fresh", "--dry-run"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("restart (--fresh; it was interrupted"));
    let o = sweep(&spec, &out, &["--fresh"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("3 completed already, 0 to start, 0 to resume, 1 to restart"),
        "{}",
        stderr(&o)
    );
    assert_eq!(status_of(&proxy), "completed");
    assert_eq!(sweep_state(&out)["runs"][RUNS[1]]["attempts"], 2);
    assert_eq!(numbers(&proxy), first, "the same grid point must give the same numbers");

    // A changed spec does not silently reuse runs made with other settings.
    fs::write(&spec, TINY.replace("steps = 300", "steps = 400")).unwrap();
    let o = sweep(&spec, &out, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--steps 300, the spec says 400"), "{}", stderr(&o));

    // The report agrees with the run folders.
    let report = dir.join("report");
    let o = spikerl().arg("report").arg(&out).arg("--out").arg(&report).output().unwrap();
    assert!(o.status.success(), "report failed: {}", stderr(&o));
    for f in [
        "report.md",
        "report.html",
        "table1.csv",
        "summary.json",
        "energy.csv",
        "curves.csv",
        "plots/Pendulum-v1.png",
        "plots/Pendulum-v1.svg",
    ] {
        assert!(report.join(f).is_file(), "{f}");
    }
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(report.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["completed_runs"], 4);
    for (method, seeds) in [("ann", [RUNS[0], RUNS[2]]), ("proxy-lif", [RUNS[1], RUNS[3]])] {
        let best: Vec<f64> = seeds
            .iter()
            .map(|id| {
                let evals =
                    parse_evals(&fs::read_to_string(out.join(id).join("evals.csv")).unwrap()).unwrap();
                evals.iter().map(|e| e.avg_return).fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        let mean = (best[0] + best[1]) / 2.0;
        let cell = summary["table1"].as_array().unwrap().iter().find(|c| c["method"] == method).unwrap();
        assert_eq!(cell["n_seeds"], 2);
        assert!((cell["mean"].as_f64().unwrap() - mean).abs() < 1e-9, "{method}: {cell}");
        // The population std of two values is half their distance.
        assert!(
            (cell["std"].as_f64().unwrap() - ((best[0] - best[1]).abs() / 2.0)).abs() < 1e-9,
            "{method}: {cell}"
        );
        assert_eq!(cell["train_steps_max"], 300.0);
        let energy = summary["energy"].as_array().unwrap().iter().find(|r| r["method"] == method).unwrap();
        assert!(energy["energy_nj_per_inference"].as_f64().unwrap() > 0.0);
    }
    let apg =
        summary["method_summaries"].as_array().unwrap().iter().find(|m| m["method"] == "proxy-lif").unwrap()
            ["apg"]
            .as_f64();
    assert!(apg.is_some_and(f64::is_finite));
    let md = fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("| PT-LIF |") && md.contains("plots/Pendulum-v1.png"));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn grouped_seeds_train_in_one_process_per_configuration_with_the_same_numbers() {
    let dir = temp_dir("sweep-grouped");
    let spec = dir.join("grouped.toml");
    fs::write(&spec, format!("group_seeds = true\n{TINY}")).unwrap();
    let out = dir.join("runs");
    let started = Instant::now();
    let o = sweep(&spec, &out, &["--jobs", "2"]);
    assert!(o.status.success(), "sweep failed: {}", stderr(&o));
    eprintln!("grouped sweep: {:.1} s\n{}", started.elapsed().as_secs_f64(), stderr(&o));
    assert!(stderr(&o).contains("start Pendulum-v1/proxy-lif/seed{0,1}"), "{}", stderr(&o));
    let state = sweep_state(&out);
    for id in RUNS {
        assert_eq!(status_of(&out.join(id)), "completed", "{id}");
        assert_eq!(state["runs"][id]["status"], "completed");
        let command: Vec<&str> =
            state["runs"][id]["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(command.windows(2).any(|w| w == ["--seeds", "0,1"]), "{id}: {command:?}");
    }
    for config in ["Pendulum-v1/ann", "Pendulum-v1/proxy-lif"] {
        assert!(out.join(config).join("train-seeds.log").is_file(), "{config}");
    }

    // Each seed is its single run (lockstep on CPU, the seeds' own learners one after the other).
    let single = dir.join("single");
    let o = spikerl()
        .args([
            "train",
            "--env",
            "Pendulum-v1",
            "--algo",
            "proxy",
            "--neuron",
            "lif",
            "--seed",
            "1",
            "--batch-size",
            "64",
        ])
        .args([
            "--eval-episodes",
            "2",
            "--eval-every",
            "200",
            "--proxy-steps",
            "1",
            "--random-steps",
            "256",
            "--snn-hidden",
            "64,64",
        ])
        .args(["--steps", "300", "--sync", "--threads", "1", "--no-progress", "--out"])
        .arg(&single)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(numbers(&out.join(RUNS[3])), numbers(&single));

    // A seed restarted from scratch is trained again alone, in its group's folder, to the same numbers.
    let ann0 = out.join(RUNS[0]);
    let first = numbers(&ann0);
    let mut manifest = read_manifest(&ann0).unwrap();
    manifest["status"] = "interrupted".into();
    fs::write(ann0.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    let o = sweep(&spec, &out, &["--fresh"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("4 runs (3 completed already, 0 to start, 0 to resume, 1 to restart)"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("start Pendulum-v1/ann/seed{0}"), "{}", stderr(&o));
    assert_eq!(numbers(&ann0), first);
    assert_eq!(sweep_state(&out)["runs"][RUNS[0]]["attempts"], 2);

    // Grouping needs the lockstep protocol.
    fs::write(&spec, format!("group_seeds = true\n{}", TINY.replace("sync = true", "sync = false"))).unwrap();
    let o = sweep(&spec, &dir.join("nosync"), &["--dry-run"]);
    assert!(!o.status.success() && stderr(&o).contains("needs sync = true"), "{}", stderr(&o));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_stops_runs_cleanly_and_failures_are_recorded() {
    let dir = temp_dir("sweep-stop");
    // Long enough to be stopped half way; the ANN starts training within a second.
    let spec = dir.join("long.toml");
    fs::write(
        &spec,
        "envs = [\"Pendulum-v1\"]\nalgos = [\"ann\"]\nseeds = [5]\n[train]\nsteps = 1_000_000\nrandom_steps = 256\neval_every = 0\nsync = true\n",
    )
    .unwrap();
    let out = dir.join("runs");
    let run = out.join("Pendulum-v1/ann/seed5");
    let mut cmd = spikerl();
    cmd.arg("sweep").arg(&spec).arg("--out").arg(&out);
    let mut procs = Processes::default();
    let i = procs.spawn("sweep", cmd, &dir.join("sweep.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(run.join("manifest.json").is_file() && status_of(&run) == "running") {
        assert!(
            Instant::now() < deadline,
            "the run never started: {}",
            fs::read_to_string(dir.join("sweep.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let pid = procs.0[i].1.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(s) = procs.0[i].1.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the sweep did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = fs::read_to_string(dir.join("sweep.log")).unwrap();
    assert!(!exit.success(), "an interrupted sweep reports it: {log}");
    assert!(log.contains("run the same command again to continue"), "{log}");
    assert_eq!(status_of(&run), "interrupted", "{log}");
    assert_eq!(sweep_state(&out)["runs"]["Pendulum-v1/ann/seed5"]["status"], "interrupted");
    let o = sweep(&spec, &out, &["--dry-run"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("resume (it was interrupted; from checkpoints/ckpt-")
    );

    // Running the sweep again resumes the run from that checkpoint (its manifest says so), here stopped again.
    let mut cmd = spikerl();
    cmd.arg("sweep").arg(&spec).arg("--out").arg(&out);
    let i = procs.spawn("sweep again", cmd, &dir.join("sweep-again.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let resumed_from = loop {
        let manifest = read_manifest(&run).ok();
        if let Some(m) = manifest.filter(|m| m["status"] == "running")
            && let Some(from) = m["resumed_from"].as_str()
        {
            break from.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the run never resumed: {}",
            fs::read_to_string(dir.join("sweep-again.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(resumed_from.contains("ckpt-"), "{resumed_from}");
    let pid = procs.0[i].1.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    assert!(procs.wait(i, Duration::from_secs(60)).is_some_and(|s| !s.success()));
    let log = fs::read_to_string(dir.join("sweep-again.log")).unwrap();
    assert!(log.contains("1 to resume") && log.contains("(resume: it was interrupted"), "{log}");
    assert_eq!(sweep_state(&out)["runs"]["Pendulum-v1/ann/seed5"]["resumes"], 1);
    let train_log = fs::read_to_string(run.join("train.log")).unwrap();
    assert_eq!(train_log.matches("=== ").count(), 2, "the log keeps both lives of the run:\n{train_log}");

    // A run that fails is recorded with its error; the others still run; the sweep exits non-zero.
    let spec = dir.join("bad.toml");
    fs::write(
        &spec,
        "envs = [\"Pendulum-v1\"]\nalgos = [\"ann\", \"proxy\"]\nneurons = [\"lif\"]\nseeds = 1\n\
         [train]\nsteps = 20\nrandom_steps = 256\neval_every = 0\neval_episodes = 1\nsync = true\n\
         [[override]]\nalgo = \"proxy\"\ntrain = { batch_size = \"lots\" }\n",
    )
    .unwrap();
    let out = dir.join("bad");
    let o = sweep(&spec, &out, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("1 run(s) failed: Pendulum-v1/proxy-lif/seed0"), "{}", stderr(&o));
    let state = sweep_state(&out);
    assert_eq!(state["runs"]["Pendulum-v1/ann/seed0"]["status"], "completed");
    let failed = &state["runs"]["Pendulum-v1/proxy-lif/seed0"];
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("lots"), "{failed}");

    // Options `spikerl train` does not have are refused before anything starts.
    fs::write(
        &spec,
        "envs = [\"Pendulum-v1\"]\nalgos = [\"ann\"]\nseeds = 1\n[train]\nlearning_rate = 0.1\n",
    )
    .unwrap();
    let o = sweep(&spec, &dir.join("never"), &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("`learning-rate`") && !dir.join("never").exists(), "{}", stderr(&o));
    let _ = fs::remove_dir_all(&dir);
}
