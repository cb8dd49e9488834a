//! A hand-written backward pass through time for the spiking actor's update, on the CPU.
//!
//! Autograd runs the LIF dynamics as about a dozen small libtorch kernels per layer and time step forward
//! (decay, reset, add, compare, the surrogate's clamp, ...) and as many backward: several hundred kernel
//! launches per actor update, each a pass over a `[B, n]` tensor. Here each layer's dynamics are one
//! fused loop forward and one backward in plain Rust. The forward's matrix products stay in libtorch
//! (so that its spikes are autograd's); the backward's run on `super::matmul` (the gemm crate's kernels,
//! about twice MKL's rate on AMD CPUs), split over libtorch's OpenMP team.
//!
//! The forward performs the same f32 operations in the same order as [`super::TorchPolicy::forward`]
//! (the encoder's activations, the layers' input currents and the decoder are the very same libtorch
//! calls), so the spikes and the action are bit-identical. The backward is the gradient autograd computes
//! for that graph (rectangular surrogate `1[|v - th| <= w]`, inclusive as PyTorch's clamp backward;
//! straight-through encoder spikes), up to f32 summation order. Applies to the LIF family (LIF, IF, PLIF);
//! other neurons keep autograd.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use super::matmul::{View, matmul, matmul_parallel};
use super::{Net, TorchPolicy, TorchSnn};
use crate::neuron::NeuronModel;

/// Gradients of a loss with respect to the policy's variables, by wire name (`encoder.mu`,
/// `layers.0.weight`, ...: the VarStore names of a policy built at the store's root).
pub type ActorGrads = HashMap<String, Tensor>;

/// What the backward pass needs from a forward pass.
#[derive(Debug)]
pub struct SnnTape {
    batch: i64,
    /// Encoder activations `[B, obs * pop]` and `tanh(obs) - mu` `[B, obs, pop]`.
    activation: Tensor,
    diff: Tensor,
    /// Per population, spike trains `[T*B, n]`, step-major; population 0 is the encoder.
    spikes: Vec<Tensor>,
    /// Per layer, membrane potentials after each step `[T*B, n]`.
    potentials: Vec<Tensor>,
    /// Per layer, the membrane decay used.
    decays: Vec<f32>,
    /// The last layer's firing rate `[B, act, pop]` and the tanh of the pre-activation `[B, act]`.
    rate: Tensor,
    tanh: Tensor,
    /// The pre-activation `[B, act]`.
    pre: Tensor,
}

/// The elements of a contiguous f32 CPU tensor.
fn host(t: &Tensor) -> &[f32] {
    assert!(t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous());
    let n = t.numel();
    if n == 0 {
        return &[];
    }
    // SAFETY: checked above: `n` contiguous f32 values on the host, alive as long as `t`.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, n) }
}

/// The elements of a contiguous f32 CPU tensor, to write.
///
/// # Safety
/// No other tensor handle (a `shallow_clone`, a view, a tensor sharing its storage) and no other slice
/// of its elements may be used while the returned slice lives: `&mut Tensor` excludes other borrows of
/// this handle only, not other handles to the same storage. Tensors fresh from [`empty`] qualify.
unsafe fn host_mut(t: &mut Tensor) -> &mut [f32] {
    assert!(t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous());
    let n = t.numel();
    if n == 0 {
        return &mut [];
    }
    // SAFETY: checked above: `n` contiguous f32 values on the host, alive as long as `t`; the caller
    // guarantees no other view of them (this function's contract).
    unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, n) }
}

fn empty(rows: i64, cols: i64) -> Tensor {
    Tensor::empty([rows, cols], (Kind::Float, Device::Cpu))
}

