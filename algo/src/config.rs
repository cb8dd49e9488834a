//! The run configuration: every hyperparameter in one documented place, with the paper's values as
//! defaults (../shared/docs/method.md, Table 7 of the paper).

use serde::{Deserialize, Serialize};
use spikerl_snn::{NetworkConfig, NeuronKind, PolicyConfig, SnnConfig};

/// Which actor and which target policy TD3 trains with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    /// TD3 with a 256-256 ReLU actor and a Polyak target actor (the paper's ANN baseline).
    Ann,
    /// TD3 with the spiking actor and a spiking target actor updated by Polyak ("vanilla SNN").
    Vanilla,
    /// TD3 with the spiking actor and the proxy target: a continuous ANN that imitates the SNN.
    Proxy,
}

impl std::fmt::Display for Algo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Algo::Ann => "ann",
            Algo::Vanilla => "vanilla",
            Algo::Proxy => "proxy",
        })
    }
}

impl std::str::FromStr for Algo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ann" => Ok(Algo::Ann),
            "vanilla" => Ok(Algo::Vanilla),
            "proxy" => Ok(Algo::Proxy),
            other => Err(format!("unknown algorithm '{other}' (expected ann, vanilla or proxy)")),
        }
    }
}

/// The off-policy algorithm the actor and its target policy train with (docs/bases.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Base {
    /// TD3 (the paper's): twin critics, target policy smoothing, delayed actor.
    #[default]
    Td3,
    /// SAC as CleanRL's `sac_continuous_action`: a squashed Gaussian actor, twin critics, automatic
    /// entropy tuning.
    Sac,
    /// DDPG as Fujimoto et al.'s "OurDDPG": one critic, no smoothing, the actor every iteration.
    Ddpg,
}

impl Base {
    pub const ALL: [Base; 3] = [Base::Td3, Base::Sac, Base::Ddpg];
}

impl std::fmt::Display for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Base::Td3 => "td3",
            Base::Sac => "sac",
            Base::Ddpg => "ddpg",
        })
    }
}

impl std::str::FromStr for Base {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "td3" => Ok(Base::Td3),
            "sac" => Ok(Base::Sac),
            "ddpg" => Ok(Base::Ddpg),
            other => Err(format!("unknown base '{other}' (expected td3, sac or ddpg)")),
        }
    }
}

/// How a SAC proxy imitates the spiking actor's Gaussian (both before the tanh squash).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Imitation {
    /// Mean squared error on the mean plus that on the log-std.
    #[default]
    Mse,
    /// KL(actor || proxy) between the two diagonal Gaussians, averaged over the batch.
    Kl,
}

impl std::fmt::Display for Imitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Imitation::Mse => "mse",
            Imitation::Kl => "kl",
        })
    }
}

/// SAC's own hyperparameters, CleanRL's defaults (`sac_continuous_action.py`). The discount, Polyak
/// coefficient, batch size and critic widths are `Td3Config`'s, which equal CleanRL's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SacConfig {
    /// Actor (mean and log-std networks) learning rate: CleanRL's `policy_lr`.
    pub policy_lr: f64,
    /// Learning rate of the twin critics and of the temperature: CleanRL's `q_lr`.
    pub q_lr: f64,
    /// Every `policy_frequency` iterations, `policy_frequency` actor (and temperature) steps: CleanRL's
    /// delayed update that keeps one actor step per iteration on average.
    pub policy_frequency: u64,
    /// Initial temperature alpha (CleanRL starts log alpha at 0, alpha = 1).
    pub initial_alpha: f64,
    /// Tune alpha toward the target entropy -|A| (CleanRL's `autotune`); false: alpha stays fixed.
    pub autotune: bool,
    /// The log-std network every SAC actor and proxy has (its widths and bounds).
    pub gaussian: spikerl_snn::GaussianHead,
    /// How a proxy imitates the spiking actor's Gaussian.
    pub imitation: Imitation,
}

impl Default for SacConfig {
    fn default() -> Self {
        SacConfig {
            policy_lr: 3e-4,
            q_lr: 1e-3,
            policy_frequency: 2,
            initial_alpha: 1.0,
            autotune: true,
            gaussian: spikerl_snn::GaussianHead::default(),
            imitation: Imitation::Mse,
        }
    }
}

