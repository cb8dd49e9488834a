//! `spikerl export --format nir`: the file loads with the `nir` package's own reader, and a NumPy simulation
//! of the graph from NIR's definitions (tests/fixtures/nir_simulate.py, none of spikerl's code) fires the
//! same spikes, step for step and neuron for neuron, as spikerl's inference on 100 observations; DN and ANN
//! policies are refused with exit 2.

mod common;
use common::{Need, nir_python, require, spikerl, temp_dir};

use std::path::{Path, PathBuf};

use spikerl_snn::neuron::logit;
use spikerl_snn::{NamedTensors, NetworkConfig, NeuronKind, Policy, PolicyConfig, SnnConfig};

const OBSERVATIONS: usize = 100;

/// Pendulum's shapes with the paper's network.
fn pendulum(neuron: NeuronKind) -> PolicyConfig {
    PolicyConfig {
        gaussian: None,
        obs_dim: 3,
        act_dim: 1,
        max_action: vec![2.0],
        network: NetworkConfig::Snn(SnnConfig::paper(neuron)),
    }
}

fn write_policy(dir: &Path, cfg: &PolicyConfig, tensors: &NamedTensors) -> PathBuf {
    let path = dir.join("policy.safetensors");
    std::fs::write(&path, spikerl_snn::encode_policy(cfg, tensors, 7).unwrap()).unwrap();
    path
}

/// Initial weights, optionally scaled up so that the deeper layers fire often (initial weights fire at
/// about 5%).
fn initial(cfg: &PolicyConfig, gain: f32) -> NamedTensors {
    let mut w = spikerl_snn::initial_tensors(cfg, 3).unwrap();
    for (name, t) in w.iter_mut() {
        if name.starts_with("layers.") && name.ends_with(".weight") {
            t.data.iter_mut().for_each(|v| *v *= gain);
        }
    }
    w
}

/// Deterministic observations spread over the encoder's range.
fn observations(obs_dim: usize) -> Vec<Vec<f32>> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..OBSERVATIONS)
        .map(|_| {
            (0..obs_dim)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 6.0
                })
                .collect()
        })
        .collect()
}

fn export(policy: &Path, out: &Path) -> std::process::Output {
    spikerl()
        .args(["export", "--policy"])
        .arg(policy)
        .args(["--format", "nir", "--out"])
        .arg(out)
        .output()
        .unwrap()
}

/// Exports `policy`, runs spikerl's inference on 100 observations and the NIR simulation on the file;
/// returns the simulation's summary line. Panics with the differences if any spike differs.
fn check_spike_for_spike(dir: &Path, policy: &Path) -> String {
    let nir_file = dir.join("policy.nir");
    let out = export(policy, &nir_file);
    assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));

    let (cfg, tensors, _) = spikerl_snn::decode_policy(&std::fs::read(policy).unwrap()).unwrap();
    let mut p = Policy::new(&cfg, &tensors).unwrap();
    let obs = observations(cfg.obs_dim);
    let mut actions = Vec::new();
    let mut spikes = Vec::new();
    for o in &obs {
        let mut a = vec![0.0; cfg.act_dim];
        let trace = p.act_traced(o, &mut a).expect("a spiking policy");
        actions.push(a);
        spikes.push(trace.spikes);
    }
    let reference = dir.join("reference.json");
    let json = serde_json::json!({ "observations": obs, "actions": actions, "spikes": spikes });
    std::fs::write(&reference, serde_json::to_vec(&json).unwrap()).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nir_simulate.py");
    let sim =
        std::process::Command::new(nir_python()).arg(script).arg(&nir_file).arg(&reference).output().unwrap();
    let stdout = String::from_utf8_lossy(&sim.stdout).into_owned();
    assert!(
        sim.status.success(),
        "the NIR simulation disagrees with spikerl:\n{stdout}\n{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    assert!(stdout.contains("mismatches: 0"), "{stdout}");
    eprintln!("{}", stdout.trim());
    stdout
}

fn check_initial(name: &str, cfg: &PolicyConfig, tensors: &NamedTensors) {
    let dir = temp_dir(name);
    let summary = check_spike_for_spike(&dir, &write_policy(&dir, cfg, tensors));
    assert!(summary.contains(&format!("compared: {OBSERVATIONS} observations")), "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lif_initial_weights_fire_identically_in_nir() {
    if !require(Need::NirPython) {
        return;
    }
    let cfg = pendulum(NeuronKind::Lif);
    check_initial("nir-lif", &cfg, &initial(&cfg, 1.0));
    check_initial("nir-lif-hot", &cfg, &initial(&cfg, 3.0));
}

#[test]
fn clif_fires_identically_as_cubalif() {
    if !require(Need::NirPython) {
        return;
    }
    let cfg = pendulum(NeuronKind::Clif);
    check_initial("nir-clif-hot", &cfg, &initial(&cfg, 3.0));
}

#[test]
fn if_and_plif_fire_identically_in_nir() {
    if !require(Need::NirPython) {
        return;
    }
    let cfg = pendulum(NeuronKind::If);
    check_initial("nir-if-hot", &cfg, &initial(&cfg, 3.0));
    let cfg = pendulum(NeuronKind::Plif);
    let mut w = initial(&cfg, 3.0);
    for (i, d) in [0.6f32, 0.9, 0.5].into_iter().enumerate() {
        w.get_mut(&format!("layers.{i}.decay_logit")).unwrap().data[0] = logit(d);
    }
    check_initial("nir-plif-hot", &cfg, &w);
}

/// A policy after a few hundred proxy-target training iterations on Pendulum (seconds).
fn trained(neuron: &str) {
    let dir = temp_dir(&format!("nir-trained-{neuron}"));
    let run = dir.join("run");
    let out = spikerl()
        .args(["train", "--env", "Pendulum-v1", "--algo", "proxy", "--neuron", neuron, "--sync"])
        .args(["--steps", "300", "--random-steps", "256", "--eval-every", "300", "--eval-episodes", "1"])
        .args(["--threads", "1", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "train failed: {}", String::from_utf8_lossy(&out.stderr));
    check_spike_for_spike(&dir, &run.join("checkpoints/policy.safetensors"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trained_lif_and_clif_fire_identically_in_nir() {
    if !require(Need::NirPython) {
        return;
    }
    trained("lif");
    trained("clif");
}

#[test]
fn dn_and_ann_policies_are_refused() {
    let dir = temp_dir("nir-refused");
    let dn = pendulum(NeuronKind::Dn);
    let policy = write_policy(&dir, &dn, &initial(&dn, 1.0));
    let out = export(&policy, &dir.join("dn.nir"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("dn neuron cannot be expressed in NIR"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(!dir.join("dn.nir").exists());

    let ann = PolicyConfig { network: NetworkConfig::Ann { hidden: vec![16] }, ..pendulum(NeuronKind::Lif) };
    let policy = write_policy(&dir, &ann, &spikerl_snn::initial_tensors(&ann, 0).unwrap());
    let out = export(&policy, &dir.join("ann.nir"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ANN policy"), "{stderr}");

    let out = export(&dir.join("missing.safetensors"), &dir.join("x.nir"));
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
