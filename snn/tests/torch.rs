//! The tch network against the plain-Rust policy (parity), and its gradients. Feature `torch`.
#![cfg(feature = "torch")]

mod common;

use common::{cheetah_ann, cheetah_snn, realistic_cheetah_obs};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spikerl_snn::neuron::Signal;
use spikerl_snn::torch::{TorchPolicy, export, import, surrogate_spike};
use spikerl_snn::{NamedTensors, NeuronKind, Policy, PolicyConfig, SnnError, expected_shapes};
use tch::{Device, Kind, Tensor, nn};

fn setup() {
    // One thread: tests run in parallel on a small machine; OpenMP oversubscription would crawl.
    tch::set_num_threads(1);
}

fn build(cfg: &PolicyConfig, seed: i64) -> (nn::VarStore, TorchPolicy) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = TorchPolicy::new(&vs.root(), cfg);
    (vs, net)
}

/// Observations: HalfCheetah-like, plus random ones at several scales.
fn observations(n_random: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut obs: Vec<f32> = realistic_cheetah_obs().concat();
    for i in 0..n_random {
        let scale = [0.3f32, 1.0, 3.0][i % 3];
        obs.extend((0..17).map(|_| rng.random_range(-1.0f32..1.0) * scale));
    }
    obs
}

fn to_tensor(obs: &[f32], obs_dim: usize) -> Tensor {
    Tensor::from_slice(obs).view([(obs.len() / obs_dim) as i64, obs_dim as i64])
}

/// Multiplies every layer weight by `gain` (in the VarStore), so that deep layers are active too: a
/// network that is silent past layer 0 would make parity trivially true.
fn scale_layer_weights(vs: &mut nn::VarStore, gain: f32) {
    let mut t = export(vs);
    for (name, v) in t.iter_mut() {
        if name.starts_with("layers.") && name.ends_with(".weight") {
            v.data.iter_mut().for_each(|w| *w *= gain);
        }
    }
    import(vs, &t).unwrap();
}

/// Compares tch and plain Rust on the same weights and observations.
///
/// Tolerance: both sides perform the same f32 operations in the same order for the neuron dynamics, but
/// the matrix products sum in a different order and libtorch's exp/tanh/sigmoid differ from libm's by an
/// ulp or so. A voltage that lands within ~1e-6 of a threshold can therefore spike on one side only, and
/// the flip propagates downstream in that sample. We require: (a) at most 0.05% of all (sample, step,
/// neuron) spike slots differ, (b) at least 95% of samples have identical spike trains in every
/// population, (c) on those samples actions agree to 2e-5 (tanh and the decoder's reduction order).
/// Measured: 0 mismatches in every population for every kind, actions within 2e-7. Scaling the encoder's
/// input by 1.0001 already breaks (a) and (b); wiring errors break them by orders of magnitude. (The
/// neuron formulas themselves are shared code; the hand-computed tests in `neuron/` pin them.)
fn parity(kind: NeuronKind, gain: f32) {
    setup();
    let cfg = cheetah_snn(kind);
    let (mut vs, net) = build(&cfg, 1);
    scale_layer_weights(&mut vs, gain);
    let mut policy = Policy::new(&cfg, &export(&vs)).unwrap();
    let obs = observations(96, 2);
    let n = obs.len() / 17;
    let (y, trace) = tch::no_grad(|| net.forward_traced(&to_tensor(&obs, 17)));
    let trace = trace.unwrap();
    let y = Vec::<f32>::try_from(&y.flatten(0, -1)).unwrap();
    assert_eq!(trace.populations.len(), 4);

    let mut slots = 0usize;
    let mut mismatched = 0usize;
    let mut clean = 0usize;
    let mut spikes_per_pop = [0usize; 4];
    let mut worst_clean = 0.0f32;
    let mut a = [0.0f32; 6];
    for b in 0..n {
        let rust = policy.act_traced(&obs[b * 17..(b + 1) * 17], &mut a).unwrap();
        let mut sample_mismatch = 0;
        for (p, pop) in trace.populations.iter().enumerate() {
            let torch: Vec<f32> = Vec::try_from(&pop.select(1, b as i64).flatten(0, -1)).unwrap();
            assert_eq!(torch.len(), rust.spikes[p].len());
            for (t, r) in torch.iter().zip(&rust.spikes[p]) {
                assert!(*t == 0.0 || *t == 1.0, "tch spikes must be exactly 0/1, got {t}");
                sample_mismatch += usize::from(*t != f32::from(*r));
            }
            slots += torch.len();
            spikes_per_pop[p] += rust.spikes[p].iter().map(|&s| s as usize).sum::<usize>();
        }
        mismatched += sample_mismatch;
        if sample_mismatch == 0 {
            clean += 1;
            for (i, (r, t)) in a.iter().zip(&y[b * 6..(b + 1) * 6]).enumerate() {
                let d = (r - t).abs();
                worst_clean = worst_clean.max(d);
                assert!(d <= 2e-5, "{kind}: sample {b} action {i}: rust {r} vs tch {t}");
            }
        }
    }
    let frac = mismatched as f64 / slots as f64;
    eprintln!(
        "{kind} gain {gain}: {clean}/{n} samples identical, spike mismatch {frac:.2e}, worst action diff {worst_clean:.1e}, spikes per population {spikes_per_pop:?}"
    );
    assert!(frac <= 5e-4, "{kind}: {mismatched} of {slots} spike slots differ");
    assert!(clean * 20 >= n * 19, "{kind}: only {clean} of {n} samples have identical spike trains");
    // The test only means something if every population is active but not saturated.
    let sizes = [170usize, 256, 256, 60];
    for (p, (&s, &size)) in spikes_per_pop.iter().zip(&sizes).enumerate() {
        let rate = s as f64 / (size * 5 * n) as f64;
        assert!(
            rate > 0.005 && rate < 0.95,
            "{kind}: population {p} firing rate {rate} makes parity vacuous"
        );
    }
}