/// The LIF family's forward over `T` steps, fused: `v = (v d)(1 - s) + x; s = H(v - th)`, from rest.
/// `x`, `v`, `s` are `[T * width]` step-major.
fn lif_forward(x: &[f32], v: &mut [f32], s: &mut [f32], width: usize, decay: f32, threshold: f32) {
    for t in 0..x.len() / width {
        let now = t * width..(t + 1) * width;
        if t == 0 {
            // From rest (v = s = 0): exactly x, as autograd's (0 d)(1 - 0) + x is.
            v[now.clone()].copy_from_slice(&x[now.clone()]);
        } else {
            let (done, rest) = v.split_at_mut(now.start);
            let prev = &done[now.start - width..];
            let s_prev = &s[now.start - width..now.start];
            for (((vn, &vp), &sp), &xn) in rest[..width].iter_mut().zip(prev).zip(s_prev).zip(&x[now.clone()])
            {
                *vn = vp * decay * (1.0 - sp) + xn;
            }
        }
        for (sn, &vn) in s[now.clone()].iter_mut().zip(&v[now]) {
            *sn = if vn > threshold { 1.0 } else { 0.0 };
        }
    }
}

/// The LIF family's backward through time: from `g_s` (the loss's gradient with respect to each step's
/// output spikes) to the gradient with respect to each step's input current, written into `g_x`, and
/// with respect to the decay (returned). Per step, with `gv'` the gradient reaching `v` from the next step:
/// `gs = g_s - (v d) gv'`, `gv = gs 1[|v - th| <= w] + gv' d (1 - s)`, and where `decay_grad`,
/// `g_decay += gv' v (1 - s)` (0 returned otherwise).
// The fused loop's inputs, outputs and scalars, as in its formula; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn lif_backward(
    g_s: &[f32],
    v: &[f32],
    s: &[f32],
    g_x: &mut [f32],
    width: usize,
    decay: f32,
    threshold: f32,
    window: f32,
    decay_grad: bool,
) -> f64 {
    let steps = g_s.len() / width;
    let mut g_decay = 0.0f64;
    for t in (0..steps).rev() {
        let now = t * width..(t + 1) * width;
        let (this, later) = g_x.split_at_mut(now.end);
        let g_this = &mut this[now.start..];
        let surrogate = |vn: f32| {
            let m = vn - threshold;
            if m >= -window && m <= window { 1.0 } else { 0.0 }
        };
        if t + 1 == steps {
            for ((gx, &gs), &vn) in g_this.iter_mut().zip(&g_s[now.clone()]).zip(&v[now.clone()]) {
                *gx = gs * surrogate(vn);
            }
        } else {
            let g_next = &later[..width];
            for ((((gx, &gs), &vn), &sn), &gn) in
                g_this.iter_mut().zip(&g_s[now.clone()]).zip(&v[now.clone()]).zip(&s[now.clone()]).zip(g_next)
            {
                let keep = 1.0 - sn;
                let g_spike = gs - vn * decay * gn;
                *gx = g_spike * surrogate(vn) + gn * keep * decay;
            }
            // A separate pass, only for a learned decay: an f32 sum in the loop above would keep the
            // compiler from vectorising it.
            if decay_grad {
                let partial: f32 = g_next
                    .iter()
                    .zip(&v[now.clone()])
                    .zip(&s[now.clone()])
                    .map(|((&gn, &vn), &sn)| gn * vn * (1.0 - sn))
                    .sum();
                g_decay += f64::from(partial);
            }
        }
    }
    g_decay
}

/// The encoder's regular spikes over `T` steps from constant activations `a` `[width]`:
/// `nv = v + a; e = H(nv - th); v = nv - e th`, from rest. `e` is `[T * width]`.
fn encoder_forward(a: &[f32], e: &mut [f32], threshold: f32) {
    let mut v = vec![0.0f32; a.len()];
    for step in e.chunks_mut(a.len()) {
        for ((en, vn), &an) in step.iter_mut().zip(v.iter_mut()).zip(a) {
            let nv = *vn + an;
            *en = if nv > threshold { 1.0 } else { 0.0 };
            *vn = nv - *en * threshold;
        }
    }
}

/// The encoder's backward with straight-through spikes: `g_nv = g_e + g_v (1 - th)`, `g_v(t-1) = g_nv`,
/// and the activation collects `g_nv` of every step. Returns the gradient with respect to `a`.
fn encoder_backward(g_e: &[f32], width: usize, threshold: f32) -> Vec<f32> {
    let mut g_a = vec![0.0f32; width];
    let mut g_v = vec![0.0f32; width];
    for step in g_e.chunks(width).rev() {
        for ((ga, gv), &ge) in g_a.iter_mut().zip(g_v.iter_mut()).zip(step) {
            let g_nv = ge + *gv * (1.0 - threshold);
            *ga += g_nv;
            *gv = g_nv;
        }
    }
    g_a
}

