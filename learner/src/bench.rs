//! Micro-benchmarks behind `spikerl bench` (figures, not pass/fail): one training iteration per
//! algorithm with its phases, and plain-Rust inference per action. Synthetic minibatches of the
//! environment's shapes, so the numbers measure the learner alone.

use crate::training::trainer::max_action;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use spikerl_algo::config::{Algo, RunConfig};
use spikerl_algo::td3::{Batch, Td3};
use spikerl_snn::{NeuronKind, Policy};
use std::time::Instant;
use tch::{Device, Tensor};

#[derive(Debug, Serialize)]
pub struct UpdateBench {
    pub env: String,
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

/// GFLOP/s of `[m x k] x [k x n]` through `spikerl_algo::dense::matmul`, one product per thread of libtorch's
/// OpenMP team at once, summed over the threads: the best of `rounds` rounds of about 2 GFLOP a thread.
fn dense_gflops(m: usize, k: usize, n: usize, rounds: usize) -> f64 {
    let threads = tch::get_num_threads().max(1) as usize;
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let outs: Vec<std::sync::Mutex<Vec<f32>>> =
        (0..threads).map(|_| std::sync::Mutex::new(vec![0.0; m * n])).collect();
    let flop = 2.0 * (m * k * n) as f64;
    let reps = ((2e9 / flop) as usize).clamp(1, 20_000);
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let started = Instant::now();
        spikerl_algo::omp::parallel(threads, &|i| {
            let mut c = outs[i].lock().unwrap_or_else(|p| p.into_inner());
            for _ in 0..reps {
                spikerl_algo::dense::matmul(
                    m,
                    n,
                    k,
                    &mut c,
                    n,
                    false,
                    spikerl_algo::dense::View::rows(&a, k),
                    spikerl_algo::dense::View::rows(&b, n),
                );
            }
        });
        best = best.min(started.elapsed().as_secs_f64() / reps as f64);
    }
    threads as f64 * flop / best / 1e9
}

/// Multiply-adds of one forward of an MLP `inp -> hidden... -> out`.
fn mlp_macs(inp: usize, hidden: &[usize], out: usize) -> f64 {
    let mut prev = inp;
    let mut macs = 0.0;
    for &h in hidden.iter().chain(std::iter::once(&out)) {
        macs += (prev * h) as f64;
        prev = h;
    }
    macs
}

/// Multiply-adds of one forward of the actor: an ANN, or the SNN's synaptic layers over T steps
/// (population encoder and decoder are elementwise / grouped, negligible and not matmuls).
fn actor_macs(cfg: &spikerl_snn::PolicyConfig) -> f64 {
    match &cfg.network {
        spikerl_snn::NetworkConfig::Ann { hidden } => mlp_macs(cfg.obs_dim, hidden, cfg.act_dim),
        spikerl_snn::NetworkConfig::Snn(s) => {
            s.timesteps as f64 * mlp_macs(cfg.obs_dim * s.pop_size, &s.hidden, cfg.act_dim * s.pop_size)
        }
    }
}

/// A `--policy` file that cannot be read, is not a policy file, or holds another network than the one
/// benchmarked: the user's input, not the benchmark, is wrong (the binary exits 2 on it).
#[derive(Debug)]
pub struct BadPolicyFile(pub String);

impl std::fmt::Display for BadPolicyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadPolicyFile {}

/// The actor weights of a `policy.safetensors` (a run folder's `checkpoints/`), checked against the
/// network the benchmark builds from `--env`, `--algo` and `--neuron`: trained weights fire at the rates
/// training reaches (30 to 60% on HalfCheetah), where the event-driven paths cost more than at the
/// initial weights' 4 to 5%.
pub fn trained_weights(
    path: &std::path::Path,
    expected: &spikerl_snn::PolicyConfig,
) -> Result<spikerl_snn::NamedTensors, BadPolicyFile> {
    let bytes =
        std::fs::read(path).map_err(|e| BadPolicyFile(format!("cannot read {}: {e}", path.display())))?;
    let (cfg, tensors, _) = spikerl_snn::decode_policy(&bytes)
        .map_err(|e| BadPolicyFile(format!("{} is not a policy file: {e}", path.display())))?;
    if &cfg != expected {
        return Err(BadPolicyFile(format!(
            "{}: its network ({:?}) is not the one benchmarked ({:?}); pass the --env, --algo and --neuron it was trained with",
            path.display(),
            cfg.network,
            expected.network
        )));
    }
    Ok(tensors)
}

