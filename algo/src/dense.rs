//! Dense ReLU MLPs (the twin critics, an ANN actor or Polyak target, the proxy) forward and backward on
//! the CPU, without autograd.
//!
//! Why by hand: autograd runs each layer as a libtorch matmul (MKL, at half the gemm crate's rate on
//! AMD CPUs: `spikerl_snn::torch::matmul`), plus per-op dispatch, an allocation per intermediate and a
//! pass over memory per elementwise op. Here every matrix product is one `matmul` call into buffers
//! kept from step to step, and the elementwise work (bias, ReLU and its mask, tanh, the loss) is fused
//! into Rust loops around them.
//!
//! Layout: row-major, a batch row per sample; a layer's weight is `[out, in]` and its bias `[out]`,
//! exactly the `nn::Linear` tensors of the VarStore, read in place (Adam updates them in place too).
//! The computation is the one autograd performs for `x.linear(w, b).relu()...` up to f32 summation
//! order: gradients agree to about 1e-6 relative (tests below).
//!
//! Parallel work runs on libtorch's OpenMP team (`crate::omp`), each gemm single-threaded inside a
//! task: a batch is split into row blocks for everything that is row-independent (the forward, the
//! loss, the backward to each layer's pre-activation), then the weight gradients are split by output
//! units, each task summing over every row block.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use tch::{Device, Kind, Tensor, nn};

pub use spikerl_snn::torch::matmul::{View, matmul};

/// The elements of a contiguous f32 CPU tensor.
///
/// # Panics
/// For any other tensor.
fn host(t: &Tensor) -> &[f32] {
    let p = crate::optim::host_f32(t).expect("dense: weights are contiguous f32 CPU tensors");
    // SAFETY: `host_f32` checked a contiguous f32 CPU tensor of `numel` elements, alive as long as `t`.
    unsafe { std::slice::from_raw_parts(p, t.numel()) }
}

/// The elements of a contiguous f32 CPU tensor, to write (the gradient buffers this module makes).
///
/// # Safety
/// No other tensor handle to the same storage (a `shallow_clone`, a view) and no other slice of its
/// elements may be used while the returned slice lives: `&mut Tensor` excludes other borrows of this
/// handle only, not other handles to the same storage.
unsafe fn host_mut(t: &mut Tensor) -> &mut [f32] {
    let p = crate::optim::host_f32(t).expect("dense: gradients are contiguous f32 CPU tensors");
    // SAFETY: `host_f32` checked a contiguous f32 CPU tensor of `numel` elements, alive as long as `t`;
    // the caller guarantees no other view of them (this function's contract).
    unsafe { std::slice::from_raw_parts_mut(p, t.numel()) }
}

/// One layer's parameters as slices, shared read-only by the tasks of a step.
#[derive(Clone, Copy)]
struct LayerRef<'a> {
    w: &'a [f32],
    b: &'a [f32],
    fan_in: usize,
    fan_out: usize,
}

/// A ReLU MLP with a linear last layer, viewing the variables `{prefix}{i}.weight|bias` of a VarStore.
pub struct Mlp {
    /// (weight, bias) handles, the VarStore's own tensors.
    layers: Vec<(Tensor, Tensor)>,
    names: Vec<(String, String)>,
}

impl Mlp {
    /// The layers `{prefix}0`, `{prefix}1`, ... of `vs` (e.g. prefix `q1.layers.` or `layers.`), or None
    /// when there are none or they are not contiguous f32 CPU tensors of chained shapes.
    pub fn from_vs(vs: &nn::VarStore, prefix: &str) -> Option<Mlp> {
        let vars = vs.variables();
        let (mut layers, mut names) = (Vec::new(), Vec::new());
        for i in 0.. {
            let (wn, bn) = (format!("{prefix}{i}.weight"), format!("{prefix}{i}.bias"));
            let (Some(w), Some(b)) = (vars.get(&wn), vars.get(&bn)) else { break };
            let ok = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous();
            let (ws, bs) = (w.size(), b.size());
            if !ok(w) || !ok(b) || ws.len() != 2 || bs != [ws[0]] {
                return None;
            }
            if let Some((prev, _)) = layers.last()
                && Tensor::size(prev)[0] != ws[1]
            {
                return None;
            }
            layers.push((w.shallow_clone(), b.shallow_clone()));
            names.push((wn, bn));
        }
        (!layers.is_empty()).then_some(Mlp { layers, names })
    }

    pub fn input(&self) -> usize {
        self.layers[0].0.size()[1] as usize
    }

    pub fn output(&self) -> usize {
        self.layers[self.layers.len() - 1].0.size()[0] as usize
    }

    fn refs(&self) -> Vec<LayerRef<'_>> {
        self.layers
            .iter()
            .map(|(w, b)| {
                let s = w.size();
                LayerRef { w: host(w), b: host(b), fan_in: s[1] as usize, fan_out: s[0] as usize }
            })
            .collect()
    }
}

/// The forward's activations and the backward's pre-activation gradients of one block of rows.
#[derive(Default)]
pub struct Tape {
    rows: usize,
    /// Per layer `[rows, fan_out]`: after the ReLU, the last layer's linear output.
    acts: Vec<Vec<f32>>,
    /// Per layer `[rows, fan_out]`: the loss's gradient with respect to the layer's pre-activation.
    grads: Vec<Vec<f32>>,
}

