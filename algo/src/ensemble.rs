//! S seeds of one configuration trained as one batched ensemble: every network's parameters carry a
//! leading seed dimension S, linear layers are batched matrix products (`[S, N, in] x [S, in, out]`), and
//! one call of [`Ensemble::update`] performs one training iteration of every member.
//!
//! Each member runs exactly the algorithm of [`Td3::update`] on its own minibatches: K proxy steps, the
//! critic step with target smoothing through the proxy (or the Polyak target), the delayed actor step with
//! frozen critics and Polyak on the critic targets (and, without a proxy, on the target actor). Losses are
//! per member; the ensemble minimises their sum, whose gradient with respect to member s's parameters is
//! member s's own gradient, and Adam is elementwise, so each member's trajectory is the one a single run
//! with the same weights, minibatches and noise follows (up to matmul summation order).
//!
//! Parameter names are those of the members' VarStores (the wire names for the actor), each tensor with the
//! member's shape behind the seed dimension; [`Ensemble::export_member`] slices one member out in the
//! standard wire format. Gradient-free SNN forwards (the proxy's imitation targets, the vanilla Polyak
//! target) run per member through the plain-Rust event-driven `spikerl_snn::Policy` on CPU, as `Td3` does,
//! and as one stacked tensor forward under `no_grad` on CUDA.
//!
//! `crate::seed_group` trains one per `spikerl train --sync --seeds`, writing each member's state back
//! into its seed's own learner ([`Ensemble::write_member`]) for evaluations and checkpoints.

use crate::config::{Algo, RunConfig, Td3Config};
use crate::nets::soft_update;
use crate::optim::Adam;
use crate::td3::{Batch, Td3, UpdateStats, smoothed_target_action, td_target};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use spikerl_snn::neuron::{MembraneDecay, NeuronModel};
use spikerl_snn::torch::{encoder_spike_trains, layer_spike_trains};
use spikerl_snn::{NamedTensor, NamedTensors, NetworkConfig, PolicyConfig, SnnConfig};
use std::borrow::Borrow;
use std::collections::HashMap;
use tch::{Device, Kind, Tensor, nn};

/// `linear` of every member at once: `x` `[S, N, in]`, `w` `[S, out, in]`, `b` `[S, out]` -> `[S, N, out]`.
fn stacked_linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    b.unsqueeze(1).baddbmm(x, &w.transpose(1, 2), 1.0, 1.0)
}

/// Per-member mean over every dimension but the first: `[S, ...]` -> `[S]`.
fn member_mean(x: &Tensor) -> Tensor {
    let dims: Vec<i64> = (1..x.dim() as i64).collect();
    x.mean_dim(dims.as_slice(), false, Kind::Float)
}

fn to_vec(x: &Tensor) -> Vec<f64> {
    let x = x.detach().to_device(Device::Cpu).to_kind(Kind::Double).contiguous();
    Vec::<f64>::try_from(&x).expect("a double tensor converts to Vec<f64>")
}

fn var(vars: &HashMap<String, Tensor>, name: &str) -> Tensor {
    vars.get(name).unwrap_or_else(|| panic!("stacked network lacks {name}")).shallow_clone()
}

/// A ReLU MLP with a linear output, stacked: `{prefix}layers.{i}.weight|bias`.
struct StackedMlp {
    layers: Vec<(Tensor, Tensor)>,
}

impl StackedMlp {
    fn from_vars(vars: &HashMap<String, Tensor>, prefix: &str) -> Self {
        let mut layers = Vec::new();
        while let Some(w) = vars.get(&format!("{prefix}layers.{}.weight", layers.len())) {
            let b = var(vars, &format!("{prefix}layers.{}.bias", layers.len()));
            layers.push((w.shallow_clone(), b));
        }
        assert!(!layers.is_empty(), "no layers under {prefix}layers");
        StackedMlp { layers }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let last = self.layers.len() - 1;
        let mut h = x.shallow_clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = stacked_linear(&h, w, b);
            if i < last {
                h = h.relu();
            }
        }
        h
    }
}

/// The spiking actor of `spikerl_snn::torch`, stacked: the same operations on tensors with a leading
/// seed dimension.
struct StackedSnn {
    cfg: SnnConfig,
    obs_dim: i64,
    act_dim: i64,
    model: NeuronModel,
    /// `[S, obs, pop]` each.
    mu: Tensor,
    sigma: Tensor,
    /// `[S, out, in]`, `[S, out]`.
    layers: Vec<(Tensor, Tensor)>,
    /// PLIF's `[S, 1]` logits, or `None` for a fixed decay.
    decay_logits: Vec<Option<Tensor>>,
    fixed_decay: Tensor,
    /// `[S, act, pop]`, `[S, act]`.
    dec_w: Tensor,
    dec_b: Tensor,
}

impl StackedSnn {
    fn from_vars(vars: &HashMap<String, Tensor>, pc: &PolicyConfig, cfg: &SnnConfig, device: Device) -> Self {
        let decay = MembraneDecay::from_config(cfg);
        let n_layers = pc.layer_dims().len();
        let layers = (0..n_layers)
            .map(|i| (var(vars, &format!("layers.{i}.weight")), var(vars, &format!("layers.{i}.bias"))))
            .collect();
        let decay_logits = (0..n_layers)
            .map(|i| match decay {
                MembraneDecay::Learned { .. } => Some(var(vars, &format!("layers.{i}.decay_logit"))),
                MembraneDecay::Fixed(_) => None,
            })
            .collect();
        let fixed_decay = Tensor::from(match decay {
            MembraneDecay::Fixed(d) => d,
            MembraneDecay::Learned { init } => init,
        })
        .to_device(device);
        StackedSnn {
            cfg: cfg.clone(),
            obs_dim: pc.obs_dim as i64,
            act_dim: pc.act_dim as i64,
            model: NeuronModel::from_config(cfg),
            mu: var(vars, "encoder.mu"),
            sigma: var(vars, "encoder.sigma"),
            layers,
            decay_logits,
            fixed_decay,
            dec_w: var(vars, "decoder.weight"),
            dec_b: var(vars, "decoder.bias"),
        }
    }

