//! `spikerl bench update`: one training iteration of an algorithm and its phases, on synthetic
//! minibatches of the environment's shapes (so that the figures measure the learner alone), with each
//! phase's matrix-product work put against the rates this machine reaches on the same shapes.

use super::matmul_work::{actor_macs, dense_gflops, mlp_macs, sgemm_gflops};
use super::measure::time_ms;
use super::policies::trained_weights;
use super::synthetic::random_batch;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use spikerl_algo::sac::Sac;
use spikerl_algo::td3::{Batch, Td3};
use spikerl_algo::{Algo, Base, RunConfig};
use spikerl_envs::EnvSpec;
use spikerl_learner::training::trainer::max_action;
use spikerl_snn::{NeuronKind, Policy};
use std::time::Instant;
use tch::Device;

#[derive(Debug, Serialize)]
pub struct UpdateBench {
    pub env: String,
    /// td3 or ddpg (SAC reports as `SacUpdateBench`).
    pub base: String,
    pub algo: String,
    pub neuron: String,
    pub device: String,
    pub batch: usize,
    pub threads: i32,
    pub iterations: usize,
    /// The trained actor weights the benchmark started from (`--policy`); none: initial weights.
    pub policy: Option<String>,
    /// The SNN actor's firing rate on the benchmark's observations at the start (None for an ANN).
    pub actor_firing_rate: Option<f64>,
    /// One full training iteration (proxy steps, critic, and the delayed actor every other iteration).
    pub ms_per_iteration: f64,
    pub iterations_per_second: f64,
    /// Phases, each timed alone over the same number of repetitions.
    pub ms_proxy_step: Option<f64>,
    pub ms_snn_forward_no_grad: f64,
    pub ms_sample_to_tensors: f64,
    /// Per-phase split of an iteration (`Phases`), with dense matmul FLOPs and the share of the measured
    /// sgemm rate each phase reaches.
    pub phases: Phases,
    /// libtorch matmul rate at the shapes a training iteration uses, this machine, same threads.
    pub sgemm: Vec<SgemmRate>,
    /// The best of `sgemm` (rounds of ~20 ms, under the same load as the phases): the rate the phases are
    /// compared with.
    pub sgemm_gflops_best: f64,
    /// The first shape of `sgemm` in rounds of ~1 ms, best of 60: near the core's rate when the machine is
    /// shared (a round often runs within one time slice).
    pub sgemm_gflops_short_rounds: f64,
    /// The best `SgemmRate::dense_gflops` (CPU): the rate of the kernel the CPU path's MLPs use.
    pub dense_gflops_best: Option<f64>,
    /// The SNN's gradient-free forward (256 rows) and the iteration on the event-driven mirror instead of
    /// the default dense products on the gemm kernels (`Td3::dense_snn_targets`; the LIF family on CPU).
    pub mirror_snn_targets: Option<MirrorSnnTargets>,
    /// The same iterations with every MLP (critics, ANN actor, proxy) through libtorch autograd instead
    /// of `spikerl_algo::dense` (CPU only): the speed-up the dense path brings, measured in the same run.
    pub libtorch_mlps: Option<LibtorchMlps>,
}

#[derive(Debug, Serialize)]
pub struct MirrorSnnTargets {
    pub ms_forward: f64,
    pub ms_per_iteration: f64,
}

/// `bench update`'s iteration and phases with the MLPs on libtorch autograd (`Td3::set_autograd_mlps`).
#[derive(Debug, Serialize)]
pub struct LibtorchMlps {
    pub ms_per_iteration: f64,
    pub ms_proxy_step: Option<f64>,
    pub ms_critic_step: f64,
    pub ms_actor_step: f64,
}

