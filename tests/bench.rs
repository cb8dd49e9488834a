//! `spikerl bench transport`, `bench actor`, `bench update`'s phases and `bench ensemble`, shortened: they
//! must run end to end on loopback and report figures that hold together where they are measured apart
//! (every broadcast version reached every subscriber, ingest acknowledged transitions within the window,
//! phases timed inside an update that make up most of the iteration timed around it, the policy's time
//! inside the acting loop a part of a step). Rates themselves are not asserted: the machine is shared.

mod common;

use common::*;
use serde_json::Value;

fn run_json(args: &[&str]) -> Value {
    let out = spikerl().args(args).output().expect("spikerl runs");
    assert!(out.status.success(), "spikerl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {text}"))
}

fn num(v: &Value, path: &[&str]) -> f64 {
    path.iter().fold(v, |v, k| &v[*k]).as_f64().unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

#[test]
fn transport_bench_reports_ingest_broadcast_and_training() {
    let v = run_json(&[
        "bench",
        "transport",
        "--seconds",
        "1",
        "--ingest-actors",
        "2",
        "--subscribers",
        "3",
        "--train-actors",
        "2",
        "--ingest-rate",
        "2000",
        "--json",
    ]);
    assert!(num(&v, &["ingest", "transitions"]) >= 32.0, "{v}");
    assert!(num(&v, &["ingest", "latency_ms_p50"]) <= num(&v, &["ingest", "latency_ms_p99"]));
    // Every acknowledged batch was sent and acknowledged inside its stream's lifetime.
    let window_ms = 1e3 * num(&v, &["ingest", "seconds"]);
    assert!(num(&v, &["ingest", "latency_ms_p50"]) > 0.0, "{v}");
    assert!(num(&v, &["ingest", "latency_ms_max"]) <= window_ms, "{v}");
    // The paper's PT-LIF network on HalfCheetah: 170 -> 256 -> 256 -> 60 plus encoder and decoder.
    assert!(num(&v, &["broadcast", "parameters"]) > 120_000.0, "{v}");
    assert!(num(&v, &["broadcast", "bytes_per_update"]) > 4.0 * num(&v, &["broadcast", "parameters"]));
    assert!(num(&v, &["broadcast", "versions"]) >= 5.0, "{v}");
    assert_eq!(
        num(&v, &["broadcast", "received"]),
        num(&v, &["broadcast", "expected"]),
        "every subscriber got every version: {v}"
    );
    assert!(num(&v, &["training", "iterations_per_second_ingesting"]) > 0.0, "{v}");
    assert!(num(&v, &["training", "ingest_rate_achieved"]) > 0.0, "{v}");
}

#[test]
fn actor_bench_compares_policy_and_random_acting() {
    let v = run_json(&["bench", "actor", "--envs", "1,2", "--seconds", "0.5", "--json"]);
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert!(
            num(r, &["random_steps_per_second"]) > 0.0 && num(r, &["policy_steps_per_second"]) > 0.0,
            "{r}"
        );
        // The policy's time is measured inside the loop, the step from the loop's throughput: the policy
        // takes a part of each step, neither nothing nor all of it.
        let policy = num(r, &["policy_us_per_step"]);
        let step = 1e6 / num(r, &["policy_steps_per_second"]);
        assert!(policy > 0.0 && policy < step, "{r}");
        let share = num(r, &["policy_share"]);
        assert!(share > 0.0 && share < 1.0, "{r}");
        assert!(num(r, &["rest_us_per_step"]).is_finite(), "{r}");
    }
    let threaded =
        run_json(&["bench", "actor", "--envs", "2", "--env-threads", "2", "--seconds", "0.5", "--json"]);
    assert_eq!(num(&threaded, &["env_threads"]), 2.0);
    let bad = spikerl().args(["bench", "actor", "--envs", "0"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "zero envs is a usage error");
}

#[test]
fn update_bench_splits_an_iteration_into_phases() {
    let v =
        run_json(&["bench", "update", "--algo", "proxy", "--threads", "1", "--iterations", "6", "--json"]);
    let p = &v["phases"];
    assert_eq!(num(p, &["proxy_steps"]), 3.0);
    // The phases are timed inside `Td3::update`: K proxy steps and the critic step make up most of an
    // iteration without the actor step (the rest is sampling and bookkeeping), never much more.
    let parts = 3.0 * num(p, &["ms_proxy_step"]) + num(p, &["ms_critic_step"]);
    let whole = num(p, &["ms_iteration_without_actor"]);
    assert!(
        parts > 0.5 * whole && parts < 1.25 * whole,
        "phases {parts} ms against the iteration {whole} ms: {p}"
    );
    assert!(num(p, &["ms_actor_step"]) > 0.0 && num(p, &["ms_actor_step_autograd"]) > 0.0, "{p}");
    for k in ["gflop_proxy_mlp", "gflop_critic_step", "gflop_actor_step"] {
        assert!(num(p, &[k]) > 0.0, "{k}: {p}");
    }
    assert!(num(&v, &["sgemm_gflops_best"]) > 0.0, "{v}");
}

#[test]
fn ensemble_bench_reports_seed_iterations_for_each_seed_count() {
    let v = run_json(&[
        "bench",
        "ensemble",
        "--algo",
        "proxy",
        "--seeds",
        "1,2",
        "--batch",
        "32",
        "--threads",
        "1",
        "--iterations",
        "2",
        "--json",
    ]);
    // The options took effect: libtorch reports the thread count it runs with.
    assert_eq!(num(&v, &["threads"]), 1.0, "{v}");
    assert_eq!(num(&v, &["batch"]), 32.0, "{v}");
    // Timed in blocks of an even number of iterations (as many delayed actor updates in each), at least
    // as many as asked for.
    let iterations = num(&v, &["iterations"]);
    assert!(iterations >= 2.0 && iterations % 2.0 == 0.0, "{v}");
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{v}");
    for (row, s) in rows.iter().zip([1.0, 2.0]) {
        assert_eq!(num(row, &["seeds"]), s);
        for k in [
            "ms_per_iteration",
            "iterations_per_second",
            "seed_iterations_per_second",
            "separate_ms_per_round",
            "separate_seed_iterations_per_second",
            "speedup",
        ] {
            let x = num(row, &[k]);
            assert!(x > 0.0 && x.is_finite(), "{k}: {row}");
        }
    }
    let bad = spikerl().args(["bench", "ensemble", "--seeds", "0"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "zero seeds is a usage error");
}

/// `--policy`: the benchmarks measure trained weights (whose spike counts set the SNN's cost) when given a
/// run's `policy.safetensors`, and refuse one of another network with a clear error.
#[test]
fn benches_measure_the_weights_of_a_policy_file() {
    // A real policy file: a lockstep run's checkpoint, for the network the benchmarks build.
    let dir = temp_dir("bench-policy");
    let out = spikerl()
        .args([
            "train",
            "--sync",
            "--env",
            "HalfCheetah-v4",
            "--algo",
            "proxy",
            "--neuron",
            "lif",
            "--seed",
            "3",
        ])
        .args([
            "--steps",
            "1",
            "--random-steps",
            "300",
            "--eval-every",
            "1000",
            "--eval-episodes",
            "1",
            "--no-progress",
        ])
        .arg("--out")
        .arg(&dir)
        .output()
        .expect("spikerl runs");
    assert!(out.status.success(), "train: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(dir.join("checkpoints/policy.safetensors")).expect("the run wrote its policy");
    // Stronger hidden weights fire more, as training makes them.
    let (cfg, mut tensors, version) = spikerl_snn::decode_policy(&bytes).expect("a policy file");
    for (name, t) in tensors.iter_mut() {
        if name.starts_with("layers.") && name.ends_with(".weight") {
            t.data.iter_mut().for_each(|w| *w *= 4.0);
        }
    }
    let strong = dir.join("strong.safetensors");
    std::fs::write(&strong, spikerl_snn::encode_policy(&cfg, &tensors, version).unwrap()).unwrap();
    let strong_arg = strong.to_str().unwrap();

    let inference =
        |extra: &[&str]| run_json(&[&["bench", "inference", "--actions", "500", "--json"], extra].concat());
    let (initial, trained) = (inference(&[]), inference(&["--policy", strong_arg]));
    assert!(initial["policy"].is_null(), "{initial}");
    assert_eq!(trained["policy"].as_str(), Some(strong_arg));
    assert!(
        num(&trained, &["firing_rate"]) > num(&initial, &["firing_rate"]) + 0.05
            && num(&trained, &["sops_per_inference"]) > num(&initial, &["sops_per_inference"]),
        "the file's weights were not the ones measured: {initial} against {trained}"
    );

    let update = |extra: &[&str]| {
        run_json(
            &[
                &["bench", "update", "--algo", "vanilla", "--threads", "1", "--iterations", "4", "--json"],
                extra,
            ]
            .concat(),
        )
    };
    let (initial, trained) = (update(&[]), update(&["--policy", strong_arg]));
    assert_eq!(trained["policy"].as_str(), Some(strong_arg));
    assert!(
        num(&trained, &["actor_firing_rate"]) > num(&initial, &["actor_firing_rate"]) + 0.05,
        "{} against {}",
        initial["actor_firing_rate"],
        trained["actor_firing_rate"]
    );

    let acting =
        run_json(&["bench", "actor", "--envs", "1", "--seconds", "0.3", "--policy", strong_arg, "--json"]);
    assert_eq!(acting["policy"].as_str(), Some(strong_arg), "{acting}");

    // Another network (CLIF) than the file's, or no file: a usage error (exit 2) in one line, not a panic.
    let out =
        spikerl().args(["bench", "inference", "--neuron", "clif", "--policy", strong_arg]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not the one benchmarked") && !err.contains("panicked"), "{err}");
    let missing = dir.join("missing.safetensors");
    let out =
        spikerl().args(["bench", "update", "--iterations", "2", "--policy"]).arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    // An empty minibatch: refused in one line before libtorch sees it.
    let out = spikerl().args(["bench", "update", "--batch", "0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--batch") && !err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
