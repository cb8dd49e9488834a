//! The fuzz targets' harnesses on stable, in CI: every committed seed in `fuzz/corpus/` plus a few
//! thousand random mutations of them go through exactly what the fuzzers call
//! (`server::fuzzing::check`, `spikerl_snn::policy_from_bytes`). Nothing may panic, and whatever is
//! accepted must be sound (shapes that match the run, finite values). The real fuzzer (cargo fuzz,
//! nightly) is run by hand: fuzz/README.md.
//!
//! `cargo test --release -p spikerl-learner --test remote_input -- --ignored write_seed_corpus`
//! regenerates the seeds (`seed-*` files) after a message or format change.

use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spikerl_learner::service::server::fuzzing::{self, RUN_ID};
use spikerl_learner::service::server::{Accepted, RemoteMessage, RunInfo};
use spikerl_proto::{EpisodeSummary, PROTOCOL_VERSION, RegisterRequest, SubscribeRequest, TransitionBatch};
use spikerl_snn::{
    NetworkConfig, NeuronKind, PolicyConfig, SnnConfig, encode_policy, initial_tensors, policy_from_bytes,
};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

const MUTATIONS: usize = 4000;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

fn framed(kind: RemoteMessage, spec: u8, msg: &impl Message) -> Vec<u8> {
    let mut v = vec![fuzzing::first_byte(kind, spec)];
    v.extend(msg.encode_to_vec());
    v
}

fn batch(spec: u8, n: usize, fill: impl Fn(usize) -> f32) -> TransitionBatch {
    let info = fuzzing::run_info(spec);
    let (od, ad) = (info.obs_dim, info.act_dim);
    TransitionBatch {
        run_id: RUN_ID.into(),
        actor_id: 1,
        sequence: 7,
        policy_version: 3,
        count: n as u32,
        obs: (0..n * od).map(&fill).collect(),
        actions: (0..n * ad).map(&fill).collect(),
        rewards: (0..n).map(&fill).collect(),
        next_obs: (0..n * od).map(&fill).collect(),
        terminated: (0..n).map(|i| i % 3 == 0).collect(),
        truncated: (0..n).map(|i| i % 5 == 0).collect(),
        episodes: vec![EpisodeSummary { episode_return: -120.5, length: 200 }],
    }
}

/// Named seeds for the remote-input target. `ok-` seeds must be accepted, `bad-` ones rejected.
fn remote_seeds() -> Vec<(String, Vec<u8>)> {
    use RemoteMessage::*;
    let mut seeds = Vec::new();
    let register =
        RegisterRequest { protocol_version: PROTOCOL_VERSION, actor_name: "host-1234".into(), num_envs: 4 };
    seeds.push(("ok-register".into(), framed(Register, 0, &register)));
    let old = RegisterRequest { protocol_version: PROTOCOL_VERSION + 1, ..register.clone() };
    seeds.push(("bad-register-version".into(), framed(Register, 0, &old)));
    let nameless = RegisterRequest { actor_name: String::new(), ..register.clone() };
    seeds.push(("bad-register-name".into(), framed(Register, 0, &nameless)));
    let sub = SubscribeRequest { run_id: RUN_ID.into(), actor_id: 0, have_version: Some(5) };
    seeds.push(("ok-subscribe".into(), framed(Subscribe, 0, &sub)));
    let stranger = SubscribeRequest { actor_id: 9, ..sub.clone() };
    seeds.push(("bad-subscribe-actor".into(), framed(Subscribe, 0, &stranger)));
    for spec in 0..3u8 {
        let n = if spec == 2 { 2 } else { 5 };
        seeds.push((
            format!("ok-batch-spec{spec}"),
            framed(TransitionBatch, spec, &batch(spec, n, |i| i as f32 * 0.25 - 1.0)),
        ));
    }
    let mut nan = batch(0, 3, |i| i as f32);
    nan.rewards[1] = f32::NAN;
    seeds.push(("bad-batch-nan".into(), framed(TransitionBatch, 0, &nan)));
    let mut short = batch(1, 4, |i| i as f32);
    short.next_obs.pop();
    seeds.push(("bad-batch-shape".into(), framed(TransitionBatch, 1, &short)));
    seeds.push(("bad-batch-oversized".into(), framed(TransitionBatch, 2, &batch(2, 3, |_| 0.5))));
    let mut wrong_run = batch(0, 1, |_| 0.0);
    wrong_run.run_id = "another-run".into();
    seeds.push(("bad-batch-run".into(), framed(TransitionBatch, 0, &wrong_run)));
    let mut empty = batch(0, 0, |_| 0.0);
    empty.count = 0;
    seeds.push(("bad-batch-empty".into(), framed(TransitionBatch, 0, &empty)));
    // A huge declared count with no data (a classic over-allocation bait).
    let mut liar = batch(1, 1, |_| 0.0);
    liar.count = u32::MAX;
    seeds.push(("bad-batch-count".into(), framed(TransitionBatch, 1, &liar)));
    seeds.push((
        "bad-garbage".into(),
        vec![4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x0a],
    ));
    seeds
}