#[test]
fn parity_lif() {
    parity(NeuronKind::Lif, 3.0);
}
#[test]
fn parity_clif() {
    parity(NeuronKind::Clif, 2.0);
}
#[test]
fn parity_dn() {
    parity(NeuronKind::Dn, 1.0);
}
#[test]
fn parity_plif() {
    parity(NeuronKind::Plif, 3.0);
}
#[test]
fn parity_if() {
    parity(NeuronKind::If, 2.0);
}
#[test]
fn parity_at_paper_init() {
    // Unscaled initial weights, the state training starts from.
    for kind in [NeuronKind::Lif, NeuronKind::Clif] {
        setup();
        let cfg = cheetah_snn(kind);
        let (vs, net) = build(&cfg, 5);
        let mut policy = Policy::new(&cfg, &export(&vs)).unwrap();
        let obs = observations(32, 6);
        let y =
            Vec::<f32>::try_from(&tch::no_grad(|| net.forward(&to_tensor(&obs, 17))).flatten(0, -1)).unwrap();
        let mut a = vec![0.0f32; y.len()];
        policy.act_batch(&obs, &mut a);
        let close = a.iter().zip(&y).filter(|(r, t)| (*r - *t).abs() <= 2e-5).count();
        assert!(close * 10 >= a.len() * 9, "{kind}: {close} of {} action entries agree", a.len());
    }
}

#[test]
fn parity_ann() {
    setup();
    let cfg = cheetah_ann();
    let (vs, net) = build(&cfg, 3);
    let mut policy = Policy::new(&cfg, &export(&vs)).unwrap();
    let obs = observations(64, 4);
    let y = Vec::<f32>::try_from(&tch::no_grad(|| net.forward(&to_tensor(&obs, 17))).flatten(0, -1)).unwrap();
    let mut a = vec![0.0f32; y.len()];
    policy.act_batch(&obs, &mut a);
    // No thresholds: only summation order differs.
    for (r, t) in a.iter().zip(&y) {
        assert!((r - t).abs() <= 1e-5, "rust {r} vs tch {t}");
    }
}

#[test]
fn export_names_are_the_wire_names_and_import_round_trips() {
    setup();
    for cfg in NeuronKind::ALL.iter().map(|&k| cheetah_snn(k)).chain([cheetah_ann()]) {
        let (vs, net) = build(&cfg, 7);
        let exported = export(&vs);
        let shapes = expected_shapes(&cfg).unwrap();
        assert_eq!(
            exported.iter().map(|(n, t)| (n.clone(), t.shape.clone())).collect::<Vec<_>>(),
            shapes.into_iter().collect::<Vec<_>>()
        );
        let (mut vs2, net2) = build(&cfg, 8);
        let obs = to_tensor(&observations(8, 1), 17);
        let before = tch::no_grad(|| net2.forward(&obs));
        import(&mut vs2, &exported).unwrap();
        let after = tch::no_grad(|| net2.forward(&obs));
        let want = tch::no_grad(|| net.forward(&obs));
        assert!(after.equal(&want));
        assert!(!before.equal(&want), "different seeds should give different nets");
    }
}