    /// `[S, B, obs]` -> pre-tanh `[S, B, act]`, as `TorchSnn::forward` per member.
    fn forward(&self, obs: &Tensor) -> Tensor {
        let t_steps = self.cfg.timesteps as i64;
        let pop = self.cfg.pop_size as i64;
        let (s, b) = (obs.size()[0], obs.size()[1]);
        // Encoder: [S, B, obs, 1] against [S, 1, obs, pop] -> [S, B, obs * pop].
        let diff = obs.tanh().unsqueeze(-1) - self.mu.unsqueeze(1);
        let act =
            (diff.square() / self.sigma.unsqueeze(1).square() * -0.5).exp().view([s, b, self.obs_dim * pop]);
        // [S, T*B, n], step-major within each member: one batched product serves all steps.
        let mut input = encoder_spike_trains(&act, self.cfg.encoder_threshold, t_steps, 1);
        for ((w, bias), logit) in self.layers.iter().zip(&self.decay_logits) {
            let x_all = stacked_linear(&input, w, bias);
            let decay = match logit {
                Some(l) => l.sigmoid().view([s, 1, 1]),
                None => self.fixed_decay.shallow_clone(),
            };
            input = layer_spike_trains(&self.model, &x_all, &decay, t_steps, 1);
        }
        // Decoder: rate over T, then per action a weighted sum of its population.
        let rate = input.view([s, t_steps, b, self.act_dim * pop]).mean_dim(1, false, Kind::Float);
        (rate.view([s, b, self.act_dim, pop]) * self.dec_w.unsqueeze(1)).sum_dim_intlist(
            -1,
            false,
            Kind::Float,
        ) + self.dec_b.unsqueeze(1)
    }
}

enum StackedNet {
    Ann(StackedMlp),
    Snn(Box<StackedSnn>),
}

/// A stacked `TorchPolicy`: the SNN actor, the ANN actor or the proxy.
struct StackedPolicy {
    net: StackedNet,
    max_action: Tensor,
}

impl StackedPolicy {
    fn new(vs: &nn::VarStore, cfg: &PolicyConfig) -> Self {
        let vars = vs.variables();
        let net = match &cfg.network {
            NetworkConfig::Ann { .. } => StackedNet::Ann(StackedMlp::from_vars(&vars, "")),
            NetworkConfig::Snn(s) => {
                StackedNet::Snn(Box::new(StackedSnn::from_vars(&vars, cfg, s, vs.device())))
            }
        };
        let max_action = Tensor::from_slice(&cfg.max_action).to_device(vs.device());
        StackedPolicy { net, max_action }
    }

    /// `[S, B, obs]` -> `[S, B, act]` = tanh(.) * max_action, differentiable.
    fn forward(&self, obs: &Tensor) -> Tensor {
        let pre = match &self.net {
            StackedNet::Ann(m) => m.forward(obs),
            StackedNet::Snn(n) => n.forward(obs),
        };
        pre.tanh() * &self.max_action
    }
}

/// Stacked twin critics under `q1.*`, `q2.*`.
struct StackedCritic {
    q1: StackedMlp,
    q2: StackedMlp,
}

impl StackedCritic {
    fn new(vs: &nn::VarStore) -> Self {
        let vars = vs.variables();
        StackedCritic { q1: StackedMlp::from_vars(&vars, "q1."), q2: StackedMlp::from_vars(&vars, "q2.") }
    }

    fn both(&self, obs: &Tensor, act: &Tensor) -> (Tensor, Tensor) {
        let x = Tensor::cat(&[obs, act], 2);
        (self.q1.forward(&x), self.q2.forward(&x))
    }

    fn q1(&self, obs: &Tensor, act: &Tensor) -> Tensor {
        self.q1.forward(&Tensor::cat(&[obs, act], 2))
    }
}

/// A VarStore holding, under each variable name of `stores[0]`, the stack of that variable over `stores`.
/// Frozen unless `trainable`.
fn stack_stores(stores: &[&nn::VarStore], device: Device, trainable: bool) -> Result<nn::VarStore, String> {
    let vars: Vec<HashMap<String, Tensor>> = stores.iter().map(|s| s.variables()).collect();
    let mut names: Vec<&String> = vars[0].keys().collect();
    names.sort();
    let mut vs = nn::VarStore::new(device);
    for name in names {
        let mut parts: Vec<&str> = name.split('.').collect();
        let last = parts.pop().expect("split yields at least one part");
        let path = parts.iter().fold(vs.root(), |p, d| p.sub(*d));
        let mut ts = Vec::with_capacity(vars.len());
        for (i, v) in vars.iter().enumerate() {
            let t = v.get(name).ok_or_else(|| format!("member {i} lacks {name}"))?;
            if t.size() != vars[0][name].size() {
                return Err(format!(
                    "member {i}: {name} has shape {:?}, member 0 {:?}",
                    t.size(),
                    vars[0][name].size()
                ));
            }
            ts.push(t.detach());
        }
        if vars.iter().any(|v| v.len() != vars[0].len()) {
            return Err("members' networks hold different variables".into());
        }
        let _ = path.var_copy(last, &Tensor::stack(&ts, 0));
    }
    if !trainable {
        vs.freeze();
    }
    Ok(vs)
}