impl Tape {
    fn fit(&mut self, layers: &[LayerRef<'_>], rows: usize) {
        self.rows = rows;
        self.acts.resize_with(layers.len(), Vec::new);
        self.grads.resize_with(layers.len(), Vec::new);
        for (l, layer) in layers.iter().enumerate() {
            self.acts[l].resize(rows * layer.fan_out, 0.0);
            self.grads[l].resize(rows * layer.fan_out, 0.0);
        }
    }

    /// The network's output `[rows, out]` after `forward`.
    pub fn output(&self) -> &[f32] {
        self.acts.last().map_or(&[], |v| v.as_slice())
    }

    /// Where the loss's gradient with respect to the output goes before `backward`.
    pub fn output_grad(&mut self) -> &mut [f32] {
        self.output_and_grad().1
    }

    /// The output and, beside it, where its gradient goes: a loss reads the one and writes the other.
    pub fn output_and_grad(&mut self) -> (&[f32], &mut [f32]) {
        match (self.acts.last(), self.grads.last_mut()) {
            (Some(out), Some(grad)) => (out, grad),
            _ => (&[], &mut []),
        }
    }
}

/// Forward of `rows` rows of `x` (`[rows, fan_in]`) into `tape`.
fn forward(layers: &[LayerRef<'_>], x: &[f32], rows: usize, tape: &mut Tape) {
    tape.fit(layers, rows);
    let last = layers.len() - 1;
    for (l, layer) in layers.iter().enumerate() {
        let (done, rest) = tape.acts.split_at_mut(l);
        let input = if l == 0 { x } else { &done[l - 1] };
        let out = &mut rest[0];
        for row in out.chunks_exact_mut(layer.fan_out) {
            row.copy_from_slice(layer.b);
        }
        matmul(
            rows,
            layer.fan_out,
            layer.fan_in,
            out,
            layer.fan_out,
            true,
            View::rows(input, layer.fan_in),
            View::transposed(layer.w, layer.fan_in),
        );
        if l < last {
            for v in out.iter_mut() {
                *v = v.max(0.0);
            }
        }
    }
}

/// Backward from `tape.output_grad()` to every layer's pre-activation gradient; with `input_grad`, also
/// the gradient with respect to the input columns `cols` (`[rows, cols.len()]`).
fn backward(layers: &[LayerRef<'_>], tape: &mut Tape, input_grad: Option<(&mut [f32], Range<usize>)>) {
    let rows = tape.rows;
    for l in (1..layers.len()).rev() {
        let (lower, upper) = tape.grads.split_at_mut(l);
        let (dz, dprev) = (&upper[0], &mut lower[l - 1]);
        let layer = layers[l];
        matmul(
            rows,
            layer.fan_in,
            layer.fan_out,
            dprev,
            layer.fan_in,
            false,
            View::rows(dz, layer.fan_out),
            View::rows(layer.w, layer.fan_in),
        );
        // ReLU: the gradient passes where the output was positive (PyTorch's threshold_backward).
        // Written as a select on every element (not a conditional store) so that it vectorises.
        for (g, &a) in dprev.iter_mut().zip(&tape.acts[l - 1]) {
            *g = if a > 0.0 { *g } else { 0.0 };
        }
    }
    if let Some((dx, cols)) = input_grad {
        let first = layers[0];
        let w = View { data: &first.w[cols.start..], rs: first.fan_in, cs: 1 };
        matmul(
            rows,
            cols.len(),
            first.fan_out,
            dx,
            cols.len(),
            false,
            View::rows(&tape.grads[0], first.fan_out),
            w,
        );
    }
}

/// Gradient buffers for one `Mlp`, under its variables' names (what `Adam::step_with_grads` takes).
pub struct Grads {
    layers: Vec<(Tensor, Tensor)>,
    names: Vec<(String, String)>,
}

impl Grads {
    pub fn new(net: &Mlp) -> Grads {
        let layers =
            net.layers.iter().map(|(w, b)| (w.zeros_like().detach(), b.zeros_like().detach())).collect();
        Grads { layers, names: net.names.clone() }
    }

    /// Handles to the buffers by variable name.
    pub fn named(&self) -> HashMap<String, Tensor> {
        let mut map = HashMap::with_capacity(2 * self.layers.len());
        for ((w, b), (wn, bn)) in self.layers.iter().zip(&self.names) {
            map.insert(wn.clone(), w.shallow_clone());
            map.insert(bn.clone(), b.shallow_clone());
        }
        map
    }
}

/// One rows block of a batch: its input (`[rows, fan_in]`) and its tape after the backward.
struct Block<'a> {
    x: &'a [f32],
    tape: &'a Tape,
}

/// One network's weight-gradient job: its layers and its rows blocks after the backward.
struct GradJob<'a, 'b> {
    layers: &'a [LayerRef<'a>],
    blocks: Vec<Block<'b>>,
}

/// A task's share of the weight gradients: per layer of one job, a contiguous run of output units (rows
/// of the weight gradient) and their slices of the gradient buffers.
type Share<'a> = (usize, Vec<(Range<usize>, &'a mut [f32], &'a mut [f32])>);

/// The weight and bias gradients of every layer of every job into its `grads`, each job's units split
/// into `parts` tasks, all tasks in one parallel region, each summing over every rows block of its job.
fn weight_grads(jobs: &[GradJob<'_, '_>], grads: &mut [&mut Grads], parts: usize, threads: usize) {
    let mut shares: Vec<Share<'_>> = Vec::new();
    for (j, (job, grads)) in jobs.iter().zip(grads.iter_mut()).enumerate() {
        let first = shares.len();
        shares.extend((0..parts).map(|_| (j, Vec::new())));
        for (layer, (gw, gb)) in job.layers.iter().zip(grads.layers.iter_mut()) {
            // SAFETY: `Grads::new` made these buffers; the only other handles are the ones `Grads::named`
            // hands to the optimiser, which reads them after this step, never while these slices live.
            let (mut gw, mut gb) = unsafe { (host_mut(gw), host_mut(gb)) };
            let per = layer.fan_out.div_ceil(parts);
            let mut start = 0;
            for (_, share) in shares[first..].iter_mut() {
                let end = (start + per).min(layer.fan_out);
                let (w_here, w_rest) = std::mem::take(&mut gw).split_at_mut((end - start) * layer.fan_in);
                let (b_here, b_rest) = std::mem::take(&mut gb).split_at_mut(end - start);
                share.push((start..end, w_here, b_here));
                (gw, gb, start) = (w_rest, b_rest, end);
            }
        }
    }
    each(threads, &mut shares, &|_, (j, share)| {
        let job = &jobs[*j];
        for (l, (units, gw, gb)) in share.iter_mut().enumerate() {
            let layer = job.layers[l];
            gb.fill(0.0);
            for (i, block) in job.blocks.iter().enumerate() {
                let rows = block.tape.rows;
                let input = if l == 0 { block.x } else { &block.tape.acts[l - 1][..] };
                let dz = &block.tape.grads[l];
                // dW[units] = dz[:, units]^T x: the transpose of dz's columns `units`.
                let dz_t = View { data: &dz[units.start..], rs: 1, cs: layer.fan_out };
                matmul(
                    units.len(),
                    layer.fan_in,
                    rows,
                    gw,
                    layer.fan_in,
                    i > 0,
                    dz_t,
                    View::rows(input, layer.fan_in),
                );
                for row in dz.chunks_exact(layer.fan_out) {
                    for (g, &d) in gb.iter_mut().zip(&row[units.clone()]) {
                        *g += d;
                    }
                }
            }
        }
    });
}

/// Runs `f(i, &mut states[i])` for every state: in parallel on libtorch's OpenMP team with `threads`
/// of at least 2 (one task a thread: callers make no more states than threads), else in turn.
fn each<S: Send>(threads: usize, states: &mut [S], f: &(dyn Fn(usize, &mut S) + Sync)) {
    if threads < 2 || states.len() < 2 {
        for (i, s) in states.iter_mut().enumerate() {
            f(i, s);
        }
        return;
    }
    let cells: Vec<Mutex<&mut S>> = states.iter_mut().map(Mutex::new).collect();
    crate::omp::parallel(cells.len(), &|i| {
        // Each task locks only its own state: never contended.
        let mut s = cells[i].lock().unwrap_or_else(|p| p.into_inner());
        f(i, &mut s);
    });
}

/// Rows per block below which splitting a batch costs more than it saves.
const MIN_ROWS_PER_BLOCK: usize = 32;

/// Rows blocks of `n` rows for `threads` threads.
fn row_blocks(n: usize, threads: usize) -> Vec<Range<usize>> {
    let blocks = threads.min(n / MIN_ROWS_PER_BLOCK).max(1);
    let per = n.div_ceil(blocks);
    (0..blocks).map(|i| (i * per).min(n)..((i + 1) * per).min(n)).filter(|r| !r.is_empty()).collect()
}

/// `[obs | act]` row by row, the critics' input.
pub fn concat_rows(obs: &[f32], obs_dim: usize, act: &[f32], act_dim: usize, out: &mut Vec<f32>) {
    let rows = obs.len() / obs_dim;
    out.clear();
    out.reserve(rows * (obs_dim + act_dim));
    for (o, a) in obs.chunks_exact(obs_dim).zip(act.chunks_exact(act_dim)) {
        out.extend_from_slice(o);
        out.extend_from_slice(a);
    }
}

/// The dense networks of one TD3 learner on the CPU and the buffers they reuse from step to step.
pub struct DenseTd3 {
    obs_dim: usize,
    act_dim: usize,
    max_action: Vec<f32>,
    q: [Mlp; 2],
    q_target: [Mlp; 2],
    q_grads: [Grads; 2],
    /// An ANN actor (`ann`) with its Polyak target, or None for a spiking one.
    actor: Option<(Mlp, Mlp, Grads)>,
    /// The proxy target network (`proxy`).
    proxy: Option<(Mlp, Grads)>,
    tapes: Vec<Tape>,
    /// Second set, where a step chains two networks (actor then critic).
    tapes2: Vec<Tape>,
    x: Vec<f32>,
}

/// What the critic step measured.
pub struct CriticStep {
    pub loss: [f64; 2],
    pub q1_mean: f64,
}

impl DenseTd3 {
    /// The dense views of a learner's networks; None if any is missing or not on the CPU.
    pub fn new(
        obs_dim: usize,
        act_dim: usize,
        max_action: &[f32],
        critic: &nn::VarStore,
        critic_target: &nn::VarStore,
        ann_actor: Option<(&nn::VarStore, &nn::VarStore)>,
        proxy: Option<&nn::VarStore>,
    ) -> Option<DenseTd3> {
        let q = [Mlp::from_vs(critic, "q1.layers.")?, Mlp::from_vs(critic, "q2.layers.")?];
        let q_target =
            [Mlp::from_vs(critic_target, "q1.layers.")?, Mlp::from_vs(critic_target, "q2.layers.")?];
        let q_grads = [Grads::new(&q[0]), Grads::new(&q[1])];
        let actor = match ann_actor {
            Some((online, target)) => {
                let net = Mlp::from_vs(online, "layers.")?;
                let grads = Grads::new(&net);
                Some((net, Mlp::from_vs(target, "layers.")?, grads))
            }
            None => None,
        };
        let proxy = match proxy {
            Some(vs) => {
                let net = Mlp::from_vs(vs, "layers.")?;
                let grads = Grads::new(&net);
                Some((net, grads))
            }
            None => None,
        };
        let fits = |n: &Mlp, input, output| n.input() == input && n.output() == output;
        let critics_fit = q.iter().chain(&q_target).all(|n| fits(n, obs_dim + act_dim, 1));
        let policies_fit = actor
            .iter()
            .flat_map(|(a, t, _)| [a, t])
            .chain(proxy.iter().map(|(p, _)| p))
            .all(|n| fits(n, obs_dim, act_dim));
        (critics_fit && policies_fit && max_action.len() == act_dim).then(|| DenseTd3 {
            obs_dim,
            act_dim,
            max_action: max_action.to_vec(),
            q,
            q_target,
            q_grads,
            actor,
            proxy,
            tapes: Vec::new(),
            tapes2: Vec::new(),
            x: Vec::new(),
        })
    }

