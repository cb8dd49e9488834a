// Shared fixtures (included with `mod common;`).
#![allow(dead_code)]

use spikerl_snn::{NetworkConfig, NeuronKind, PolicyConfig, SnnConfig};

/// HalfCheetah shapes: obs 17, act 6, max_action 1.
pub fn cheetah(network: NetworkConfig) -> PolicyConfig {
    PolicyConfig { gaussian: None, obs_dim: 17, act_dim: 6, max_action: vec![1.0; 6], network }
}

pub fn cheetah_snn(neuron: NeuronKind) -> PolicyConfig {
    cheetah(NetworkConfig::Snn(SnnConfig::paper(neuron)))
}

pub fn cheetah_ann() -> PolicyConfig {
    cheetah(NetworkConfig::Ann { hidden: vec![256, 256] })
}

/// Observations as HalfCheetah produces them: joint angles ~0.1-0.5, velocities up to ~10.
pub fn realistic_cheetah_obs() -> Vec<[f32; 17]> {
    vec![
        [0.0; 17],
        [-0.05, 0.02, 0.1, -0.3, 0.2, 0.4, -0.25, 0.3, 1.2, -0.1, 0.4, 2.5, -3.0, 1.8, 5.5, -7.0, 0.9],
        [0.12, -0.08, -0.45, 0.6, -0.5, -0.2, 0.55, -0.35, 4.8, 0.3, -1.1, -6.2, 8.4, -9.5, 3.1, 2.2, -4.4],
        [-0.2, 0.15, 0.3, 0.05, -0.15, 0.65, 0.1, 0.2, 9.5, -0.6, 2.0, 11.0, -12.0, 6.0, -3.5, 10.0, 1.5],
    ]
}