fn tiny_policy(network: NetworkConfig) -> PolicyConfig {
    PolicyConfig { gaussian: None, obs_dim: 3, act_dim: 1, max_action: vec![2.0], network }
}

/// Named seeds for the weights target: small networks of each kind (all `ok-`).
fn weight_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for neuron in [NeuronKind::Lif, NeuronKind::Plif, NeuronKind::Dn] {
        let snn = SnnConfig { hidden: vec![4], pop_size: 2, timesteps: 3, ..SnnConfig::paper(neuron) };
        let cfg = tiny_policy(NetworkConfig::Snn(snn));
        let bytes = encode_policy(&cfg, &initial_tensors(&cfg, 1).unwrap(), 42).unwrap();
        seeds.push((format!("ok-snn-{neuron}"), bytes));
    }
    let cfg = tiny_policy(NetworkConfig::Ann { hidden: vec![4, 3] });
    seeds.push(("ok-ann".into(), encode_policy(&cfg, &initial_tensors(&cfg, 1).unwrap(), 1).unwrap()));
    seeds
}

/// What an accepted message must satisfy; panics (fails the test, or is a fuzzer crash) otherwise.
fn assert_sound(info: &RunInfo, accepted: &Accepted) {
    match accepted {
        Accepted::Register(r) => {
            assert_eq!(r.protocol_version, PROTOCOL_VERSION);
            assert!((1..=256).contains(&r.actor_name.len()));
        }
        Accepted::Subscribe(s) => {
            assert_eq!(s.run_id, RUN_ID);
            assert!(s.actor_id <= 1, "unregistered actor {} accepted", s.actor_id);
        }
        Accepted::Batch(rows) => {
            let n = rows.len();
            assert!((1..=info.max_batch_transitions).contains(&n), "{n} rows");
            assert_eq!(rows.obs.len(), n * info.obs_dim);
            assert_eq!(rows.next_obs.len(), n * info.obs_dim);
            assert_eq!(rows.actions.len(), n * info.act_dim);
            assert_eq!(rows.terminated.len(), n);
            for v in [&rows.obs, &rows.next_obs, &rows.actions, &rows.rewards] {
                assert!(v.iter().all(|x| x.is_finite()), "non-finite value accepted");
            }
            assert!(rows.terminated.iter().all(|&t| t == 0.0 || t == 1.0));
        }
    }
}

