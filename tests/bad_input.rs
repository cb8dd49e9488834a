//! Bad input against a real learner process: malformed batches, oversized messages, unknown actors,
//! wrong or missing tokens, protocol mismatches. Each must get the right gRPC status with a message that
//! says what was wrong, be counted, and insert nothing; the learner must stay healthy throughout.

mod common;

use common::*;
use spikerl_proto::learner_client::LearnerClient;
use spikerl_proto::{PROTOCOL_VERSION, RegisterRequest, SubscribeRequest, TransitionBatch};
use std::time::Duration;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

const TOKEN: &str = "test-token-123";

fn with_token<T>(msg: T, token: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut().insert(
            spikerl_proto::AUTH_METADATA_KEY,
            MetadataValue::try_from(format!("Bearer {t}")).unwrap(),
        );
    }
    r
}

fn batch(run_id: &str, actor_id: u32, sequence: u64, n: usize) -> TransitionBatch {
    TransitionBatch {
        run_id: run_id.into(),
        actor_id,
        sequence,
        policy_version: 0,
        count: n as u32,
        obs: vec![0.1; n * 3],
        actions: vec![0.5; n],
        rewards: vec![-1.0; n],
        next_obs: vec![0.2; n * 3],
        terminated: vec![false; n],
        truncated: vec![false; n],
        episodes: vec![],
    }
}

/// Sends one batch on a fresh stream and returns the first response (ack or status).
async fn send_one(
    client: &mut LearnerClient<Channel>,
    b: TransitionBatch,
    token: Option<&str>,
) -> Result<spikerl_proto::BatchAck, tonic::Status> {
    let stream = tokio_stream::iter(vec![b]);
    let mut acks = client.stream_transitions(with_token(stream, token)).await?.into_inner();
    match acks.message().await? {
        Some(ack) => Ok(ack),
        None => Err(tonic::Status::unknown("stream closed without a response")),
    }
}