/// An Adam over the stacked store `vs` whose moments and step count are those of `opts`, stacked.
fn stack_adams(vs: &nn::VarStore, opts: &[&Adam]) -> Result<Adam, String> {
    let first = opts[0];
    if opts.iter().any(|o| o.lr != first.lr || o.steps != first.steps) {
        return Err("members' optimisers differ in learning rate or step count".into());
    }
    let states: Vec<HashMap<String, Tensor>> = opts.iter().map(|o| o.state().into_iter().collect()).collect();
    let mut stacked = HashMap::new();
    for key in states[0].keys() {
        let ts: Vec<Tensor> = states
            .iter()
            .map(|s| s.get(key).map(|t| t.detach()))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("a member's optimiser lacks {key}"))?;
        stacked.insert(key.clone(), Tensor::stack(&ts, 0));
    }
    let mut adam = Adam::new(vs, first.lr);
    adam.load_state(first.steps, &|k| stacked.get(k).map(|t| t.shallow_clone()))?;
    Ok(adam)
}

/// Member `s`'s variables of a stacked store, by name, as f32 on the CPU (the member's own shapes).
pub fn member_tensors(vs: &nn::VarStore, s: usize) -> NamedTensors {
    vs.variables()
        .into_iter()
        .map(|(name, t)| {
            let m = t.detach().select(0, s as i64);
            let shape = m.size().iter().map(|&d| d as usize).collect();
            let flat = m.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().flatten(0, -1);
            let data = Vec::<f32>::try_from(&flat).expect("a float tensor converts to Vec<f32>");
            (name, NamedTensor { shape, data })
        })
        .collect()
}

/// Rows per worker below which splitting a member's batch costs more than it saves (as in `td3`).
const MIN_ROWS_PER_WORKER: usize = 32;

/// Plain-Rust copies of every member's spiking network for gradient-free forwards on CPU (what `Td3`'s
/// mirror does for one network). Rebuilt when the generation of the weights changes.
struct StackedMirror {
    /// Per member, one or more copies (each holds its own neuron state buffers).
    policies: Vec<Vec<spikerl_snn::Policy>>,
    built_for: Option<u64>,
    obs: Vec<f32>,
    actions: Vec<f32>,
}

impl StackedMirror {
    fn new() -> Self {
        StackedMirror { policies: Vec::new(), built_for: None, obs: Vec::new(), actions: Vec::new() }
    }

    /// `[S, B, obs]` -> `[S, B, act]` on the CPU, without gradient. Members and row ranges are spread over
    /// at most `threads` threads; rows are independent, so the result does not depend on the split.
    fn forward_on(
        &mut self,
        threads: usize,
        vs: &nn::VarStore,
        cfg: &PolicyConfig,
        generation: u64,
        obs: &Tensor,
    ) -> Tensor {
        let size = obs.size();
        let (members, n) = (size[0] as usize, size[1] as usize);
        if self.built_for != Some(generation) || self.policies.len() != members {
            self.policies = (0..members)
                .map(|s| {
                    vec![
                        spikerl_snn::Policy::new(cfg, &member_tensors(vs, s))
                            .expect("exported weights match their own config"),
                    ]
                })
                .collect();
            self.built_for = Some(generation);
        }
        let per = threads.div_ceil(members).min(n / MIN_ROWS_PER_WORKER).max(1);
        for copies in &mut self.policies {
            while copies.len() < per {
                copies.push(copies[0].clone());
            }
        }
        let (od, ad) = (cfg.obs_dim, cfg.act_dim);
        self.obs.resize(members * n * od, 0.0);
        let len = self.obs.len();
        obs.to_kind(Kind::Float).contiguous().copy_data(&mut self.obs, len);
        self.actions.resize(members * n * ad, 0.0);
        let rows = n.div_ceil(per);
        let mut jobs = Vec::with_capacity(members * per);
        let member_io = self.obs.chunks(n * od).zip(self.actions.chunks_mut(n * ad));
        for (copies, (o, a)) in self.policies.iter_mut().zip(member_io) {
            for (p, io) in copies.iter_mut().zip(o.chunks(rows * od).zip(a.chunks_mut(rows * ad))) {
                jobs.push((p, io.0, io.1));
            }
        }
        let workers = threads.min(jobs.len()).max(1);
        let mut groups: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
        for (i, job) in jobs.into_iter().enumerate() {
            groups[i % workers].push(job);
        }
        // On libtorch's own OpenMP workers (see `crate::omp`); each group's mutex is never contended.
        let groups: Vec<std::sync::Mutex<Vec<_>>> = groups.into_iter().map(std::sync::Mutex::new).collect();
        crate::omp::parallel(groups.len(), &|i| {
            let mut group = groups[i].lock().unwrap_or_else(|p| p.into_inner());
            for (p, o, a) in group.iter_mut() {
                p.act_batch(o, a);
            }
        });
        Tensor::from_slice(&self.actions).view([members as i64, n as i64, ad as i64])
    }
}

enum Target {
    Polyak { vs: nn::VarStore, net: StackedPolicy },
    Proxy { vs: nn::VarStore, net: StackedPolicy, opt: Adam, steps: usize },
}

/// S TD3 learners of one configuration with stacked parameters (see the module documentation).
pub struct Ensemble {
    cfg: Td3Config,
    pub policy_config: PolicyConfig,
    device: Device,
    members: usize,
    max_action: Tensor,
    pub actor_vs: nn::VarStore,
    actor: StackedPolicy,
    pub actor_opt: Adam,
    target: Target,
    pub critic_vs: nn::VarStore,
    critic: StackedCritic,
    pub critic_opt: Adam,
    pub critic_target_vs: nn::VarStore,
    critic_target: StackedCritic,
    /// Training iterations done (every member did as many).
    pub iterations: u64,
    /// Delayed actor updates done.
    pub actor_updates: u64,
    /// Each member's target smoothing noise generator, continuing its `Td3::noise_rng`.
    pub noise_rngs: Vec<ChaCha8Rng>,
    noise: Vec<f32>,
    actor_mirror: Option<StackedMirror>,
    target_mirror: Option<StackedMirror>,
}

