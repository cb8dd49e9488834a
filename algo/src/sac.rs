//! SAC with the proxy target, as a pure function of networks + batches + config (docs/bases.md).
//!
//! SAC itself follows CleanRL's `sac_continuous_action`: twin critics with Polyak targets every
//! iteration, a tanh-squashed Gaussian actor, automatic entropy tuning toward -|A|, and every
//! `policy_frequency` iterations that many actor (and temperature) steps. Every actor here is a mean
//! network (the ANN, or the spiking network's decoder as PopSAN's SAC has it) plus a small log-std MLP on
//! the observation (`PolicyConfig::gaussian`). The three algorithms differ in where the TD target's next
//! action and its log-probability come from:
//!
//! - `ann`, `vanilla`: sampled from the current actor (SAC has no target actor);
//! - `proxy`: sampled from the proxy, an ANN with its own mean and log-std networks trained, K steps per
//!   iteration on replay states, to imitate the spiking actor's Gaussian (`Imitation`). The spiking
//!   network then runs only in the actor step and the proxy's targets, never for the TD target.

use crate::config::{Algo, Imitation, RunConfig, SacConfig, Td3Config};
use crate::dense::DenseTd3;
use crate::nets::{Critics, hard_update, soft_update};
use crate::optim::Adam;
use crate::seeds::{Seeds, torch_init_lock};
use crate::td3::{Batch, PhaseTimes, UpdateStats, host_vec, threads};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spikerl_snn::torch::TorchPolicy;
use spikerl_snn::{NetworkConfig, PolicyConfig};
use std::collections::HashMap;
use tch::{Device, Kind, Reduction, Tensor, nn};

/// `ln(sqrt(2 pi))`, the standard normal density's constant.
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// A sample of the squashed Gaussian `tanh(mean + exp(log_std) * eps) * max_action` and its
/// log-probability `[B, 1]`, with CleanRL's tanh correction:
/// `log N(x; mean, std) - sum log(max_action (1 - tanh(x)^2) + 1e-6)`. With `x = mean + std * eps` the
/// Gaussian's log-density is `-eps^2 / 2 - log_std - ln sqrt(2 pi)`, the same value and gradients as
/// PyTorch's `Normal.log_prob` of an `rsample`.
pub fn squashed_sample(
    mean: &Tensor,
    log_std: &Tensor,
    eps: &Tensor,
    max_action: &Tensor,
) -> (Tensor, Tensor) {
    let x = mean + log_std.exp() * eps;
    let y = x.tanh();
    let log_normal = eps.square() * -0.5 - log_std - LN_SQRT_2PI;
    let squashed: Tensor = max_action * (1.0 - y.square());
    let correction = (squashed + 1e-6).log();
    let log_prob = (log_normal - correction).sum_dim_intlist(-1, true, Kind::Float);
    (y * max_action, log_prob)
}

/// KL(p || q) of diagonal Gaussians given as (mean, log-std), summed over dimensions, averaged over rows.
pub fn gaussian_kl(p: (&Tensor, &Tensor), q: (&Tensor, &Tensor)) -> Tensor {
    let ((mp, lp), (mq, lq)) = (p, q);
    let var_q = (lq * 2.0).exp();
    let kl = lq - lp + ((lp * 2.0).exp() + (mp - mq).square()) / (var_q * 2.0) - 0.5;
    kl.sum_dim_intlist(-1, false, Kind::Float).mean(Kind::Float)
}

/// The proxy: an ANN mean network and its log-std network, imitating the spiking actor.
struct Proxy {
    vs: nn::VarStore,
    net: TorchPolicy,
    opt: Adam,
    steps: usize,
}