/// TD3 hyperparameters shared by all three algorithms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Td3Config {
    /// Actor learning rate (the SNN's too).
    pub actor_lr: f64,
    /// Learning rate of both critics.
    pub critic_lr: f64,
    /// Hidden widths of each twin critic.
    pub critic_hidden: Vec<usize>,
    /// Discount factor.
    pub gamma: f64,
    /// Polyak coefficient for target critics (and, without a proxy, the target actor).
    pub tau: f64,
    /// Minibatch size.
    pub batch_size: usize,
    /// Target policy smoothing noise, as a fraction of max_action.
    pub policy_noise: f64,
    /// Clip of the target policy smoothing noise, as a fraction of max_action.
    pub noise_clip: f64,
    /// The actor (and the Polyak updates) run every `policy_delay` training iterations.
    pub policy_delay: u64,
    /// Gaussian exploration noise of the acting policy, as a fraction of max_action.
    pub exploration_noise: f64,
}

impl Default for Td3Config {
    fn default() -> Self {
        Td3Config {
            actor_lr: 3e-4,
            critic_lr: 3e-4,
            critic_hidden: vec![256, 256],
            gamma: 0.99,
            tau: 0.005,
            batch_size: 256,
            policy_noise: 0.2,
            noise_clip: 0.5,
            policy_delay: 2,
            exploration_noise: 0.1,
        }
    }
}

/// The proxy target network (used by `Algo::Proxy` only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyConfig {
    /// Hidden widths of the proxy ANN.
    pub hidden: Vec<usize>,
    /// Adam learning rate of the proxy.
    pub lr: f64,
    /// Imitation gradient steps per training iteration, each on a freshly sampled minibatch.
    pub steps: usize,
}

impl ProxyConfig {
    /// The paper's proxy for each neuron type: LIF 512-512 lr 1e-3; CLIF 800-600 lr 3e-3 (512-512 on
    /// InvertedDoublePendulum); DN 512-512 lr 3e-3. PLIF and IF follow LIF. K = 3 everywhere.
    pub fn paper(neuron: NeuronKind, env_id: &str) -> Self {
        let (hidden, lr) = match neuron {
            NeuronKind::Clif if env_id.starts_with("InvertedDoublePendulum") => (vec![512, 512], 3e-3),
            NeuronKind::Clif => (vec![800, 600], 3e-3),
            NeuronKind::Dn => (vec![512, 512], 3e-3),
            NeuronKind::Lif | NeuronKind::Plif | NeuronKind::If => (vec![512, 512], 1e-3),
        };
        ProxyConfig { hidden, lr, steps: 3 }
    }
}

/// Everything that defines a run. Serialised into the run folder's manifest and into checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Gymnasium environment id.
    pub env_id: String,
    /// The off-policy algorithm (absent in manifests written before SAC and DDPG: TD3).
    #[serde(default)]
    pub base: Base,
    pub algo: Algo,
    /// Spiking neuron model (ignored for `Algo::Ann`).
    pub neuron: NeuronKind,
    /// Master seed: every random stream of the run derives from it.
    pub seed: u64,
    /// Training env steps after the random ones (= training iterations at update ratio 1).
    pub steps: u64,
    /// Uniform-random env steps before training starts.
    pub random_steps: u64,
    /// Evaluate every this many env steps (random steps included, as the paper's x-axis).
    pub eval_every: u64,
    /// Deterministic episodes per evaluation (eval env seeded with seed + 100).
    pub eval_episodes: usize,
    /// Record the first evaluation episode as a video into the run folder's `videos/` at the first
    /// evaluation at or after every multiple of this many env steps; 0: never.
    #[serde(default)]
    pub video_every: u64,
    /// Replay buffer capacity in transitions.
    pub replay_capacity: usize,
    /// Training iterations per inserted transition (the paper: 1).
    pub update_ratio: f64,
    /// How far (in transitions) actors may run ahead of the ratio before backpressure holds them.
    pub ratio_tolerance: f64,
    pub td3: Td3Config,
    /// SAC's own hyperparameters (used by `Base::Sac` only).
    #[serde(default)]
    pub sac: SacConfig,
    pub proxy: ProxyConfig,
    /// Spiking network shape; `neuron` is copied into it.
    pub snn: SnnConfig,
    /// Hidden widths of the ANN baseline actor.
    pub ann_hidden: Vec<usize>,
}