/// Runs `data` through the remote-input harness; Ok(accepted?) or the panic message.
fn run_remote(data: &[u8]) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let (info, result) = fuzzing::check(data);
        if let Ok(a) = &result {
            assert_sound(&info, a);
        }
        result.is_ok()
    }))
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or(p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn run_weights(data: &[u8]) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| match policy_from_bytes(data) {
        Ok((mut policy, _)) => {
            let cfg = policy.config().clone();
            let mut action = vec![0.0; cfg.act_dim];
            policy.act(&vec![0.5; cfg.obs_dim], &mut action);
            true
        }
        Err(_) => false,
    }))
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or(p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// One random mutation of `base` (libFuzzer-like: bit flips, byte sets, inserts, deletes, truncation,
/// splices with another input, interesting integers).
fn mutate(rng: &mut ChaCha8Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = v.len();
        match rng.random_range(0..8) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                v[i] = rng.random();
            }
            2 => {
                let i = rng.random_range(0..=len);
                let extra: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                v.splice(i..i, extra);
            }
            3 if len > 0 => {
                let i = rng.random_range(0..len);
                let j = rng.random_range(i..=len.min(i + 32));
                v.drain(i..j);
            }
            4 => v.truncate(rng.random_range(0..=len)),
            5 if !other.is_empty() => {
                let i = rng.random_range(0..=len);
                let j = rng.random_range(0..other.len());
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
            6 if len > 1 => {
                // A protobuf varint or length field set to something extreme.
                let i = rng.random_range(1..len);
                let big = [0xff, 0xff, 0xff, 0xff, 0x0f];
                let k = (len - i).min(big.len());
                v[i..i + k].copy_from_slice(&big[..k]);
            }
            7 if len > 0 => v[0] = rng.random(),
            _ => {}
        }
    }
    v
}

fn read_corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

fn replay_and_mutate(target: &str, run: fn(&[u8]) -> Result<bool, String>, seeds: Vec<(String, Vec<u8>)>) {
    let corpus = read_corpus(target);
    // The committed seeds must still be there and still mean what their names say.
    for (name, bytes) in &seeds {
        let file = format!("seed-{name}");
        let stored = corpus.iter().find(|(n, _)| *n == file).map(|(_, b)| b);
        assert!(
            stored.is_some(),
            "fuzz/corpus/{target}/{file} is missing (regenerate: see this file's header)"
        );
        let accepted = run(bytes).unwrap_or_else(|p| panic!("seed {name} panicked: {p}"));
        assert_eq!(accepted, name.starts_with("ok-"), "seed {name}: accepted = {accepted}");
    }
    let (mut accepted, mut rejected) = (0, 0);
    for (name, bytes) in &corpus {
        match run(bytes) {
            Ok(true) => accepted += 1,
            Ok(false) => rejected += 1,
            Err(p) => panic!("corpus input {name} panicked: {p}"),
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let (mut m_ok, mut m_bad) = (0, 0);
    for _ in 0..MUTATIONS {
        let base = &corpus[rng.random_range(0..corpus.len())].1;
        let other = &corpus[rng.random_range(0..corpus.len())].1;
        let input = mutate(&mut rng, base, other);
        match run(&input) {
            Ok(true) => m_ok += 1,
            Ok(false) => m_bad += 1,
            Err(p) => panic!(
                "mutated input panicked: {p}\ninput (hex): {}",
                input.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
        }
    }
    eprintln!(
        "{target}: corpus {} files ({accepted} accepted, {rejected} rejected); {MUTATIONS} mutations ({m_ok} accepted, {m_bad} rejected)",
        corpus.len()
    );
    // Mutations of valid inputs must sometimes stay valid, or the test only ever exercises decoding.
    assert!(
        m_ok > 0 && m_bad > 0,
        "mutations should produce both outcomes: {m_ok} accepted, {m_bad} rejected"
    );
}

#[test]
fn remote_input_corpus_and_mutations_never_panic() {
    replay_and_mutate("remote_input", run_remote, remote_seeds());
}

#[test]
fn weights_corpus_and_mutations_never_panic() {
    replay_and_mutate("weights", run_weights, weight_seeds());
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus; run by hand after a format change"]
fn write_seed_corpus() {
    for (target, seeds) in [("remote_input", remote_seeds()), ("weights", weight_seeds())] {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }
}