/// Where an iteration's time goes, from the phase timers inside `Td3::update` (`PhaseTimes`) over the
/// timed iterations. Minibatches come from a pre-made pool inside these timings; sampling is its own
/// phase.
#[derive(Debug, Serialize)]
pub struct Phases {
    /// Proxy steps per iteration (K; 0 without a proxy).
    pub proxy_steps: usize,
    /// One proxy step: the SNN's targets (plain Rust, event-driven) + the proxy's forward, backward, Adam.
    pub ms_proxy_step: Option<f64>,
    /// Of which the proxy MLP's forward/backward/Adam (proxy step minus the SNN forward).
    pub ms_proxy_mlp: Option<f64>,
    /// Critic step: target action (proxy, SNN mirror or ANN target), target critics, twin critic
    /// forward/backward and Adam.
    pub ms_critic_step: f64,
    /// Actor step (every `policy_delay`-th iteration): actor forward/backward through Q1, Adam, Polyak.
    pub ms_actor_step: f64,
    /// The actor step with autograd through the SNN instead of the hand-written backward through time
    /// (spiking actor on CPU only; the default path is `ms_actor_step`).
    pub ms_actor_step_autograd: Option<f64>,
    /// Drawing K+1 minibatches from a replay buffer of `sample_buffer_rows` rows and making tensors.
    pub ms_sampling: f64,
    pub sample_buffer_rows: usize,
    /// Timed iterations with and without the actor update.
    pub ms_iteration_with_actor: f64,
    pub ms_iteration_without_actor: f64,
    /// Dense matmul work (2 FLOPs per multiply-add; backward = 2x forward) per phase occurrence.
    pub gflop_proxy_mlp: Option<f64>,
    pub gflop_critic_step: f64,
    pub gflop_actor_step: f64,
    /// Achieved GFLOP/s of each phase and its fraction of `sgemm_gflops_best`.
    pub gflops_proxy_mlp: Option<f64>,
    pub gflops_critic_step: f64,
    pub gflops_actor_step: f64,
    pub sgemm_fraction_proxy_mlp: Option<f64>,
    pub sgemm_fraction_critic_step: f64,
    pub sgemm_fraction_actor_step: f64,
    /// The same against `dense_gflops_best` (CPU).
    pub dense_fraction_proxy_mlp: Option<f64>,
    pub dense_fraction_critic_step: Option<f64>,
    pub dense_fraction_actor_step: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct SgemmRate {
    /// [m x k] x [k x n].
    pub m: i64,
    pub k: i64,
    pub n: i64,
    pub what: String,
    /// libtorch's `matmul` (MKL on CPU) with the benchmark's threads.
    pub gflops: f64,
    /// `spikerl_algo::dense::matmul` (the gemm crate's kernels), one product per thread on every thread at once,
    /// summed: the CPU path's kernel rate on this shape (CPU only).
    pub dense_gflops: Option<f64>,
}

/// Rows of the replay buffer that `Phases::ms_sampling` draws from.
const SAMPLE_BUFFER_ROWS: usize = 200_000;

/// One training iteration of `run` (TD3 or DDPG) and its phases; `policy_file`: start the actor from these trained weights
/// (`policy.safetensors`) instead of the initial ones.
pub fn update(
    run: &RunConfig,
    batch: usize,
    device: Device,
    iterations: usize,
    policy_file: Option<&std::path::Path>,
) -> anyhow::Result<UpdateBench> {
    let (env, base, algo, neuron) = (run.env_id.as_str(), run.base, run.algo, run.neuron);
    let spec = spikerl_envs::spec(env)?;
    let mut cfg = run.clone();
    cfg.td3.batch_size = batch;
    let mut td3 = learner(&cfg, &spec, device, policy_file)?;
    let (od, ad) = (spec.obs_dim, spec.act_dim);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let pool: Vec<Batch> = (0..8).map(|_| random_batch(&mut rng, batch, od, ad, device)).collect();
    let actor_firing_rate = actor_firing_rate(&td3, &pool[0], batch, ad)?;
    let mut its = Iterations { pool, drawn: 0, reps: iterations.max(2), device };
    its.warm_up(&mut td3, (iterations / 10).max(4));
    let reps = its.reps;

    // The default path, then the same iterations on the alternatives it is compared with.
    let default = its.time(&mut td3);
    let libtorch_mlps = (device == Device::Cpu).then(|| with_libtorch_mlps(&mut td3, &mut its));
    let ms_actor_step_autograd = (matches!(td3.policy_config.network, spikerl_snn::NetworkConfig::Snn(_))
        && device == Device::Cpu)
        .then(|| actor_step_with_autograd(&mut td3, &mut its));
    let obs = its.pool[0].obs.shallow_clone();
    let ms_fwd = time_ms(reps, || {
        let _ = td3.act(&obs);
    });
    let mirror_snn_targets = on_mirror_snn_targets(&mut td3, &mut its, &obs);
    let ms_proxy = td3.has_proxy().then_some(default.ms_proxy_step);
    let ms_sample = sample_to_tensors_ms(batch, od, ad, device, reps);
    let k = if td3.has_proxy() { cfg.proxy.steps } else { 0 };
    let ms_sampling = sampling_ms(batch, od, ad, device, reps, k);

    let work = PhaseWork::of(&cfg, &td3, algo, batch, device);
    let shapes = sgemm_shapes(&cfg, &td3, batch);
    let sgemm: Vec<SgemmRate> = shapes
        .iter()
        .map(|&(m, kk, n, what)| SgemmRate {
            m,
            k: kk,
            n,
            what: what.into(),
            gflops: sgemm_gflops(m, kk, n, device, 2.0, 4),
            dense_gflops: (device == Device::Cpu)
                .then(|| dense_gflops(m as usize, kk as usize, n as usize, 4)),
        })
        .collect();
    let best = sgemm.iter().map(|r| r.gflops).fold(0.0, f64::max);
    let dense_best = sgemm.iter().filter_map(|r| r.dense_gflops).reduce(f64::max);
    let (m0, k0, n0, _) = shapes[0];
    let peak = sgemm_gflops(m0, k0, n0, device, 0.1, 60);
    let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    let timings = PhaseTimings {
        proxy_steps: k,
        ms_proxy_step: ms_proxy,
        ms_proxy_mlp: ms_proxy.map(|p| p - ms_fwd),
        ms_critic_step: default.ms_critic_step,
        ms_actor_step: default.ms_actor_step,
        ms_actor_step_autograd,
        ms_sampling,
        ms_iteration_with_actor: mean(&default.with_actor),
        ms_iteration_without_actor: mean(&default.without_actor),
    };
    Ok(UpdateBench {
        env: env.to_string(),
        base: base.to_string(),
        algo: algo.to_string(),
        neuron: neuron.to_string(),
        device: format!("{device:?}"),
        batch,
        threads: tch::get_num_threads(),
        iterations: reps,
        policy: policy_file.map(|p| p.display().to_string()),
        actor_firing_rate,
        ms_per_iteration: default.ms_per_iteration,
        iterations_per_second: 1e3 / default.ms_per_iteration,
        ms_proxy_step: ms_proxy,
        ms_snn_forward_no_grad: ms_fwd,
        ms_sample_to_tensors: ms_sample,
        phases: phases(&timings, &work, best, dense_best),
        sgemm,
        sgemm_gflops_best: best,
        sgemm_gflops_short_rounds: peak,
        dense_gflops_best: dense_best,
        mirror_snn_targets,
        libtorch_mlps,
    })
}

/// The learner `cfg` trains (seeded), its actor (and a Polyak target's) from `policy_file` if given.
fn learner(
    cfg: &RunConfig,
    spec: &EnvSpec,
    device: Device,
    policy_file: Option<&std::path::Path>,
) -> anyhow::Result<Td3> {
    let policy = cfg.policy_config(spec.obs_dim, spec.act_dim, max_action(spec)?);
    let trained = policy_file.map(|p| trained_weights(p, &policy)).transpose()?;
    tch::manual_seed(0);
    let mut td3 = Td3::new(cfg, policy, device, 0);
    if let Some(w) = &trained {
        spikerl_snn::torch::import(&mut td3.actor_vs, w)?;
        // The Polyak target starts as a copy of the actor, as in a run.
        if !td3.has_proxy() {
            spikerl_snn::torch::import(td3.target_vs_mut(), w)?;
        }
    }
    Ok(td3)
}

/// The SNN actor's firing rate on `minibatch`'s observations (None for an ANN).
fn actor_firing_rate(
    td3: &Td3,
    minibatch: &Batch,
    batch: usize,
    act_dim: usize,
) -> anyhow::Result<Option<f64>> {
    Ok(match td3.policy_config.network {
        spikerl_snn::NetworkConfig::Snn(_) => {
            let mut p = Policy::new(&td3.policy_config, &spikerl_snn::torch::export(&td3.actor_vs))?;
            let obs = Vec::<f32>::try_from(minibatch.obs.to_device(Device::Cpu).flatten(0, -1))?;
            let mut out = vec![0f32; batch * act_dim];
            p.act_batch(&obs, &mut out);
            Some(p.stats().firing_rate())
        }
        spikerl_snn::NetworkConfig::Ann { .. } => None,
    })
}

/// The minibatches the iterations draw from in turn (one running count over every timing), and how many
/// iterations each timing runs.
struct Iterations {
    pool: Vec<Batch>,
    drawn: usize,
    reps: usize,
    device: Device,
}

/// What [`Iterations::time`] measured.
struct TimedIterations {
    /// Wall clock of the whole loop per iteration.
    ms_per_iteration: f64,
    /// Each iteration's own time, split by whether it ran the delayed actor update.
    with_actor: Vec<f64>,
    without_actor: Vec<f64>,
    /// From the phase timers inside `Td3::update` over the same iterations, per occurrence of the phase.
    ms_proxy_step: f64,
    ms_critic_step: f64,
    ms_actor_step: f64,
}

impl Iterations {
    fn next(&mut self) -> Batch {
        self.drawn += 1;
        self.pool[self.drawn % self.pool.len()].shallow_clone()
    }

