//! `spikerl train --sync --seeds`: several seeds of one configuration in one process, each into its own
//! run folder that `spikerl report` reads like any other.

mod common;
use common::{spikerl, temp_dir};

fn short_run(extra: &[&str], out: &std::path::Path) -> std::process::Output {
    spikerl()
        .args([
            "train",
            "--sync",
            "--env",
            "Pendulum-v1",
            "--algo",
            "proxy",
            "--neuron",
            "lif",
            "--snn-hidden",
            "32,32",
        ])
        .args([
            "--steps",
            "60",
            "--random-steps",
            "256",
            "--eval-every",
            "100",
            "--eval-episodes",
            "1",
            "--threads",
            "1",
            "--no-progress",
        ])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn train_with_seeds_writes_one_run_folder_per_seed() {
    let dir = temp_dir("train-seeds");
    let out = short_run(&["--seeds", "3,5", "--seed-batching", "stacked"], &dir.join("group"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("2 seeds (stacked) finished"), "{stdout}");
    assert!(
        stdout.contains("seed 3: evaluation return") && stdout.contains("seed 5: evaluation return"),
        "{stdout}"
    );
    assert!(stdout.contains("final return over the seeds"), "{stdout}");
    for seed in [3, 5] {
        let run = dir.join(format!("group/seed{seed}"));
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(m["status"], "completed");
        assert_eq!(m["config"]["seed"], seed);
        assert_eq!(m["seed_group"]["seeds"], serde_json::json!([3, 5]));
        assert_eq!(m["seed_group"]["batching"], "stacked");
        // Evaluations every 100 steps and at the end (256 random + 60 training steps).
        let evals = common::evals(&run);
        assert_eq!(evals.iter().map(|e| e.0).collect::<Vec<_>>(), [0, 100, 200, 300, 316], "{evals:?}");
        assert!(run.join("checkpoints/policy.safetensors").is_file());
    }
    // Different seeds start from different policies.
    assert_ne!(common::evals(&dir.join("group/seed3"))[0].1, common::evals(&dir.join("group/seed5"))[0].1);

    // The report reads the group like a sweep's folders: one configuration, two seeds.
    let report = spikerl()
        .args(["report"])
        .arg(dir.join("group"))
        .arg("--out")
        .arg(dir.join("report"))
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let table = std::fs::read_to_string(dir.join("report/table1.csv")).unwrap();
    assert!(table.lines().count() >= 2, "{table}");

    // Seed 5 of a separate group is bit for bit seed 5's single run.
    let sep = short_run(&["--seeds", "5", "--seed-batching", "separate"], &dir.join("sep"));
    assert!(sep.status.success(), "{}", String::from_utf8_lossy(&sep.stderr));
    let single = short_run(&["--seed", "5"], &dir.join("single"));
    assert!(single.status.success(), "{}", String::from_utf8_lossy(&single.stderr));
    assert_eq!(common::evals(&dir.join("sep/seed5")), common::evals(&dir.join("single")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_seed_lists_are_usage_errors() {
    let dir = temp_dir("train-seeds-bad");
    for (args, why) in [
        (vec!["--seeds", "0-2"], "--seeds without --sync"),
        (vec!["--sync", "--seeds", "1,1"], "a seed twice"),
        (vec!["--sync", "--seeds", "2-0"], "a backwards range"),
        (vec!["--sync", "--seeds", "x"], "not a number"),
        (vec!["--sync", "--seeds", "0-1", "--seed", "4"], "--seeds with --seed"),
    ] {
        let out = spikerl()
            .args(["train", "--env", "Pendulum-v1", "--no-progress"])
            .args(&args)
            .arg("--out")
            .arg(dir.join("x"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{why}: {stderr}");
        assert!(!stderr.contains("panicked"), "{why}: {stderr}");
    }
    assert!(!dir.join("x").exists(), "a refused command created its run folder");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every sample line of `name` in an exposition.
fn sample_lines<'a>(text: &'a str, name: &'a str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' '])).collect()
}

/// A seed group's metrics (`--metrics`): every series the seeds record carries `seed="N"`, one series
/// per seed, with that seed's own values (the first evaluation's return as its evals.csv has it); the
/// process's own series carry none.
fn check_seed_labels(text: &str, out: &std::path::Path) {
    for name in [
        "spikerl_learner_train_iterations_total",
        "spikerl_actor_env_steps_total",
        "spikerl_learner_transitions_inserted_total",
        "spikerl_eval_return_initial",
        "spikerl_eval_return_last",
        "spikerl_learner_critic_loss",
        "spikerl_learner_update_duration_seconds_count",
        "spikerl_run_info",
    ] {
        let lines = sample_lines(text, name);
        let seeds: Vec<bool> =
            ["seed=\"0\"", "seed=\"1\""].iter().map(|l| lines.iter().any(|x| x.contains(l))).collect();
        assert_eq!(seeds, [true, true], "{name} for each seed:\n{}", lines.join("\n"));
        assert!(lines.iter().all(|l| l.contains("seed=")), "{name} without a seed:\n{}", lines.join("\n"));
    }
    for seed in [0, 1] {
        let label = seed.to_string();
        let initial = common::metric(text, "spikerl_eval_return_initial", &[("seed", &label)]).unwrap();
        let csv = common::evals(&out.join(format!("seed{seed}")))[0].1;
        assert!(
            (initial - csv).abs() <= 1e-3 * csv.abs().max(1.0),
            "seed {seed}: {initial} vs evals.csv {csv}"
        );
        let steps = common::metric(text, "spikerl_actor_env_steps_total", &[("seed", &label)]).unwrap();
        assert!(steps >= 300.0, "seed {seed} stepped its own environment: {steps}");
    }
    let initial = |s: &str| common::metric(text, "spikerl_eval_return_initial", &[("seed", s)]).unwrap();
    assert_ne!(initial("0"), initial("1"), "each seed's own value, not the last writer's");
    for name in ["process_resident_memory_bytes", "spikerl_build_info"] {
        let lines = sample_lines(text, name);
        assert!(
            !lines.is_empty() && lines.iter().all(|l| !l.contains("seed=")),
            "{name}:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn an_interrupted_seed_group_checkpoints_every_seed() {
    let dir = temp_dir("train-seeds-stop");
    let out = dir.join("group");
    let metrics = common::free_port();
    let maddr = format!("127.0.0.1:{metrics}");
    // The guard kills the run if the test fails half way: it would train for a million steps.
    let mut procs = common::Processes::default();
    let mut cmd = spikerl();
    cmd.args([
        "train",
        "--sync",
        "--env",
        "Pendulum-v1",
        "--algo",
        "ann",
        "--seeds",
        "0,1",
        "--seed-batching",
        "stacked",
    ])
    .args([
        "--steps",
        "1000000",
        "--random-steps",
        "256",
        "--eval-every",
        "300",
        "--eval-episodes",
        "1",
        "--threads",
        "1",
        "--no-progress",
        "--metrics",
        &maddr,
    ])
    .arg("--out")
    .arg(&out);
    let train = procs.spawn("train", cmd, &dir.join("train.log"));
    // Wait until both seeds trained past their second evaluation (step 300, after 44 iterations).
    let rows = |s: u64| {
        std::fs::read_to_string(out.join(format!("seed{s}/evals.csv")))
            .map_or(0, |t| t.lines().count().saturating_sub(1))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while [0, 1].iter().any(|&s| rows(s) < 2) {
        assert!(std::time::Instant::now() < deadline, "no second evaluation within 120 s");
        assert!(procs.0[train].1.try_wait().unwrap().is_none(), "train exited early");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    check_seed_labels(&common::scrape(&maddr).expect("the seed group serves its metrics"), &out);
    let pid = procs.0[train].1.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status =
        procs.wait(train, std::time::Duration::from_secs(60)).expect("train stops within 60 s of Ctrl-C");
    assert_eq!(status.code(), Some(75), "Ctrl-C checkpoints and exits 75, 'incomplete: resume me': {status}");
    for seed in [0, 1] {
        let run = out.join(format!("seed{seed}"));
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(m["status"], "interrupted", "seed {seed}");
        let ckpt: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(ckpt.iter().any(|n| n.starts_with("ckpt-")), "seed {seed}: {ckpt:?}");
        assert!(run.join("checkpoints/policy.safetensors").is_file());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