    pub fn has_ann_actor(&self) -> bool {
        self.actor.is_some()
    }

    /// Both critics' gradients by name (after `critic_step`).
    pub fn critic_grads(&self) -> HashMap<String, Tensor> {
        let mut map = self.q_grads[0].named();
        map.extend(self.q_grads[1].named());
        map
    }

    /// The ANN actor's gradients by name (after `actor_step`).
    pub fn actor_grads(&self) -> Option<HashMap<String, Tensor>> {
        self.actor.as_ref().map(|(_, _, g)| g.named())
    }

    pub fn proxy_grads(&self) -> Option<HashMap<String, Tensor>> {
        self.proxy.as_ref().map(|(_, g)| g.named())
    }

    /// The target policy's action `tanh(.) * max_action` for `obs` (`[rows, obs_dim]`): the ANN actor's
    /// Polyak copy, or the proxy; None where the target is spiking.
    pub fn target_policy_forward(&mut self, obs: &[f32], threads: usize) -> Option<Vec<f32>> {
        let target = match (&self.actor, &self.proxy) {
            (Some((_, target, _)), _) => target,
            (None, Some((proxy, _))) => proxy,
            (None, None) => return None,
        };
        let layers = target.refs();
        let rows = obs.len() / self.obs_dim;
        let blocks = row_blocks(rows, threads);
        self.tapes.resize_with(blocks.len(), Tape::default);
        let od = self.obs_dim;
        let mut jobs: Vec<_> = blocks.iter().zip(self.tapes.iter_mut()).collect();
        each(threads, &mut jobs, &|_, (rows, tape)| {
            forward(&layers, &obs[rows.start * od..rows.end * od], rows.len(), tape)
        });
        let mut out = Vec::with_capacity(rows * self.act_dim);
        for tape in &self.tapes[..blocks.len()] {
            for row in tape.output().chunks_exact(self.act_dim) {
                out.extend(row.iter().zip(&self.max_action).map(|(&p, &m)| p.tanh() * m));
            }
        }
        Some(out)
    }

