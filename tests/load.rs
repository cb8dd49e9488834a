//! Load: 64 concurrent actor connections (gRPC clients in this process, streaming synthetic Pendulum
//! transitions) against a real learner process for a bounded time. No errors, every acknowledged
//! transition stored, memory flat once the replay buffer is full; throughput is printed.

mod common;

use common::*;
use spikerl_proto::learner_client::LearnerClient;
use spikerl_proto::{PROTOCOL_VERSION, RegisterRequest, TransitionBatch};
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 64;
const BATCH: usize = 32;

#[test]
fn sixty_four_actors_stream_concurrently() {
    let dir = temp_dir("load");
    let (grpc, metrics) = (free_port(), free_port());
    let maddr = format!("127.0.0.1:{metrics}");
    let mut procs = Processes::default();
    // No training (random steps never end) so the transport, validation and replay path are measured.
    let run =
        ["--steps", "1", "--random-steps", "1000000000", "--eval-every", "0", "--replay-capacity", "50000"];
    let l =
        procs.spawn("learner", learner_cmd(grpc, metrics, &dir.join("run"), &run), &dir.join("learner.log"));
    wait_metrics(&maddr, Duration::from_secs(60), "learner up", |t| t.contains("spikerl_learner"));
    let pid = procs.0[l].1.id();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let duration = Duration::from_secs(8);
    let maddr_warm = maddr.clone();
    let (acked, errors, elapsed, rss_warm, replay_warm) = rt.block_on(async move {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..CONNECTIONS {
            tasks.push(tokio::spawn(async move {
                let mut client = LearnerClient::connect(format!("http://127.0.0.1:{grpc}"))
                    .await
                    .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                let reply = client
                    .register(RegisterRequest {
                        protocol_version: PROTOCOL_VERSION,
                        actor_name: format!("load-{i}"),
                        num_envs: 1,
                    })
                    .await?
                    .into_inner();
                let (tx, rx) = tokio::sync::mpsc::channel(2);
                let mut acks = client
                    .stream_transitions(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await?
                    .into_inner();
                let mut acked = 0u64;
                let mut seq = 0u64;
                let deadline = Instant::now() + duration;
                while Instant::now() < deadline {
                    seq += 1;
                    let b = TransitionBatch {
                        run_id: reply.run_id.clone(),
                        actor_id: reply.actor_id,
                        sequence: seq,
                        count: BATCH as u32,
                        obs: vec![0.1 * i as f32; BATCH * 3],
                        actions: vec![0.5; BATCH],
                        rewards: vec![-1.0; BATCH],
                        next_obs: vec![0.2; BATCH * 3],
                        terminated: vec![false; BATCH],
                        truncated: vec![false; BATCH],
                        ..Default::default()
                    };
                    if tx.send(b).await.is_err() {
                        break;
                    }
                    let ack = acks.message().await?.ok_or_else(|| tonic::Status::unknown("stream ended"))?;
                    assert_eq!(ack.sequence, seq);
                    acked += ack.inserted as u64;
                }
                Ok::<u64, tonic::Status>(acked)
            }));
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
        let rss_warm = rss_kib(pid);
        let warm = tokio::task::spawn_blocking(move || scrape(&maddr_warm)).await.unwrap();
        let replay_warm = warm.and_then(|t| metric(&t, "spikerl_learner_replay_size", &[]));
        let (mut acked, mut errors) = (0u64, Vec::new());
        for t in tasks {
            match t.await.unwrap() {
                Ok(n) => acked += n,
                Err(e) => errors.push(e),
            }
        }
        (acked, errors, started.elapsed(), rss_warm, replay_warm)
    });
    assert!(errors.is_empty(), "{} of {CONNECTIONS} connections failed: {:?}", errors.len(), errors.first());
    let text = scrape(&maddr).unwrap();
    let received: f64 = (0..CONNECTIONS)
        .map(|a| {
            metric(&text, "spikerl_learner_transitions_received_total", &[("actor", &a.to_string())])
                .unwrap_or(0.0)
        })
        .sum();
    assert_eq!(received as u64, acked, "every acknowledged transition was stored exactly once");
    let rss_end = rss_kib(pid);
    let replay_end = metric(&text, "spikerl_learner_replay_size", &[]);
    let rate = acked as f64 / elapsed.as_secs_f64();
    eprintln!(
        "load: {CONNECTIONS} connections, {acked} transitions in {:.1} s = {rate:.0} transitions/s; learner RSS {:?} KiB at 4 s, {:?} KiB at end; replay {:?} at 4 s, {:?} at end",
        elapsed.as_secs_f64(),
        rss_warm,
        rss_end,
        replay_warm,
        replay_end
    );
    assert!(acked as usize > CONNECTIONS * BATCH * 10, "throughput too low: {acked} transitions");
    // Memory is flat once the replay buffer is full: the buffer must be full at the first reading (else
    // the comparison says nothing), and both readings must exist (a test that cannot read them fails).
    assert_eq!(replay_warm, Some(50000.0), "the replay buffer (capacity 50000) is full after 4 s");
    let (a, b) =
        (rss_warm.expect("the learner's RSS at 4 s"), rss_end.expect("the learner's RSS at the end"));
    assert!(b < a + 64 * 1024, "learner memory grew from {a} KiB to {b} KiB under steady load");
    assert!(procs.0[l].1.try_wait().unwrap().is_none(), "the learner is still running");
    let _ = std::fs::remove_dir_all(&dir);
}