/// Rows one worker of the gradient-free forward takes through the whole network at a time: 5 steps x
/// 64 rows x 256 neurons is 320 KB for each of a layer's currents, potentials and spikes, near a 1 MB
/// L2 cache, and 320 rows keep the gemm kernels near their rate.
const NO_GRAD_BLOCK: usize = 64;

/// The values of a tensor, row-major, as f32 host memory.
fn to_host_vec(t: &Tensor) -> Vec<f32> {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    host(&t).to_vec()
}

/// One layer of [`HostSnn`]: `wt` is `W^T` `[fan_in, n]` row-major (the kernels' faster operand layout
/// for this product), `bias` `[n]` (zeros for a layer without one).
struct HostLayer {
    wt: Vec<f32>,
    bias: Vec<f32>,
    n: usize,
    decay: f32,
}

/// A LIF-family network's parameters copied to host memory, shared read-only by the gradient-free
/// forward's workers.
struct HostSnn {
    steps: usize,
    pop: usize,
    obs_dim: usize,
    act_dim: usize,
    encoder_threshold: f32,
    threshold: f32,
    /// The encoder's Gaussian receptive fields, `[obs, pop]`.
    mu: Vec<f32>,
    sigma: Vec<f32>,
    layers: Vec<HostLayer>,
    /// The decoder's per-action population weights `[act, pop]` and biases `[act]`.
    dec_w: Vec<f32>,
    dec_b: Vec<f32>,
}

/// A worker's buffers, reused from block to block.
#[derive(Default)]
struct Scratch {
    activation: Vec<f32>,
    input: Vec<f32>,
    currents: Vec<f32>,
    potentials: Vec<f32>,
    spikes: Vec<f32>,
}

impl HostSnn {
    fn new(snn: &TorchSnn, threshold: f32) -> Self {
        let layers = snn
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let n = layer.ws.size()[0] as usize;
                HostLayer {
                    wt: to_host_vec(&layer.ws.tr()),
                    bias: layer.bs.as_ref().map_or_else(|| vec![0.0; n], to_host_vec),
                    n,
                    decay: snn.decay_value(i),
                }
            })
            .collect();
        HostSnn {
            steps: snn.cfg.timesteps,
            pop: snn.cfg.pop_size,
            obs_dim: snn.obs_dim as usize,
            act_dim: snn.act_dim as usize,
            encoder_threshold: snn.cfg.encoder_threshold,
            threshold,
            mu: to_host_vec(&snn.mu),
            sigma: to_host_vec(&snn.sigma),
            layers,
            dec_w: to_host_vec(&snn.dec_w),
            dec_b: to_host_vec(&snn.dec_b),
        }
    }

    /// `tanh` of the pre-activation (the pre-activation itself unless `squash`) for the observations `obs`
    /// (`[rows, obs]`) into `out` (`[rows, act]`), on the calling thread. Every buffer is step-major
    /// `[T, rows, n]`, as the taped forward's.
    fn forward(&self, obs: &[f32], out: &mut [f32], sc: &mut Scratch, squash: bool) {
        let (od, pop, steps) = (self.obs_dim, self.pop, self.steps);
        let rows = obs.len() / od;
        let width = od * pop;
        // Population coding, in the order of `TorchSnn::encoder_activation`'s operations.
        sc.activation.resize(rows * width, 0.0);
        for (a, o) in sc.activation.chunks_exact_mut(width).zip(obs.chunks_exact(od)) {
            for (j, &x) in o.iter().enumerate() {
                let s = x.tanh();
                let field = j * pop..(j + 1) * pop;
                let (mu, sigma) = (&self.mu[field.clone()], &self.sigma[field.clone()]);
                for ((a, &mu), &sg) in a[field].iter_mut().zip(mu).zip(sigma) {
                    let d = s - mu;
                    *a = (d * d / (sg * sg) * -0.5).exp();
                }
            }
        }
        sc.input.resize(steps * rows * width, 0.0);
        encoder_forward(&sc.activation, &mut sc.input, self.encoder_threshold);
        let mut fan_in = width;
        for layer in &self.layers {
            let (m, n) = (steps * rows, layer.n);
            sc.currents.resize(m * n, 0.0);
            for row in sc.currents.chunks_exact_mut(n) {
                row.copy_from_slice(&layer.bias);
            }
            matmul(
                m,
                n,
                fan_in,
                &mut sc.currents,
                n,
                true,
                View::rows(&sc.input[..m * fan_in], fan_in),
                View::rows(&layer.wt, n),
            );
            sc.potentials.resize(m * n, 0.0);
            sc.spikes.resize(m * n, 0.0);
            lif_forward(
                &sc.currents,
                &mut sc.potentials,
                &mut sc.spikes,
                rows * n,
                layer.decay,
                self.threshold,
            );
            std::mem::swap(&mut sc.input, &mut sc.spikes);
            fan_in = n;
        }
        // The decoder: each action's population rate over the T steps, weighted and summed.
        let out_width = self.act_dim * pop;
        for (r, o) in out.chunks_exact_mut(self.act_dim).enumerate() {
            for (a, y) in o.iter_mut().enumerate() {
                let mut pre = 0.0f32;
                for p in 0..pop {
                    let unit = r * out_width + a * pop + p;
                    let count: f32 = (0..steps).map(|t| sc.input[t * rows * out_width + unit]).sum();
                    pre += count / steps as f32 * self.dec_w[a * pop + p];
                }
                let pre = pre + self.dec_b[a];
                *y = if squash { pre.tanh() } else { pre };
            }
        }
    }
}