    /// Waits for the device's queued work, so that a timing ends when the work does.
    fn sync(&self) {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
    }

    /// Untimed iterations: the first ones allocate.
    fn warm_up(&mut self, td3: &mut Td3, n: usize) {
        for _ in 0..n {
            td3.update(|| self.next());
        }
        self.sync();
    }

    /// `reps` iterations, each timed alone.
    fn time(&mut self, td3: &mut Td3) -> TimedIterations {
        let (mut with_actor, mut without_actor) = (Vec::new(), Vec::new());
        let phases_before = td3.phase_times;
        let started = Instant::now();
        for _ in 0..self.reps {
            let before = td3.actor_updates;
            let t = Instant::now();
            td3.update(|| self.next());
            self.sync();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if td3.actor_updates != before { with_actor.push(ms) } else { without_actor.push(ms) }
        }
        let (a, b) = (td3.phase_times, phases_before);
        let per =
            |d: std::time::Duration, n: u64| if n == 0 { f64::NAN } else { d.as_secs_f64() * 1e3 / n as f64 };
        TimedIterations {
            ms_per_iteration: started.elapsed().as_secs_f64() * 1e3 / self.reps as f64,
            with_actor,
            without_actor,
            ms_proxy_step: per(a.proxy - b.proxy, a.proxy_steps - b.proxy_steps),
            ms_critic_step: per(a.critic - b.critic, a.critic_steps - b.critic_steps),
            ms_actor_step: per(a.actor - b.actor, a.actor_steps - b.actor_steps),
        }
    }
}

/// The iterations with every MLP on libtorch autograd instead of the dense path (CPU).
fn with_libtorch_mlps(td3: &mut Td3, its: &mut Iterations) -> LibtorchMlps {
    td3.set_autograd_mlps(true);
    let t = its.time(td3);
    td3.set_autograd_mlps(false);
    LibtorchMlps {
        ms_per_iteration: t.ms_per_iteration,
        ms_proxy_step: td3.has_proxy().then_some(t.ms_proxy_step),
        ms_critic_step: t.ms_critic_step,
        ms_actor_step: t.ms_actor_step,
    }
}

/// The actor step with autograd through the SNN, where the hand-written backward applies (spiking actor
/// on CPU).
fn actor_step_with_autograd(td3: &mut Td3, its: &mut Iterations) -> f64 {
    td3.autograd_actor = true;
    let t = its.time(td3);
    td3.autograd_actor = false;
    t.ms_actor_step
}

/// The gradient-free SNN forward on the event-driven mirror (the path before the dense one), and the
/// iteration with it; only where the dense path is the default (the LIF family on CPU).
fn on_mirror_snn_targets(td3: &mut Td3, its: &mut Iterations, obs: &tch::Tensor) -> Option<MirrorSnnTargets> {
    let lif_family = matches!(&td3.policy_config.network, spikerl_snn::NetworkConfig::Snn(c) if matches!(c.neuron, NeuronKind::Lif | NeuronKind::Plif | NeuronKind::If));
    (td3.dense_snn_targets && lif_family && its.device == Device::Cpu).then(|| {
        td3.dense_snn_targets = false;
        let ms_forward = time_ms(its.reps, || {
            let _ = td3.act(obs);
        });
        let ms_per_iteration = its.time(td3).ms_per_iteration;
        td3.dense_snn_targets = true;
        MirrorSnnTargets { ms_forward, ms_per_iteration }
    })
}

/// Making one minibatch of host transitions into tensors.
fn sample_to_tensors_ms(batch: usize, od: usize, ad: usize, device: Device, reps: usize) -> f64 {
    let mut host = spikerl_algo::replay::Transitions::default();
    for _ in 0..batch {
        host.push(&vec![0.1; od], &vec![0.2; ad], 1.0, &vec![0.3; od], false);
    }
    time_ms(reps, || {
        let _ = Batch::from_transitions(&host, od, ad, device);
    })
}

/// Sampling as the trainer does it: `k + 1` uniform draws from a filled buffer of `SAMPLE_BUFFER_ROWS`,
/// each made into tensors.
fn sampling_ms(batch: usize, od: usize, ad: usize, device: Device, reps: usize, k: usize) -> f64 {
    let rows = SAMPLE_BUFFER_ROWS;
    let mut buffer = spikerl_algo::replay::ReplayBuffer::new(rows, od, ad, 0);
    let mut chunk = spikerl_algo::replay::Transitions::default();
    for i in 0..1000 {
        let x = (i as f32 * 0.618).fract();
        chunk.push(&vec![x; od], &vec![x; ad], x, &vec![-x; od], false);
    }
    for _ in 0..rows / 1000 {
        buffer.insert(&chunk);
    }
    let mut drawn = spikerl_algo::replay::Transitions::default();
    time_ms(reps, || {
        for _ in 0..k + 1 {
            buffer.sample_into(batch, &mut drawn);
            let _ = Batch::from_transitions(&drawn, od, ad, device);
        }
    })
}

/// Dense matmul work (GFLOP) per phase occurrence.
struct PhaseWork {
    proxy_mlp: Option<f64>,
    critic_step: f64,
    actor_step: f64,
}

impl PhaseWork {
    fn of(cfg: &RunConfig, td3: &Td3, algo: Algo, batch: usize, device: Device) -> PhaseWork {
        let (od, ad) = (td3.policy_config.obs_dim, td3.policy_config.act_dim);
        let b = batch as f64;
        let proxy_macs = mlp_macs(od, &cfg.proxy.hidden, ad);
        let critic_macs = mlp_macs(od + ad, &cfg.td3.critic_hidden, 1);
        let actor = actor_macs(&td3.policy_config);
        let fwd = |macs: f64| 2.0 * b * macs / 1e9;
        let critics = td3.critic_count() as f64;
        let target_action = match algo {
            Algo::Proxy => fwd(proxy_macs),
            // On CPU the SNN target runs in plain Rust (event-driven accumulation, not a matmul).
            Algo::Vanilla if device == Device::Cpu => 0.0,
            Algo::Vanilla | Algo::Ann => fwd(actor),
        };
        PhaseWork {
            proxy_mlp: td3.has_proxy().then(|| 3.0 * fwd(proxy_macs)),
            critic_step: target_action + critics * fwd(critic_macs) + critics * 3.0 * fwd(critic_macs),
            // Actor forward + backward (weights and inputs), Q1 forward + backward to its input only (frozen).
            actor_step: 3.0 * fwd(actor) + 2.0 * fwd(critic_macs),
        }
    }
}

/// The matrix shapes `[m x k] x [k x n]` a training iteration multiplies, with what each is; the first is
/// also timed in short rounds.
fn sgemm_shapes(cfg: &RunConfig, td3: &Td3, batch: usize) -> Vec<(i64, i64, i64, &'static str)> {
    let (od, ad) = (td3.policy_config.obs_dim, td3.policy_config.act_dim);
    let (obs_pop, t_steps) = match &td3.policy_config.network {
        spikerl_snn::NetworkConfig::Snn(s) => ((od * s.pop_size) as i64, s.timesteps as i64),
        spikerl_snn::NetworkConfig::Ann { .. } => (od as i64, 1),
    };
    let (bi, p1) = (batch as i64, cfg.proxy.hidden.first().copied().unwrap_or(512) as i64);
    let h = cfg.td3.critic_hidden.first().copied().unwrap_or(256) as i64;
    let mut shapes = vec![
        (bi, h, h, "critic / SNN hidden layer"),
        (
            t_steps * bi,
            obs_pop,
            h,
            if t_steps > 1 { "SNN first layer over T x B rows" } else { "actor first layer" },
        ),
        (bi, (od + ad) as i64, h, "critic first layer"),
    ];
    if td3.has_proxy() {
        shapes.insert(0, (bi, p1, p1, "proxy hidden layer"));
    }
    shapes
}

/// The timed phases of the default path, as `Phases` reports them.
struct PhaseTimings {
    proxy_steps: usize,
    ms_proxy_step: Option<f64>,
    ms_proxy_mlp: Option<f64>,
    ms_critic_step: f64,
    ms_actor_step: f64,
    ms_actor_step_autograd: Option<f64>,
    ms_sampling: f64,
    ms_iteration_with_actor: f64,
    ms_iteration_without_actor: f64,
}

/// The phases with their work and achieved rates, against the best libtorch (`sgemm_best`) and dense
/// kernel (`dense_best`) rates measured.
fn phases(t: &PhaseTimings, work: &PhaseWork, sgemm_best: f64, dense_best: Option<f64>) -> Phases {
    let rate = |gflop: f64, ms: f64| gflop / (ms / 1e3);
    let (gflop_proxy, gflop_critic, gflop_actor) = (work.proxy_mlp, work.critic_step, work.actor_step);
    let (ms_proxy_mlp, ms_critic, ms_actor) = (t.ms_proxy_mlp, t.ms_critic_step, t.ms_actor_step);
    Phases {
        proxy_steps: t.proxy_steps,
        ms_proxy_step: t.ms_proxy_step,
        ms_proxy_mlp,
        ms_critic_step: ms_critic,
        ms_actor_step: ms_actor,
        ms_actor_step_autograd: t.ms_actor_step_autograd,
        ms_sampling: t.ms_sampling,
        sample_buffer_rows: SAMPLE_BUFFER_ROWS,
        ms_iteration_with_actor: t.ms_iteration_with_actor,
        ms_iteration_without_actor: t.ms_iteration_without_actor,
        gflop_proxy_mlp: gflop_proxy,
        gflop_critic_step: gflop_critic,
        gflop_actor_step: gflop_actor,
        gflops_proxy_mlp: gflop_proxy.zip(ms_proxy_mlp).map(|(g, m)| rate(g, m)),
        gflops_critic_step: rate(gflop_critic, ms_critic),
        gflops_actor_step: rate(gflop_actor, ms_actor),
        sgemm_fraction_proxy_mlp: gflop_proxy.zip(ms_proxy_mlp).map(|(g, m)| rate(g, m) / sgemm_best),
        sgemm_fraction_critic_step: rate(gflop_critic, ms_critic) / sgemm_best,
        sgemm_fraction_actor_step: rate(gflop_actor, ms_actor) / sgemm_best,
        dense_fraction_proxy_mlp: gflop_proxy
            .zip(ms_proxy_mlp)
            .zip(dense_best)
            .map(|((g, m), d)| rate(g, m) / d),
        dense_fraction_critic_step: dense_best.map(|d| rate(gflop_critic, ms_critic) / d),
        dense_fraction_actor_step: dense_best.map(|d| rate(gflop_actor, ms_actor) / d),
    }
}

/// The summary line, the actor's firing rate and the per-phase table of `bench update`.
pub fn print(r: &UpdateBench) {
    println!(
        "{} {} {} {} batch {} on {} ({} threads): {:.2} ms/iteration ({:.1} it/s); SNN forward (no grad) {:.2} ms; proxy step {}; batch to tensors {:.3} ms",
        r.env,
        r.base,
        r.algo,
        r.neuron,
        r.batch,
        r.device,
        r.threads,
        r.ms_per_iteration,
        r.iterations_per_second,
        r.ms_snn_forward_no_grad,
        r.ms_proxy_step.map_or("-".into(), |m| format!("{m:.2} ms")),
        r.ms_sample_to_tensors
    );
    if let Some(f) = r.actor_firing_rate {
        println!(
            "actor firing rate on the benchmark's observations: {:.1}% ({})",
            100.0 * f,
            r.policy.as_deref().unwrap_or("initial weights")
        );
    }
    print_phases(r);
}

/// The per-phase table of `bench update`.
fn print_phases(r: &UpdateBench) {
    let p = &r.phases;
    let opt = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "phase", "ms", "GFLOP", "GFLOP/s", "of sgemm", "of dense"
    );
    let pct = |f: Option<f64>| f.map_or("-".into(), |f| format!("{:.0}%", 100.0 * f));
    let row = |name: &str,
               ms: Option<f64>,
               gflop: Option<f64>,
               rate: Option<f64>,
               frac: Option<f64>,
               dense: Option<f64>| {
        println!(
            "{name:<34} {:>9} {:>9} {:>9} {:>10} {:>10}",
            opt(ms, 2),
            opt(gflop, 3),
            opt(rate, 1),
            pct(frac),
            pct(dense)
        );
    };
    let lt = r.libtorch_mlps.as_ref();
    let same = |name: &str, ms: Option<f64>, gflop: Option<f64>| {
        if let Some(ms) = ms {
            row(name, Some(ms), gflop, gflop.map(|g| g / (ms / 1e3)), None, None);
        }
    };
    row(&format!("proxy step (x{})", p.proxy_steps), p.ms_proxy_step, None, None, None, None);
    same("  same, MLPs on libtorch autograd", lt.and_then(|l| l.ms_proxy_step), None);
    row(
        "  of which SNN targets (plain Rust)",
        p.ms_proxy_step.map(|_| r.ms_snn_forward_no_grad),
        None,
        None,
        None,
        None,
    );
    row(
        "  of which proxy MLP fwd/bwd/Adam",
        p.ms_proxy_mlp,
        p.gflop_proxy_mlp,
        p.gflops_proxy_mlp,
        p.sgemm_fraction_proxy_mlp,
        p.dense_fraction_proxy_mlp,
    );
    row(
        "critic step",
        Some(p.ms_critic_step),
        Some(p.gflop_critic_step),
        Some(p.gflops_critic_step),
        Some(p.sgemm_fraction_critic_step),
        p.dense_fraction_critic_step,
    );
    same("  same, MLPs on libtorch autograd", lt.map(|l| l.ms_critic_step), Some(p.gflop_critic_step));
    row(
        "actor step, every 2nd",
        Some(p.ms_actor_step),
        Some(p.gflop_actor_step),
        Some(p.gflops_actor_step),
        Some(p.sgemm_fraction_actor_step),
        p.dense_fraction_actor_step,
    );
    same("  same, MLPs on libtorch autograd", lt.map(|l| l.ms_actor_step), Some(p.gflop_actor_step));
    if let Some(ms) = p.ms_actor_step_autograd {
        row(
            "  same, autograd through the SNN",
            Some(ms),
            Some(p.gflop_actor_step),
            Some(p.gflop_actor_step / (ms / 1e3)),
            None,
            None,
        );
    }
    row(&format!("sampling {} minibatches", p.proxy_steps + 1), Some(p.ms_sampling), None, None, None, None);
    row("iteration without actor step", Some(p.ms_iteration_without_actor), None, None, None, None);
    row("iteration with actor step", Some(p.ms_iteration_with_actor), None, None, None, None);
    if let Some(e) = &r.mirror_snn_targets {
        println!(
            "SNN forward without gradient on the event-driven mirror: {:.2} ms (dense products on the gemm kernels, the default: {:.2} ms); iteration with it: {:.2} ms",
            e.ms_forward, r.ms_snn_forward_no_grad, e.ms_per_iteration
        );
    }
    if let Some(l) = lt {
        println!(
            "iteration with the MLPs on libtorch autograd: {:.2} ms (the dense path: {:.2}x faster)",
            l.ms_per_iteration,
            l.ms_per_iteration / r.ms_per_iteration
        );
    }
    for s in &r.sgemm {
        let dense = s
            .dense_gflops
            .map_or(String::new(), |d| format!("; dense::matmul {d:.1} GFLOP/s (one product per thread)"));
        println!(
            "sgemm [{} x {}] x [{} x {}] ({}): libtorch {:.1} GFLOP/s{dense}",
            s.m, s.k, s.k, s.n, s.what, s.gflops
        );
    }
    println!(
        "sgemm in 1 ms rounds (best of 60, first shape): {:.1} GFLOP/s; \"of sgemm\" above is against {:.1}",
        r.sgemm_gflops_short_rounds, r.sgemm_gflops_best
    );
    if let Some(d) = r.dense_gflops_best {
        println!(
            "\"of dense\" is against {d:.1} GFLOP/s, the best dense::matmul rate above (the kernel the CPU path's MLPs use)"
        );
    }
}