#[test]
fn initialisation_follows_pytorch_and_popsan() {
    setup();
    let cfg = cheetah_snn(NeuronKind::Plif);
    let (vs, _) = build(&cfg, 9);
    let t = export(&vs);
    let mu = &t["encoder.mu"].data;
    for (d, row) in mu.chunks(10).enumerate() {
        for (k, m) in row.iter().enumerate() {
            assert!((m - (-1.0 + 2.0 * k as f32 / 9.0)).abs() < 1e-6, "mu[{d}][{k}] = {m}");
        }
    }
    assert!(t["encoder.sigma"].data.iter().all(|&s| (s - 0.05f32.sqrt()).abs() < 1e-7));
    for i in 0..3 {
        let d = t[&format!("layers.{i}.decay_logit")].data[0];
        assert!((1.0 / (1.0 + (-d).exp()) - 0.75).abs() < 1e-6);
    }
    let bound = |name: &str| t[name].data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    // nn.Linear: U(±1/sqrt(fan_in)); the bound is nearly reached with this many draws.
    for (name, fan_in) in
        [("layers.0.weight", 170.0f32), ("layers.1.weight", 256.0), ("layers.2.bias", 256.0)]
    {
        let b = bound(name);
        assert!(b <= 1.0 / fan_in.sqrt() && b > 0.8 / fan_in.sqrt(), "{name}: max |w| = {b}");
    }
    assert!(bound("decoder.weight") <= 1.0 / 10f32.sqrt());
}

#[test]
fn import_rejects_mismatches() {
    setup();
    let cfg = cheetah_snn(NeuronKind::Lif);
    let (mut vs, _) = build(&cfg, 1);
    let good = export(&vs);
    let mut t = good.clone();
    t.remove("layers.0.bias");
    assert!(matches!(import(&mut vs, &t), Err(SnnError::MissingTensor { .. })));
    let mut t = good.clone();
    t.insert("layers.0.decay_logit".into(), spikerl_snn::NamedTensor::zeros(vec![1]));
    assert!(matches!(import(&mut vs, &t), Err(SnnError::UnexpectedTensor { .. })));
    let mut t: NamedTensors = good.clone();
    t.get_mut("decoder.weight").unwrap().shape = vec![10, 6];
    assert!(matches!(import(&mut vs, &t), Err(SnnError::ShapeMismatch { .. })));
}

