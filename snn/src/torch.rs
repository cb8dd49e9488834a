//! The same networks in tch (libtorch), differentiable, for training (feature `torch`).
//!
//! [`TorchPolicy`] creates exactly the variables [`crate::weights::expected_shapes`] names, under the
//! [`tch::nn::Path`] it is given; build it at a VarStore's root so that the VarStore names are the wire
//! names, and move weights with [`export`] / [`import`].
//!
//! The spiking forward pass performs the same f32 operations in the same order as [`crate::Policy`] (the
//! neurons are the generic code of [`crate::neuron`], instantiated with `Tensor`); only matrix-product
//! summation order and libm-vs-libtorch transcendental functions differ. For speed, each layer's input
//! currents for all T steps come from one matrix product on the stacked `[T*B, in]` spike trains; only the
//! elementwise neuron dynamics loop over T.

use tch::{Kind, Tensor, nn};

use crate::SnnError;
use crate::config::{NetworkConfig, PolicyConfig, SnnConfig};
use crate::init::encoder_mu_init;
use crate::neuron::{MembraneDecay, NeuronModel, NeuronState, RegularEncoder, Signal, logit};
use crate::weights::{NamedTensor, NamedTensors, expected_shapes};

mod bptt;
pub mod matmul;
pub mod omp;
pub use bptt::{ActorGrads, SnnTape};

impl Signal for Tensor {
    fn plus(&self, other: &Self) -> Self {
        self + other
    }
    fn minus(&self, other: &Self) -> Self {
        self - other
    }
    fn times(&self, other: &Self) -> Self {
        self * other
    }
    fn scaled(&self, c: f32) -> Self {
        // An f64 holding the f32 exactly: libtorch casts it back to f32 for an f32 tensor, so the product
        // is the one plain Rust computes.
        self * f64::from(c)
    }
    fn one_minus(&self) -> Self {
        self.neg() + 1.0
    }
    fn spike(&self, threshold: f32, window: f32) -> Self {
        surrogate_spike(self, threshold, window)
    }
    fn spike_straight_through(&self, threshold: f32) -> Self {
        let h = self.gt(f64::from(threshold)).to_kind(self.kind());
        // (v - v.detach()) is exactly 0 forward and has gradient 1: the spike keeps its exact 0/1 value.
        h + (self - self.detach())
    }
}

/// `H(v - threshold)` forward; backward `dS/dv = 1` where `|v - threshold| < window`, else 0 (rectangular
/// surrogate). Forward values are exactly 0 or 1: the surrogate term is `m - m.detach()`, which is 0.
pub fn surrogate_spike(v: &Tensor, threshold: f32, window: f32) -> Tensor {
    let th = f64::from(threshold);
    let w = f64::from(window);
    let h = v.gt(th).to_kind(v.kind());
    // clamp(v - th, -w, w) has derivative 1 inside the window and 0 outside: the rectangular surrogate
    // in one op, where a mask would take four (this runs T times per layer per pass).
    let m = (v - th).clamp(-w, w);
    h + (&m - m.detach())
}

/// The encoder's regular spike trains over `steps` steps from its constant activations `act`, from rest,
/// concatenated step-major along `dim` (so one matrix product serves every step).
pub fn encoder_spike_trains(act: &Tensor, threshold: f32, steps: i64, dim: i64) -> Tensor {
    let encoder = RegularEncoder { threshold };
    let mut v = act.zeros_like();
    let spikes: Vec<Tensor> = (0..steps).map(|_| encoder.step(&mut v, act)).collect();
    Tensor::cat(&spikes, dim)
}

/// A layer's spike trains from its input currents for every step, from rest: `currents` holds the `steps`
/// steps as equal chunks along `dim`, step-major, and so does the result.
pub fn layer_spike_trains(
    model: &NeuronModel,
    currents: &Tensor,
    decay: &Tensor,
    steps: i64,
    dim: i64,
) -> Tensor {
    let chunks = currents.chunk(steps, dim);
    let zeros = chunks[0].zeros_like();
    let mut st = NeuronState {
        v: zeros.shallow_clone(),
        s: zeros.shallow_clone(),
        i: zeros.shallow_clone(),
        u: zeros,
    };
    let mut out = Vec::with_capacity(chunks.len());
    for x in &chunks {
        model.step(&mut st, x, decay);
        out.push(st.s.shallow_clone());
    }
    Tensor::cat(&out, dim)
}