impl TorchSnn {
    fn lif_constants(&self) -> Option<(f32, f32)> {
        match &self.model {
            NeuronModel::Lif(n) => Some((n.threshold, n.window)),
            _ => None,
        }
    }

    /// The LIF family's forward with its tape, the layer currents through libtorch so that the spikes and
    /// the action are bit-identical to autograd's forward.
    fn forward_taped(&self, obs: &Tensor) -> Option<(Tensor, SnnTape)> {
        let (threshold, _) = self.lif_constants()?;
        if obs.device() != Device::Cpu || obs.kind() != Kind::Float {
            return None;
        }
        let t_steps = self.cfg.timesteps as i64;
        let b = obs.size()[0];
        tch::no_grad(|| {
            let activation = self.encoder_activation(obs).contiguous();
            let diff = obs.tanh().unsqueeze(-1) - &self.mu;
            let width = activation.size()[1];
            let mut input = empty(t_steps * b, width);
            // SAFETY: `input` is fresh from `empty`: no other handle to its storage exists yet.
            encoder_forward(host(&activation), unsafe { host_mut(&mut input) }, self.cfg.encoder_threshold);
            let mut spikes = vec![input.shallow_clone()];
            let mut potentials = Vec::with_capacity(self.layers.len());
            let mut decays = Vec::with_capacity(self.layers.len());
            for (i, layer) in self.layers.iter().enumerate() {
                let x = input.linear(&layer.ws, layer.bs.as_ref()).contiguous();
                let n = x.size()[1];
                let decay = self.decay_value(i);
                let (mut v, mut s) = (empty(t_steps * b, n), empty(t_steps * b, n));
                // SAFETY: `v` and `s` are fresh from `empty`, two separate tensors with no other handle.
                let (vs, ss) = unsafe { (host_mut(&mut v), host_mut(&mut s)) };
                lif_forward(host(&x), vs, ss, (b * n) as usize, decay, threshold);
                input = s.shallow_clone();
                spikes.push(s);
                potentials.push(v);
                decays.push(decay);
            }
            let pre = self.decode(&input, b);
            let pop = self.cfg.pop_size as i64;
            let rate = input.view([t_steps, b, self.act_dim * pop]).mean_dim(0, false, Kind::Float).view([
                b,
                self.act_dim,
                pop,
            ]);
            let tanh = pre.tanh();
            let tape = SnnTape { batch: b, activation, diff, spikes, potentials, decays, rate, tanh, pre };
            Some((tape.tanh.shallow_clone(), tape))
        })
    }

