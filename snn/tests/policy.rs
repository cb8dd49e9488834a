//! Plain-Rust inference: a hand-built network with known spikes, SOP counting and the energy model.

mod common;

use common::{cheetah_ann, cheetah_snn, realistic_cheetah_obs};
use spikerl_snn::{
    NamedTensor, NamedTensors, NetworkConfig, NeuronKind, Policy, PolicyConfig, SnnConfig, SnnError,
    ann_equivalent_macs, initial_tensors,
};

fn t(shape: &[usize], data: &[f32]) -> NamedTensor {
    NamedTensor::new(shape.to_vec(), data.to_vec()).unwrap()
}

/// obs 1 -> encoder pop 2 -> hidden 3 -> output pop 2 (act 1), T = 2, LIF.
/// Encoder neuron 0 sits exactly on tanh(obs) (A = 1: fires every step); neuron 1 is far away (A = 0).
/// Hidden neuron 0 gets x = 1 from it (fires both steps, resetting in between), neuron 2 gets 0.2
/// (V = 0.2, 0.35: silent), neuron 1 gets 0. Output neuron 0 gets 0.6 from hidden 0 (fires twice),
/// output neuron 1 gets 0.1 (silent). Decoder: rate [1, 0] -> y = 0.5 * 1 + 0.1 = 0.6.
fn tiny(obs: f32) -> (PolicyConfig, NamedTensors) {
    let snn = SnnConfig { hidden: vec![3], pop_size: 2, timesteps: 2, ..SnnConfig::paper(NeuronKind::Lif) };
    let cfg = PolicyConfig {
        gaussian: None,
        obs_dim: 1,
        act_dim: 1,
        max_action: vec![2.0],
        network: NetworkConfig::Snn(snn),
    };
    let s = obs.tanh();
    let mut m = NamedTensors::new();
    m.insert("encoder.mu".into(), t(&[1, 2], &[s, s + 10.0]));
    m.insert("encoder.sigma".into(), t(&[1, 2], &[0.2, 0.1]));
    m.insert("layers.0.weight".into(), t(&[3, 2], &[1.0, 0.0, 0.0, 0.0, 0.2, 0.0]));
    m.insert("layers.0.bias".into(), t(&[3], &[0.0; 3]));
    m.insert("layers.1.weight".into(), t(&[2, 3], &[0.6, 0.0, 0.0, 0.1, 0.0, 0.0]));
    m.insert("layers.1.bias".into(), t(&[2], &[0.0; 2]));
    m.insert("decoder.weight".into(), t(&[1, 2], &[0.5, 0.3]));
    m.insert("decoder.bias".into(), t(&[1], &[0.1]));
    (cfg, m)
}

#[test]
fn tiny_network_spikes_sops_and_action() {
    let (cfg, m) = tiny(0.3);
    let mut p = Policy::new(&cfg, &m).unwrap();
    let mut a = [0.0f32];
    let trace = p.act_traced(&[0.3], &mut a).unwrap();
    assert_eq!(trace.spikes[0], vec![1, 0, 1, 0], "encoder [t][j]");
    assert_eq!(trace.spikes[1], vec![1, 0, 0, 1, 0, 0], "hidden");
    assert_eq!(trace.spikes[2], vec![1, 0, 1, 0], "output");
    assert!((a[0] - 0.6f32.tanh() * 2.0).abs() < 1e-6, "{a:?}");
    let s = p.stats();
    assert_eq!(s.inferences, 1);
    assert_eq!(s.encoder_spikes, 2);
    assert_eq!(s.spikes_per_layer, vec![2, 2]);
    assert_eq!(s.neurons_per_layer, vec![3, 2]);
    // 2 encoder spikes x fan-out 3 + 2 hidden spikes x fan-out 2 + 2 output spikes x 1 (decoder).
    assert_eq!(s.sops, 6 + 4 + 2);
    assert_eq!(s.macs, 0);
    assert!((s.firing_rate() - 4.0 / 10.0).abs() < 1e-12);
    assert!((s.encoder_firing_rate() - 0.5).abs() < 1e-12);
    assert!((s.energy_nj_per_inference() - 12.0 * 77e-6).abs() < 1e-12);
    // Counters accumulate, and reset.
    p.act(&[0.3], &mut a);
    assert_eq!(p.stats().sops, 24);
    assert_eq!(p.stats().sops_per_inference(), 12.0);
    p.reset_stats();
    assert_eq!(p.stats().sops, 0);
    assert_eq!(p.stats().spikes_per_layer, vec![0, 0]);
    assert_eq!(p.stats().neurons_per_layer, vec![3, 2]);
}