    /// The TD targets `r + gamma (1 - terminated) min(Q1'(s', a), Q2'(s', a))` for next observations,
    /// (smoothed) target actions, rewards and not-done flags; the twin targets side by side.
    pub fn td_targets(
        &mut self,
        next_obs: &[f32],
        actions: &[f32],
        rewards: &[f32],
        not_done: &[f32],
        gamma: f64,
        threads: usize,
    ) -> Vec<f32> {
        concat_rows(next_obs, self.obs_dim, actions, self.act_dim, &mut self.x);
        let rows = rewards.len();
        let x = &self.x;
        let nets = [self.q_target[0].refs(), self.q_target[1].refs()];
        let jobs = twin_jobs(rows, threads);
        self.tapes.resize_with(jobs.len(), Tape::default);
        let width = self.obs_dim + self.act_dim;
        let mut work: Vec<_> = jobs.iter().zip(self.tapes.iter_mut()).collect();
        each(threads, &mut work, &|_, ((net, rows), tape)| {
            forward(&nets[*net], &x[rows.start * width..rows.end * width], rows.len(), tape)
        });
        let mut q = [vec![0.0f32; rows], vec![0.0f32; rows]];
        for ((net, block), tape) in jobs.iter().zip(&self.tapes) {
            q[*net][block.clone()].copy_from_slice(tape.output());
        }
        let gamma = gamma as f32;
        (0..rows).map(|i| rewards[i] + not_done[i] * gamma * q[0][i].min(q[1][i])).collect()
    }

