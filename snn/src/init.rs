//! Fresh parameters without libtorch, for acting before the first weight broadcast, benches and tests.
//!
//! The distributions are the tch network's (`crate::torch`), i.e. PyTorch's defaults: `nn.Linear` weight and
//! bias uniform in `±1/sqrt(fan_in)`; the decoder as PopSAN's grouped `Conv1d(act, act, pop, groups=act)`,
//! whose fan-in is `pop`; encoder `mu` evenly over `[-1, 1]`, `sigma` constant; PLIF's logit at
//! `logit(v_decay)`. The values differ from a tch init with the same seed (different generators).

use crate::SnnError;
use crate::config::{NetworkConfig, PolicyConfig};
use crate::neuron::logit;
use crate::weights::{NamedTensor, NamedTensors, expected_shapes};

/// SplitMix64: tiny, dependency-free and good enough for initial weights.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
}

/// The encoder's initial centres for one observation dimension: `pop` points evenly over [-1, 1].
pub fn encoder_mu_init(pop: usize) -> Vec<f32> {
    if pop == 1 {
        return vec![0.0];
    }
    (0..pop).map(|k| -1.0 + 2.0 * k as f32 / (pop - 1) as f32).collect()
}

/// Freshly initialised parameters for `cfg`, deterministic in `seed`.
pub fn initial_tensors(cfg: &PolicyConfig, seed: u64) -> Result<NamedTensors, SnnError> {
    let shapes = expected_shapes(cfg)?;
    let mut rng = SplitMix(seed);
    let mut out = NamedTensors::new();
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = match name.as_str() {
            "encoder.mu" => encoder_mu_init(shape[1]).repeat(shape[0]),
            "encoder.sigma" => match &cfg.network {
                NetworkConfig::Snn(s) => vec![s.encoder_sigma_init; n],
                NetworkConfig::Ann { .. } => unreachable!("ANNs have no encoder"),
            },
            "decoder.weight" | "decoder.bias" => {
                let pop = shapes_pop(cfg);
                let b = 1.0 / (pop as f32).sqrt();
                (0..n).map(|_| rng.uniform(-b, b)).collect()
            }
            _ if name.ends_with(".decay_logit") => match &cfg.network {
                NetworkConfig::Snn(s) => vec![logit(s.v_decay); n],
                NetworkConfig::Ann { .. } => unreachable!("ANNs have no decay"),
            },
            _ if name.starts_with("log_std.") => {
                let layer: usize = name.split('.').nth(2).and_then(|i| i.parse().ok()).expect("layer name");
                let g = cfg.gaussian.as_ref().expect("log_std tensors exist only with a Gaussian head");
                let fan_in = g.layer_dims(cfg.obs_dim, cfg.act_dim)[layer].0;
                let b = 1.0 / (fan_in as f32).sqrt();
                (0..n).map(|_| rng.uniform(-b, b)).collect()
            }
            _ => {
                // layers.{i}.weight [out, in] / layers.{i}.bias [out]: the layer's fan-in bounds both.
                let layer: usize = name.split('.').nth(1).and_then(|i| i.parse().ok()).expect("layer name");
                let fan_in = cfg.layer_dims()[layer].0;
                let b = 1.0 / (fan_in as f32).sqrt();
                (0..n).map(|_| rng.uniform(-b, b)).collect()
            }
        };
        out.insert(name, NamedTensor { shape, data });
    }
    Ok(out)
}

fn shapes_pop(cfg: &PolicyConfig) -> usize {
    match &cfg.network {
        NetworkConfig::Snn(s) => s.pop_size,
        NetworkConfig::Ann { .. } => 1,
    }
}