/// `bench update --base sac`: SAC's iteration and its phases (from `Sac`'s phase timers), with the keys
/// `scripts/bench.sh` reads as `UpdateBench` has them.
#[derive(Debug, Serialize)]
pub struct SacUpdateBench {
    pub env: String,
    pub base: String,
    pub algo: String,
    pub neuron: String,
    pub device: String,
    pub batch: usize,
    pub threads: i32,
    pub iterations: usize,
    pub policy: Option<String>,
    pub actor_firing_rate: Option<f64>,
    /// One full training iteration (proxy steps, critic, and every other iteration two actor and
    /// temperature steps).
    pub ms_per_iteration: f64,
    pub iterations_per_second: f64,
    pub ms_proxy_step: Option<f64>,
    /// The actor's Gaussian without gradient (the spiking mean on the gemm kernels, the log-std network).
    pub ms_snn_forward_no_grad: f64,
    pub ms_sample_to_tensors: f64,
    pub phases: SacPhases,
    /// The same iterations with the critics on libtorch autograd instead of `spikerl_algo::dense` (CPU).
    pub ms_per_iteration_libtorch_critics: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct SacPhases {
    pub proxy_steps: usize,
    pub ms_proxy_step: Option<f64>,
    /// Critic step: next action and log-probability (proxy or actor), target twins, twin critics, Adam.
    pub ms_critic_step: f64,
    /// The actor block of every `policy_frequency`-th iteration: that many actor and temperature steps.
    pub ms_actor_step: f64,
}

/// SAC's `bench update`: the same synthetic minibatches and warm-up as [`update`].
pub fn update_sac(
    env: &str,
    algo: Algo,
    neuron: NeuronKind,
    batch: usize,
    device: Device,
    iterations: usize,
    policy_file: Option<&std::path::Path>,
) -> anyhow::Result<SacUpdateBench> {
    let spec = spikerl_envs::spec(env)?;
    let mut cfg = RunConfig::paper(env, algo, neuron, 0).with_base(Base::Sac);
    cfg.td3.batch_size = batch;
    let policy = cfg.policy_config(spec.obs_dim, spec.act_dim, max_action(&spec)?);
    let trained = policy_file.map(|p| trained_weights(p, &policy)).transpose()?;
    tch::manual_seed(0);
    let mut sac = Sac::new(&cfg, policy, device, 0);
    if let Some(w) = &trained {
        spikerl_snn::torch::import(&mut sac.actor_vs, w)?;
    }
    let (od, ad) = (spec.obs_dim, spec.act_dim);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let pool: Vec<Batch> = (0..8).map(|_| random_batch(&mut rng, batch, od, ad, device)).collect();
    let actor_firing_rate = match &sac.policy_config.network {
        spikerl_snn::NetworkConfig::Snn(_) => {
            let mut p = Policy::new(&sac.policy_config, &sac.export_policy())?;
            let obs = Vec::<f32>::try_from(pool[0].obs.to_device(Device::Cpu).flatten(0, -1))?;
            let mut out = vec![0f32; batch * ad];
            p.act_batch(&obs, &mut out);
            Some(p.stats().firing_rate())
        }
        spikerl_snn::NetworkConfig::Ann { .. } => None,
    };
    let reps = iterations.max(2);
    let mut drawn = 0;
    let mut next = || {
        drawn += 1;
        pool[drawn % pool.len()].shallow_clone()
    };
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    for _ in 0..(iterations / 10).max(4) {
        sac.update(&mut next);
    }
    sync();
    let mut timed = |sac: &mut Sac| {
        let before = sac.phase_times;
        let started = Instant::now();
        for _ in 0..reps {
            sac.update(&mut next);
        }
        sync();
        let ms = started.elapsed().as_secs_f64() * 1e3 / reps as f64;
        (ms, before, sac.phase_times)
    };
    let (ms_per_iteration, before, after) = timed(&mut sac);
    let libtorch = (device == Device::Cpu).then(|| {
        sac.set_autograd_mlps(true);
        let ms = timed(&mut sac).0;
        sac.set_autograd_mlps(false);
        ms
    });
    let per =
        |d: std::time::Duration, n: u64| if n == 0 { f64::NAN } else { d.as_secs_f64() * 1e3 / n as f64 };
    let obs = pool[0].obs.shallow_clone();
    let ms_fwd = time_ms(reps, || {
        let _ = sac.actor_gaussian(&obs);
    });
    let k = if sac.has_proxy() { cfg.proxy.steps } else { 0 };
    let ms_proxy =
        sac.has_proxy().then(|| per(after.proxy - before.proxy, after.proxy_steps - before.proxy_steps));
    Ok(SacUpdateBench {
        env: env.to_string(),
        base: Base::Sac.to_string(),
        algo: algo.to_string(),
        neuron: neuron.to_string(),
        device: format!("{device:?}"),
        batch,
        threads: tch::get_num_threads(),
        iterations: reps,
        policy: policy_file.map(|p| p.display().to_string()),
        actor_firing_rate,
        ms_per_iteration,
        iterations_per_second: 1e3 / ms_per_iteration,
        ms_proxy_step: ms_proxy,
        ms_snn_forward_no_grad: ms_fwd,
        ms_sample_to_tensors: sample_to_tensors_ms(batch, od, ad, device, reps),
        phases: SacPhases {
            proxy_steps: k,
            ms_proxy_step: ms_proxy,
            ms_critic_step: per(after.critic - before.critic, after.critic_steps - before.critic_steps),
            ms_actor_step: per(after.actor - before.actor, after.actor_steps - before.actor_steps),
        },
        ms_per_iteration_libtorch_critics: libtorch,
    })
}

/// The human-readable lines of [`update_sac`].
pub fn print_sac(r: &SacUpdateBench) {
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} ms"));
    println!(
        "{} sac {} {} batch {} on {} ({} threads): {:.2} ms/iteration ({:.1} it/s); actor Gaussian (no grad) {:.2} ms",
        r.env,
        r.algo,
        r.neuron,
        r.batch,
        r.device,
        r.threads,
        r.ms_per_iteration,
        r.iterations_per_second,
        r.ms_snn_forward_no_grad,
    );
    let p = &r.phases;
    println!(
        "phases: proxy step {} (x{}), critic step {:.2} ms, actor block {:.2} ms; critics on libtorch autograd: {}",
        opt(p.ms_proxy_step),
        p.proxy_steps,
        p.ms_critic_step,
        p.ms_actor_step,
        opt(r.ms_per_iteration_libtorch_critics).replace(" ms", " ms/iteration"),
    );
    if let Some(f) = r.actor_firing_rate {
        println!(
            "actor firing rate: {:.1}% ({})",
            100.0 * f,
            r.policy.as_deref().unwrap_or("initial weights")
        );
    }
}