    /// Both critics' MSE losses against `y` (mean over the batch), their gradients into the critics'
    /// gradient buffers (`critic_grads`).
    pub fn critic_step(&mut self, obs: &[f32], actions: &[f32], y: &[f32], threads: usize) -> CriticStep {
        concat_rows(obs, self.obs_dim, actions, self.act_dim, &mut self.x);
        let rows = y.len();
        let x = &self.x;
        let nets = [self.q[0].refs(), self.q[1].refs()];
        let jobs = twin_jobs(rows, threads);
        self.tapes.resize_with(jobs.len(), Tape::default);
        let width = self.obs_dim + self.act_dim;
        let scale = 2.0 / rows as f32;
        let mut work: Vec<_> =
            jobs.iter().zip(self.tapes.iter_mut()).map(|(j, t)| (j, t, 0.0f64, 0.0f64)).collect();
        each(threads, &mut work, &|_, ((net, block), tape, sq, sum)| {
            forward(&nets[*net], &x[block.start * width..block.end * width], block.len(), tape);
            let y = &y[block.clone()];
            let (mut e2, mut s) = (0.0f64, 0.0f64);
            let (q, grad) = tape.output_and_grad();
            for ((g, &q), &y) in grad.iter_mut().zip(q).zip(y) {
                let d = q - y;
                e2 += f64::from(d * d);
                s += f64::from(q);
                *g = scale * d;
            }
            (*sq, *sum) = (e2, s);
            backward(&nets[*net], tape, None);
        });
        let mut loss = [0.0; 2];
        let mut q1_sum = 0.0;
        for ((net, _), _, sq, sum) in &work {
            loss[*net] += sq / rows as f64;
            if *net == 0 {
                q1_sum += sum;
            }
        }
        drop(work);
        // Weight gradients: each twin over its own blocks, the twins side by side.
        let grad_jobs: Vec<GradJob<'_, '_>> = (0..2)
            .map(|net| GradJob {
                layers: &nets[net],
                blocks: jobs
                    .iter()
                    .zip(&self.tapes)
                    .filter(|((n, _), _)| *n == net)
                    .map(|((_, r), tape)| Block { x: &x[r.start * width..r.end * width], tape })
                    .collect(),
            })
            .collect();
        let [g1, g2] = &mut self.q_grads;
        weight_grads(&grad_jobs, &mut [g1, g2], (threads / 2).max(1), threads);
        CriticStep { loss, q1_mean: q1_sum / rows as f64 }
    }

    /// The actor loss `-mean Q1(s, a)` at actions `a` (`[rows, act_dim]`) and its gradient with respect
    /// to them, through the online critic (whose own gradients are not needed).
    pub fn critic_action_grad(&mut self, obs: &[f32], actions: &[f32], threads: usize) -> (f64, Vec<f32>) {
        concat_rows(obs, self.obs_dim, actions, self.act_dim, &mut self.x);
        let rows = actions.len() / self.act_dim;
        let (od, ad) = (self.obs_dim, self.act_dim);
        let x = &self.x;
        let q1 = self.q[0].refs();
        let blocks = row_blocks(rows, threads);
        self.tapes.resize_with(blocks.len(), Tape::default);
        let mut grad = vec![0.0f32; rows * ad];
        let mut work: Vec<_> = blocks
            .iter()
            .zip(self.tapes.iter_mut())
            .zip(chunks_for(&mut grad, &blocks, ad))
            .map(|((b, t), g)| (b, t, g, 0.0f64))
            .collect();
        let inv = -1.0 / rows as f32;
        each(threads, &mut work, &|_, (block, tape, g, sum)| {
            forward(&q1, &x[block.start * (od + ad)..block.end * (od + ad)], block.len(), tape);
            *sum = tape.output().iter().map(|&q| f64::from(q)).sum();
            tape.output_grad().fill(inv);
            backward(&q1, tape, Some((g, od..od + ad)));
        });
        let loss = -work.iter().map(|w| w.3).sum::<f64>() / rows as f64;
        (loss, grad)
    }