/// Networks, optimisers and counters of one SAC learner.
pub struct Sac {
    cfg: Td3Config,
    sac: SacConfig,
    algo: Algo,
    pub policy_config: PolicyConfig,
    device: Device,
    max_action: Tensor,
    pub actor_vs: nn::VarStore,
    actor: TorchPolicy,
    pub actor_opt: Adam,
    proxy: Option<Proxy>,
    pub critic_vs: nn::VarStore,
    critic: Critics,
    pub critic_opt: Adam,
    pub critic_target_vs: nn::VarStore,
    critic_target: Critics,
    /// `log_alpha` `[1]`, the temperature's logarithm.
    pub alpha_vs: nn::VarStore,
    log_alpha: Tensor,
    pub alpha_opt: Adam,
    target_entropy: f64,
    /// Training iterations done.
    pub iterations: u64,
    /// Actor steps done (the policy's version).
    pub actor_updates: u64,
    /// Every Gaussian draw of the learner (next actions, actor and temperature steps), so that a
    /// checkpoint can hold its state and a resumed run continues the same stream.
    pub noise_rng: ChaCha8Rng,
    noise: Vec<f32>,
    /// The critics through `crate::dense` on CPU (None: libtorch autograd, on CUDA or on request).
    dense: Option<DenseTd3>,
    /// Backpropagate through the spiking actor with autograd even where the hand-written backward
    /// applies (tests compare the two).
    pub autograd_actor: bool,
    pub phase_times: PhaseTimes,
}

impl Sac {
    /// The learner a run with master seed `seed` starts from (as `Td3::seeded`).
    pub fn seeded(run: &RunConfig, policy_config: PolicyConfig, seed: u64, device: Device) -> Sac {
        let seeds = Seeds::from_run(seed);
        let _init = torch_init_lock();
        tch::manual_seed(seeds.torch as i64);
        Sac::new(run, policy_config, device, seeds.target_noise)
    }

    /// Builds every network (initialisation from libtorch's global generator). `policy_config` must carry
    /// the Gaussian head (`RunConfig::policy_config` of a SAC run does).
    pub fn new(run: &RunConfig, policy_config: PolicyConfig, device: Device, noise_seed: u64) -> Sac {
        assert!(policy_config.gaussian.is_some(), "a SAC actor is a Gaussian policy");
        let (obs_dim, act_dim) = (policy_config.obs_dim, policy_config.act_dim);
        let (cfg, sac) = (run.td3.clone(), run.sac.clone());
        let max_action =
            Tensor::from_slice(&policy_config.max_action).view([1, act_dim as i64]).to_device(device);

        let actor_vs = nn::VarStore::new(device);
        let actor = TorchPolicy::new(&actor_vs.root(), &policy_config);
        let actor_opt = Adam::new(&actor_vs, sac.policy_lr);

        let proxy = (run.algo == Algo::Proxy).then(|| {
            let proxy_cfg = PolicyConfig {
                network: NetworkConfig::Ann { hidden: run.proxy.hidden.clone() },
                ..policy_config.clone()
            };
            let vs = nn::VarStore::new(device);
            let net = TorchPolicy::new(&vs.root(), &proxy_cfg);
            let opt = Adam::new(&vs, run.proxy.lr);
            Proxy { vs, net, opt, steps: run.proxy.steps }
        });

        let critic_vs = nn::VarStore::new(device);
        let critic = Critics::new(&critic_vs.root(), obs_dim, act_dim, &cfg.critic_hidden);
        let critic_opt = Adam::new(&critic_vs, sac.q_lr);
        let mut critic_target_vs = nn::VarStore::new(device);
        let critic_target = Critics::new(&critic_target_vs.root(), obs_dim, act_dim, &cfg.critic_hidden);
        hard_update(&mut critic_target_vs, &critic_vs);
        critic_target_vs.freeze();

        let alpha_vs = nn::VarStore::new(device);
        let log_alpha = alpha_vs.root().var("log_alpha", &[1], nn::Init::Const(sac.initial_alpha.ln()));
        let alpha_opt = Adam::new(&alpha_vs, sac.q_lr);

        let mut learner = Sac {
            target_entropy: -(act_dim as f64),
            cfg,
            sac,
            algo: run.algo,
            policy_config,
            device,
            max_action,
            actor_vs,
            actor,
            actor_opt,
            proxy,
            critic_vs,
            critic,
            critic_opt,
            critic_target_vs,
            critic_target,
            alpha_vs,
            log_alpha,
            alpha_opt,
            iterations: 0,
            actor_updates: 0,
            noise_rng: ChaCha8Rng::seed_from_u64(noise_seed),
            noise: Vec::new(),
            dense: None,
            autograd_actor: false,
            phase_times: PhaseTimes::default(),
        };
        learner.set_autograd_mlps(false);
        learner
    }