fn grad_norms(vs: &nn::VarStore) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| {
            let g = t.grad();
            let norm = if g.defined() { g.abs().sum(Kind::Double).double_value(&[]) } else { 0.0 };
            (n, norm)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn gradients_reach_every_parameter() {
    setup();
    for kind in NeuronKind::ALL {
        let cfg = cheetah_snn(kind);
        let (vs, net) = build(&cfg, 11);
        let obs = to_tensor(&observations(64, 12), 17);
        let target = Tensor::rand([obs.size()[0], 6], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let loss = (net.forward(&obs) - target).square().mean(Kind::Float);
        loss.backward();
        for (name, g) in grad_norms(&vs) {
            assert!(g > 0.0 && g.is_finite(), "{kind}: gradient of {name} is {g}");
        }
    }
    let cfg = cheetah_ann();
    let (vs, net) = build(&cfg, 11);
    net.forward(&to_tensor(&observations(8, 12), 17)).sum(Kind::Float).backward();
    assert!(grad_norms(&vs).iter().all(|(_, g)| *g > 0.0));
}

#[test]
fn surrogate_gradient_is_rectangular() {
    setup();
    // V_th = 0.5, window 0.5: gradient 1 strictly inside (0, 1), 0 outside.
    let v = Tensor::from_slice(&[-0.5f32, -0.1, 0.1, 0.5, 0.7, 0.99, 1.1, 2.0]).set_requires_grad(true);
    let s = surrogate_spike(&v, 0.5, 0.5);
    assert_eq!(Vec::<f32>::try_from(&s).unwrap(), [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
    s.sum(Kind::Float).backward();
    assert_eq!(Vec::<f32>::try_from(&v.grad()).unwrap(), [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    // The encoder's spike passes gradients straight through.
    let v = Tensor::from_slice(&[0.2f32, 1.5, 5.0]).set_requires_grad(true);
    let s = v.spike_straight_through(0.999);
    assert_eq!(Vec::<f32>::try_from(&s).unwrap(), [0.0, 1.0, 1.0]);
    s.sum(Kind::Float).backward();
    assert_eq!(Vec::<f32>::try_from(&v.grad()).unwrap(), [1.0, 1.0, 1.0]);
}

#[test]
fn no_gradient_through_silent_far_from_threshold_layers() {
    setup();
    // Layer 0's bias at -100 keeps its voltages far below the surrogate window (0, 1): no gradient reaches
    // layer 0 or the encoder, and layer 1 (whose input is then silent) gets none on its weights. The decoder
    // still learns its bias.
    let cfg = cheetah_snn(NeuronKind::Lif);
    let (mut vs, net) = build(&cfg, 13);
    let mut t = export(&vs);
    t.get_mut("layers.0.bias").unwrap().data.fill(-100.0);
    import(&mut vs, &t).unwrap();
    let obs = to_tensor(&observations(16, 14), 17);
    net.forward(&obs).sum(Kind::Float).backward();
    let g: std::collections::HashMap<String, f64> = grad_norms(&vs).into_iter().collect();
    for name in [
        "encoder.mu",
        "encoder.sigma",
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.2.weight",
    ] {
        assert_eq!(g[name], 0.0, "{name}");
    }
    assert!(g["decoder.bias"] > 0.0);
}

#[test]
fn forward_shape_and_bounds() {
    setup();
    let mut cfg = cheetah_snn(NeuronKind::Dn);
    cfg.max_action = vec![0.5, 1.0, 2.0, 0.5, 1.0, 2.0];
    let (_vs, net) = build(&cfg, 15);
    let y = net.forward(&(Tensor::randn([33, 17], (Kind::Float, Device::Cpu)) * 5.0));
    assert_eq!(y.size(), [33, 6]);
    let y: Vec<Vec<f32>> = Vec::try_from(&y.detach()).unwrap();
    for row in y {
        for (a, m) in row.iter().zip(&cfg.max_action) {
            assert!(a.abs() <= *m);
        }
    }
}

/// A Gaussian (SAC) policy: the plain-Rust actors' sample `tanh(mean + exp(log_std) eps) max_action`
/// equals the learner's, computed from `TorchPolicy::mean` and `log_std` on the same weights; with
/// eps = 0 it is the deterministic action; its parameters are the wire names, and an initial-weights
/// file holds them.
#[test]
fn gaussian_policy_samples_as_the_learner_computes() {
    setup();
    for network in [cheetah_ann().network, cheetah_snn(NeuronKind::Lif).network] {
        let cfg = PolicyConfig { gaussian: Some(spikerl_snn::GaussianHead::default()), ..cheetah_ann() };
        let cfg = PolicyConfig { network, ..cfg };
        let (vs, net) = build(&cfg, 11);
        let exported = export(&vs);
        assert!(exported.keys().any(|k| k.starts_with("log_std.layers.")), "{:?}", exported.keys());
        let shapes = expected_shapes(&cfg).unwrap();
        assert_eq!(exported.keys().collect::<Vec<_>>(), shapes.keys().collect::<Vec<_>>());
        spikerl_snn::initial_tensors(&cfg, 3).map(|t| Policy::new(&cfg, &t).unwrap()).unwrap();

        let mut policy = Policy::new(&cfg, &export(&vs)).unwrap();
        assert!(policy.is_gaussian());
        let obs = observations(16, 5);
        let rows = obs.len() / 17;
        let x = to_tensor(&obs, 17);
        let (mean, log_std) = tch::no_grad(|| (net.mean(&x), net.log_std(&x).unwrap()));
        let ls = Vec::<f32>::try_from(log_std.flatten(0, -1)).unwrap();
        assert!(ls.iter().all(|&l| (-5.0..=2.0).contains(&l)), "log-std within CleanRL's bounds");
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let eps: Vec<f32> = (0..rows * 6).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let want = tch::no_grad(|| (mean + log_std.exp() * to_tensor(&eps, 6)).tanh() * net.max_action());
        let want = Vec::<f32>::try_from(want.flatten(0, -1)).unwrap();
        let (mut got, mut det) = (vec![0f32; 6], vec![0f32; 6]);
        let mut deterministic = vec![0f32; 6];
        for r in 0..rows {
            let o = &obs[r * 17..(r + 1) * 17];
            policy.sample(o, &eps[r * 6..(r + 1) * 6], &mut got);
            for (g, w) in got.iter().zip(&want[r * 6..(r + 1) * 6]) {
                assert!((g - w).abs() < 1e-4, "row {r}: plain Rust {g} vs tch {w}");
            }
            policy.sample(o, &[0.0; 6], &mut det);
            policy.act(o, &mut deterministic);
            assert_eq!(det, deterministic, "eps = 0 samples the deterministic action");
        }
    }
}