    fn decay_value(&self, layer: usize) -> f32 {
        self.decay(layer).view([-1]).double_value(&[0]) as f32
    }

    /// `tanh` of the pre-activation without gradient, for gradient-free targets (the proxy's imitation
    /// targets, a spiking Polyak target), where nothing needs autograd's exact spikes. Plain Rust on host
    /// memory: the batch is cut into blocks of [`NO_GRAD_BLOCK`] rows, and each of `threads` workers runs
    /// whole blocks through the encoder, every layer (currents on the gemm kernels, the fused LIF loop)
    /// and the decoder, so that a block's buffers stay in its core's cache and no step waits for the
    /// other threads.
    fn forward_no_grad_on(&self, obs: &Tensor, threads: usize, squash: bool) -> Option<Tensor> {
        let (threshold, _) = self.lif_constants()?;
        if obs.device() != Device::Cpu || obs.kind() != Kind::Float || obs.dim() != 2 {
            return None;
        }
        tch::no_grad(|| {
            let obs = obs.contiguous();
            let net = HostSnn::new(self, threshold);
            let (rows, od, ad) = (obs.size()[0] as usize, self.obs_dim as usize, self.act_dim as usize);
            let mut out = empty(rows as i64, ad as i64);
            let blocks = rows.div_ceil(NO_GRAD_BLOCK);
            let workers = threads.clamp(1, blocks.max(1));
            // Each block owns its rows of the output; the mutexes are never contended.
            // SAFETY: `out` is fresh from `empty`; it is returned only after the region below ends.
            let outs: Vec<_> = unsafe { host_mut(&mut out) }
                .chunks_mut(NO_GRAD_BLOCK * ad)
                .map(std::sync::Mutex::new)
                .collect();
            let obs_rows = host(&obs);
            super::omp::parallel(workers, &|w| {
                let mut scratch = Scratch::default();
                for block in (w..blocks).step_by(workers) {
                    let first = block * NO_GRAD_BLOCK;
                    let last = (first + NO_GRAD_BLOCK).min(rows);
                    let mut o = outs[block].lock().unwrap_or_else(|p| p.into_inner());
                    net.forward(&obs_rows[first * od..last * od], &mut o, &mut scratch, squash);
                }
            });
            drop(outs);
            Some(out)
        })
    }