/// A linear layer initialised as PyTorch's `nn.Linear` is by default (what the paper's code uses for every
/// network): weight and bias uniform in ±1/sqrt(fan_in). tch's `nn::linear` default weight init is
/// Kaiming-uniform with ReLU gain, sqrt(6) times wider, so it is spelled out here.
pub fn linear_init(p: &nn::Path, fan_in: usize, fan_out: usize) -> nn::Linear {
    let b = 1.0 / (fan_in as f64).sqrt();
    let u = nn::Init::Uniform { lo: -b, up: b };
    nn::linear(
        p,
        fan_in as i64,
        fan_out as i64,
        nn::LinearConfig { ws_init: u, bs_init: Some(u), bias: true },
    )
}

/// The spiking actor's parameters and constants.
#[derive(Debug)]
struct TorchSnn {
    cfg: SnnConfig,
    obs_dim: i64,
    act_dim: i64,
    model: NeuronModel,
    mu: Tensor,
    sigma: Tensor,
    layers: Vec<nn::Linear>,
    /// Per layer: PLIF's `decay_logit` variable, or `None` for a fixed decay.
    decay_logits: Vec<Option<Tensor>>,
    /// The fixed membrane decay as a 0-dim tensor on the network's device (not a variable).
    fixed_decay: Tensor,
    dec_w: Tensor,
    dec_b: Tensor,
}

/// Spike trains of one forward pass: `[T, B, n]` per population, encoder first.
#[derive(Debug)]
pub struct TorchTrace {
    /// Population 0 is the encoder, `p >= 1` is `layers.{p-1}`.
    pub populations: Vec<Tensor>,
}

impl TorchSnn {
    fn new(p: &nn::Path, pc: &PolicyConfig, cfg: &SnnConfig) -> Self {
        let (obs, act, pop) = (pc.obs_dim, pc.act_dim, cfg.pop_size);
        let enc = p / "encoder";
        let mu0 = Tensor::from_slice(&encoder_mu_init(pop).repeat(obs)).view([obs as i64, pop as i64]);
        let mu = enc.var_copy("mu", &mu0);
        let sigma =
            enc.var("sigma", &[obs as i64, pop as i64], nn::Init::Const(f64::from(cfg.encoder_sigma_init)));
        let decay = MembraneDecay::from_config(cfg);
        let mut layers = Vec::new();
        let mut decay_logits = Vec::new();
        for (i, (fan_in, fan_out)) in pc.layer_dims().into_iter().enumerate() {
            let lp = p / "layers" / i;
            layers.push(linear_init(&lp, fan_in, fan_out));
            decay_logits.push(match decay {
                MembraneDecay::Learned { init } => {
                    Some(lp.var("decay_logit", &[1], nn::Init::Const(f64::from(logit(init)))))
                }
                MembraneDecay::Fixed(_) => None,
            });
        }
        // PopSAN's decoder is Conv1d(act, act, pop, groups=act): fan-in pop for weight and bias.
        let dec = p / "decoder";
        let b = 1.0 / (pop as f64).sqrt();
        let u = nn::Init::Uniform { lo: -b, up: b };
        let dec_w = dec.var("weight", &[act as i64, pop as i64], u);
        let dec_b = dec.var("bias", &[act as i64], u);
        let fixed_decay = Tensor::from(match decay {
            MembraneDecay::Fixed(d) => d,
            MembraneDecay::Learned { init } => init,
        })
        .to_device(p.device());
        Self {
            cfg: cfg.clone(),
            obs_dim: obs as i64,
            act_dim: act as i64,
            model: NeuronModel::from_config(cfg),
            mu,
            sigma,
            layers,
            decay_logits,
            fixed_decay,
            dec_w,
            dec_b,
        }
    }

    /// The encoder's Gaussian receptive-field activations `[B, obs * pop]` (the regular spike
    /// generator's constant input).
    fn encoder_activation(&self, obs: &Tensor) -> Tensor {
        let pop = self.cfg.pop_size as i64;
        let b = obs.size()[0];
        // [B, obs, 1] against [obs, pop] -> [B, obs * pop].
        let s = obs.tanh().unsqueeze(-1);
        let diff = s - &self.mu;
        (diff.square() / self.sigma.square() * -0.5).exp().view([b, self.obs_dim * pop])
    }

