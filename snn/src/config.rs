//! Policy configuration: which network maps observations to actions, and its shape.
//!
//! Configurations travel inside every weight file (see [`crate::weights`]), so they are serde types whose
//! JSON form is part of the wire format. Optional constants have serde defaults (the paper's values), so a
//! config file may name only what it changes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::SnnError;

/// The spiking neuron model of every layer of the spiking actor. See [`crate::neuron`] for the dynamics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NeuronKind {
    /// Leaky integrate-and-fire, fixed membrane decay.
    Lif,
    /// Current-based LIF (PopSAN's neuron): the synaptic current decays too.
    Clif,
    /// Dynamic neuron (MDC-SAN): two-variable (V, U) quadratic dynamics.
    Dn,
    /// Parametric LIF: LIF whose per-layer membrane decay is learned (`layers.{i}.decay_logit`).
    Plif,
    /// Integrate-and-fire: LIF without leak (decay 1).
    If,
}

impl NeuronKind {
    /// Every kind, for tests, benches and CLI help.
    pub const ALL: [NeuronKind; 5] = [Self::Lif, Self::Clif, Self::Dn, Self::Plif, Self::If];

    /// The lowercase name used in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lif => "lif",
            Self::Clif => "clif",
            Self::Dn => "dn",
            Self::Plif => "plif",
            Self::If => "if",
        }
    }
}

impl fmt::Display for NeuronKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NeuronKind {
    type Err = SnnError;
    fn from_str(s: &str) -> Result<Self, SnnError> {
        Self::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
            SnnError::InvalidConfig {
                field: "neuron",
                reason: format!("unknown neuron kind {s:?} (expected one of lif, clif, dn, plif, if)"),
            }
        })
    }
}

/// Constants of the dynamic neuron (DN, MDC-SAN), as method.md writes them:
/// `V = V (1 - S) + reset_v S; U = U + u_jump S; dV = V^2 - V - U + I; dU = du_dv V + du_du U`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnConstants {
    /// Voltage a spiking neuron restarts from (0.021).
    pub reset_v: f32,
    /// Jump of the recovery variable U on a spike (0.132).
    pub u_jump: f32,
    /// Coefficient of V in dU (-0.172).
    pub du_dv: f32,
    /// Coefficient of U in dU (0.529).
    pub du_du: f32,
}

impl Default for DnConstants {
    fn default() -> Self {
        Self { reset_v: 0.021, u_jump: 0.132, du_dv: -0.172, du_du: 0.529 }
    }
}

/// Shape and constants of the population-coded spiking actor (PopSAN style; method.md "The spiking actor").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnnConfig {
    /// Neuron model of every spiking layer.
    pub neuron: NeuronKind,
    /// Widths of the hidden spiking layers (paper: 256, 256).
    pub hidden: Vec<usize>,
    /// Neurons per observation dimension in the encoder and per action dimension in the output layer (10).
    pub pop_size: usize,
    /// Simulation steps per inference (5).
    pub timesteps: usize,
    /// Firing threshold V_th of the network's neurons (0.5).
    pub v_threshold: f32,
    /// Initial width of the encoder's Gaussian receptive fields (sqrt(0.05)).
    pub encoder_sigma_init: f32,
    /// Half-width of the rectangular surrogate gradient: dS/dV = 1 where |V - V_th| < this (0.5).
    pub surrogate_window: f32,
    /// Membrane decay of LIF and CLIF, and PLIF's initial decay (0.75).
    pub v_decay: f32,
    /// Synaptic current decay of CLIF and DN (0.5).
    pub i_decay: f32,
    /// Threshold of the encoder's deterministic soft-reset neurons (0.999).
    pub encoder_threshold: f32,
    /// DN constants.
    pub dn: DnConstants,
}

impl SnnConfig {
    /// The paper's spiking actor with the given neuron: 256-256 hidden, population 10, T = 5.
    pub fn paper(neuron: NeuronKind) -> Self {
        Self {
            neuron,
            hidden: vec![256, 256],
            pop_size: 10,
            timesteps: 5,
            v_threshold: 0.5,
            encoder_sigma_init: 0.05f32.sqrt(),
            surrogate_window: 0.5,
            v_decay: 0.75,
            i_decay: 0.5,
            encoder_threshold: 0.999,
            dn: DnConstants::default(),
        }
    }
}

impl Default for SnnConfig {
    /// The paper's LIF actor.
    fn default() -> Self {
        Self::paper(NeuronKind::Lif)
    }
}

/// Which network maps observations to actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NetworkConfig {
    /// A ReLU multilayer perceptron on the raw observation (the paper's ANN baseline actor, and the proxy).
    Ann { hidden: Vec<usize> },
    /// The population-coded spiking actor.
    Snn(SnnConfig),
}