#[test]
fn malformed_and_unauthorised_input_is_rejected_and_nothing_is_inserted() {
    let dir = temp_dir("bad-input");
    let (grpc, metrics) = (free_port(), free_port());
    let mut procs = Processes::default();
    let extra = ["--steps", "100000", "--random-steps", "100000", "--auth-token", TOKEN];
    let extra = [&extra[..], &["--max-batch-transitions", "64", "--max-message-bytes", "200000"]].concat();
    procs.spawn("learner", learner_cmd(grpc, metrics, &dir.join("run"), &extra), &dir.join("learner.log"));
    let maddr = format!("127.0.0.1:{metrics}");
    wait_metrics(&maddr, Duration::from_secs(60), "learner metrics", |t| {
        t.contains("spikerl_learner_replay_size")
    });

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut client = LearnerClient::connect(format!("http://127.0.0.1:{grpc}")).await.unwrap();
        let register = |name: &str, version: u32| RegisterRequest {
            protocol_version: version,
            actor_name: name.into(),
            num_envs: 1,
        };

        // Authentication: no token and a wrong token are refused on every call.
        for token in [None, Some("wrong")] {
            let e = client.register(with_token(register("a", PROTOCOL_VERSION), token)).await.unwrap_err();
            assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
            let e = client
                .subscribe_policy(with_token(
                    SubscribeRequest { run_id: "x".into(), actor_id: 0, have_version: None },
                    token,
                ))
                .await
                .unwrap_err();
            assert_eq!(e.code(), Code::Unauthenticated, "weights must not be readable without the token");
            let e = send_one(&mut client, batch("x", 0, 1, 1), token).await.unwrap_err();
            assert_eq!(e.code(), Code::Unauthenticated, "data must not be writable without the token");
        }

        // Protocol mismatch.
        let e =
            client.register(with_token(register("a", PROTOCOL_VERSION + 1), Some(TOKEN))).await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert!(e.message().contains("protocol version"), "{}", e.message());

        let reply = client
            .register(with_token(register("good", PROTOCOL_VERSION), Some(TOKEN)))
            .await
            .unwrap()
            .into_inner();
        let run = reply.run_id.clone();
        let id = reply.actor_id;
        assert_eq!((reply.obs_dim, reply.act_dim), (3, 1));

        let cases: Vec<(&str, TransitionBatch, Code, &str)> = vec![
            (
                "wrong obs dims",
                {
                    let mut b = batch(&run, id, 1, 4);
                    b.obs.pop();
                    b
                },
                Code::InvalidArgument,
                "obs has 11 values, expected 12",
            ),
            (
                "wrong action dims",
                {
                    let mut b = batch(&run, id, 1, 4);
                    b.actions.push(0.0);
                    b
                },
                Code::InvalidArgument,
                "actions has 5 values",
            ),
            (
                "missing flags",
                {
                    let mut b = batch(&run, id, 1, 4);
                    b.terminated.clear();
                    b
                },
                Code::InvalidArgument,
                "terminated has 0 values",
            ),
            (
                "NaN observation",
                {
                    let mut b = batch(&run, id, 1, 4);
                    b.next_obs[5] = f32::NAN;
                    b
                },
                Code::InvalidArgument,
                "next_obs[5] is NaN",
            ),
            (
                "infinite reward",
                {
                    let mut b = batch(&run, id, 1, 4);
                    b.rewards[0] = f32::INFINITY;
                    b
                },
                Code::InvalidArgument,
                "rewards[0] is inf",
            ),
            ("empty batch", batch(&run, id, 1, 0), Code::InvalidArgument, "count 0"),
            ("too many transitions", batch(&run, id, 1, 65), Code::InvalidArgument, "exceeds the maximum 64"),
            ("unknown actor", batch(&run, id + 100, 1, 4), Code::FailedPrecondition, "not registered"),
            ("unknown run", batch("other-run", id, 1, 4), Code::FailedPrecondition, "unknown run id"),
        ];
        for (what, b, code, msg) in cases {
            let e = send_one(&mut client, b, Some(TOKEN)).await.expect_err(what);
            assert_eq!(e.code(), code, "{what}: {e:?}");
            assert!(e.message().contains(msg), "{what}: message '{}' should say '{msg}'", e.message());
        }
        // A message over the size limit is refused by the transport before decoding: tonic's own refusal,
        // with the limit --max-message-bytes set (not its default, and not any other failure).
        let mut huge = batch(&run, id, 1, 60);
        huge.obs = vec![0.0; 100_000];
        let e = send_one(&mut client, huge, Some(TOKEN)).await.unwrap_err();
        assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
        assert!(
            e.message().contains("message length too large")
                && e.message().contains("limit is: 200000 bytes"),
            "{e:?}"
        );

        // Still healthy: a valid batch goes in, and a resend of it is acknowledged but not inserted twice.
        let ack = send_one(&mut client, batch(&run, id, 1, 5), Some(TOKEN)).await.unwrap();
        assert_eq!((ack.sequence, ack.inserted, ack.total_inserted), (1, 5, 5));
        let ack = send_one(&mut client, batch(&run, id, 1, 5), Some(TOKEN)).await.unwrap();
        assert_eq!((ack.inserted, ack.total_inserted), (0, 5), "duplicate sequence numbers are not inserted");
    });

    let text = wait_metrics(&maddr, Duration::from_secs(10), "replay size 5", |t| {
        metric(t, "spikerl_learner_replay_size", &[]) == Some(5.0)
    });
    for (reason, n) in [
        ("shape", 3.0),
        ("non_finite", 2.0),
        ("empty", 1.0),
        ("oversized", 1.0),
        ("unknown_actor", 1.0),
        ("unknown_run", 1.0),
    ] {
        let got = metric(&text, "spikerl_learner_transitions_rejected_total", &[("reason", reason)]);
        assert_eq!(got, Some(n), "rejections counted by reason {reason}");
    }
    assert!(procs.0[0].1.try_wait().unwrap().is_none(), "the learner survived every bad input");
    let _ = std::fs::remove_dir_all(&dir);
}