    /// `mean min(Q1, Q2)(s, a)` at actions `a` (`[rows, act_dim]`) through the online twins, and its
    /// gradient with respect to `a` (SAC's actor step; each row's gradient is its smaller critic's, as
    /// autograd's `minimum` gives away from ties).
    pub fn min_q_action_grad(&mut self, obs: &[f32], actions: &[f32], threads: usize) -> (f64, Vec<f32>) {
        concat_rows(obs, self.obs_dim, actions, self.act_dim, &mut self.x);
        let rows = actions.len() / self.act_dim;
        let (od, ad) = (self.obs_dim, self.act_dim);
        let x = &self.x;
        let nets = [self.q[0].refs(), self.q[1].refs()];
        let blocks = row_blocks(rows, threads);
        self.tapes.resize_with(blocks.len(), Tape::default);
        self.tapes2.resize_with(blocks.len(), Tape::default);
        let mut grad = vec![0.0f32; rows * ad];
        let mut work: Vec<_> = blocks
            .iter()
            .zip(self.tapes.iter_mut().zip(self.tapes2.iter_mut()))
            .zip(chunks_for(&mut grad, &blocks, ad))
            .map(|((b, (t1, t2)), g)| (b, t1, t2, g, 0.0f64))
            .collect();
        let inv = 1.0 / rows as f32;
        each(threads, &mut work, &|_, (block, t1, t2, g, sum)| {
            let input = &x[block.start * (od + ad)..block.end * (od + ad)];
            forward(&nets[0], input, block.len(), t1);
            forward(&nets[1], input, block.len(), t2);
            // Each row's gradient goes to its smaller critic only.
            let mut first = vec![false; block.len()];
            *sum = 0.0;
            for (r, (&a, &b)) in t1.output().iter().zip(t2.output()).enumerate() {
                first[r] = a <= b;
                *sum += f64::from(a.min(b));
            }
            for (d, &f) in t1.output_grad().iter_mut().zip(&first) {
                *d = if f { inv } else { 0.0 };
            }
            for (d, &f) in t2.output_grad().iter_mut().zip(&first) {
                *d = if f { 0.0 } else { inv };
            }
            let mut g2 = vec![0.0f32; g.len()];
            backward(&nets[0], t1, Some((g, od..od + ad)));
            backward(&nets[1], t2, Some((&mut g2, od..od + ad)));
            for (a, b) in g.iter_mut().zip(&g2) {
                *a += b;
            }
        });
        let mean = work.iter().map(|w| w.4).sum::<f64>() / rows as f64;
        (mean, grad)
    }

    /// The ANN actor's step: loss `-mean Q1(s, actor(s))`, the actor's gradients into `actor_grads`.
    pub fn actor_step(&mut self, obs: &[f32], threads: usize) -> Option<f64> {
        let (actor, _, actor_grads) = self.actor.as_mut()?;
        let (od, ad) = (self.obs_dim, self.act_dim);
        let rows = obs.len() / od;
        let layers = actor.refs();
        let q1 = self.q[0].refs();
        let blocks = row_blocks(rows, threads);
        self.tapes.resize_with(blocks.len(), Tape::default);
        self.tapes2.resize_with(blocks.len(), Tape::default);
        let max_action = &self.max_action;
        let inv = -1.0 / rows as f32;
        let mut work: Vec<_> = blocks
            .iter()
            .zip(self.tapes.iter_mut().zip(self.tapes2.iter_mut()))
            .map(|(b, (t, c))| (b, t, c, 0.0f64))
            .collect();
        each(threads, &mut work, &|_, (block, tape, critic_tape, sum)| {
            let n = block.len();
            forward(&layers, &obs[block.start * od..block.end * od], n, tape);
            let tanh: Vec<f32> = tape.output().iter().map(|p| p.tanh()).collect();
            let action: Vec<f32> =
                tanh.chunks_exact(ad).flat_map(|r| r.iter().zip(max_action).map(|(&t, &m)| t * m)).collect();
            let mut x = Vec::new();
            concat_rows(&obs[block.start * od..block.end * od], od, &action, ad, &mut x);
            forward(&q1, &x, n, critic_tape);
            *sum = critic_tape.output().iter().map(|&q| f64::from(q)).sum();
            critic_tape.output_grad().fill(inv);
            let mut grad_action = vec![0.0f32; n * ad];
            backward(&q1, critic_tape, Some((&mut grad_action, od..od + ad)));
            // action = tanh(pre) * max_action.
            for (i, (g, ga)) in tape.output_grad().iter_mut().zip(&grad_action).enumerate() {
                let t = tanh[i];
                *g = ga * max_action[i % ad] * (1.0 - t * t);
            }
            backward(&layers, tape, None);
        });
        let loss = -work.iter().map(|w| w.3).sum::<f64>() / rows as f64;
        drop(work);
        let blocks = blocks
            .iter()
            .zip(&self.tapes)
            .map(|(b, tape)| Block { x: &obs[b.start * od..b.end * od], tape })
            .collect();
        weight_grads(&[GradJob { layers: &layers, blocks }], &mut [actor_grads], threads.max(1), threads);
        Some(loss)
    }

    /// The proxy's imitation step: loss `mean ||proxy(s) - target||^2` over every element (PyTorch's
    /// `mse_loss`), its gradients into `proxy_grads`.
    pub fn proxy_step(&mut self, obs: &[f32], target: &[f32], threads: usize) -> Option<f64> {
        self.proxy_step_on(obs, target, true, threads)
    }