#[test]
fn tiny_network_with_other_neurons() {
    // CLIF: output neuron 1 now integrates its decaying current: I = 0.1, 0.15 -> V = 0.1, 0.225: silent;
    // the hidden neuron 2: I = 0.2, 0.3 -> V = 0.2, 0.45: silent. Same spikes as LIF here.
    let (mut cfg, m) = tiny(-0.4);
    if let NetworkConfig::Snn(s) = &mut cfg.network {
        s.neuron = NeuronKind::Clif;
    }
    let mut p = Policy::new(&cfg, &m).unwrap();
    let mut a = [0.0f32];
    let trace = p.act_traced(&[-0.4], &mut a).unwrap();
    assert_eq!(trace.spikes[1], vec![1, 0, 0, 1, 0, 0]);
    // IF: hidden 2 integrates 0.2 + 0.2 = 0.4 without leak: still silent at T = 2; with T = 3 it fires (0.6).
    let (mut cfg, m) = tiny(0.0);
    if let NetworkConfig::Snn(s) = &mut cfg.network {
        s.neuron = NeuronKind::If;
        s.timesteps = 3;
    }
    let mut p = Policy::new(&cfg, &m).unwrap();
    let trace = p.act_traced(&[0.0], &mut a).unwrap();
    assert_eq!(trace.spikes[1], vec![1, 0, 0, 1, 0, 0, 1, 0, 1]);
    // LIF with T = 3 leaks: 0.2, 0.35, 0.4625: silent.
    if let NetworkConfig::Snn(s) = &mut cfg.network {
        s.neuron = NeuronKind::Lif;
    }
    let mut p = Policy::new(&cfg, &m).unwrap();
    let trace = p.act_traced(&[0.0], &mut a).unwrap();
    assert_eq!(trace.spikes[1], vec![1, 0, 0, 1, 0, 0, 1, 0, 0]);
}

#[test]
fn ann_policy_counts_macs_and_energy() {
    let cfg = cheetah_ann();
    assert_eq!(ann_equivalent_macs(&cfg), 17 * 256 + 256 * 256 + 256 * 6);
    // The SNN's ANN equivalent is the paper's 256-256 actor on the raw observation.
    assert_eq!(ann_equivalent_macs(&cheetah_snn(NeuronKind::Lif)), 71_424);
    let mut p = Policy::new(&cfg, &initial_tensors(&cfg, 0).unwrap()).unwrap();
    let mut a = [0.0f32; 6];
    p.act(&[0.1; 17], &mut a);
    let s = p.stats();
    assert_eq!(s.macs, 71_424);
    assert_eq!(s.sops, 0);
    assert_eq!(s.firing_rate(), 0.0);
    // 71,424 MACs x 3.97 pJ = 283.55 nJ (the paper: 71,014 MACs, about 282 nJ).
    assert!((s.energy_nj_per_inference() - 283.553_28).abs() < 1e-6);
}

#[test]
fn ann_matches_a_hand_computation() {
    let cfg = PolicyConfig {
        gaussian: None,
        obs_dim: 2,
        act_dim: 1,
        max_action: vec![3.0],
        network: NetworkConfig::Ann { hidden: vec![2] },
    };
    let mut m = NamedTensors::new();
    m.insert("layers.0.weight".into(), t(&[2, 2], &[1.0, 2.0, -1.0, -1.0]));
    m.insert("layers.0.bias".into(), t(&[2], &[0.5, 0.0]));
    m.insert("layers.1.weight".into(), t(&[1, 2], &[0.5, 7.0]));
    m.insert("layers.1.bias".into(), t(&[1], &[-0.25]));
    let mut p = Policy::new(&cfg, &m).unwrap();
    let mut a = [0.0f32];
    // h = relu([1*0.2 + 2*0.1 + 0.5, -0.3]) = [0.9, 0]; y = 0.45 - 0.25 = 0.2.
    p.act(&[0.2, 0.1], &mut a);
    assert!((a[0] - 0.2f32.tanh() * 3.0).abs() < 1e-6);
}

#[test]
fn batch_equals_single() {
    for kind in NeuronKind::ALL {
        let cfg = cheetah_snn(kind);
        let w = initial_tensors(&cfg, 9).unwrap();
        let mut p = Policy::new(&cfg, &w).unwrap();
        let obs: Vec<f32> = realistic_cheetah_obs().concat();
        let mut batch = vec![0.0; 6 * 4];
        p.act_batch(&obs, &mut batch);
        let mut single = vec![0.0; 6];
        for (i, o) in obs.chunks(17).enumerate() {
            p.act(o, &mut single);
            assert_eq!(&batch[i * 6..(i + 1) * 6], single.as_slice(), "{kind}");
        }
        assert!(batch.iter().all(|a| a.abs() <= 1.0));
        assert_eq!(p.stats().inferences, 8);
    }
}

#[test]
fn new_validates_every_tensor() {
    let cfg = cheetah_snn(NeuronKind::Plif);
    let good = initial_tensors(&cfg, 0).unwrap();
    assert!(Policy::new(&cfg, &good).is_ok());
    let mut w = good.clone();
    w.remove("layers.1.decay_logit");
    assert!(matches!(Policy::new(&cfg, &w), Err(SnnError::MissingTensor { .. })));
    let mut w = good.clone();
    w.insert("extra".into(), t(&[1], &[0.0]));
    assert!(matches!(Policy::new(&cfg, &w), Err(SnnError::UnexpectedTensor { .. })));
    let mut w = good.clone();
    w.insert("encoder.mu".into(), t(&[10, 17], &[0.0; 170]));
    assert!(matches!(Policy::new(&cfg, &w), Err(SnnError::ShapeMismatch { .. })));
    // LIF weights do not fit a PLIF network, and vice versa.
    assert!(Policy::new(&cheetah_snn(NeuronKind::Lif), &good).is_err());
}