impl Ensemble {
    /// One member per seed, each built as a single run with that seed builds its learner (libtorch seeded
    /// with `Seeds::from_run(seed).torch` under the process-wide init lock, target noise from
    /// `Seeds::from_run(seed).target_noise`), then stacked.
    pub fn new(
        run: &RunConfig,
        policy: PolicyConfig,
        seeds: &[u64],
        device: Device,
    ) -> Result<Ensemble, String> {
        let members: Vec<Td3> =
            seeds.iter().map(|&seed| Td3::seeded(run, policy.clone(), seed, device)).collect();
        Self::from_members(run, &members)
    }

    /// Stacks the networks, optimiser states, counters and noise generators of `members`, which must all be
    /// built from `run` and `members[0].policy_config` on one device and have trained equally long. The
    /// ensemble copies everything: the members stay usable and independent of it.
    pub fn from_members<M: Borrow<Td3>>(run: &RunConfig, members: &[M]) -> Result<Ensemble, String> {
        let members: Vec<&Td3> = members.iter().map(Borrow::borrow).collect();
        let first = *members.first().ok_or("an ensemble needs at least one member")?;
        let device = first.device();
        let policy_config = first.policy_config.clone();
        let proxy = run.algo == Algo::Proxy;
        if matches!(policy_config.network, NetworkConfig::Ann { .. }) != (run.algo == Algo::Ann) {
            return Err(format!("the members' actor network does not fit algorithm {}", run.algo));
        }
        for (i, m) in members.iter().enumerate() {
            if m.policy_config != policy_config || m.device() != device {
                return Err(format!("member {i} differs from member 0 in policy config or device"));
            }
            if m.has_proxy() != proxy {
                return Err(format!("member {i} does not match algorithm {}", run.algo));
            }
            if m.iterations != first.iterations || m.actor_updates != first.actor_updates {
                return Err(format!(
                    "member {i} has trained for a different number of iterations than member 0"
                ));
            }
        }
        let stores = |f: &dyn Fn(&Td3) -> &nn::VarStore| members.iter().map(|m| f(m)).collect::<Vec<_>>();
        let actor_vs = stack_stores(&stores(&|m| &m.actor_vs), device, true)?;
        let actor = StackedPolicy::new(&actor_vs, &policy_config);
        let actor_opt = stack_adams(&actor_vs, &members.iter().map(|m| &m.actor_opt).collect::<Vec<_>>())?;
        let target = if proxy {
            let vs = stack_stores(&stores(&|m| m.target_vs()), device, true)?;
            let proxy_cfg = PolicyConfig {
                network: NetworkConfig::Ann { hidden: run.proxy.hidden.clone() },
                ..policy_config.clone()
            };
            let net = StackedPolicy::new(&vs, &proxy_cfg);
            let opts: Vec<&Adam> =
                members.iter().map(|m| m.proxy_opt().expect("checked: every member has a proxy")).collect();
            let opt = stack_adams(&vs, &opts)?;
            Target::Proxy { vs, net, opt, steps: run.proxy.steps }
        } else {
            let vs = stack_stores(&stores(&|m| m.target_vs()), device, false)?;
            let net = StackedPolicy::new(&vs, &policy_config);
            Target::Polyak { vs, net }
        };
        let critic_vs = stack_stores(&stores(&|m| &m.critic_vs), device, true)?;
        let critic = StackedCritic::new(&critic_vs);
        let critic_opt = stack_adams(&critic_vs, &members.iter().map(|m| &m.critic_opt).collect::<Vec<_>>())?;
        let critic_target_vs = stack_stores(&stores(&|m| &m.critic_target_vs), device, false)?;
        let critic_target = StackedCritic::new(&critic_target_vs);
        let act_dim = policy_config.act_dim as i64;
        let spiking = matches!(policy_config.network, NetworkConfig::Snn(_));
        let mirrors = spiking && device == Device::Cpu;
        Ok(Ensemble {
            cfg: run.td3.clone(),
            max_action: Tensor::from_slice(&policy_config.max_action).view([1, 1, act_dim]).to_device(device),
            policy_config,
            device,
            members: members.len(),
            actor_vs,
            actor,
            actor_opt,
            target_mirror: (mirrors && matches!(target, Target::Polyak { .. })).then(StackedMirror::new),
            target,
            critic_vs,
            critic,
            critic_opt,
            critic_target_vs,
            critic_target,
            iterations: first.iterations,
            actor_updates: first.actor_updates,
            noise_rngs: members.iter().map(|m| m.noise_rng.clone()).collect(),
            noise: Vec::new(),
            actor_mirror: mirrors.then(StackedMirror::new),
        })
    }

