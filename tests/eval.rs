//! `spikerl eval` against the real binary: a short trained run evaluated from its run folder and from its
//! policy file (same numbers, the run's own evaluation reproduced), activity counters that add up, a
//! spike raster, ANN policies, and bad input answered with exit 2 and one line.

mod common;

use common::*;
use serde_json::Value;
use spikerl_snn::{NetworkConfig, NeuronKind, PolicyConfig, SnnConfig, encode_policy, initial_tensors};
use std::path::Path;
use std::process::Output;

fn eval(args: &[&str]) -> Output {
    spikerl().arg("eval").args(args).output().unwrap()
}

fn eval_json(args: &[&str]) -> Value {
    let out = eval(&[args, &["--json"]].concat());
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim().lines().count(), 1, "one JSON object: {text}");
    serde_json::from_str(&text).unwrap()
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// The evals.csv row with the given policy version, as header -> value.
fn evals_row(run: &Path, version: u64) -> std::collections::HashMap<String, f64> {
    let text = std::fs::read_to_string(run.join("evals.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<std::collections::HashMap<String, f64>> = lines
        .map(|l| header.iter().map(|h| h.to_string()).zip(l.split(',').map(|c| c.parse().unwrap())).collect())
        .collect();
    rows.into_iter()
        .rev()
        .find(|r| r["policy_version"] == version as f64)
        .expect("an evaluation of that version")
}

/// Activity that adds up: rates in [0, 1], dead + saturated <= neurons, SOPs from the layers' spikes.
fn check_activity(v: &Value) {
    let layers = v["layers"].as_array().unwrap();
    let inferences = f(v, "inferences");
    let t = f(v, "timesteps");
    let mut sops = 0.0;
    for (i, l) in layers.iter().enumerate() {
        let n = f(l, "neurons");
        let rate = f(l, "firing_rate");
        assert!((0.0..=1.0).contains(&rate), "{l}");
        assert!((rate - f(l, "spikes") / (n * t * inferences)).abs() < 1e-12, "{l}");
        assert!(f(l, "dead") + f(l, "saturated") <= n, "{l}");
        let fan_out = layers.get(i + 1).map_or(1.0, |next| f(next, "neurons"));
        sops += f(l, "spikes") * fan_out;
    }
    let sops = sops / inferences;
    assert!((sops - f(v, "sops_per_inference")).abs() <= 1e-9 * sops.max(1.0), "{sops} vs {v}");
    assert!((f(v, "energy_nj_per_inference") - sops * spikerl_snn::SOP_ENERGY_PJ / 1000.0).abs() < 1e-9);
    let spiking: Vec<&Value> = layers.iter().skip(1).collect();
    let rate = spiking.iter().map(|l| f(l, "spikes")).sum::<f64>()
        / (spiking.iter().map(|l| f(l, "neurons")).sum::<f64>() * t * inferences);
    assert!((rate - f(v, "firing_rate")).abs() < 1e-12);
}

fn is_png(bytes: &[u8]) -> bool {
    bytes.len() > 10_000
        && bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        && &bytes[12..16] == b"IHDR"
        && bytes.ends_with(b"IEND\xae\x42\x60\x82")
}

#[test]
fn run_folder_and_policy_file_reproduce_the_runs_evaluation() {
    let dir = temp_dir("eval-trained");
    let run = dir.join("run");
    let out = spikerl()
        .args(["train", "--env", "Pendulum-v1", "--algo", "proxy", "--neuron", "lif", "--sync"])
        .args(["--steps", "300", "--random-steps", "256", "--eval-every", "300", "--eval-episodes", "2"])
        .args(["--threads", "1", "--seed", "3", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run_s = run.to_str().unwrap();
    let file = run.join("checkpoints/policy.safetensors");
    let file_s = file.to_str().unwrap();

    // The run folder: its newest policy on its env, seeded as its evaluations (seed 3 + 100).
    // Its evaluations' episode count (2) by default.
    let from_run = eval_json(&["--policy", run_s]);
    let from_file =
        eval_json(&["--policy", file_s, "--env", "Pendulum-v1", "--seed", "103", "--episodes", "2"]);
    assert_eq!(from_run, from_file);
    assert_eq!(from_run["seed"], 103);
    assert_eq!(from_run["env"], "Pendulum-v1");
    assert_eq!(from_run["episodes"], 2);
    assert_eq!(from_run["lengths"], serde_json::json!([200, 200]));
    assert_eq!(f(&from_run, "inferences"), 400.0);
    assert_eq!(from_run["network"], "snn");
    assert_eq!(from_run["layers"].as_array().unwrap().len(), 4, "encoder, 2 hidden, output");
    check_activity(&from_run);

    // The same deterministic episodes as the trainer's evaluation of that policy version.
    let row = evals_row(&run, from_run["policy_version"].as_u64().unwrap());
    assert!((f(&from_run, "return_mean") - row["avg_return"]).abs() < 1e-5, "{from_run} vs {row:?}");
    assert!((f(&from_run, "return_std") - row["std_return"]).abs() < 1e-5);
    assert!((f(&from_run, "return_min") - row["min_return"]).abs() < 1e-5);
    assert!((f(&from_run, "firing_rate") - row["firing_rate"]).abs() < 1e-6);
    assert!((f(&from_run, "sops_per_inference") - row["sops_per_inference"]).abs() < 0.1);

    // A matching --env is accepted; the table prints the same return.
    let table = eval(&["--policy", run_s, "--env", "Pendulum-v1", "--episodes", "2"]);
    assert!(table.status.success());
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains(&format!("mean {:.2}", f(&from_run, "return_mean"))), "{text}");
    assert!(text.contains("layers.2") && text.contains("saturated") && text.contains("SOPs"), "{text}");

    // Rasters, PNG and SVG.
    let png = dir.join("r.png");
    let svg = dir.join("r.svg");
    let with_png = eval_json(&["--policy", run_s, "--episodes", "1", "--raster", png.to_str().unwrap()]);
    assert_eq!(with_png["raster"], png.to_str().unwrap());
    assert!(is_png(&std::fs::read(&png).unwrap()), "{} is not a PNG", png.display());
    let out = eval(&["--policy", run_s, "--episodes", "1", "--raster", svg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<svg") && svg_text.trim_end().ends_with("</svg>"));
    assert!(svg_text.contains("encoder") && svg_text.contains("layers.1"));

    // A different --env than the run's is refused.
    let out = eval(&["--policy", run_s, "--env", "MountainCarContinuous-v0"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn pendulum_snn() -> PolicyConfig {
    PolicyConfig {
        gaussian: None,
        obs_dim: 3,
        act_dim: 1,
        max_action: vec![2.0],
        network: NetworkConfig::Snn(SnnConfig { hidden: vec![64, 32], ..SnnConfig::paper(NeuronKind::Lif) }),
    }
}

fn write_policy(path: &Path, cfg: &PolicyConfig, edit: impl Fn(&str, &mut Vec<f32>)) {
    let mut tensors = initial_tensors(cfg, 1).unwrap();
    for (name, t) in tensors.iter_mut() {
        edit(name, &mut t.data);
    }
    std::fs::write(path, encode_policy(cfg, &tensors, 7).unwrap()).unwrap();
}

#[test]
fn dead_and_saturated_neurons_are_counted() {
    let dir = temp_dir("eval-extremes");
    let cfg = pendulum_snn();
    let loud = dir.join("loud.safetensors");
    write_policy(&loud, &cfg, |name, data| {
        if name.starts_with("layers.") && name.ends_with(".bias") {
            data.fill(100.0);
        }
    });
    let silent = dir.join("silent.safetensors");
    write_policy(&silent, &cfg, |name, data| {
        if name.starts_with("layers.") && name.ends_with(".bias") {
            data.fill(-100.0);
        }
    });
    let args = |p: &Path| {
        vec!["--policy".to_string(), p.display().to_string(), "--env".into(), "Pendulum-v1".into()]
    };
    let run = |p: &Path| {
        let a = args(p);
        eval_json(
            &[a.iter().map(String::as_str).collect::<Vec<_>>().as_slice(), &["--episodes", "1"]].concat(),
        )
    };
    let loud = run(&loud);
    assert_eq!(loud["policy_version"], 7);
    check_activity(&loud);
    for l in loud["layers"].as_array().unwrap().iter().skip(1) {
        assert_eq!(l["saturated"], l["neurons"], "{l}");
        assert_eq!(l["dead"], 0, "{l}");
        assert_eq!(f(l, "firing_rate"), 1.0);
    }
    let silent = run(&silent);
    check_activity(&silent);
    for l in silent["layers"].as_array().unwrap().iter().skip(1) {
        assert_eq!(l["dead"], l["neurons"], "{l}");
        assert_eq!(f(l, "firing_rate"), 0.0);
    }
    // Only the encoder's spikes into layer 0 (64 wide) are synaptic operations.
    let sops = f(&silent, "encoder_firing_rate") * 30.0 * 5.0 * 64.0;
    assert!((f(&silent, "sops_per_inference") - sops).abs() < 1e-9 * sops, "{silent}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ann_policy_evaluates_without_firing_fields() {
    let dir = temp_dir("eval-ann");
    let cfg = PolicyConfig {
        gaussian: None,
        obs_dim: 3,
        act_dim: 1,
        max_action: vec![2.0],
        network: NetworkConfig::Ann { hidden: vec![64, 64] },
    };
    let file = dir.join("ann.safetensors");
    write_policy(&file, &cfg, |_, _| {});
    let v = eval_json(&["--policy", file.to_str().unwrap(), "--env", "Pendulum-v1", "--episodes", "2"]);
    assert_eq!(v["network"], "ann");
    assert_eq!(v["lengths"], serde_json::json!([200, 200]));
    assert!(v["layers"].is_null() && v["firing_rate"].is_null() && v["sops_per_inference"].is_null(), "{v}");
    assert_eq!(f(&v, "macs_per_inference"), (3 * 64 + 64 * 64 + 64) as f64);
    let table = eval(&["--policy", file.to_str().unwrap(), "--env", "Pendulum-v1", "--episodes", "1"]);
    assert!(table.status.success() && String::from_utf8_lossy(&table.stdout).contains("MACs"));
    // No spikes to draw.
    let out = eval(&["--policy", file.to_str().unwrap(), "--env", "Pendulum-v1", "--raster", "x.png"]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = temp_dir("eval-bad");
    let good = dir.join("good.safetensors");
    write_policy(&good, &pendulum_snn(), |_, _| {});
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a weight file at all").unwrap();
    let cheetah = dir.join("cheetah.safetensors");
    let cheetah_cfg = PolicyConfig { obs_dim: 17, act_dim: 6, max_action: vec![1.0; 6], ..pendulum_snn() };
    write_policy(&cheetah, &cheetah_cfg, |_, _| {});
    let ann = dir.join("ann.safetensors");
    let ann_cfg = PolicyConfig {
        gaussian: None,
        obs_dim: 17,
        act_dim: 6,
        max_action: vec![1.0; 6],
        network: NetworkConfig::Ann { hidden: vec![8] },
    };
    write_policy(&ann, &ann_cfg, |_, _| {});
    let empty_dir = dir.join("not-a-run");
    std::fs::create_dir_all(&empty_dir).unwrap();

    let s = |p: &Path| p.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--policy".into(),
                s(&dir.join("missing.safetensors")),
                "--env".into(),
                "Pendulum-v1".into(),
            ],
            "cannot read",
        ),
        (vec!["--policy".into(), s(&garbage), "--env".into(), "Pendulum-v1".into()], "not a policy file"),
        (vec!["--policy".into(), s(&truncated), "--env".into(), "Pendulum-v1".into()], "not a policy file"),
        (vec!["--policy".into(), s(&cheetah), "--env".into(), "Pendulum-v1".into()], "17 observations"),
        (vec!["--policy".into(), s(&ann), "--env".into(), "Pendulum-v1".into()], "17 observations"),
        (vec!["--policy".into(), s(&good), "--env".into(), "Nope-v9".into()], "unknown environment"),
        (vec!["--policy".into(), s(&good)], "--env is required"),
        (vec!["--policy".into(), s(&empty_dir)], "manifest.json"),
        (
            vec![
                "--policy".into(),
                s(&good),
                "--env".into(),
                "Pendulum-v1".into(),
                "--episodes".into(),
                "0".into(),
            ],
            "positive",
        ),
        (
            vec![
                "--policy".into(),
                s(&good),
                "--env".into(),
                "Pendulum-v1".into(),
                "--raster".into(),
                s(&dir.join("r.gif")),
            ],
            ".png or .svg",
        ),
    ];
    for (args, says) in cases {
        let out = eval(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