    /// Train the critics with libtorch autograd even on CPU (`true`), or through `crate::dense` (`false`,
    /// the default on CPU).
    pub fn set_autograd_mlps(&mut self, autograd: bool) {
        self.dense = None;
        if autograd || self.device != Device::Cpu {
            return;
        }
        let pc = &self.policy_config;
        // The proxy's mean network (`layers.*`) too: its MSE imitation step is dense.
        let proxy = self.proxy.as_ref().map(|p| &p.vs);
        self.dense = DenseTd3::new(
            pc.obs_dim,
            pc.act_dim,
            &pc.max_action,
            &self.critic_vs,
            &self.critic_target_vs,
            None,
            proxy,
        );
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn algo(&self) -> Algo {
        self.algo
    }

    /// The temperature alpha.
    pub fn alpha(&self) -> f64 {
        self.log_alpha.exp().double_value(&[0])
    }

    /// The proxy's variables (mean and log-std networks), if there is a proxy.
    pub fn proxy_vs(&self) -> Option<&nn::VarStore> {
        self.proxy.as_ref().map(|p| &p.vs)
    }

    pub fn proxy_opt(&self) -> Option<&Adam> {
        self.proxy.as_ref().map(|p| &p.opt)
    }

    pub fn proxy_opt_mut(&mut self) -> Option<&mut Adam> {
        self.proxy.as_mut().map(|p| &mut p.opt)
    }

    /// The actor's, the critics', the proxy's (if any) and the temperature's optimisers, together.
    pub fn optimisers_mut(&mut self) -> (&mut Adam, &mut Adam, Option<&mut Adam>, &mut Adam) {
        let proxy = self.proxy.as_mut().map(|p| &mut p.opt);
        (&mut self.actor_opt, &mut self.critic_opt, proxy, &mut self.alpha_opt)
    }

    pub fn has_proxy(&self) -> bool {
        self.proxy.is_some()
    }

    /// The acting policy's weights (mean network and log-std network) under their stable names.
    pub fn export_policy(&self) -> spikerl_snn::NamedTensors {
        spikerl_snn::torch::export(&self.actor_vs)
    }

    /// The actor's Gaussian (pre-tanh mean, log-std) for `obs`, without gradient. The spiking mean takes
    /// the gemm-kernel forward where it applies (LIF family on CPU).
    pub fn actor_gaussian(&self, obs: &Tensor) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let mean = self.actor.mean_no_grad(obs).unwrap_or_else(|| self.actor.mean(obs));
            let log_std = self.actor.log_std(obs).expect("a SAC actor has a log-std network");
            (mean, log_std)
        })
    }

    /// The policy the TD target samples its next action from: the proxy if any, else the actor.
    fn target_gaussian(&self, obs: &Tensor) -> (Tensor, Tensor) {
        match &self.proxy {
            Some(p) => {
                tch::no_grad(|| (p.net.mean(obs), p.net.log_std(obs).expect("the proxy has a log-std")))
            }
            None => self.actor_gaussian(obs),
        }
    }

    /// One imitation step of the proxy toward the actor's Gaussian on `obs` (the actor held constant).
    /// Returns the loss before the step, or None without a proxy.
    pub fn proxy_step(&mut self, obs: &Tensor) -> Option<f64> {
        self.proxy.as_ref()?;
        let (mean, log_std) = self.actor_gaussian(obs);
        let imitation = self.sac.imitation;
        if let (Imitation::Mse, Some(dense)) = (imitation, self.dense.as_mut()) {
            // The mean network's half of the loss dense, the log-std network's with autograd: the two
            // networks share no parameter, so the gradient of the sum is the two gradients side by side.
            let mean_loss = dense.proxy_step_on(&host_vec(obs), &host_vec(&mean), false, threads())?;
            let mut grads = dense.proxy_grads()?;
            let p = self.proxy.as_mut()?;
            p.opt.zero_grad();
            let log_std_loss =
                p.net.log_std(obs).expect("the proxy has a log-std").mse_loss(&log_std, Reduction::Mean);
            log_std_loss.backward();
            for (name, var) in p.vs.variables() {
                if name.starts_with("log_std.") {
                    grads.insert(name, var.grad());
                }
            }
            p.opt.step_with_grads(&grads);
            return Some(mean_loss + log_std_loss.double_value(&[]));
        }
        let p = self.proxy.as_mut()?;
        let (pm, pl) = (p.net.mean(obs), p.net.log_std(obs).expect("the proxy has a log-std"));
        let loss = match imitation {
            Imitation::Mse => pm.mse_loss(&mean, Reduction::Mean) + pl.mse_loss(&log_std, Reduction::Mean),
            Imitation::Kl => gaussian_kl((&mean, &log_std), (&pm, &pl)),
        };
        p.opt.backward_step(&loss);
        Some(loss.double_value(&[]))
    }

    /// One training iteration: K proxy steps (each on a fresh minibatch), then the critic step and,
    /// every `policy_frequency` iterations, that many actor and temperature steps on the critic's batch.
    pub fn update(&mut self, mut sample: impl FnMut() -> Batch) -> UpdateStats {
        let mut stats = UpdateStats::default();
        if let Some(steps) = self.proxy.as_ref().map(|p| p.steps) {
            let mut total = 0.0;
            for _ in 0..steps {
                let b = sample();
                let started = std::time::Instant::now();
                total += self.proxy_step(&b.obs).unwrap_or_default();
                self.phase_times.proxy += started.elapsed();
                self.phase_times.proxy_steps += 1;
            }
            stats.proxy_loss = Some(total / steps as f64);
        }

        let b = sample();
        let started = std::time::Instant::now();
        let threads = threads();
        let alpha = self.alpha();
        let (next_action, next_log_prob) = tch::no_grad(|| {
            let (mean, log_std) = self.target_gaussian(&b.next_obs);
            let eps = self.standard_normal(&mean.size());
            squashed_sample(&mean, &log_std, &eps, &self.max_action)
        });
        if let Some(dense) = &mut self.dense {
            // r + gamma (1 - d) min Q'(s', a') from the dense twins, less gamma (1 - d) alpha log pi(a'|s').
            let mut y = dense.td_targets(
                &host_vec(&b.next_obs),
                &host_vec(&next_action),
                &host_vec(&b.rewards),
                &host_vec(&b.not_done),
                self.cfg.gamma,
                threads,
            );
            let (nd, lp) = (host_vec(&b.not_done), host_vec(&next_log_prob));
            let scale = (self.cfg.gamma * alpha) as f32;
            for ((y, nd), lp) in y.iter_mut().zip(&nd).zip(&lp) {
                *y -= scale * nd * lp;
            }
            let step = dense.critic_step(&host_vec(&b.obs), &host_vec(&b.actions), &y, threads);
            self.critic_opt.step_with_grads(&dense.critic_grads());
            stats.critic_loss = step.loss[0] + step.loss[1];
            stats.q_mean = step.q1_mean;
            stats.target_mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / y.len() as f64;
        } else {
            let target = tch::no_grad(|| {
                let q = self.critic_target.min_q(&b.next_obs, &next_action) - next_log_prob * alpha;
                &b.rewards + &b.not_done * self.cfg.gamma * q
            });
            self.critic_opt.zero_grad();
            let losses = self.critic.losses_backward(&b.obs, &b.actions, &target, threads);
            self.critic_opt.step();
            stats.critic_loss = losses.iter().map(|(_, l)| l.double_value(&[])).sum();
            stats.q_mean = losses[0].0.mean(Kind::Float).double_value(&[]);
            stats.target_mean = target.mean(Kind::Float).double_value(&[]);
        }
        self.phase_times.critic += started.elapsed();
        self.phase_times.critic_steps += 1;

        self.iterations += 1;
        if self.iterations.is_multiple_of(self.sac.policy_frequency) {
            let started = std::time::Instant::now();
            let mut losses = 0.0;
            for _ in 0..self.sac.policy_frequency {
                losses += self.actor_step(&b.obs);
                self.actor_updates += 1;
                if self.sac.autotune {
                    self.alpha_step(&b.obs);
                }
            }
            stats.actor_loss = Some(losses / self.sac.policy_frequency as f64);
            self.phase_times.actor += started.elapsed();
            self.phase_times.actor_steps += 1;
        }
        // CleanRL's target_network_frequency 1: the target critics follow every iteration.
        soft_update(&self.critic_target_vs, &self.critic_vs, self.cfg.tau);
        stats.alpha = Some(self.alpha());
        stats
    }

    /// One actor step: minimise mean(alpha log pi(a|s) - min(Q1, Q2)(s, a)) with `a` sampled by
    /// reparameterisation, over the mean and log-std networks (the critics held constant).
    fn actor_step(&mut self, obs: &Tensor) -> f64 {
        let alpha = self.alpha();
        let rows = obs.size()[0];
        let eps = self.standard_normal(&[rows, self.policy_config.act_dim as i64]);
        self.critic_vs.freeze();
        self.actor_opt.zero_grad();
        // CPU, LIF family: the spiking network's backward through time hand-written, from the gradient
        // with respect to its pre-tanh output; autograd for the rest.
        let taped = if self.autograd_actor { None } else { self.actor.mean_taped(obs) };
        let (mean, tape) = match taped {
            Some((mean, tape)) => (mean.detach().set_requires_grad(true), Some(tape)),
            None => (self.actor.mean(obs), None),
        };
        let log_std = self.actor.log_std(obs).expect("a SAC actor has a log-std network");
        let (action, log_prob) = squashed_sample(&mean, &log_std, &eps, &self.max_action);
        let entropy_term = (log_prob * alpha).mean(Kind::Float);
        let loss = match &mut self.dense {
            // The critics' part dense: d mean(min Q) / d action from the hand-written twins, then
            // autograd through the sample with that gradient as a constant (the same gradient as
            // backpropagating through the critics).
            Some(dense) if !self.autograd_actor => {
                let threads = threads();
                let (min_q, grad) = dense.min_q_action_grad(&host_vec(obs), &host_vec(&action), threads);
                let grad = Tensor::from_slice(&grad).view([rows, -1]).to_device(self.device);
                let surrogate = &entropy_term - (&action * grad).sum(Kind::Float);
                surrogate.backward();
                entropy_term.double_value(&[]) - min_q
            }
            _ => {
                let loss = &entropy_term - self.critic.min_q(obs, &action).mean(Kind::Float);
                loss.backward();
                loss.double_value(&[])
            }
        };
        match tape {
            Some(tape) => {
                let mut grads: HashMap<String, Tensor> = self.actor.backward_taped_mean(&tape, &mean.grad());
                for (name, var) in self.actor_vs.variables() {
                    if name.starts_with("log_std.") {
                        grads.insert(name, var.grad());
                    }
                }
                self.actor_opt.step_with_grads(&grads);
            }
            None => self.actor_opt.step(),
        }
        self.critic_vs.unfreeze();
        loss
    }

    /// One temperature step: minimise mean(-alpha (log pi(a|s) + target entropy)) with a fresh sample of
    /// the (just updated) actor, as CleanRL does.
    fn alpha_step(&mut self, obs: &Tensor) {
        let log_prob = tch::no_grad(|| {
            let (mean, log_std) = self.actor_gaussian(obs);
            let eps = self.standard_normal(&mean.size());
            squashed_sample(&mean, &log_std, &eps, &self.max_action).1
        });
        let loss = (self.log_alpha.exp() * -(log_prob + self.target_entropy)).mean(Kind::Float);
        self.alpha_opt.backward_step(&loss);
    }

    /// A standard-normal tensor of `shape` drawn from `noise_rng`.
    fn standard_normal(&mut self, shape: &[i64]) -> Tensor {
        crate::td3::standard_normal(&mut self.noise_rng, &mut self.noise, shape, self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Base;
    use spikerl_snn::NeuronKind;

    fn values(x: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(x.flatten(0, -1)).unwrap()
    }

    fn small_run(algo: Algo) -> (RunConfig, PolicyConfig) {
        let mut cfg = RunConfig::paper("Pendulum-v1", algo, NeuronKind::Lif, 0).with_base(Base::Sac);
        cfg.snn.hidden = vec![32, 32];
        cfg.ann_hidden = vec![32, 32];
        cfg.proxy.hidden = vec![32, 32];
        cfg.td3.critic_hidden = vec![32, 32];
        cfg.sac.gaussian.hidden = vec![16];
        let policy = cfg.policy_config(3, 1, vec![2.0]);
        (cfg, policy)
    }

    fn batch(seed: i64) -> Batch {
        tch::manual_seed(seed);
        let n = 64;
        Batch {
            obs: Tensor::randn([n, 3], (Kind::Float, Device::Cpu)),
            actions: Tensor::rand([n, 1], (Kind::Float, Device::Cpu)) * 4.0 - 2.0,
            rewards: Tensor::randn([n, 1], (Kind::Float, Device::Cpu)),
            next_obs: Tensor::randn([n, 3], (Kind::Float, Device::Cpu)),
            not_done: Tensor::ones([n, 1], (Kind::Float, Device::Cpu)),
        }
    }

    fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
        let mut v: Vec<_> = vs.variables().into_iter().map(|(k, t)| (k, t.detach().copy())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn changed(before: &[(String, Tensor)], vs: &nn::VarStore) -> bool {
        let now = vs.variables();
        before.iter().any(|(k, t)| !now[k].equal(t))
    }

    /// The log-density of the squashed Gaussian, straight from the change of variables in f64: the
    /// pre-squash point is atanh(a / m), its Gaussian density, less log |da/dx| = log(m (1 - tanh^2)).
    #[test]
    fn log_prob_with_tanh_correction_matches_a_direct_computation() {
        let mean = [0.3f32, -1.2, 2.5, 0.0];
        let log_std = [-0.5f32, 0.4, -2.0, 1.0];
        let eps = [0.7f32, -1.1, 0.2, 1.9];
        let max = [2.0f32, 1.0];
        let t = |v: &[f32]| Tensor::from_slice(v).view([2, 2]);
        let m = Tensor::from_slice(&max).view([1, 2]);
        let (action, log_prob) = squashed_sample(&t(&mean), &t(&log_std), &t(&eps), &m);
        let (action, log_prob) = (values(&action), values(&log_prob));
        for (row, &got) in log_prob.iter().enumerate() {
            let mut want = 0.0f64;
            for (col, &mx) in max.iter().enumerate() {
                let i = row * 2 + col;
                let (mu, ls, e, mx) = (mean[i] as f64, log_std[i] as f64, eps[i] as f64, mx as f64);
                let x = mu + ls.exp() * e;
                let a = x.tanh() * mx;
                assert!((action[i] as f64 - a).abs() < 1e-5, "action {} vs {a}", action[i]);
                let u = (a / mx).atanh(); // recovered from the action itself
                let gauss =
                    -((u - mu) / ls.exp()).powi(2) / 2.0 - ls - (2.0 * std::f64::consts::PI).sqrt().ln();
                want += gauss - (mx * (1.0 - (a / mx).powi(2)) + 1e-6).ln();
            }
            let got = got as f64;
            assert!(
                (got - want).abs() < 2e-3 * want.abs().max(1.0),
                "row {row}: log-prob {got}, direct {want}"
            );
        }
    }

    #[test]
    fn gaussian_kl_is_zero_for_equal_gaussians_and_matches_the_closed_form() {
        let t = |v: &[f32]| Tensor::from_slice(v).view([1, 2]);
        let (m, l) = (t(&[0.5, -1.0]), t(&[0.1, -0.3]));
        assert!(gaussian_kl((&m, &l), (&m, &l)).double_value(&[]).abs() < 1e-7);
        // KL(N(0, 1) || N(1, e^2)) = 1 + (1 + 1) / (2 e^2) - 1/2 per dimension.
        let kl = gaussian_kl((&t(&[0.0, 0.0]), &t(&[0.0, 0.0])), (&t(&[1.0, 1.0]), &t(&[1.0, 1.0])));
        let want = 2.0 * (1.0 + 2.0 / (2.0 * std::f64::consts::E.powi(2)) - 0.5);
        assert!((kl.double_value(&[]) - want).abs() < 1e-5);
    }

    #[test]
    fn entropy_tuning_moves_alpha_toward_the_target_entropy() {
        let _rng = torch_init_lock();
        tch::set_num_threads(1);
        tch::manual_seed(2);
        let (cfg, policy) = small_run(Algo::Ann);
        let mut sac = Sac::new(&cfg, policy.clone(), Device::Cpu, 5);
        // A wide policy (log-std near its top bound) has entropy far above -|A|: alpha must fall.
        let obs = batch(3).obs;
        let (_, log_std) = sac.actor_gaussian(&obs);
        let before = sac.alpha();
        for _ in 0..20 {
            sac.alpha_step(&obs);
        }
        let after = sac.alpha();
        let mean_log_std = log_std.mean(Kind::Float).double_value(&[]);
        assert!(mean_log_std > -2.0, "an untrained policy is wide: mean log-std {mean_log_std}");
        assert!(after < before, "entropy above target: alpha must fall, {before} -> {after}");

        // A target entropy above the policy's: alpha must rise.
        let mut sac = Sac::new(&cfg, policy, Device::Cpu, 5);
        sac.target_entropy = 10.0;
        let before = sac.alpha();
        for _ in 0..20 {
            sac.alpha_step(&obs);
        }
        assert!(sac.alpha() > before, "entropy below target: alpha must rise, {before} -> {}", sac.alpha());
    }

    #[test]
    fn proxy_imitation_lowers_its_loss_and_touches_only_the_proxy() {
        let _rng = torch_init_lock();
        tch::set_num_threads(1);
        for imitation in [Imitation::Mse, Imitation::Kl] {
            tch::manual_seed(4);
            let (mut cfg, policy) = small_run(Algo::Proxy);
            cfg.sac.imitation = imitation;
            let mut sac = Sac::new(&cfg, policy, Device::Cpu, 5);
            let (actor, critic, alpha) = (snapshot(&sac.actor_vs), snapshot(&sac.critic_vs), sac.alpha());
            let proxy = snapshot(sac.proxy_vs().unwrap());
            let obs = batch(6).obs;
            let first = sac.proxy_step(&obs).unwrap();
            let mut last = first;
            for _ in 0..60 {
                last = sac.proxy_step(&obs).unwrap();
            }
            assert!(last < 0.5 * first, "{imitation}: imitation loss must fall, {first} -> {last}");
            assert!(!changed(&actor, &sac.actor_vs), "{imitation}: a proxy step must not change the actor");
            assert!(!changed(&critic, &sac.critic_vs), "{imitation}: nor the critics");
            assert_eq!(sac.alpha(), alpha, "nor the temperature");
            assert!(changed(&proxy, sac.proxy_vs().unwrap()), "the proxy itself must learn");
        }
    }

    /// Proxy SAC's TD target samples from the proxy, vanilla's from the actor: moving one and not the
    /// other changes the critic's targets accordingly.
    #[test]
    fn the_td_target_samples_from_the_proxy_in_proxy_mode() {
        let _rng = torch_init_lock();
        tch::set_num_threads(1);
        tch::manual_seed(8);
        let (cfg, policy) = small_run(Algo::Proxy);
        let sac = Sac::new(&cfg, policy, Device::Cpu, 5);
        let obs = batch(9).next_obs;
        let (pm, _) = sac.target_gaussian(&obs);
        let want = tch::no_grad(|| sac.proxy.as_ref().unwrap().net.mean(&obs));
        assert!(pm.equal(&want), "proxy mode: the target policy is the proxy");
        let (am, _) = sac.actor_gaussian(&obs);
        assert!(!pm.equal(&am), "and not the spiking actor");
    }

    #[test]
    fn an_iteration_updates_what_cleanrl_updates() {
        let _rng = torch_init_lock();
        tch::set_num_threads(1);
        tch::manual_seed(10);
        let (cfg, policy) = small_run(Algo::Vanilla);
        let mut sac = Sac::new(&cfg, policy, Device::Cpu, 5);
        let (actor, target) = (snapshot(&sac.actor_vs), snapshot(&sac.critic_target_vs));
        let s = sac.update(|| batch(11));
        assert!(s.actor_loss.is_none(), "policy_frequency 2: no actor step on the first iteration");
        assert!(!changed(&actor, &sac.actor_vs));
        assert!(changed(&target, &sac.critic_target_vs), "the target critics follow every iteration");
        let s = sac.update(|| batch(12));
        assert!(s.actor_loss.is_some() && s.alpha.is_some());
        assert_eq!(sac.actor_updates, 2, "two actor steps every second iteration");
        assert!(changed(&actor, &sac.actor_vs));
        let log_std_moved = sac
            .actor_vs
            .variables()
            .iter()
            .filter(|(k, _)| k.starts_with("log_std."))
            .any(|(k, v)| !actor.iter().any(|(n, t)| n == k && t.equal(v)));
        assert!(log_std_moved, "the log-std network trains with the actor");
    }

    /// The spiking actor's hand-written backward through time (plus autograd for the rest) against
    /// autograd throughout: the same actor losses and weights.
    #[test]
    fn hand_written_spiking_actor_step_trains_as_autograd_does() {
        let _rng = torch_init_lock();
        tch::set_num_threads(1);
        let run = |autograd: bool| {
            tch::manual_seed(13);
            let (cfg, policy) = small_run(Algo::Vanilla);
            let mut sac = Sac::new(&cfg, policy, Device::Cpu, 5);
            sac.autograd_actor = autograd;
            let mut losses = Vec::new();
            for i in 0..4 {
                losses.extend(sac.update(|| batch(20 + i)).actor_loss);
            }
            (losses, snapshot(&sac.actor_vs))
        };
        let (hand, hand_w) = run(false);
        let (auto, auto_w) = run(true);
        assert_eq!(hand.len(), 2);
        for (a, b) in hand.iter().zip(&auto) {
            assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "actor loss {a} (hand) vs {b} (autograd)");
        }
        for ((name, h), (_, a)) in hand_w.iter().zip(&auto_w) {
            let diff = (h - a).abs().max().double_value(&[]);
            assert!(diff <= 1e-4, "{name}: hand and autograd weights differ by {diff}");
        }
    }

    /// The dense critics (and the dense min-Q gradient of the actor step) against libtorch autograd
    /// throughout: the same losses and actor weights, for an ANN and a proxy SAC.
    #[test]
    fn dense_critics_train_as_autograd_does() {
        let _rng = torch_init_lock();
        tch::set_num_threads(1);
        for algo in [Algo::Ann, Algo::Proxy] {
            let run = |autograd: bool| {
                tch::manual_seed(14);
                let (cfg, policy) = small_run(algo);
                let mut sac = Sac::new(&cfg, policy, Device::Cpu, 5);
                assert!(sac.dense.is_some());
                sac.set_autograd_mlps(autograd);
                sac.autograd_actor = autograd;
                let mut k = 0;
                let stats: Vec<_> = (0..4)
                    .map(|_| {
                        sac.update(|| {
                            k += 1;
                            batch(40 + k)
                        })
                    })
                    .collect();
                let proxy = sac.proxy_vs().map(snapshot).unwrap_or_default();
                (stats, snapshot(&sac.actor_vs), proxy)
            };
            let ((dense, dw, dp), (auto, aw, ap)) = (run(false), run(true));
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-4 * x.abs().max(1.0);
            for (d, a) in dense.iter().zip(&auto) {
                assert!(close(d.critic_loss, a.critic_loss), "{algo:?}: {d:?} vs {a:?}");
                assert!(close(d.target_mean, a.target_mean), "{algo:?}: {d:?} vs {a:?}");
                assert_eq!(d.actor_loss.is_some(), a.actor_loss.is_some());
                for (x, y) in
                    d.actor_loss.iter().zip(&a.actor_loss).chain(d.proxy_loss.iter().zip(&a.proxy_loss))
                {
                    assert!(close(*x, *y), "{algo:?} actor/proxy loss: dense {x} vs autograd {y}");
                }
            }
            for ((name, x), (_, y)) in dw.iter().zip(&aw) {
                let diff = (x - y).abs().max().double_value(&[]);
                assert!(diff <= 1e-4, "{algo:?} {name}: dense and autograd actors differ by {diff}");
            }
            for ((name, x), (_, y)) in dp.iter().zip(&ap) {
                let diff = (x - y).abs().max().double_value(&[]);
                assert!(diff <= 1e-4, "{algo:?} proxy {name}: dense and autograd differ by {diff}");
            }
        }
    }
}