    fn backward_taped(&self, tape: &SnnTape, grad_pre: &Tensor) -> ActorGrads {
        let (threshold, window) = self.lif_constants().expect("a tape exists only for the LIF family");
        let t_steps = self.cfg.timesteps as i64;
        let b = tape.batch;
        let (rows, threads) = ((t_steps * b) as usize, tch::get_num_threads().max(1) as usize);
        let mut grads = ActorGrads::new();
        tch::no_grad(|| {
            // Decoder: pre = sum_p rate * w + bias, rate = mean over T of the last spikes.
            grads.insert("decoder.bias".into(), grad_pre.sum_dim_intlist(0, false, Kind::Float));
            let g = grad_pre.unsqueeze(-1);
            grads.insert("decoder.weight".into(), (&g * &tape.rate).sum_dim_intlist(0, false, Kind::Float));
            let g_rate = (g * &self.dec_w).view([1, b, -1]) / t_steps as f64;
            let mut g_spikes = g_rate.expand([t_steps, b, -1], false).reshape([t_steps * b, -1]);
            for (i, layer) in self.layers.iter().enumerate().rev() {
                let n = layer.ws.size()[0];
                let mut g_x = empty(t_steps * b, n);
                let g_decay = lif_backward(
                    host(&g_spikes.contiguous()),
                    host(&tape.potentials[i]),
                    host(&tape.spikes[i + 1]),
                    // SAFETY: `g_x` is fresh from `empty`: no other handle to its storage exists yet.
                    unsafe { host_mut(&mut g_x) },
                    (b * n) as usize,
                    tape.decays[i],
                    threshold,
                    window,
                    self.decay_logits[i].is_some(),
                );
                let input = &tape.spikes[i];
                let fan_in = input.size()[1];
                // dW = g_x^T input over all T x B rows, split by output units.
                let mut g_w = empty(n, fan_in);
                let (nu, ni) = (n as usize, fan_in as usize);
                matmul_parallel(
                    threads,
                    16,
                    nu,
                    ni,
                    rows,
                    // SAFETY: `g_w` is fresh from `empty`: no other handle to its storage exists yet.
                    unsafe { host_mut(&mut g_w) },
                    ni,
                    false,
                    View::transposed(host(&g_x), nu),
                    View::rows(host(input), ni),
                );
                grads.insert(format!("layers.{i}.weight"), g_w);
                grads.insert(format!("layers.{i}.bias"), g_x.sum_dim_intlist(0, false, Kind::Float));
                if self.decay_logits[i].is_some() {
                    // d decay / d logit = decay (1 - decay).
                    let d = f64::from(tape.decays[i]);
                    grads.insert(
                        format!("layers.{i}.decay_logit"),
                        Tensor::from_slice(&[(g_decay * d * (1.0 - d)) as f32]),
                    );
                }
                // The gradient reaching the layer's input spikes: g_x W, split by rows.
                let mut g_in = empty(t_steps * b, fan_in);
                let w = layer.ws.contiguous();
                matmul_parallel(
                    threads,
                    64,
                    rows,
                    ni,
                    nu,
                    // SAFETY: `g_in` is fresh from `empty`: no other handle to its storage exists yet.
                    unsafe { host_mut(&mut g_in) },
                    ni,
                    false,
                    View::rows(host(&g_x), nu),
                    View::rows(host(&w), ni),
                );
                g_spikes = g_in;
            }
            // Encoder: straight-through spikes, then the Gaussian receptive fields
            // a = exp(-diff^2 / (2 sigma^2)): da/dmu = a diff / sigma^2, da/dsigma = a diff^2 / sigma^3.
            let width = tape.activation.size()[1] as usize;
            let g_a = encoder_backward(
                host(&g_spikes.contiguous()),
                width * b as usize,
                self.cfg.encoder_threshold,
            );
            let shape = tape.diff.size();
            let g_a =
                Tensor::from_slice(&g_a).view(shape.as_slice()) * tape.activation.view(shape.as_slice());
            let inv_var = self.sigma.square().reciprocal();
            let g_mu = (&g_a * &tape.diff).sum_dim_intlist(0, false, Kind::Float) * &inv_var;
            let g_sigma =
                (&g_a * tape.diff.square()).sum_dim_intlist(0, false, Kind::Float) * inv_var / &self.sigma;
            grads.insert("encoder.mu".into(), g_mu);
            grads.insert("encoder.sigma".into(), g_sigma);
        });
        grads
    }
}

impl TorchPolicy {
    /// The action for `obs` without autograd, and the tape [`TorchPolicy::backward_taped`] needs, where
    /// the hand-written backward applies: a spiking actor of the LIF family (LIF, IF, PLIF) on the CPU.
    /// `None` otherwise (use [`TorchPolicy::forward`] and autograd).
    pub fn forward_taped(&self, obs: &Tensor) -> Option<(Tensor, SnnTape)> {
        let Net::Snn(snn) = &self.net else { return None };
        if self.max_action.device() != Device::Cpu {
            return None;
        }
        let (tanh, tape) = snn.forward_taped(obs)?;
        Some((tanh * &self.max_action, tape))
    }

    /// The action for `obs` without gradient, through [`TorchSnn::forward_no_grad_on`]'s dense products on
    /// the gemm kernels, on libtorch's threads: a spiking actor of the LIF family on the CPU; `None`
    /// otherwise. Equal to [`TorchPolicy::forward`] up to f32 summation order in the layer currents (a
    /// membrane potential within rounding of the threshold may spike in one and not the other).
    pub fn forward_no_grad(&self, obs: &Tensor) -> Option<Tensor> {
        let Net::Snn(snn) = &self.net else { return None };
        if self.max_action.device() != Device::Cpu {
            return None;
        }
        Some(snn.forward_no_grad_on(obs, tch::get_num_threads().max(1) as usize, true)? * &self.max_action)
    }