    /// [`DenseTd3::proxy_step`] on the proxy's squashed output (`squash`: TD3's actions) or on its raw
    /// output (SAC's Gaussian mean before the tanh).
    pub fn proxy_step_on(
        &mut self,
        obs: &[f32],
        target: &[f32],
        squash: bool,
        threads: usize,
    ) -> Option<f64> {
        let (proxy, grads) = self.proxy.as_mut()?;
        let (od, ad) = (self.obs_dim, self.act_dim);
        let rows = obs.len() / od;
        let layers = proxy.refs();
        let blocks = row_blocks(rows, threads);
        self.tapes.resize_with(blocks.len(), Tape::default);
        let max_action = &self.max_action;
        let scale = 2.0 / (rows * ad) as f32;
        let mut work: Vec<_> =
            blocks.iter().zip(self.tapes.iter_mut()).map(|(b, t)| (b, t, 0.0f64)).collect();
        each(threads, &mut work, &|_, (block, tape, sq)| {
            forward(&layers, &obs[block.start * od..block.end * od], block.len(), tape);
            let target = &target[block.start * ad..block.end * ad];
            let (pre, grad) = tape.output_and_grad();
            let mut e2 = 0.0f64;
            for (i, (g, &p)) in grad.iter_mut().zip(pre).enumerate() {
                if squash {
                    let t = p.tanh();
                    let m = max_action[i % ad];
                    let d = t * m - target[i];
                    e2 += f64::from(d * d);
                    *g = scale * d * m * (1.0 - t * t);
                } else {
                    let d = p - target[i];
                    e2 += f64::from(d * d);
                    *g = scale * d;
                }
            }
            *sq = e2;
            backward(&layers, tape, None);
        });
        let loss = work.iter().map(|w| w.2).sum::<f64>() / (rows * ad) as f64;
        drop(work);
        let blocks = blocks
            .iter()
            .zip(&self.tapes)
            .map(|(b, tape)| Block { x: &obs[b.start * od..b.end * od], tape })
            .collect();
        weight_grads(&[GradJob { layers: &layers, blocks }], &mut [grads], threads.max(1), threads);
        Some(loss)
    }
}

/// (twin, rows) jobs for the two critics on `threads` threads: each twin alone on a thread when there are
/// two, its rows split further when there are more.
fn twin_jobs(rows: usize, threads: usize) -> Vec<(usize, Range<usize>)> {
    let per_net = (threads / 2).max(1);
    (0..2).flat_map(|net| row_blocks(rows, per_net).into_iter().map(move |r| (net, r))).collect()
}

/// Disjoint mutable chunks of `v` (`cols` values a row) for consecutive row blocks.
fn chunks_for<'a>(mut v: &'a mut [f32], blocks: &[Range<usize>], cols: usize) -> Vec<&'a mut [f32]> {
    blocks
        .iter()
        .map(|b| {
            let (here, rest) = std::mem::take(&mut v).split_at_mut(b.len() * cols);
            v = rest;
            here
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::Critics;
    use spikerl_snn::torch::TorchPolicy;
    use spikerl_snn::{NetworkConfig, PolicyConfig};

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    fn close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 2e-5 * scale,
                "{what}[{i}]: {g} (dense) vs {w} (autograd), scale {scale}"
            );
        }
    }

    /// The twin critics' losses and gradients, and the TD targets, against autograd through `Critics`.
    #[test]
    fn critic_step_matches_autograd_on_any_thread_count() {
        tch::manual_seed(21);
        let (od, ad, rows) = (5, 2, 100);
        let vs = nn::VarStore::new(Device::Cpu);
        let critic = Critics::new(&vs.root(), od, ad, &[32, 16]);
        let tvs = nn::VarStore::new(Device::Cpu);
        let target = Critics::new(&tvs.root(), od, ad, &[32, 16]);
        let obs = Tensor::randn([rows, od as i64], (Kind::Float, Device::Cpu));
        let act = Tensor::randn([rows, ad as i64], (Kind::Float, Device::Cpu));
        let y = Tensor::randn([rows, 1], (Kind::Float, Device::Cpu));
        let (q1, q2) = critic.both(&obs, &act);
        let (l1, l2) = (q1.mse_loss(&y, tch::Reduction::Mean), q2.mse_loss(&y, tch::Reduction::Mean));
        (&l1 + &l2).backward();
        let not_done = Tensor::from_slice(&(0..rows).map(|i| (i % 3 != 0) as u8 as f32).collect::<Vec<_>>())
            .view([rows, 1]);
        let (t1, t2) = tch::no_grad(|| target.both(&obs, &act));
        // The TD target written out: reward + gamma * not_done * min(Q1', Q2').
        let want_y = values(&(&y + &not_done * 0.99 * t1.minimum(&t2)));
        for threads in [1, 2, 3, 4] {
            let mut dense = DenseTd3::new(od, ad, &[1.0, 2.0], &vs, &tvs, None, None).unwrap();
            let step = dense.critic_step(&values(&obs), &values(&act), &values(&y), threads);
            assert!(
                (step.loss[0] - l1.double_value(&[])).abs() < 1e-5 * l1.double_value(&[]),
                "{threads} threads"
            );
            assert!((step.loss[1] - l2.double_value(&[])).abs() < 1e-5 * l2.double_value(&[]));
            assert!((step.q1_mean - q1.mean(Kind::Float).double_value(&[])).abs() < 1e-5);
            let grads = dense.critic_grads();
            for (name, var) in vs.variables() {
                close(&values(&grads[&name]), &values(&var.grad()), &format!("{name}, {threads} threads"));
            }
            let got_y = dense.td_targets(
                &values(&obs),
                &values(&act),
                &values(&y),
                &values(&not_done),
                0.99,
                threads,
            );
            close(&got_y, &want_y, "TD targets");
        }
    }

    fn ann(obs: usize, act: usize, hidden: Vec<usize>) -> PolicyConfig {
        PolicyConfig {
            gaussian: None,
            obs_dim: obs,
            act_dim: act,
            max_action: (0..act).map(|i| 1.0 + i as f32).collect(),
            network: NetworkConfig::Ann { hidden },
        }
    }

    #[test]
    fn actor_and_proxy_steps_match_autograd() {
        tch::manual_seed(22);
        let (od, ad, rows) = (6, 3, 90);
        let cfg = ann(od, ad, vec![24, 20]);
        let (avs, tavs, pvs) =
            (nn::VarStore::new(Device::Cpu), nn::VarStore::new(Device::Cpu), nn::VarStore::new(Device::Cpu));
        let actor = TorchPolicy::new(&avs.root(), &cfg);
        let target_actor = TorchPolicy::new(&tavs.root(), &cfg);
        let proxy = TorchPolicy::new(&pvs.root(), &cfg);
        let (cvs, ctvs) = (nn::VarStore::new(Device::Cpu), nn::VarStore::new(Device::Cpu));
        let critic = Critics::new(&cvs.root(), od, ad, &[16, 16]);
        let _ = Critics::new(&ctvs.root(), od, ad, &[16, 16]);
        let obs = Tensor::randn([rows, od as i64], (Kind::Float, Device::Cpu)) * 2.0;
        let snn_action = Tensor::rand([rows, ad as i64], (Kind::Float, Device::Cpu)) - 0.5;

        let actor_loss = -critic.q1(&obs, &actor.forward(&obs)).mean(Kind::Float);
        actor_loss.backward();
        let proxy_loss = proxy.forward(&obs).mse_loss(&snn_action, tch::Reduction::Mean);
        proxy_loss.backward();
        let action = actor.forward(&obs).detach().set_requires_grad(true);
        let q_loss = -critic.q1(&obs, &action).mean(Kind::Float);
        let want_grad_action = Tensor::run_backward(&[&q_loss], &[&action], false, false).remove(0);
        let want_target = values(&tch::no_grad(|| target_actor.forward(&obs)));

        for threads in [1, 2, 3] {
            let max_action = cfg.max_action.clone();
            let mut dense =
                DenseTd3::new(od, ad, &max_action, &cvs, &ctvs, Some((&avs, &tavs)), Some(&pvs)).unwrap();
            let loss = dense.actor_step(&values(&obs), threads).unwrap();
            assert!(
                (loss - actor_loss.double_value(&[])).abs()
                    < 1e-5 * actor_loss.double_value(&[]).abs().max(1.0)
            );
            let grads = dense.actor_grads().unwrap();
            for (name, var) in avs.variables() {
                close(
                    &values(&grads[&name]),
                    &values(&var.grad()),
                    &format!("actor {name}, {threads} threads"),
                );
            }
            let loss = dense.proxy_step(&values(&obs), &values(&snn_action), threads).unwrap();
            assert!((loss - proxy_loss.double_value(&[])).abs() < 1e-5 * proxy_loss.double_value(&[]));
            let grads = dense.proxy_grads().unwrap();
            for (name, var) in pvs.variables() {
                close(
                    &values(&grads[&name]),
                    &values(&var.grad()),
                    &format!("proxy {name}, {threads} threads"),
                );
            }
            let (l, g) = dense.critic_action_grad(&values(&obs), &values(&action), threads);
            assert!((l - q_loss.double_value(&[])).abs() < 1e-5 * q_loss.double_value(&[]).abs().max(1.0));
            close(&g, &values(&want_grad_action), "gradient with respect to the action");
            close(
                &dense.target_policy_forward(&values(&obs), threads).unwrap(),
                &want_target,
                "target actor forward",
            );
        }
    }

    #[test]
    fn networks_that_do_not_fit_are_refused() {
        let (cvs, ctvs) = (nn::VarStore::new(Device::Cpu), nn::VarStore::new(Device::Cpu));
        let _ = Critics::new(&cvs.root(), 4, 2, &[8]);
        let _ = Critics::new(&ctvs.root(), 4, 2, &[8]);
        assert!(DenseTd3::new(4, 2, &[1.0, 1.0], &cvs, &ctvs, None, None).is_some());
        assert!(
            DenseTd3::new(5, 2, &[1.0, 1.0], &cvs, &ctvs, None, None).is_none(),
            "wrong observation size"
        );
        let empty = nn::VarStore::new(Device::Cpu);
        assert!(DenseTd3::new(4, 2, &[1.0, 1.0], &empty, &ctvs, None, None).is_none(), "no critic variables");
    }
}