/// GFLOP/s of `[m x k] x [k x n]` in libtorch on `device`: the best of `rounds` rounds of about
/// `round_gflop` of work each. Long rounds (20 ms) see the same time slicing as the phases timed beside
/// them on a shared machine; short ones (1 ms) often fit into one slice and approach the core's own rate.
fn sgemm_gflops(m: i64, k: i64, n: i64, device: Device, round_gflop: f64, rounds: usize) -> f64 {
    let a = Tensor::randn([m, k], (tch::Kind::Float, device));
    let b = Tensor::randn([k, n], (tch::Kind::Float, device));
    let flop = 2.0 * (m * k * n) as f64;
    let reps = ((round_gflop * 1e9 / flop) as usize).clamp(1, 20_000);
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..reps {
            let _ = a.matmul(&b);
        }
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        best = best.min(started.elapsed().as_secs_f64() / reps as f64);
    }
    flop / best / 1e9
}

fn random_batch(rng: &mut ChaCha8Rng, n: usize, od: usize, ad: usize, device: Device) -> Batch {
    let mut v = |len: usize, scale: f32| -> Tensor {
        let data: Vec<f32> = (0..len).map(|_| rng.random_range(-scale..scale)).collect();
        Tensor::from_slice(&data).to_device(device)
    };
    let (n64, od64, ad64) = (n as i64, od as i64, ad as i64);
    Batch {
        obs: v(n * od, 2.0).view([n64, od64]),
        actions: v(n * ad, 1.0).view([n64, ad64]),
        rewards: v(n, 1.0).view([n64, 1]),
        next_obs: v(n * od, 2.0).view([n64, od64]),
        not_done: Tensor::ones([n64, 1], (tch::Kind::Float, device)),
    }
}

fn time_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..reps {
        f();
    }
    started.elapsed().as_secs_f64() * 1e3 / reps as f64
}