    /// The layer's membrane decay as a tensor (PLIF's sigmoid of its logit, or the fixed constant).
    fn decay(&self, layer: usize) -> Tensor {
        match &self.decay_logits[layer] {
            Some(l) => l.sigmoid(),
            None => self.fixed_decay.shallow_clone(),
        }
    }

    /// Pre-tanh action `[B, act]` from the last layer's spike trains `[T*B, act * pop]`: the rate over T,
    /// then per action a weighted sum of its population.
    fn decode(&self, spikes: &Tensor, b: i64) -> Tensor {
        let t_steps = self.cfg.timesteps as i64;
        let pop = self.cfg.pop_size as i64;
        let rate = spikes.view([t_steps, b, self.act_dim * pop]).mean_dim(0, false, Kind::Float);
        (rate.view([b, self.act_dim, pop]) * &self.dec_w).sum_dim_intlist(-1, false, Kind::Float)
            + &self.dec_b
    }

    /// Pre-tanh decoder output `[B, act]`, and optionally the spike trains.
    fn forward(&self, obs: &Tensor, trace: Option<&mut Vec<Tensor>>) -> Tensor {
        let t_steps = self.cfg.timesteps as i64;
        let b = obs.size()[0];
        let act = self.encoder_activation(obs);
        // [T*B, n]: step-major, so one matrix product serves all steps and `chunk` recovers them.
        let mut input = encoder_spike_trains(&act, self.cfg.encoder_threshold, t_steps, 0);
        let mut trace = trace;
        if let Some(tr) = trace.as_deref_mut() {
            tr.push(input.view([t_steps, b, -1]));
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let x_all = input.linear(&layer.ws, layer.bs.as_ref());
            input = layer_spike_trains(&self.model, &x_all, &self.decay(i), t_steps, 0);
            if let Some(tr) = trace.as_deref_mut() {
                tr.push(input.view([t_steps, b, -1]));
            }
        }
        self.decode(&input, b)
    }
}

#[derive(Debug)]
enum Net {
    Ann(Vec<nn::Linear>),
    Snn(Box<TorchSnn>),
}

/// A policy network in tch: the spiking actor or an ANN, per `cfg.network`.
#[derive(Debug)]
pub struct TorchPolicy {
    net: Net,
    /// A Gaussian policy's log-std MLP (`log_std.layers.{i}`) and its bounds.
    log_std: Option<(Vec<nn::Linear>, crate::config::GaussianHead)>,
    max_action: Tensor,
}

impl TorchPolicy {
    /// Creates the network's variables under `p` (names as in [`crate::weights`]), freshly initialised.
    ///
    /// # Panics
    /// If `cfg` is invalid ([`PolicyConfig::validate`]); validate configs from outside first.
    pub fn new(p: &nn::Path, cfg: &PolicyConfig) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("TorchPolicy::new: {e}");
        }
        let net = match &cfg.network {
            NetworkConfig::Ann { .. } => Net::Ann(
                cfg.layer_dims()
                    .into_iter()
                    .enumerate()
                    .map(|(i, (fan_in, fan_out))| linear_init(&(p / "layers" / i), fan_in, fan_out))
                    .collect(),
            ),
            NetworkConfig::Snn(s) => Net::Snn(Box::new(TorchSnn::new(p, cfg, s))),
        };
        let log_std = cfg.gaussian.as_ref().map(|g| {
            let layers = g
                .layer_dims(cfg.obs_dim, cfg.act_dim)
                .into_iter()
                .enumerate()
                .map(|(i, (fan_in, fan_out))| linear_init(&(p / "log_std" / "layers" / i), fan_in, fan_out))
                .collect();
            (layers, g.clone())
        });
        let max_action = Tensor::from_slice(&cfg.max_action).to_device(p.device());
        Self { net, log_std, max_action }
    }

    /// The bound of each action, `[act]`.
    pub fn max_action(&self) -> &Tensor {
        &self.max_action
    }

    /// The network's pre-tanh output `[B, act]` (a Gaussian policy's mean), differentiable.
    pub fn mean(&self, obs: &Tensor) -> Tensor {
        self.pre_tanh(obs, None)
    }

    /// A Gaussian policy's log-std `[B, act]`, squashed into its bounds, differentiable; `None` for a
    /// deterministic policy.
    pub fn log_std(&self, obs: &Tensor) -> Option<Tensor> {
        let (layers, head) = self.log_std.as_ref()?;
        let raw = mlp_forward(layers, obs);
        let (lo, hi) = (f64::from(head.log_std_min), f64::from(head.log_std_max));
        Some((raw.tanh() + 1.0) * (0.5 * (hi - lo)) + lo)
    }

    /// `[B, obs_dim]` f32 -> `[B, act_dim]` = tanh(.) * max_action, differentiable.
    pub fn forward(&self, obs: &Tensor) -> Tensor {
        self.pre_tanh(obs, None).tanh() * &self.max_action
    }

    /// Like [`TorchPolicy::forward`], also returning the spike trains (`None` for an ANN).
    pub fn forward_traced(&self, obs: &Tensor) -> (Tensor, Option<TorchTrace>) {
        let mut pops = Vec::new();
        let y = self.pre_tanh(obs, Some(&mut pops)).tanh() * &self.max_action;
        let trace = matches!(self.net, Net::Snn(_)).then_some(TorchTrace { populations: pops });
        (y, trace)
    }

    fn pre_tanh(&self, obs: &Tensor, trace: Option<&mut Vec<Tensor>>) -> Tensor {
        match &self.net {
            Net::Snn(n) => n.forward(obs, trace),
            Net::Ann(layers) => mlp_forward(layers, obs),
        }
    }
}