/// Everything needed to build a policy besides its weights. Part of every weight file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    /// Observation dimension.
    pub obs_dim: usize,
    /// Action dimension.
    pub act_dim: usize,
    /// Per action dimension, the bound of the action: output = tanh(.) * max_action.
    pub max_action: Vec<f32>,
    /// The network.
    pub network: NetworkConfig,
    /// A stochastic policy's Gaussian (SAC): the network's pre-tanh output is the mean and a small ReLU
    /// MLP on the observation gives the log-std; actors sample `tanh(mean + std * eps) * max_action`,
    /// evaluation takes the mean. `None`: a deterministic policy (TD3, DDPG). Absent from the JSON when
    /// `None`, so deterministic weight files are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gaussian: Option<GaussianHead>,
}

/// The log-std network of a stochastic policy: `log_std.layers.{i}` (ReLU between layers), its output
/// squashed into `[log_std_min, log_std_max]` as CleanRL's SAC squashes it:
/// `min + (max - min) * (tanh(raw) + 1) / 2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaussianHead {
    pub hidden: Vec<usize>,
    pub log_std_min: f32,
    pub log_std_max: f32,
}

impl Default for GaussianHead {
    /// A 64-64 network and CleanRL's bounds [-5, 2].
    fn default() -> Self {
        GaussianHead { hidden: vec![64, 64], log_std_min: -5.0, log_std_max: 2.0 }
    }
}

impl GaussianHead {
    /// The log-std for the network's raw output `raw`.
    pub fn squash(&self, raw: f32) -> f32 {
        self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (raw.tanh() + 1.0)
    }