    /// [`TorchPolicy::forward_no_grad`]'s pre-tanh output (a Gaussian policy's mean), without gradient.
    pub fn mean_no_grad(&self, obs: &Tensor) -> Option<Tensor> {
        let Net::Snn(snn) = &self.net else { return None };
        if self.max_action.device() != Device::Cpu {
            return None;
        }
        snn.forward_no_grad_on(obs, tch::get_num_threads().max(1) as usize, false)
    }

    /// The pre-tanh output (a Gaussian policy's mean) and the tape [`TorchPolicy::backward_taped_mean`]
    /// needs, where the hand-written backward applies (as [`TorchPolicy::forward_taped`]).
    pub fn mean_taped(&self, obs: &Tensor) -> Option<(Tensor, SnnTape)> {
        let Net::Snn(snn) = &self.net else { return None };
        if self.max_action.device() != Device::Cpu {
            return None;
        }
        let (_, tape) = snn.forward_taped(obs)?;
        Some((tape.pre.shallow_clone(), tape))
    }

    /// The spiking network's variables' gradients given a loss's gradient with respect to the pre-tanh
    /// output [`TorchPolicy::mean_taped`] returned.
    pub fn backward_taped_mean(&self, tape: &SnnTape, grad_pre: &Tensor) -> ActorGrads {
        let Net::Snn(snn) = &self.net else { unreachable!("a tape exists only for a spiking actor") };
        snn.backward_taped(tape, grad_pre)
    }

    /// The gradient of a loss with respect to every variable of the network, given its gradient with
    /// respect to the action `forward_taped` returned: what `loss.backward()` through
    /// [`TorchPolicy::forward`] would accumulate, by wire name.
    pub fn backward_taped(&self, tape: &SnnTape, grad_action: &Tensor) -> ActorGrads {
        let Net::Snn(snn) = &self.net else { unreachable!("a tape exists only for a spiking actor") };
        // action = tanh(pre) * max_action.
        let grad_pre = tch::no_grad(|| grad_action * &self.max_action * (1.0 - tape.tanh.square()));
        snn.backward_taped(tape, &grad_pre)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NetworkConfig, NeuronKind, PolicyConfig, SnnConfig};
    use tch::nn;

