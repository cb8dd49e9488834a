//! Faults with real processes on loopback: an actor killed with SIGKILL and restarted, the learner
//! killed with SIGKILL and resumed from its checkpoint, a corrupt checkpoint, and a graceful SIGTERM.
//! Each is bounded in time and cleans up its processes however it ends.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn counter(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(text, name, labels).unwrap_or(0.0)
}

#[test]
fn killed_actor_restarts_and_the_run_continues() {
    let dir = temp_dir("kill-actor");
    let (grpc, metrics) = (free_port(), free_port());
    let maddr = format!("127.0.0.1:{metrics}");
    let mut procs = Processes::default();
    let run = ["--steps", "100000", "--random-steps", "500", "--eval-every", "0"];
    procs.spawn("learner", learner_cmd(grpc, metrics, &dir.join("run"), &run), &dir.join("learner.log"));
    let a0 = procs.spawn("actor-0", actor_cmd(grpc, "a0", &[]), &dir.join("a0.log"));
    procs.spawn("actor-1", actor_cmd(grpc, "a1", &[]), &dir.join("a1.log"));
    wait_metrics(&maddr, Duration::from_secs(60), "data from both actors", |t| {
        counter(t, "spikerl_learner_transitions_received_total", &[("actor", "0")]) > 0.0
            && counter(t, "spikerl_learner_transitions_received_total", &[("actor", "1")]) > 0.0
    });
    procs.kill(a0);
    let before = scrape(&maddr).unwrap();
    let iters = counter(&before, "spikerl_learner_train_iterations_total", &[]);
    let from_a0 = counter(&before, "spikerl_learner_transitions_received_total", &[("actor", "0")]);
    // The learner carries on with the other actor.
    wait_metrics(&maddr, Duration::from_secs(60), "training without actor 0", |t| {
        counter(t, "spikerl_learner_train_iterations_total", &[]) > iters + 200.0
    });
    // The restarted actor re-registers under its name (same id) and streams again.
    procs.spawn("actor-0-again", actor_cmd(grpc, "a0", &[]), &dir.join("a0-again.log"));
    let after = wait_metrics(&maddr, Duration::from_secs(60), "actor 0 streaming again", |t| {
        counter(t, "spikerl_learner_transitions_received_total", &[("actor", "0")]) > from_a0
    });
    // Every inserted transition is in the replay buffer exactly once.
    let inserted: f64 = ["0", "1"]
        .iter()
        .map(|a| counter(&after, "spikerl_learner_transitions_inserted_total", &[("actor", a)]))
        .sum();
    let replay = counter(&after, "spikerl_learner_replay_size", &[]);
    assert!(
        (replay - inserted).abs() <= 2.0 * 64.0,
        "replay {replay} vs inserted {inserted} (one in-flight batch per actor at most)"
    );
    assert!(procs.0[0].1.try_wait().unwrap().is_none(), "the learner is still running");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn learner_killed_and_resumed_continues_where_its_checkpoint_left_off() {
    let dir = temp_dir("kill-learner");
    let run_folder = dir.join("run");
    let (grpc, metrics) = (free_port(), free_port());
    let maddr = format!("127.0.0.1:{metrics}");
    let mut procs = Processes::default();
    let run = [
        "--steps",
        "4000",
        "--random-steps",
        "500",
        "--eval-every",
        "500",
        "--eval-episodes",
        "2",
        "--checkpoint-secs",
        "2",
    ];
    let l = procs.spawn("learner", learner_cmd(grpc, metrics, &run_folder, &run), &dir.join("learner.log"));
    procs.spawn("actor-0", actor_cmd(grpc, "a0", &[]), &dir.join("a0.log"));
    procs.spawn("actor-1", actor_cmd(grpc, "a1", &[]), &dir.join("a1.log"));
    wait_metrics(&maddr, Duration::from_secs(120), "1000 iterations", |t| {
        counter(t, "spikerl_learner_train_iterations_total", &[]) >= 1000.0
    });
    // Wait for a checkpoint past 500 iterations, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(60);
    while spikerl_checkpoints(&run_folder).last().map_or(0, |c| c.0) < 500 {
        assert!(Instant::now() < deadline, "no checkpoint written");
        std::thread::sleep(Duration::from_millis(200));
    }
    procs.kill(l);
    let (ckpt_iters, ckpt_path) = spikerl_checkpoints(&run_folder).last().cloned().unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ckpt_path.join("state.json")).unwrap()).unwrap();
    let ckpt_version = state["actor_updates"].as_u64().unwrap();
    let ckpt_replay = state["replay_len"].as_u64().unwrap();

    let l2 = procs.spawn(
        "learner-resumed",
        learner_cmd(grpc, metrics, &run_folder, &["--resume", "--checkpoint-secs", "2"]),
        &dir.join("learner2.log"),
    );
    // The exporter starts before the checkpoint is restored (series read 0 until then): take the first
    // reading with iterations on the counter. A fresh start would show its first few iterations here.
    let text = wait_metrics(&maddr, Duration::from_secs(60), "resumed learner", |t| {
        metric(t, "spikerl_learner_train_iterations_total", &[]).unwrap_or(0.0) > 0.0
    });
    let resumed_at = counter(&text, "spikerl_learner_train_iterations_total", &[]);
    assert!(resumed_at >= ckpt_iters as f64, "iterations continue from {ckpt_iters}: {resumed_at}");
    assert!(
        counter(&text, "spikerl_learner_policy_version", &[]) >= ckpt_version as f64,
        "policy version continues"
    );
    assert!(
        counter(&text, "spikerl_learner_replay_size", &[]) >= ckpt_replay as f64,
        "replay contents restored"
    );
    // The actors reconnect by themselves and training goes on to the end of the run.
    let status = procs.wait(l2, Duration::from_secs(300)).expect("the resumed run finishes");
    let log = std::fs::read_to_string(dir.join("learner2.log")).unwrap_or_default();
    assert!(status.success(), "resumed learner failed:\n{log}");
    let manifest = std::fs::read_to_string(run_folder.join("manifest.json")).unwrap();
    assert!(
        manifest.contains("\"status\": \"completed\"") && manifest.contains("resumed_from"),
        "{manifest}"
    );
    let evals = evals(&run_folder);
    assert!(evals.windows(2).all(|w| w[0].0 < w[1].0), "one evaluation row per step, in order: {evals:?}");
    assert!(evals.last().unwrap().0 >= 4500, "the run reached its last step: {evals:?}");
    for a in ["a0.log", "a1.log"] {
        let log = std::fs::read_to_string(dir.join(a)).unwrap();
        assert!(log.matches("registered").count() >= 2, "{a} re-registered with the resumed learner:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// (iterations, path) of each checkpoint folder, oldest first.
fn spikerl_checkpoints(run_folder: &std::path::Path) -> Vec<(u64, std::path::PathBuf)> {
    let mut v: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(run_folder.join("checkpoints"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n = name.strip_prefix("ckpt-")?.parse().ok()?;
                    e.path().join("SHA256SUMS").exists().then(|| (n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn corrupt_checkpoints_are_detected_never_loaded() {
    let dir = temp_dir("corrupt");
    let run_folder = dir.join("run");
    let (grpc, metrics) = (free_port(), free_port());
    let mut procs = Processes::default();
    let run = ["--steps", "600", "--random-steps", "300", "--eval-every", "0", "--checkpoint-secs", "1"];
    let l = procs.spawn("learner", learner_cmd(grpc, metrics, &run_folder, &run), &dir.join("learner.log"));
    procs.spawn("actor", actor_cmd(grpc, "a0", &[]), &dir.join("a0.log"));
    let status = procs.wait(l, Duration::from_secs(180)).expect("short run finishes");
    assert!(status.success());
    let ckpts = spikerl_checkpoints(&run_folder);
    assert_eq!(ckpts.len(), 2, "the newest two checkpoints are kept: {ckpts:?}");

    // Truncate the newest checkpoint's network file: resume must fall back to the older one.
    let newest = &ckpts[1].1;
    let nets = newest.join("nets.safetensors");
    let len = std::fs::metadata(&nets).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&nets).unwrap().set_len(len / 2).unwrap();
    let resume = learner_cmd(grpc, metrics, &run_folder, &["--resume", "--checkpoint-secs", "0"]);
    let r = procs.spawn("resume", resume, &dir.join("resume.log"));
    let status = procs.wait(r, Duration::from_secs(120)).expect("resume finishes");
    let log = std::fs::read_to_string(dir.join("resume.log")).unwrap();
    assert!(status.success(), "falls back to the previous checkpoint:\n{log}");
    assert!(
        log.contains("corrupt") && log.contains("nets.safetensors"),
        "the corrupt checkpoint is reported:\n{log}"
    );

    // Corrupt every checkpoint: resume refuses with a clear message and a non-zero exit.
    for (_, c) in spikerl_checkpoints(&run_folder) {
        std::fs::write(c.join("state.json"), b"{ not json").unwrap();
    }
    let r = procs.spawn(
        "resume-bad",
        learner_cmd(grpc, metrics, &run_folder, &["--resume"]),
        &dir.join("resume-bad.log"),
    );
    let status = procs.wait(r, Duration::from_secs(60)).expect("refuses quickly");
    let log = std::fs::read_to_string(dir.join("resume-bad.log")).unwrap();
    assert!(!status.success(), "no valid checkpoint must not start:\n{log}");
    assert!(log.contains("no valid checkpoint"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A plaintext channel to the learner's gRPC port.
async fn health_channel(addr: &str) -> Result<tonic::transport::Channel, tonic::Status> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
    endpoint.connect().await.map_err(|e| tonic::Status::unavailable(e.to_string()))
}

/// One `grpc.health.v1.Health/Check` of `service` on the learner at `addr`.
async fn health_check(addr: &str, service: &str) -> Result<i32, tonic::Status> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let mut client = HealthClient::new(health_channel(addr).await?);
    let reply = client.check(HealthCheckRequest { service: service.into() }).await?;
    Ok(reply.into_inner().status)
}

/// Graceful stops, with nothing lost or doubled: the learner reports SERVING on the standard health
/// service; an actor stopped with SIGTERM delivers everything it produced first (its ledger balances
/// against the learner's per-actor insert count); the learner stopped with SIGTERM turns NOT_SERVING,
/// goes away, checkpoints and exits 0, while the remaining actor backs off instead of spinning.
#[test]
fn sigterm_checkpoints_and_exits_cleanly() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let dir = temp_dir("sigterm");
    let run_folder = dir.join("run");
    let (grpc, metrics, a0_metrics) = (free_port(), free_port(), free_port());
    let (maddr, a0addr, gaddr) =
        (format!("127.0.0.1:{metrics}"), format!("127.0.0.1:{a0_metrics}"), format!("127.0.0.1:{grpc}"));
    let mut procs = Processes::default();
    let run = ["--steps", "100000", "--random-steps", "300", "--eval-every", "0", "--checkpoint-secs", "0"];
    let l = procs.spawn("learner", learner_cmd(grpc, metrics, &run_folder, &run), &dir.join("learner.log"));
    procs.spawn("actor", actor_cmd(grpc, "a0", &["--metrics", &a0addr]), &dir.join("a0.log"));
    let a1 = procs.spawn("actor-1", actor_cmd(grpc, "a1", &[]), &dir.join("a1.log"));
    wait_metrics(&maddr, Duration::from_secs(60), "training with both actors", |t| {
        counter(t, "spikerl_learner_train_iterations_total", &[]) > 100.0
            && ["0", "1"]
                .iter()
                .all(|a| counter(t, "spikerl_learner_transitions_inserted_total", &[("actor", a)]) > 0.0)
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for service in ["", "spikerl.v1.Learner"] {
        let status = rt.block_on(health_check(&gaddr, service));
        assert_eq!(status.ok(), Some(ServingStatus::Serving as i32), "health of {service:?}");
    }

    // The ledger: actor a1, stopped with SIGTERM, delivers what it produced, then the learner holds exactly
    // that much from it.
    let pid = procs.0[a1].1.id();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let status = procs.wait(a1, Duration::from_secs(20)).expect("the actor exits within 20 s of SIGTERM");
    assert_stopped_actor_balanced(status, &dir.join("a1.log"), &maddr);
    let a0_text = scrape(&a0addr).unwrap();
    let (p0, k0) = (
        counter(&a0_text, "spikerl_actor_transitions_produced_total", &[]),
        counter(&a0_text, "spikerl_actor_transitions_acked_total", &[]),
    );
    assert!(k0 > 0.0 && p0 >= k0, "a0's ledger while it runs: produced {p0}, acked {k0}");

    // The learner: a Watch stream sees NOT_SERVING (or the stream ends) after SIGTERM.
    let mut watch = rt
        .block_on(async {
            let mut client = HealthClient::new(health_channel(&gaddr).await?);
            let request = HealthCheckRequest { service: "spikerl.v1.Learner".into() };
            Ok::<_, Box<dyn std::error::Error>>(client.watch(request).await?.into_inner())
        })
        .expect("a health Watch stream");
    let first = rt.block_on(watch.message()).unwrap().map(|m| m.status);
    assert_eq!(first, Some(ServingStatus::Serving as i32));
    let pid = procs.0[l].1.id();
    let sent = Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let next = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), watch.message()).await });
    match next {
        Ok(Ok(Some(m))) => assert_eq!(m.status, ServingStatus::NotServing as i32, "after SIGTERM"),
        Ok(Ok(None)) | Ok(Err(_)) => eprintln!("the health Watch stream ended"),
        Err(_) => panic!("the health Watch saw nothing within 10 s of SIGTERM"),
    }
    // Closes the Watch stream and its connection, which the learner's graceful shutdown waits for.
    drop(watch);
    drop(rt);
    let status = procs.wait(l, Duration::from_secs(30)).expect("exits within 30 s of SIGTERM");
    assert!(status.success(), "graceful shutdown exits 0");
    eprintln!("SIGTERM to exit: {:.2} s", sent.elapsed().as_secs_f64());
    assert!(!spikerl_checkpoints(&run_folder).is_empty(), "a checkpoint was written on the way out");
    let manifest = std::fs::read_to_string(run_folder.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"status\": \"interrupted\""), "{manifest}");

    // Actor a0, with the learner gone, retries with backoff (100 ms doubling): a handful of attempts in
    // 5 s, not a spin.
    let reconnects = |t: &str| counter(t, "spikerl_actor_reconnects_total", &[]);
    let before = reconnects(&scrape(&a0addr).unwrap());
    std::thread::sleep(Duration::from_secs(5));
    let during = reconnects(&scrape(&a0addr).unwrap()) - before;
    eprintln!("a0 reconnect attempts in 5 s without a learner: {during}");
    assert!(during < 10.0, "the actor backs off: {during} attempts in 5 s");
    let _ = std::fs::remove_dir_all(&dir);
}