impl RunConfig {
    /// The paper's configuration for an environment, algorithm and neuron.
    pub fn paper(env_id: &str, algo: Algo, neuron: NeuronKind, seed: u64) -> Self {
        RunConfig {
            env_id: env_id.to_string(),
            base: Base::Td3,
            algo,
            neuron,
            seed,
            steps: 1_000_000,
            random_steps: 25_000,
            eval_every: 5_000,
            eval_episodes: 10,
            video_every: 0,
            replay_capacity: 1_000_000,
            update_ratio: 1.0,
            ratio_tolerance: 1_000.0,
            td3: Td3Config::default(),
            sac: SacConfig::default(),
            proxy: ProxyConfig::paper(neuron, env_id),
            snn: SnnConfig::paper(neuron),
            ann_hidden: vec![256, 256],
        }
    }

    /// This configuration on another base: DDPG ("OurDDPG") updates the actor every iteration and smooths
    /// no target action (one critic: `Td3` reads the base); SAC reads `sac`. Everything else stays.
    pub fn with_base(mut self, base: Base) -> Self {
        self.base = base;
        if base == Base::Ddpg {
            self.td3.policy_delay = 1;
            self.td3.policy_noise = 0.0;
            self.td3.noise_clip = 0.0;
        }
        self
    }

    /// Checks values that would otherwise fail deep inside training.
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.td3;
        let checks: [(bool, &str); 10] = [
            (t.batch_size > 0, "batch size must be positive"),
            (t.gamma > 0.0 && t.gamma <= 1.0, "gamma must be in (0, 1]"),
            (t.tau > 0.0 && t.tau <= 1.0, "tau must be in (0, 1]"),
            (t.policy_delay > 0, "policy delay must be positive"),
            (self.proxy.steps > 0 || self.algo != Algo::Proxy, "proxy steps must be positive"),
            (self.replay_capacity >= t.batch_size, "replay capacity must hold at least one batch"),
            (self.update_ratio > 0.0, "update ratio must be positive"),
            (self.eval_episodes > 0 || self.eval_every == 0, "eval episodes must be positive"),
            (self.ratio_tolerance >= 1.0, "ratio tolerance must be at least 1"),
            (
                self.video_every == 0 || self.eval_every > 0,
                "videos are recorded at evaluations: --video-every needs --eval-every > 0",
            ),
        ];
        let sac = &self.sac;
        let sac_checks: [(bool, &str); 3] = [
            (sac.policy_frequency > 0, "SAC policy frequency must be positive"),
            (sac.initial_alpha > 0.0 && sac.initial_alpha.is_finite(), "SAC initial alpha must be positive"),
            (sac.policy_lr > 0.0 && sac.q_lr > 0.0, "SAC learning rates must be positive"),
        ];
        let sac_checks = if self.base == Base::Sac { &sac_checks[..] } else { &[] };
        for &(ok, msg) in checks.iter().chain(sac_checks) {
            if !ok {
                return Err(msg.to_string());
            }
        }
        if self.steps > 0 && self.random_steps.max(1) < t.batch_size as u64 {
            return Err(format!(
                "random steps ({}) must be at least one batch ({}) so the first update has data",
                self.random_steps, t.batch_size
            ));
        }
        Ok(())
    }

    /// The acting policy's configuration for an environment with these spaces.
    /// SAC's actors are Gaussian (`PolicyConfig::gaussian`); TD3's and DDPG's deterministic.
    pub fn policy_config(&self, obs_dim: usize, act_dim: usize, max_action: Vec<f32>) -> PolicyConfig {
        let gaussian = (self.base == Base::Sac).then(|| self.sac.gaussian.clone());
        let network = match self.algo {
            Algo::Ann => NetworkConfig::Ann { hidden: self.ann_hidden.clone() },
            Algo::Vanilla | Algo::Proxy => {
                NetworkConfig::Snn(SnnConfig { neuron: self.neuron, ..self.snn.clone() })
            }
        };
        PolicyConfig { gaussian, obs_dim, act_dim, max_action, network }
    }
}

/// How the seeds' iterations are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedBatching {
    /// One stacked ensemble: every network's parameters carry a seed dimension.
    Stacked,
    /// Each seed's own learner, one after the other (bit for bit a single run's updates).
    Separate,
}

impl std::fmt::Display for SeedBatching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SeedBatching::Stacked => "stacked",
            SeedBatching::Separate => "separate",
        })
    }
}