/// A ReLU MLP with a linear output.
fn mlp_forward(layers: &[nn::Linear], obs: &Tensor) -> Tensor {
    let last = layers.len() - 1;
    let mut x = obs.shallow_clone();
    for (i, l) in layers.iter().enumerate() {
        x = x.linear(&l.ws, l.bs.as_ref());
        if i < last {
            x = x.relu();
        }
    }
    x
}

/// Every variable of `vs`, by its VarStore name, as f32 on the CPU.
pub fn export(vs: &nn::VarStore) -> NamedTensors {
    vs.variables()
        .into_iter()
        .map(|(name, t)| {
            let shape = t.size().iter().map(|&d| d as usize).collect();
            let flat = t.detach().to_device(tch::Device::Cpu).to_kind(Kind::Float).flatten(0, -1);
            let data = Vec::<f32>::try_from(&flat).expect("a float tensor converts to Vec<f32>");
            (name, NamedTensor { shape, data })
        })
        .collect()
}

/// Copies `tensors` into the variables of `vs` (no gradient recorded). `tensors` must hold exactly the
/// variables of `vs`, with the same shapes; nothing is written unless all match.
pub fn import(vs: &mut nn::VarStore, tensors: &NamedTensors) -> Result<(), SnnError> {
    let mut vars = vs.variables();
    for (name, var) in &vars {
        let t = tensors.get(name).ok_or_else(|| SnnError::MissingTensor { name: name.clone() })?;
        let shape: Vec<usize> = var.size().iter().map(|&d| d as usize).collect();
        if t.shape != shape {
            return Err(SnnError::ShapeMismatch {
                name: name.clone(),
                expected: shape,
                found: t.shape.clone(),
            });
        }
        let n: usize = shape.iter().product();
        if t.data.len() != n {
            return Err(SnnError::DataLength { name: name.clone(), shape, expected: n, found: t.data.len() });
        }
    }
    if let Some(name) = tensors.keys().find(|n| !vars.contains_key(*n)) {
        return Err(SnnError::UnexpectedTensor { name: name.clone() });
    }
    tch::no_grad(|| -> Result<(), SnnError> {
        for (name, var) in vars.iter_mut() {
            let t = &tensors[name];
            let dims: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
            let src =
                Tensor::from_slice(&t.data).view(dims.as_slice()).to_device(var.device()).to_kind(var.kind());
            var.f_copy_(&src).map_err(|e| SnnError::Torch(e.to_string()))?;
        }
        Ok(())
    })
}

/// The shapes `cfg` needs, as tch dimensions (convenience for callers building their own checks).
pub fn expected_dims(cfg: &PolicyConfig) -> Result<Vec<(String, Vec<i64>)>, SnnError> {
    Ok(expected_shapes(cfg)?
        .into_iter()
        .map(|(n, s)| (n, s.into_iter().map(|d| d as i64).collect()))
        .collect())
}