    fn policy(neuron: NeuronKind, obs: usize, act: usize) -> (nn::VarStore, TorchPolicy) {
        let cfg = PolicyConfig {
            gaussian: None,
            obs_dim: obs,
            act_dim: act,
            max_action: (0..act).map(|i| 1.0 + i as f32).collect(),
            network: NetworkConfig::Snn(SnnConfig::paper(neuron)),
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let net = TorchPolicy::new(&vs.root(), &cfg);
        (vs, net)
    }

    /// The hand-written gradients against autograd's on the same loss, `sum(action * c)`.
    fn check(neuron: NeuronKind, seed: i64) {
        tch::manual_seed(seed);
        let (obs_dim, act_dim, batch) = (17, 6, 64);
        let (vs, net) = policy(neuron, obs_dim, act_dim);
        // Wider observations and a firmer first layer, so every population fires and every path carries
        // gradient (at init, deeper layers are quiet).
        tch::no_grad(|| {
            let _ = vs.variables()["layers.0.weight"].shallow_clone().g_mul_scalar_(4.0);
            let _ = vs.variables()["layers.1.weight"].shallow_clone().g_mul_scalar_(3.0);
            let _ = vs.variables()["layers.2.weight"].shallow_clone().g_mul_scalar_(3.0);
        });
        let obs = Tensor::randn([batch, obs_dim as i64], (Kind::Float, Device::Cpu)) * 1.5;
        let c = Tensor::randn([batch, act_dim as i64], (Kind::Float, Device::Cpu));

        let reference = net.forward(&obs);
        (&reference * &c).sum(Kind::Float).backward();
        let (action, tape) = net.forward_taped(&obs).expect("the LIF family has a tape");
        assert!(action.equal(&reference.detach()), "the taped forward must be bit-identical");
        let fired: Vec<f64> = tape.spikes.iter().map(|s| s.mean(Kind::Float).double_value(&[])).collect();
        assert!(
            fired.iter().all(|&r| r > 0.01 && r < 0.99),
            "every population should fire sometimes: {fired:?}"
        );

        let fast = net.forward_no_grad(&obs).expect("the LIF family has the dense no-grad forward");
        let off = (&fast - &reference.detach()).abs().max().double_value(&[]);
        assert!(off < 1e-4, "the no-grad forward on the gemm kernels is off by {off}");

        let grads = net.backward_taped(&tape, &c);
        let vars = vs.variables();
        assert_eq!(grads.len(), vars.len(), "one gradient per variable: {:?}", grads.keys());
        for (name, var) in &vars {
            let want = var.grad();
            let got = &grads[name];
            assert_eq!(got.size(), want.size(), "{name}");
            let scale = want.abs().max().double_value(&[]);
            assert!(scale > 0.0, "{name}: autograd's gradient is zero, the test would prove nothing");
            let diff = (got - &want).abs().max().double_value(&[]);
            assert!(diff <= 1e-4 * scale, "{name}: max |hand - autograd| = {diff}, scale {scale}");
        }
    }

    #[test]
    fn lif_gradients_match_autograd() {
        check(NeuronKind::Lif, 1);
        check(NeuronKind::Lif, 2);
    }

    #[test]
    fn plif_and_if_gradients_match_autograd() {
        check(NeuronKind::Plif, 3);
        check(NeuronKind::If, 4);
    }

    #[test]
    fn other_neurons_and_anns_have_no_tape() {
        tch::manual_seed(5);
        let obs = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
        assert!(policy(NeuronKind::Clif, 3, 1).1.forward_taped(&obs).is_none());
        assert!(policy(NeuronKind::Dn, 3, 1).1.forward_taped(&obs).is_none());
        let cfg = PolicyConfig {
            gaussian: None,
            obs_dim: 3,
            act_dim: 1,
            max_action: vec![1.0],
            network: NetworkConfig::Ann { hidden: vec![8] },
        };
        let vs = nn::VarStore::new(Device::Cpu);
        assert!(TorchPolicy::new(&vs.root(), &cfg).forward_taped(&obs).is_none());
    }

    #[test]
    fn no_grad_forward_is_the_same_whatever_the_split() {
        tch::manual_seed(6);
        // 150 rows: two full blocks and a partial one.
        let (vs, net) = policy(NeuronKind::Lif, 17, 6);
        tch::no_grad(|| {
            let _ = vs.variables()["layers.0.weight"].shallow_clone().g_mul_scalar_(4.0);
            let _ = vs.variables()["layers.1.weight"].shallow_clone().g_mul_scalar_(3.0);
        });
        let obs = Tensor::randn([150, 17], (Kind::Float, Device::Cpu)) * 1.5;
        let Net::Snn(snn) = &net.net else { unreachable!() };
        let one = snn.forward_no_grad_on(&obs, 1, true).unwrap();
        for threads in [2, 3, 5] {
            assert!(snn.forward_no_grad_on(&obs, threads, true).unwrap().equal(&one), "{threads} threads");
        }
        let reference = tch::no_grad(|| snn.forward(&obs, None).tanh());
        let off = (&one - &reference).abs();
        let far = off.gt(1e-4).sum(Kind::Int64).int64_value(&[]);
        // A potential within rounding of the threshold may spike in one and not the other: rare.
        assert!(
            far <= 3,
            "{far} of 900 actions differ by more than 1e-4: max {}",
            off.max().double_value(&[])
        );
        assert!(one.abs().max().double_value(&[]) > 0.05, "the network should produce non-trivial actions");
    }

    #[test]
    fn fused_lif_matches_hand_computed_steps() {
        // The hand-computed sequence of the neuron module's test: V = 0.3, 0.525 (spike), 0.2, 0.55 (spike), -0.1.
        let x = [0.3f32, 0.3, 0.2, 0.4, -0.1];
        let (mut v, mut s) = ([0f32; 5], [0f32; 5]);
        lif_forward(&x, &mut v, &mut s, 1, 0.75, 0.5);
        assert_eq!(s, [0.0, 1.0, 0.0, 1.0, 0.0]);
        for (a, b) in v.iter().zip([0.3, 0.525, 0.2, 0.55, -0.1]) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
    }
}