    /// Widths of `log_std.layers.{i}` as (in, out) pairs.
    pub fn layer_dims(&self, obs_dim: usize, act_dim: usize) -> Vec<(usize, usize)> {
        let widths: Vec<usize> =
            std::iter::once(obs_dim).chain(self.hidden.iter().copied()).chain([act_dim]).collect();
        widths.windows(2).map(|w| (w[0], w[1])).collect()
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SnnError {
    SnnError::InvalidConfig { field, reason: reason.into() }
}

impl PolicyConfig {
    /// Checks every value a network build relies on. Configs come from files and the wire, so nothing
    /// downstream re-checks them.
    pub fn validate(&self) -> Result<(), SnnError> {
        if self.obs_dim == 0 {
            return Err(invalid("obs_dim", "must be positive"));
        }
        if self.act_dim == 0 {
            return Err(invalid("act_dim", "must be positive"));
        }
        if self.max_action.len() != self.act_dim {
            return Err(invalid(
                "max_action",
                format!("has {} entries for act_dim {}", self.max_action.len(), self.act_dim),
            ));
        }
        if let Some(m) = self.max_action.iter().find(|m| !(m.is_finite() && **m > 0.0)) {
            return Err(invalid("max_action", format!("entries must be finite and positive, found {m}")));
        }
        // Guards against absurd sizes from a corrupt file before anything allocates.
        const MAX_WIDTH: usize = 1 << 16;
        let check_widths = |hidden: &[usize]| -> Result<(), SnnError> {
            if hidden.iter().any(|&h| h == 0 || h > MAX_WIDTH) {
                return Err(invalid(
                    "hidden",
                    format!("widths must be in 1..={MAX_WIDTH}, found {hidden:?}"),
                ));
            }
            if hidden.len() > 64 {
                return Err(invalid("hidden", "more than 64 layers"));
            }
            Ok(())
        };
        if self.obs_dim > MAX_WIDTH || self.act_dim > MAX_WIDTH {
            return Err(invalid("obs_dim", format!("obs_dim and act_dim must be at most {MAX_WIDTH}")));
        }
        if let Some(g) = &self.gaussian {
            check_widths(&g.hidden)?;
            if !(g.log_std_min.is_finite() && g.log_std_max.is_finite() && g.log_std_min < g.log_std_max) {
                return Err(invalid(
                    "gaussian",
                    format!(
                        "log-std bounds must be finite with min < max, found [{}, {}]",
                        g.log_std_min, g.log_std_max
                    ),
                ));
            }
        }
        match &self.network {
            NetworkConfig::Ann { hidden } => check_widths(hidden)?,
            NetworkConfig::Snn(s) => {
                check_widths(&s.hidden)?;
                if s.pop_size == 0 || s.pop_size > 1024 {
                    return Err(invalid("pop_size", format!("must be in 1..=1024, found {}", s.pop_size)));
                }
                if s.timesteps == 0 || s.timesteps > 1024 {
                    return Err(invalid("timesteps", format!("must be in 1..=1024, found {}", s.timesteps)));
                }
                if (self.obs_dim * s.pop_size).max(self.act_dim * s.pop_size) > MAX_WIDTH {
                    return Err(invalid("pop_size", "population layers too wide"));
                }
                let finite = [
                    ("v_threshold", s.v_threshold),
                    ("encoder_sigma_init", s.encoder_sigma_init),
                    ("surrogate_window", s.surrogate_window),
                    ("v_decay", s.v_decay),
                    ("i_decay", s.i_decay),
                    ("encoder_threshold", s.encoder_threshold),
                    ("dn.reset_v", s.dn.reset_v),
                    ("dn.u_jump", s.dn.u_jump),
                    ("dn.du_dv", s.dn.du_dv),
                    ("dn.du_du", s.dn.du_du),
                ];
                if let Some((name, v)) = finite.iter().find(|(_, v)| !v.is_finite()) {
                    return Err(invalid("snn", format!("{name} must be finite, found {v}")));
                }
                if s.encoder_sigma_init <= 0.0 {
                    return Err(invalid("encoder_sigma_init", "must be positive"));
                }
                if s.encoder_threshold <= 0.0 {
                    return Err(invalid("encoder_threshold", "must be positive"));
                }
                if s.surrogate_window < 0.0 {
                    return Err(invalid("surrogate_window", "must not be negative"));
                }
                if s.neuron == NeuronKind::Plif && !(s.v_decay > 0.0 && s.v_decay < 1.0) {
                    // PLIF stores the decay as a logit; 0 and 1 have none.
                    return Err(invalid("v_decay", "PLIF's initial decay must lie strictly between 0 and 1"));
                }
            }
        }
        Ok(())
    }

    /// Widths of the weight layers `layers.{i}` as (in, out) pairs.
    pub fn layer_dims(&self) -> Vec<(usize, usize)> {
        let (input, hidden, output) = match &self.network {
            NetworkConfig::Ann { hidden } => (self.obs_dim, hidden, self.act_dim),
            NetworkConfig::Snn(s) => (self.obs_dim * s.pop_size, &s.hidden, self.act_dim * s.pop_size),
        };
        let mut dims = Vec::with_capacity(hidden.len() + 1);
        let mut prev = input;
        for &h in hidden.iter().chain(std::iter::once(&output)) {
            dims.push((prev, h));
            prev = h;
        }
        dims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheetah(network: NetworkConfig) -> PolicyConfig {
        PolicyConfig { gaussian: None, obs_dim: 17, act_dim: 6, max_action: vec![1.0; 6], network }
    }

    #[test]
    fn neuron_kind_names_round_trip() {
        for k in NeuronKind::ALL {
            assert_eq!(k.to_string().parse::<NeuronKind>().unwrap(), k);
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert!("lifx".parse::<NeuronKind>().is_err());
    }

    #[test]
    fn config_json_is_tagged_and_defaults_apply() {
        let cfg = cheetah(NetworkConfig::Snn(SnnConfig::paper(NeuronKind::Clif)));
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains("\"kind\":\"snn\""), "{json}");
        assert_eq!(serde_json::from_str::<PolicyConfig>(&json).unwrap(), cfg);
        let short = r#"{"obs_dim":17,"act_dim":6,"max_action":[1,1,1,1,1,1],"network":{"kind":"snn","neuron":"clif"}}"#;
        assert_eq!(serde_json::from_str::<PolicyConfig>(short).unwrap(), cfg);
        let ann = r#"{"obs_dim":17,"act_dim":6,"max_action":[1,1,1,1,1,1],"network":{"kind":"ann","hidden":[256,256]}}"#;
        assert_eq!(
            serde_json::from_str::<PolicyConfig>(ann).unwrap(),
            cheetah(NetworkConfig::Ann { hidden: vec![256, 256] })
        );
    }

    #[test]
    fn validate_rejects_inconsistent_configs() {
        let good = cheetah(NetworkConfig::Snn(SnnConfig::paper(NeuronKind::Lif)));
        good.validate().unwrap();
        let mut c = good.clone();
        c.max_action.pop();
        assert!(matches!(c.validate(), Err(SnnError::InvalidConfig { field: "max_action", .. })));
        let mut c = good.clone();
        c.max_action[0] = f32::NAN;
        assert!(c.validate().is_err());
        let mut c = good.clone();
        c.obs_dim = 0;
        assert!(c.validate().is_err());
        let mut s = SnnConfig::paper(NeuronKind::Plif);
        s.v_decay = 1.0;
        assert!(cheetah(NetworkConfig::Snn(s)).validate().is_err());
        let mut s = SnnConfig::paper(NeuronKind::Lif);
        s.timesteps = 0;
        assert!(cheetah(NetworkConfig::Snn(s)).validate().is_err());
        assert!(cheetah(NetworkConfig::Ann { hidden: vec![256, 0] }).validate().is_err());
    }

    #[test]
    fn layer_dims_follow_the_population_code() {
        let c = cheetah(NetworkConfig::Snn(SnnConfig::paper(NeuronKind::Lif)));
        assert_eq!(c.layer_dims(), vec![(170, 256), (256, 256), (256, 60)]);
        let c = cheetah(NetworkConfig::Ann { hidden: vec![256, 256] });
        assert_eq!(c.layer_dims(), vec![(17, 256), (256, 256), (256, 6)]);
    }
}