/// One training iteration and its phases; `policy`: start the actor from these trained weights
/// (`policy.safetensors`) instead of the initial ones.
pub fn update(
    env: &str,
    algo: Algo,
    neuron: NeuronKind,
    batch: usize,
    device: Device,
    iterations: usize,
    policy_file: Option<&std::path::Path>,
) -> anyhow::Result<UpdateBench> {
    let spec = spikerl_envs::spec(env)?;
    let mut cfg = RunConfig::paper(env, algo, neuron, 0);
    cfg.td3.batch_size = batch;
    let policy = cfg.policy_config(spec.obs_dim, spec.act_dim, max_action(&spec)?);
    let trained = policy_file.map(|p| trained_weights(p, &policy)).transpose()?;
    tch::manual_seed(0);
    let mut td3 = Td3::new(&cfg, policy, device, 0);
    if let Some(w) = &trained {
        spikerl_snn::torch::import(&mut td3.actor_vs, w)?;
        // The Polyak target starts as a copy of the actor, as in a run.
        if !td3.has_proxy() {
            spikerl_snn::torch::import(td3.target_vs_mut(), w)?;
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (od, ad) = (spec.obs_dim, spec.act_dim);
    let pool: Vec<Batch> = (0..8).map(|_| random_batch(&mut rng, batch, od, ad, device)).collect();
    let actor_firing_rate = match td3.policy_config.network {
        spikerl_snn::NetworkConfig::Snn(_) => {
            let mut p = Policy::new(&td3.policy_config, &spikerl_snn::torch::export(&td3.actor_vs))?;
            let obs = Vec::<f32>::try_from(pool[0].obs.to_device(Device::Cpu).flatten(0, -1))?;
            let mut out = vec![0f32; batch * ad];
            p.act_batch(&obs, &mut out);
            Some(p.stats().firing_rate())
        }
        spikerl_snn::NetworkConfig::Ann { .. } => None,
    };
    let mut k = 0;
    let mut next = || {
        k += 1;
        pool[k % pool.len()].shallow_clone()
    };
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    for _ in 0..(iterations / 10).max(4) {
        td3.update(&mut next);
    }
    sync();
    let reps = iterations.max(2);
    // Each iteration timed alone, split by whether it ran the delayed actor update; the phases come from
    // the timers inside `Td3::update` over the same iterations.
    let mut timed = |td3: &mut Td3| {
        let (mut with_actor, mut without_actor) = (Vec::new(), Vec::new());
        let phases_before = td3.phase_times;
        let started = Instant::now();
        for _ in 0..reps {
            let before = td3.actor_updates;
            let t = Instant::now();
            td3.update(&mut next);
            sync();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if td3.actor_updates != before { with_actor.push(ms) } else { without_actor.push(ms) }
        }
        let (a, b) = (td3.phase_times, phases_before);
        let per =
            |d: std::time::Duration, n: u64| if n == 0 { f64::NAN } else { d.as_secs_f64() * 1e3 / n as f64 };
        let phase_ms = (
            per(a.proxy - b.proxy, a.proxy_steps - b.proxy_steps),
            per(a.critic - b.critic, a.critic_steps - b.critic_steps),
            per(a.actor - b.actor, a.actor_steps - b.actor_steps),
        );
        (started.elapsed().as_secs_f64() * 1e3 / reps as f64, with_actor, without_actor, phase_ms)
    };
    let (ms, with_actor, without_actor, (ms_proxy_in, ms_critic, ms_actor)) = timed(&mut td3);
    let libtorch_mlps = (device == Device::Cpu).then(|| {
        td3.set_autograd_mlps(true);
        let (ms, _, _, (proxy, critic, actor)) = timed(&mut td3);
        td3.set_autograd_mlps(false);
        LibtorchMlps {
            ms_per_iteration: ms,
            ms_proxy_step: td3.has_proxy().then_some(proxy),
            ms_critic_step: critic,
            ms_actor_step: actor,
        }
    });
    let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    // The same iterations with autograd through the SNN, where the hand-written backward applies.
    let ms_actor_step_autograd = (matches!(td3.policy_config.network, spikerl_snn::NetworkConfig::Snn(_))
        && device == Device::Cpu)
        .then(|| {
            td3.autograd_actor = true;
            let (_, _, _, (_, _, actor)) = timed(&mut td3);
            td3.autograd_actor = false;
            actor
        });
    let obs = pool[0].obs.shallow_clone();
    let ms_fwd = time_ms(reps, || {
        let _ = td3.act(&obs);
    });
    // The same forward on the event-driven mirror (the path before the dense one), and the iteration with it.
    let lif_family = matches!(&td3.policy_config.network, spikerl_snn::NetworkConfig::Snn(c) if matches!(c.neuron, NeuronKind::Lif | NeuronKind::Plif | NeuronKind::If));
    let mirror_targets = (td3.dense_snn_targets && lif_family && device == Device::Cpu).then(|| {
        td3.dense_snn_targets = false;
        let ms_forward = time_ms(reps, || {
            let _ = td3.act(&obs);
        });
        let (ms_per_iteration, _, _, _) = timed(&mut td3);
        td3.dense_snn_targets = true;
        MirrorSnnTargets { ms_forward, ms_per_iteration }
    });
    let ms_proxy = td3.has_proxy().then_some(ms_proxy_in);
    let mut host = spikerl_algo::replay::Transitions::default();
    for _ in 0..batch {
        host.push(&vec![0.1; od], &vec![0.2; ad], 1.0, &vec![0.3; od], false);
    }
    let ms_sample = time_ms(reps, || {
        let _ = Batch::from_transitions(&host, od, ad, device);
    });
    // Sampling as the trainer does it: K+1 uniform draws from a filled buffer, each made into tensors.
    let rows = 200_000;
    let mut buffer = spikerl_algo::replay::ReplayBuffer::new(rows, od, ad, 0);
    let mut chunk = spikerl_algo::replay::Transitions::default();
    for i in 0..1000 {
        let x = (i as f32 * 0.618).fract();
        chunk.push(&vec![x; od], &vec![x; ad], x, &vec![-x; od], false);
    }
    for _ in 0..rows / 1000 {
        buffer.insert(&chunk);
    }
    let k = if td3.has_proxy() { cfg.proxy.steps } else { 0 };
    let mut drawn = spikerl_algo::replay::Transitions::default();
    let ms_sampling = time_ms(reps, || {
        for _ in 0..k + 1 {
            buffer.sample_into(batch, &mut drawn);
            let _ = Batch::from_transitions(&drawn, od, ad, device);
        }
    });

    // Dense matmul work per phase occurrence.
    let b = batch as f64;
    let proxy_macs = mlp_macs(od, &cfg.proxy.hidden, ad);
    let critic_macs = mlp_macs(od + ad, &cfg.td3.critic_hidden, 1);
    let actor = actor_macs(&td3.policy_config);
    let fwd = |macs: f64| 2.0 * b * macs / 1e9;
    let gflop_proxy = td3.has_proxy().then(|| 3.0 * fwd(proxy_macs));
    let target_action = match algo {
        Algo::Proxy => fwd(proxy_macs),
        // On CPU the SNN target runs in plain Rust (event-driven accumulation, not a matmul).
        Algo::Vanilla if device == Device::Cpu => 0.0,
        Algo::Vanilla | Algo::Ann => fwd(actor),
    };
    let gflop_critic = target_action + 2.0 * fwd(critic_macs) + 2.0 * 3.0 * fwd(critic_macs);
    // Actor forward + backward (weights and inputs), Q1 forward + backward to its input only (frozen).
    let gflop_actor = 3.0 * fwd(actor) + 2.0 * fwd(critic_macs);
    let (t_with, t_without) = (mean(&with_actor), mean(&without_actor));
    let ms_proxy_mlp = ms_proxy.map(|p| p - ms_fwd);

    let t = td3.policy_config.clone();
    let (obs_pop, t_steps) = match &t.network {
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
    let rate = |gflop: f64, ms: f64| gflop / (ms / 1e3);
    let phases = Phases {
        proxy_steps: k,
        ms_proxy_step: ms_proxy,
        ms_proxy_mlp,
        ms_critic_step: ms_critic,
        ms_actor_step: ms_actor,
        ms_actor_step_autograd,
        ms_sampling,
        sample_buffer_rows: rows,
        ms_iteration_with_actor: t_with,
        ms_iteration_without_actor: t_without,
        gflop_proxy_mlp: gflop_proxy,
        gflop_critic_step: gflop_critic,
        gflop_actor_step: gflop_actor,
        gflops_proxy_mlp: gflop_proxy.zip(ms_proxy_mlp).map(|(g, m)| rate(g, m)),
        gflops_critic_step: rate(gflop_critic, ms_critic),
        gflops_actor_step: rate(gflop_actor, ms_actor),
        sgemm_fraction_proxy_mlp: gflop_proxy.zip(ms_proxy_mlp).map(|(g, m)| rate(g, m) / best),
        sgemm_fraction_critic_step: rate(gflop_critic, ms_critic) / best,
        sgemm_fraction_actor_step: rate(gflop_actor, ms_actor) / best,
        dense_fraction_proxy_mlp: gflop_proxy
            .zip(ms_proxy_mlp)
            .zip(dense_best)
            .map(|((g, m), d)| rate(g, m) / d),
        dense_fraction_critic_step: dense_best.map(|d| rate(gflop_critic, ms_critic) / d),
        dense_fraction_actor_step: dense_best.map(|d| rate(gflop_actor, ms_actor) / d),
    };
    Ok(UpdateBench {
        env: env.to_string(),
        algo: algo.to_string(),
        neuron: neuron.to_string(),
        device: format!("{device:?}"),
        batch,
        threads: tch::get_num_threads(),
        iterations: reps,
        policy: policy_file.map(|p| p.display().to_string()),
        actor_firing_rate,
        ms_per_iteration: ms,
        iterations_per_second: 1e3 / ms,
        ms_proxy_step: ms_proxy,
        ms_snn_forward_no_grad: ms_fwd,
        ms_sample_to_tensors: ms_sample,
        phases,
        sgemm,
        sgemm_gflops_best: best,
        sgemm_gflops_short_rounds: peak,
        dense_gflops_best: dense_best,
        mirror_snn_targets: mirror_targets,
        libtorch_mlps,
    })
}

#[derive(Debug, Serialize)]
pub struct InferenceBench {
    pub env: String,
    pub network: String,
    /// The trained weights measured (`--policy`); none: initial weights.
    pub policy: Option<String>,
    pub batch: usize,
    pub actions: usize,
    pub us_per_action: f64,
    pub actions_per_second: f64,
    pub sops_per_inference: f64,
    pub firing_rate: f64,
    pub energy_nj_per_inference: f64,
    pub ann_equivalent_energy_nj: f64,
}

/// Plain-Rust inference of the paper's network (random initial weights, or trained ones from
/// `policy_file`; random observations in the typical range), one core.
pub fn inference(
    env: &str,
    algo: Algo,
    neuron: NeuronKind,
    batch: usize,
    actions: usize,
    policy_file: Option<&std::path::Path>,
) -> anyhow::Result<InferenceBench> {
    let spec = spikerl_envs::spec(env)?;
    let cfg =
        RunConfig::paper(env, algo, neuron, 0).policy_config(spec.obs_dim, spec.act_dim, max_action(&spec)?);
    let weights = match policy_file {
        Some(p) => trained_weights(p, &cfg)?,
        None => spikerl_snn::initial_tensors(&cfg, 0)?,
    };
    let mut policy = Policy::new(&cfg, &weights)?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let obs: Vec<f32> = (0..batch * spec.obs_dim * 16).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut out = vec![0f32; batch * spec.act_dim];
    let chunk = batch * spec.obs_dim;
    let rounds = (actions / batch).max(1);
    for i in 0..rounds.min(100) {
        let o = &obs[(i % 16) * chunk..(i % 16 + 1) * chunk];
        policy.act_batch(o, &mut out);
    }
    policy.reset_stats();
    let started = Instant::now();
    for i in 0..rounds {
        let o = &obs[(i % 16) * chunk..(i % 16 + 1) * chunk];
        policy.act_batch(o, &mut out);
    }
    let secs = started.elapsed().as_secs_f64();
    let n = rounds * batch;
    let stats = policy.stats();
    Ok(InferenceBench {
        env: env.to_string(),
        network: if algo == Algo::Ann { "ann".into() } else { format!("snn-{neuron}") },
        policy: policy_file.map(|p| p.display().to_string()),
        batch,
        actions: n,
        us_per_action: secs * 1e6 / n as f64,
        actions_per_second: n as f64 / secs,
        sops_per_inference: stats.sops_per_inference(),
        firing_rate: stats.firing_rate(),
        energy_nj_per_inference: stats.energy_nj_per_inference(),
        ann_equivalent_energy_nj: spikerl_snn::ann_equivalent_macs(&cfg) as f64 * 3.97e-3,
    })
}

/// `spikerl bench ensemble`: S seeds as one batched [`spikerl_algo::ensemble::Ensemble`] against S separate
/// `Td3` learners updated one after another in the same process, for each S.
#[derive(Debug, Serialize)]
pub struct EnsembleBench {
    pub env: String,
    pub algo: String,
    pub neuron: String,
    pub device: String,
    pub batch: usize,
    pub threads: i32,
    /// Timed iterations per S and side (after a warm-up).
    pub iterations: usize,
    pub rows: Vec<EnsembleRow>,
}

#[derive(Debug, Serialize)]
pub struct EnsembleRow {
    /// S, the seeds trained together.
    pub seeds: usize,
    /// One ensemble iteration: one training iteration of every member.
    pub ms_per_iteration: f64,
    pub iterations_per_second: f64,
    /// S x iterations/s: training iterations of single seeds per second.
    pub seed_iterations_per_second: f64,
    /// The baseline: S separate learners, each updated once per round, one after another.
    pub separate_ms_per_round: f64,
    pub separate_seed_iterations_per_second: f64,
    /// Ensemble seed-iterations/s over the baseline's.
    pub speedup: f64,
}

/// Each S: an ensemble of seeds 0..S and S separate learners with the same seeds, each member on its own
/// pool of synthetic minibatches (stacking the members' minibatches is inside the ensemble's timing).
/// The two sides alternate in four blocks (ensemble, separate, separate, ensemble) so that a drifting
/// machine load affects both alike.
pub fn ensemble(
    env: &str,
    algo: Algo,
    neuron: NeuronKind,
    batch: usize,
    device: Device,
    seeds: &[usize],
    iterations: usize,
) -> anyhow::Result<EnsembleBench> {
    use spikerl_algo::ensemble::Ensemble;
    let spec = spikerl_envs::spec(env)?;
    let mut cfg = RunConfig::paper(env, algo, neuron, 0);
    cfg.td3.batch_size = batch;
    let policy = cfg.policy_config(spec.obs_dim, spec.act_dim, max_action(&spec)?);
    let (od, ad) = (spec.obs_dim, spec.act_dim);
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    // Blocks of an even number of iterations, so that each holds as many delayed actor updates.
    let block = (iterations.div_ceil(2).max(2) + 1) / 2 * 2;
    let mut rows = Vec::new();
    for &s in seeds {
        anyhow::ensure!(s > 0, "seed counts must be positive");
        let ids: Vec<u64> = (0..s as u64).collect();
        let mut ens = Ensemble::new(&cfg, policy.clone(), &ids, device).map_err(anyhow::Error::msg)?;
        let mut singles: Vec<Td3> =
            ids.iter().map(|&id| Td3::seeded(&cfg, policy.clone(), id, device)).collect();
        let pools: Vec<Vec<Batch>> = ids
            .iter()
            .map(|&id| {
                let mut rng = ChaCha8Rng::seed_from_u64(id);
                (0..8).map(|_| random_batch(&mut rng, batch, od, ad, device)).collect()
            })
            .collect();
        let mut drawn = vec![0usize; s];
        let mut next = |m: usize| {
            drawn[m] += 1;
            pools[m][drawn[m] % pools[m].len()].shallow_clone()
        };
        let mut run_ensemble = |n: usize, next: &mut dyn FnMut(usize) -> Batch| {
            let t = Instant::now();
            for _ in 0..n {
                ens.update(&mut *next);
            }
            sync();
            t.elapsed().as_secs_f64()
        };
        let mut run_separate = |n: usize, next: &mut dyn FnMut(usize) -> Batch| {
            let t = Instant::now();
            for _ in 0..n {
                for (m, td3) in singles.iter_mut().enumerate() {
                    td3.update(|| next(m));
                }
            }
            sync();
            t.elapsed().as_secs_f64()
        };
        // Warm-up: one block's worth of each (at least the first delayed actor update).
        run_ensemble(block.min(4).max(2), &mut next);
        run_separate(block.min(4).max(2), &mut next);
        let mut t_ens = run_ensemble(block, &mut next);
        let mut t_sep = run_separate(block, &mut next);
        t_sep += run_separate(block, &mut next);
        t_ens += run_ensemble(block, &mut next);
        let n = (2 * block) as f64;
        let ms = t_ens * 1e3 / n;
        let ms_sep = t_sep * 1e3 / n;
        let seed_its = s as f64 * 1e3 / ms;
        let seed_its_sep = s as f64 * 1e3 / ms_sep;
        rows.push(EnsembleRow {
            seeds: s,
            ms_per_iteration: ms,
            iterations_per_second: 1e3 / ms,
            seed_iterations_per_second: seed_its,
            separate_ms_per_round: ms_sep,
            separate_seed_iterations_per_second: seed_its_sep,
            speedup: seed_its / seed_its_sep,
        });
    }
    Ok(EnsembleBench {
        env: env.to_string(),
        algo: algo.to_string(),
        neuron: neuron.to_string(),
        device: format!("{device:?}"),
        batch,
        threads: tch::get_num_threads(),
        iterations: 2 * block,
        rows,
    })
}