    /// S, the number of members.
    pub fn members(&self) -> usize {
        self.members
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Gradient-free SNN forwards through libtorch's stacked tensors instead of plain Rust on CPU (what
    /// CUDA always does). For tests and comparisons.
    pub fn disable_mirrors(&mut self) {
        self.actor_mirror = None;
        self.target_mirror = None;
    }

    pub fn has_proxy(&self) -> bool {
        matches!(self.target, Target::Proxy { .. })
    }

    /// The target policies' stacked variables (Polyak copies or proxies).
    pub fn target_vs(&self) -> &nn::VarStore {
        match &self.target {
            Target::Polyak { vs, .. } | Target::Proxy { vs, .. } => vs,
        }
    }

    /// The online actors' actions for `[S, B, obs]` (member s acts on row block s), without gradient.
    pub fn act(&mut self, obs: &Tensor) -> Tensor {
        let threads = tch::get_num_threads().max(1) as usize;
        match &mut self.actor_mirror {
            Some(m) => m.forward_on(threads, &self.actor_vs, &self.policy_config, self.actor_updates, obs),
            None => tch::no_grad(|| self.actor.forward(obs)),
        }
    }

    /// The target policies' actions for `[S, B, obs]`, without gradient.
    pub fn target_act(&mut self, obs: &Tensor) -> Tensor {
        let threads = tch::get_num_threads().max(1) as usize;
        match (&self.target, &mut self.target_mirror) {
            (Target::Polyak { vs, .. }, Some(m)) => {
                m.forward_on(threads, vs, &self.policy_config, self.actor_updates, obs)
            }
            (Target::Polyak { net, .. } | Target::Proxy { net, .. }, _) => tch::no_grad(|| net.forward(obs)),
        }
    }

    /// One proxy imitation step of every member on `obs` `[S, B, obs]`; per member the loss before the
    /// step, or None without a proxy.
    pub fn proxy_step(&mut self, obs: &Tensor) -> Option<Vec<f64>> {
        if !self.has_proxy() {
            return None;
        }
        let snn_action = self.act(obs).to_device(self.device);
        let Target::Proxy { net, opt, .. } = &mut self.target else {
            return None;
        };
        let losses = member_mean(&(net.forward(obs) - snn_action).square());
        opt.backward_step(&losses.sum(Kind::Float));
        Some(to_vec(&losses))
    }

    /// One training iteration of every member. `sample(s)` draws a fresh minibatch for member s: per
    /// member, K of them for the proxy steps, then one for the critic and (delayed) actor update, in the
    /// order `Td3::update` asks for them. Returns each member's statistics.
    pub fn update(&mut self, mut sample: impl FnMut(usize) -> Batch) -> Vec<UpdateStats> {
        let n = self.members;
        let mut stats = vec![UpdateStats::default(); n];
        if let Target::Proxy { steps, .. } = self.target {
            let mut totals = vec![0.0; n];
            for _ in 0..steps {
                let obs: Vec<Tensor> = (0..n).map(|s| sample(s).obs).collect();
                let losses = self.proxy_step(&Tensor::stack(&obs, 0)).unwrap_or_default();
                for (t, l) in totals.iter_mut().zip(losses) {
                    *t += l;
                }
            }
            for (st, t) in stats.iter_mut().zip(totals) {
                st.proxy_loss = Some(t / steps as f64);
            }
        }

        let b = stack_batches((0..n).map(&mut sample).collect());
        let target = tch::no_grad(|| {
            let a = self.target_act(&b.next_obs);
            let eps = self.standard_normal(&a.size());
            let a = smoothed_target_action(&a, &eps, &self.max_action, &self.cfg);
            let (q1, q2) = self.critic_target.both(&b.next_obs, &a);
            td_target(&b.rewards, &b.not_done, &q1, &q2, self.cfg.gamma)
        });
        let (q1, q2) = self.critic.both(&b.obs, &b.actions);
        let critic_losses = member_mean(&(&q1 - &target).square()) + member_mean(&(&q2 - &target).square());
        self.critic_opt.backward_step(&critic_losses.sum(Kind::Float));
        let columns = [to_vec(&critic_losses), to_vec(&member_mean(&q1)), to_vec(&member_mean(&target))];
        for (s, st) in stats.iter_mut().enumerate() {
            (st.critic_loss, st.q_mean, st.target_mean) = (columns[0][s], columns[1][s], columns[2][s]);
        }

        self.iterations += 1;
        if self.iterations.is_multiple_of(self.cfg.policy_delay) {
            self.critic_vs.freeze();
            let actor_losses = -member_mean(&self.critic.q1(&b.obs, &self.actor.forward(&b.obs)));
            self.actor_opt.backward_step(&actor_losses.sum(Kind::Float));
            self.critic_vs.unfreeze();
            for (st, l) in stats.iter_mut().zip(to_vec(&actor_losses)) {
                st.actor_loss = Some(l);
            }
            self.actor_updates += 1;

            soft_update(&self.critic_target_vs, &self.critic_vs, self.cfg.tau);
            if let Target::Polyak { vs, .. } = &self.target {
                soft_update(vs, &self.actor_vs, self.cfg.tau);
            }
        }
        stats
    }

    /// Standard normal noise of `shape` `[S, ...]`: member s's block from member s's generator, drawn in
    /// the order `Td3` draws it.
    fn standard_normal(&mut self, shape: &[i64]) -> Tensor {
        let per = shape[1..].iter().product::<i64>() as usize;
        self.noise.clear();
        for rng in &mut self.noise_rngs {
            self.noise.extend((0..per).map(|_| -> f32 { StandardNormal.sample(rng) }));
        }
        Tensor::from_slice(&self.noise).view(shape).to_device(self.device)
    }

    /// Member s's acting policy under the standard wire names (as `Td3::export_policy`).
    pub fn export_member(&self, s: usize) -> NamedTensors {
        assert!(s < self.members, "member {s} of {}", self.members);
        member_tensors(&self.actor_vs, s)
    }

    /// Writes member s's whole training state into `td3` (one of the members the ensemble was stacked
    /// from, or one built alike): every network, the optimisers' moments and step counts, the counters and
    /// the noise generator. `td3` then continues, evaluates or checkpoints exactly as member s would.
    pub fn write_member(&self, s: usize, td3: &mut Td3) -> Result<(), String> {
        if s >= self.members {
            return Err(format!("member {s} of {}", self.members));
        }
        if td3.policy_config != self.policy_config || td3.has_proxy() != self.has_proxy() {
            return Err("the learner differs from the ensemble's members in network or algorithm".into());
        }
        copy_member(&self.actor_vs, s, &td3.actor_vs)?;
        copy_member(&self.critic_vs, s, &td3.critic_vs)?;
        copy_member(&self.critic_target_vs, s, &td3.critic_target_vs)?;
        copy_member(self.target_vs(), s, td3.target_vs())?;
        load_member_adam(&self.actor_opt, s, &mut td3.actor_opt)?;
        load_member_adam(&self.critic_opt, s, &mut td3.critic_opt)?;
        if let (Target::Proxy { opt, .. }, Some(dst)) = (&self.target, td3.proxy_opt_mut()) {
            load_member_adam(opt, s, dst)?;
        }
        td3.iterations = self.iterations;
        td3.actor_updates = self.actor_updates;
        td3.noise_rng = self.noise_rngs[s].clone();
        Ok(())
    }
}

/// Copies member s of the stacked store `from` into the single network `to`, variable by variable.
fn copy_member(from: &nn::VarStore, s: usize, to: &nn::VarStore) -> Result<(), String> {
    let stacked = from.variables();
    let vars = to.variables();
    if vars.len() != stacked.len() {
        return Err(format!("{} variables against the ensemble's {}", vars.len(), stacked.len()));
    }
    for (name, mut dst) in vars {
        let src = stacked.get(&name).ok_or_else(|| format!("the ensemble lacks {name}"))?.select(0, s as i64);
        if src.size() != dst.size() {
            return Err(format!("{name}: shape {:?} against the ensemble's {:?}", dst.size(), src.size()));
        }
        tch::no_grad(|| dst.copy_(&src));
    }
    Ok(())
}

/// Loads member s's moments and step count of the stacked optimiser `from` into `to`.
fn load_member_adam(from: &Adam, s: usize, to: &mut Adam) -> Result<(), String> {
    let state: HashMap<String, Tensor> = from.state().into_iter().collect();
    to.load_state(from.steps, &|k| state.get(k).map(|t| t.select(0, s as i64)))
}

/// `[B, ...]` minibatches, one per member, as one `[S, B, ...]` batch.
fn stack_batches(batches: Vec<Batch>) -> Batch {
    let stack = |f: &dyn Fn(&Batch) -> &Tensor| Tensor::stack(&batches.iter().map(f).collect::<Vec<_>>(), 0);
    Batch {
        obs: stack(&|b| &b.obs),
        actions: stack(&|b| &b.actions),
        rewards: stack(&|b| &b.rewards),
        next_obs: stack(&|b| &b.next_obs),
        not_done: stack(&|b| &b.not_done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use spikerl_snn::NeuronKind;

    fn small_run(algo: Algo, neuron: NeuronKind) -> (RunConfig, PolicyConfig) {
        let mut cfg = RunConfig::paper("Pendulum-v1", algo, neuron, 0);
        cfg.snn.hidden = vec![32, 32];
        cfg.ann_hidden = vec![32, 32];
        cfg.proxy.hidden = vec![32, 32];
        cfg.td3.critic_hidden = vec![32, 32];
        // Large steps and tau, so that every update and Polyak average moves the weights well beyond the
        // comparison tolerance (with the paper's tau = 0.005 a missing Polyak step would go unnoticed).
        cfg.td3.actor_lr = 3e-3;
        cfg.td3.critic_lr = 3e-3;
        cfg.proxy.lr = 3e-3;
        cfg.td3.tau = 0.5;
        let policy = cfg.policy_config(3, 1, vec![2.0]);
        (cfg, policy)
    }

    /// Members built as `Ensemble::new` builds them, under the process-wide init lock.
    fn members(cfg: &RunConfig, policy: &PolicyConfig, seeds: &[u64]) -> Vec<Td3> {
        seeds.iter().map(|&seed| Td3::seeded(cfg, policy.clone(), seed, Device::Cpu)).collect()
    }

    /// A Pendulum-shaped minibatch of 64 from `rng` (not libtorch's global generator).
    fn batch(rng: &mut ChaCha8Rng) -> Batch {
        let n = 64;
        let mut normal = |len: usize| -> Tensor {
            let v: Vec<f32> = (0..len).map(|_| StandardNormal.sample(&mut *rng)).collect();
            Tensor::from_slice(&v)
        };
        let obs = normal(n * 3).view([n as i64, 3]);
        let actions = (normal(n).view([n as i64, 1]) * 1.5).clamp(-2.0, 2.0);
        let rewards = normal(n).view([n as i64, 1]);
        let next_obs = normal(n * 3).view([n as i64, 3]);
        // A few terminations, so the (1 - terminated) factor matters.
        let not_done = normal(n).view([n as i64, 1]).gt(-1.5).to_kind(Kind::Float);
        Batch { obs, actions, rewards, next_obs, not_done }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-4 * a.abs().max(b.abs()) + 1e-6
    }

    fn max_abs_diff(a: &NamedTensors, b: &NamedTensors) -> f32 {
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        let mut worst = 0f32;
        for (name, x) in a {
            let y = &b[name];
            assert_eq!(x.shape, y.shape, "{name}");
            for (p, q) in x.data.iter().zip(&y.data) {
                worst = worst.max((p - q).abs());
            }
        }
        worst
    }

    /// Trains `seeds.len()` independent `Td3` learners and an ensemble stacked from identical members on
    /// the same per-member minibatches for `iterations`, and checks losses and every network per member.
    fn ensemble_matches_members(
        algo: Algo,
        neuron: NeuronKind,
        seeds: &[u64],
        iterations: usize,
        mirrors: bool,
    ) {
        tch::set_num_threads(1);
        let (cfg, policy) = small_run(algo, neuron);
        let mut singles = members(&cfg, &policy, seeds);
        let mut ens = Ensemble::from_members(&cfg, &singles).unwrap();
        if !mirrors {
            ens.disable_mirrors();
        }
        assert_eq!(ens.members(), seeds.len());
        let per_iteration = if algo == Algo::Proxy { cfg.proxy.steps + 1 } else { 1 };
        // Member s's minibatches: its own stream, different from the others'.
        let streams: Vec<Vec<Batch>> = (0..seeds.len())
            .map(|s| {
                let mut rng = ChaCha8Rng::seed_from_u64(1000 + s as u64);
                (0..iterations * per_iteration).map(|_| batch(&mut rng)).collect()
            })
            .collect();
        let mut taken = vec![0; seeds.len()];
        for it in 0..iterations {
            let got = ens.update(|s| {
                taken[s] += 1;
                streams[s][taken[s] - 1].shallow_clone()
            });
            assert_eq!(got.len(), seeds.len());
            for (s, single) in singles.iter_mut().enumerate() {
                let mut k = it * per_iteration;
                let want = single.update(|| {
                    k += 1;
                    streams[s][k - 1].shallow_clone()
                });
                let g = &got[s];
                let pairs = [
                    ("critic loss", Some(g.critic_loss), Some(want.critic_loss)),
                    ("q mean", Some(g.q_mean), Some(want.q_mean)),
                    ("target mean", Some(g.target_mean), Some(want.target_mean)),
                    ("actor loss", g.actor_loss, want.actor_loss),
                    ("proxy loss", g.proxy_loss, want.proxy_loss),
                ];
                for (what, x, y) in pairs {
                    match (x, y) {
                        (Some(x), Some(y)) => assert!(
                            close(x, y),
                            "{algo} iteration {it} member {s} {what}: ensemble {x}, single {y}"
                        ),
                        (None, None) => {}
                        _ => panic!("{algo} iteration {it} member {s} {what}: ensemble {x:?}, single {y:?}"),
                    }
                }
            }
        }
        assert!(taken.iter().all(|&t| t == iterations * per_iteration), "minibatches drawn: {taken:?}");
        assert_eq!(ens.actor_updates, (iterations as u64) / cfg.td3.policy_delay);
        for (s, single) in singles.iter().enumerate() {
            assert_eq!(ens.iterations, single.iterations);
            assert_eq!(ens.actor_updates, single.actor_updates);
            assert_eq!(ens.noise_rngs[s], single.noise_rng, "member {s}'s noise stream went its own way");
            let export = spikerl_snn::torch::export;
            let nets = [
                ("actor", ens.export_member(s), single.export_policy()),
                ("critic", member_tensors(&ens.critic_vs, s), export(&single.critic_vs)),
                ("critic target", member_tensors(&ens.critic_target_vs, s), export(&single.critic_target_vs)),
                ("target policy", member_tensors(ens.target_vs(), s), export(single.target_vs())),
            ];
            for (what, x, y) in nets {
                let d = max_abs_diff(&x, &y);
                eprintln!("{algo} {neuron} member {s} {what}: max abs diff {d:e}");
                assert!(d < 1e-4, "{algo} member {s} {what}: max abs diff {d}");
            }
            assert_eq!(ens.actor_opt.steps, single.actor_opt.steps);
            assert_eq!(ens.critic_opt.steps, single.critic_opt.steps);
        }
        // Training moved the actors (the comparison above is not between two untouched networks).
        let fresh = members(&cfg, &policy, &seeds[..1]);
        let moved = max_abs_diff(&ens.export_member(0), &fresh[0].export_policy());
        let moved_target = max_abs_diff(
            &member_tensors(&ens.critic_target_vs, 0),
            &spikerl_snn::torch::export(&fresh[0].critic_target_vs),
        );
        assert!(
            moved > 1e-3 && moved_target > 1e-3,
            "training moved the actor by {moved}, the critic target by {moved_target}"
        );
    }

    #[test]
    fn ensemble_proxy_lif_matches_independent_members() {
        ensemble_matches_members(Algo::Proxy, NeuronKind::Lif, &[1, 2, 3], 4, true);
    }

    #[test]
    fn ensemble_proxy_lif_matches_independent_members_with_tensor_snn_forwards() {
        // The path CUDA takes: the proxy's SNN targets from the stacked tensor forward under no_grad.
        ensemble_matches_members(Algo::Proxy, NeuronKind::Lif, &[4, 5], 4, false);
    }

    #[test]
    fn ensemble_ann_matches_independent_members() {
        ensemble_matches_members(Algo::Ann, NeuronKind::Lif, &[1, 2, 3], 4, true);
    }

    #[test]
    fn ensemble_vanilla_lif_matches_independent_members() {
        ensemble_matches_members(Algo::Vanilla, NeuronKind::Lif, &[1, 2], 4, true);
    }

    #[test]
    fn ensemble_proxy_plif_and_clif_match_independent_members() {
        ensemble_matches_members(Algo::Proxy, NeuronKind::Plif, &[6, 7], 2, true);
        ensemble_matches_members(Algo::Proxy, NeuronKind::Clif, &[8, 9], 2, true);
    }

    #[test]
    fn ensemble_members_start_as_single_runs_and_differ_by_seed() {
        tch::set_num_threads(1);
        let (cfg, policy) = small_run(Algo::Proxy, NeuronKind::Lif);
        let ens = Ensemble::new(&cfg, policy.clone(), &[11, 12], Device::Cpu).unwrap();
        // Member s is exactly the learner a single run with seed s starts from.
        for (s, seed) in [11, 12].into_iter().enumerate() {
            let run = RunConfig { seed, replay_capacity: 1000, ..cfg.clone() };
            let single = &Td3::seeded(&run, policy.clone(), seed, Device::Cpu);
            assert_eq!(ens.export_member(s), single.export_policy(), "member {s}");
            assert_eq!(member_tensors(ens.target_vs(), s), spikerl_snn::torch::export(single.target_vs()));
            assert_eq!(member_tensors(&ens.critic_vs, s), spikerl_snn::torch::export(&single.critic_vs));
            assert_eq!(ens.noise_rngs[s], single.noise_rng);
        }
        // And the members are not copies of one run.
        let (a, b) = (ens.export_member(0), ens.export_member(1));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for name in ["layers.0.weight", "decoder.weight"] {
            assert_ne!(a[name], b[name], "{name} is the same in both members");
        }
        assert_ne!(member_tensors(&ens.critic_vs, 0), member_tensors(&ens.critic_vs, 1));
        assert_ne!(ens.noise_rngs[0], ens.noise_rngs[1]);
        // Different weights act differently on the same observations.
        let mut ens = ens;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let obs = batch(&mut rng).obs;
        let acts = ens.act(&Tensor::stack(&[&obs, &obs], 0));
        let diff = (acts.get(0) - acts.get(1)).abs().max().double_value(&[]);
        assert!(diff > 1e-3, "members act alike: {diff}");
    }

    #[test]
    fn stacked_mirror_matches_the_tensor_forward_whatever_the_thread_count() {
        tch::set_num_threads(1);
        let (cfg, policy) = small_run(Algo::Proxy, NeuronKind::Lif);
        let ens = Ensemble::from_members(&cfg, &members(&cfg, &policy, &[21, 22, 23])).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let obs = Tensor::stack(&(0..3).map(|_| batch(&mut rng).obs * 2.0).collect::<Vec<_>>(), 0);
        let reference = tch::no_grad(|| ens.actor.forward(&obs));
        let mut mirror = StackedMirror::new();
        let one = mirror.forward_on(1, &ens.actor_vs, &policy, 0, &obs);
        // 4 threads over 3 members of 64 rows: two row ranges per member, on four threads.
        let four = mirror.forward_on(4, &ens.actor_vs, &policy, 0, &obs);
        assert_eq!(mirror.policies.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2]);
        assert!(one.equal(&four), "the split changed the result");
        let diff = (&one - &reference).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "plain Rust vs stacked tensor forward: {diff}");
    }

    #[test]
    fn written_back_members_restack_into_the_same_ensemble_and_train_on_alike() {
        tch::set_num_threads(1);
        for algo in [Algo::Proxy, Algo::Vanilla] {
            let (cfg, policy) = small_run(algo, NeuronKind::Lif);
            let seeds = [31, 32];
            let mut ens = Ensemble::new(&cfg, policy.clone(), &seeds, Device::Cpu).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(77);
            let per_iteration = 1 + if algo == Algo::Proxy { cfg.proxy.steps } else { 0 };
            let pool: Vec<Batch> = (0..2 * per_iteration).map(|_| batch(&mut rng)).collect();
            let mut k = [0usize; 2];
            for _ in 0..4 {
                ens.update(|s| {
                    k[s] += 1;
                    pool[(k[s] + s) % pool.len()].shallow_clone()
                });
            }
            // Fresh members, untrained: everything they hold must come from the ensemble.
            let mut ms = members(&cfg, &policy, &seeds);
            for (s, m) in ms.iter_mut().enumerate() {
                ens.write_member(s, m).unwrap();
                assert_eq!(m.export_policy(), ens.export_member(s), "{algo} member {s} actor");
                assert_eq!(
                    spikerl_snn::torch::export(&m.critic_target_vs),
                    member_tensors(&ens.critic_target_vs, s)
                );
                assert_eq!((m.iterations, m.actor_updates), (4, 2));
                assert_eq!(m.noise_rng, ens.noise_rngs[s]);
            }
            let again = Ensemble::from_members(&cfg, &ms).unwrap();
            for (a, b) in [
                (&ens.actor_vs, &again.actor_vs),
                (&ens.critic_vs, &again.critic_vs),
                (ens.target_vs(), again.target_vs()),
            ] {
                for s in 0..2 {
                    assert_eq!(
                        member_tensors(a, s),
                        member_tensors(b, s),
                        "{algo}: a network changed in the round trip"
                    );
                }
            }
            for (a, b) in [(&ens.actor_opt, &again.actor_opt), (&ens.critic_opt, &again.critic_opt)] {
                assert_eq!(a.steps, b.steps);
                let b_state: HashMap<String, Tensor> = b.state().into_iter().collect();
                for (name, t) in a.state() {
                    assert!(
                        t.equal(&b_state[&name]),
                        "{algo}: optimiser moment {name} changed in the round trip"
                    );
                }
            }
            // A written-back member trains on as its ensemble member does (moments included: with fresh
            // moments the first Adam step would move the weights by about lr per parameter).
            let next = batch(&mut rng);
            let got = ens.update(|_| next.shallow_clone());
            let want = ms[1].update(|| next.shallow_clone());
            assert!(
                close(got[1].critic_loss, want.critic_loss),
                "{algo}: {} vs {}",
                got[1].critic_loss,
                want.critic_loss
            );
            let d = max_abs_diff(
                &member_tensors(&ens.critic_vs, 1),
                &spikerl_snn::torch::export(&ms[1].critic_vs),
            );
            assert!(d < 1e-5, "{algo}: critics apart by {d} after one more step");
        }
        // A learner of another algorithm is refused, not half-written.
        let (cfg, policy) = small_run(Algo::Proxy, NeuronKind::Lif);
        let ens = Ensemble::new(&cfg, policy, &[1], Device::Cpu).unwrap();
        let (ann_cfg, ann_policy) = small_run(Algo::Ann, NeuronKind::Lif);
        let mut ann = members(&ann_cfg, &ann_policy, &[1]).remove(0);
        assert!(ens.write_member(0, &mut ann).is_err());
        assert!(ens.write_member(1, &mut members(&cfg, &ens.policy_config, &[1]).remove(0)).is_err());
    }

    #[test]
    fn ensemble_rejects_mismatched_members() {
        tch::set_num_threads(1);
        let (cfg, policy) = small_run(Algo::Proxy, NeuronKind::Lif);
        let mut ms = members(&cfg, &policy, &[1, 2]);
        let (ann_cfg, _) = small_run(Algo::Ann, NeuronKind::Lif);
        assert!(Ensemble::from_members(&ann_cfg, &ms).is_err(), "an SNN actor under algorithm ann");
        assert!(Ensemble::from_members::<Td3>(&cfg, &[]).is_err());
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let b: Vec<Batch> = (0..4).map(|_| batch(&mut rng)).collect();
        let mut k = 0;
        ms[1].update(|| {
            k += 1;
            b[k - 1].shallow_clone()
        });
        assert!(Ensemble::from_members(&cfg, &ms).is_err(), "members at different iterations");
        assert!(Ensemble::from_members(&cfg, &ms[1..]).is_ok(), "a trained member alone stacks");
    }
}
