//! Plain-Rust inference: what actors run on every environment step. No libtorch.
//!
//! The spiking network is simulated event-driven: weights are stored transposed (`[in][out]`, rows padded
//! to a multiple of 16), and each input spike adds its weight row to the layer's input currents. Silent
//! inputs cost nothing, and the synaptic operations (SOPs) of the energy model are counted for free.
//! Layers are simulated one after the other over all T steps (there is no feedback between layers, so this
//! equals stepping the whole network T times, and keeps one layer's weights hot in cache). All buffers are
//! allocated in [`Policy::new`]; [`Policy::act`] does not allocate.
//!
//! The hot loops are compiled three times (baseline SSE2, AVX2, AVX-512) and the CPU's best is picked at
//! [`Policy::new`]; `SPIKERL_SIMD=baseline|avx2` caps it. The variants are bit-identical (same summation
//! order, no FMA contraction); a unit test checks it. Measured on the 2-core dev VM (Xeon, AVX-512, shared
//! with builds): about 9 us per action for the paper's LIF network on HalfCheetah shapes at batch 1.

use crate::SnnError;
use crate::config::{NetworkConfig, PolicyConfig};
use crate::neuron::{
    Clif, Dn, Lif, MembraneDecay, Neuron, NeuronModel, NeuronState, RegularEncoder, sigmoid,
};
use crate::weights::{NamedTensors, check_tensors};

/// Energy per synaptic operation (accumulate) in the paper's 45 nm model: 77 fJ.
pub const SOP_ENERGY_PJ: f64 = 0.077;
/// Energy per multiply-accumulate in the paper's 45 nm model: 3.97 pJ.
pub const MAC_ENERGY_PJ: f64 = 3.97;

/// Activity counters accumulated over inferences since the last [`Policy::reset_stats`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InferenceStats {
    /// Observations processed.
    pub inferences: u64,
    /// Simulation steps per inference (0 for an ANN).
    pub timesteps: usize,
    /// Spikes emitted by the encoder population.
    pub encoder_spikes: u64,
    /// Encoder neurons (`obs_dim * pop`).
    pub encoder_neurons: usize,
    /// Spikes emitted by each spiking layer `layers.{i}` (the last is the output population). Empty for an ANN.
    pub spikes_per_layer: Vec<u64>,
    /// Neurons of each spiking layer.
    pub neurons_per_layer: Vec<usize>,
    /// Synaptic operations: every spike times its fan-out, encoder spikes into layer 0 included, and the
    /// output population's spikes into the decoder (fan-out 1: one accumulate into its action's sum).
    pub sops: u64,
    /// Multiply-accumulates of dense layers (ANN: `sum in * out` per inference; 0 for the SNN).
    pub macs: u64,
}

impl InferenceStats {
    /// Mean firing probability per neuron and time step over the network's spiking layers (hidden and
    /// output; the encoder is excluded: its rate reflects the observation, not the network).
    pub fn firing_rate(&self) -> f64 {
        let slots = self.neurons_per_layer.iter().sum::<usize>() as f64
            * self.timesteps as f64
            * self.inferences as f64;
        if slots == 0.0 { 0.0 } else { self.spikes_per_layer.iter().sum::<u64>() as f64 / slots }
    }

    /// Mean firing probability of the encoder population.
    pub fn encoder_firing_rate(&self) -> f64 {
        let slots = self.encoder_neurons as f64 * self.timesteps as f64 * self.inferences as f64;
        if slots == 0.0 { 0.0 } else { self.encoder_spikes as f64 / slots }
    }

    /// SOPs per inference.
    pub fn sops_per_inference(&self) -> f64 {
        if self.inferences == 0 { 0.0 } else { self.sops as f64 / self.inferences as f64 }
    }

    /// MACs per inference.
    pub fn macs_per_inference(&self) -> f64 {
        if self.inferences == 0 { 0.0 } else { self.macs as f64 / self.inferences as f64 }
    }

    /// Energy per inference in nJ under the paper's model: SOPs * 77 fJ + MACs * 3.97 pJ (an SNN has only
    /// SOPs, an ANN only MACs).
    pub fn energy_nj_per_inference(&self) -> f64 {
        (self.sops_per_inference() * SOP_ENERGY_PJ + self.macs_per_inference() * MAC_ENERGY_PJ) / 1000.0
    }
}

/// MACs of the ANN the energy comparison sets against `cfg`: for an ANN config, itself; for an SNN config,
/// an ANN with the same hidden widths on the raw observation (the paper's 256-256 baseline for its actor).
pub fn ann_equivalent_macs(cfg: &PolicyConfig) -> u64 {
    let hidden = match &cfg.network {
        NetworkConfig::Ann { hidden } => hidden,
        NetworkConfig::Snn(s) => &s.hidden,
    };
    let mut prev = cfg.obs_dim as u64;
    let mut macs = 0;
    for &h in hidden.iter().chain(std::iter::once(&cfg.act_dim)) {
        macs += prev * h as u64;
        prev = h as u64;
    }
    macs
}

/// Per-population spike trains of one inference, for tests and analysis: `spikes[p][t * n_p + j]` is 1 if
/// neuron `j` of population `p` fired at step `t`; population 0 is the encoder, `p >= 1` is `layers.{p-1}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeTrace {
    /// Simulation steps.
    pub timesteps: usize,
    /// Spike trains, population-major.
    pub spikes: Vec<Vec<u8>>,
}

/// A fully connected layer. Its outputs are zero-padded from `fan_out` to `stride` so that the kernels
/// only ever handle whole register blocks.
#[derive(Debug, Clone)]
struct Dense {
    fan_in: usize,
    fan_out: usize,
    stride: usize,
    /// [`Layout::Rows`]: `[in][stride]`, one input's fan-out contiguous (stride a multiple of
    /// [`LANE_BLOCK`]). [`Layout::Slabs`]: `[stride / SLAB][in][SLAB]`, the fan-out split into slabs of
    /// [`SLAB`] outputs, each slab's weights from every input contiguous (stride a multiple of `SLAB`).
    wt: Vec<f32>,
    /// `stride` entries, zero-padded.
    bias: Vec<f32>,
}

/// Granularity of the padded layer widths: 16 f32 = two AVX registers, four SSE registers.
const LANE_BLOCK: usize = 16;

/// Outputs per slab of a spiking layer ([`Layout::Slabs`], [`accumulate_steps`]): 8 AVX2, 4 AVX-512 or
/// 16 SSE registers of partial sums.
const SLAB: usize = 64;

/// How [`Dense`] stores its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// For dense (ANN) layers: each input's row of weights, for every output block in turn.
    Rows,
    /// For spiking layers: slab by slab, so that all steps of one slab reuse its weights from cache.
    Slabs,
}

impl Dense {
    fn from_tensors(tensors: &NamedTensors, i: usize, layout: Layout) -> Self {
        // Shapes were checked by `check_tensors`.
        let w = &tensors[&format!("layers.{i}.weight")];
        let (fan_out, fan_in) = (w.shape[0], w.shape[1]);
        let lanes = match layout {
            Layout::Rows => LANE_BLOCK,
            Layout::Slabs => SLAB,
        };
        let stride = fan_out.div_ceil(lanes) * lanes;
        let mut wt = vec![0.0; fan_in * stride];
        for o in 0..fan_out {
            for k in 0..fan_in {
                let at = match layout {
                    Layout::Rows => k * stride + o,
                    Layout::Slabs => (o / SLAB * fan_in + k) * SLAB + o % SLAB,
                };
                wt[at] = w.data[o * fan_in + k];
            }
        }
        let mut bias = tensors[&format!("layers.{i}.bias")].data.clone();
        bias.resize(stride, 0.0);
        Self { fan_in, fan_out, stride, wt, bias }
    }
}

/// Every step's input currents of a spiking layer ([`Layout::Slabs`]): `xs[t * stride + o] = bias[o] +`
/// the weights from the inputs that spiked at step t to output o, added in index order. Slab after slab
/// of [`SLAB`] outputs, every step of a slab before the next slab: the slab's weights (`fan_in` x 256
/// bytes, 64 KB for 256 inputs) are fetched once and reused from cache by every step, where step after
/// step over whole rows would stream the layer's weights (256 KB for 256 x 256) once per step, and a
/// trained network fires in most steps. Within a slab the partial sums stay in registers across all
/// spikes (one load and one add per lane and spike, no stores).
#[inline(always)]
fn accumulate_steps(layer: &Dense, input: &Events, steps: usize, xs: &mut [f32]) {
    for (slab_index, slab) in layer.wt.chunks_exact(layer.fan_in * SLAB).enumerate() {
        let start = slab_index * SLAB;
        let bias: [f32; SLAB] = layer.bias[start..start + SLAB].try_into().unwrap();
        for t in 0..steps {
            let mut acc = bias;
            for &k in input.step(t) {
                let row: &[f32; SLAB] = slab[k as usize * SLAB..][..SLAB].try_into().unwrap();
                for (a, w) in acc.iter_mut().zip(row) {
                    *a += w;
                }
            }
            xs[t * layer.stride + start..][..SLAB].copy_from_slice(&acc);
        }
    }
}

/// Membrane state of one layer, structure-of-arrays.
#[derive(Debug, Clone)]
struct LayerState {
    v: Vec<f32>,
    s: Vec<f32>,
    i: Vec<f32>,
    u: Vec<f32>,
}

impl LayerState {
    fn new(n: usize) -> Self {
        Self { v: vec![0.0; n], s: vec![0.0; n], i: vec![0.0; n], u: vec![0.0; n] }
    }
    fn reset(&mut self, n: usize) {
        for buf in [&mut self.v, &mut self.s, &mut self.i, &mut self.u] {
            buf[..n].fill(0.0);
        }
    }
}

/// One step of neuron `N` over a whole layer. Monomorphic per neuron so the loop vectorises.
#[inline(always)]
fn step_layer<N: Neuron>(neuron: N, decay: f32, x: &[f32], st: &mut LayerState) {
    let n = x.len();
    let (v, s, i, u) = (&mut st.v[..n], &mut st.s[..n], &mut st.i[..n], &mut st.u[..n]);
    for j in 0..n {
        let mut ns = NeuronState { v: v[j], s: s[j], i: i[j], u: u[j] };
        neuron.step(&mut ns, &x[j], &decay);
        v[j] = ns.v;
        s[j] = ns.s;
        i[j] = ns.i;
        u[j] = ns.u;
    }
}

/// Bitmask of the nonzero entries among 16 spike values (bit i for entry i). The compiler does not turn
/// the portable loop into a vector compare, so x86_64 gets one explicitly.
trait SpikeMask {
    /// # Safety
    /// The implementation's instruction set must be available on this CPU.
    unsafe fn mask16(s: &[f32; 16]) -> u32;
}

/// Any CPU.
struct PortableMask;

impl SpikeMask for PortableMask {
    #[inline(always)]
    unsafe fn mask16(s: &[f32; 16]) -> u32 {
        s.iter().enumerate().fold(0, |m, (i, &v)| m | (u32::from(v != 0.0) << i))
    }
}

/// AVX: two 8-lane compares and `movemask`. Inlined into the AVX2/AVX-512 forward passes only.
#[cfg(target_arch = "x86_64")]
struct AvxMask;

#[cfg(target_arch = "x86_64")]
impl SpikeMask for AvxMask {
    #[inline(always)]
    unsafe fn mask16(s: &[f32; 16]) -> u32 {
        use std::arch::x86_64::{
            _CMP_NEQ_UQ, _mm256_cmp_ps, _mm256_loadu_ps, _mm256_movemask_ps, _mm256_setzero_ps,
        };
        // SAFETY: the caller guarantees AVX; both loads read 8 of the 16 floats of `s`.
        unsafe {
            let z = _mm256_setzero_ps();
            let lo = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(_mm256_loadu_ps(s.as_ptr()), z)) as u32;
            let hi = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(_mm256_loadu_ps(s.as_ptr().add(8)), z))
                as u32;
            lo | (hi << 8)
        }
    }
}

/// Spike trains of one population over all T steps: indices of the firing neurons, step after step.
#[derive(Debug, Clone)]
struct Events {
    /// `T * neurons` slots (the most that can fire); the first `offsets[T]` are used.
    idx: Vec<u32>,
    /// `idx[offsets[t]..offsets[t + 1]]` fired at step t.
    offsets: Vec<usize>,
}

impl Events {
    fn new(neurons: usize, timesteps: usize) -> Self {
        let mut e = Self { idx: vec![0; neurons * timesteps], offsets: Vec::with_capacity(timesteps + 1) };
        e.clear();
        e
    }
    fn clear(&mut self) {
        self.offsets.clear();
        self.offsets.push(0);
    }
    fn len(&self) -> usize {
        *self.offsets.last().unwrap()
    }
    /// Appends the indices of the nonzero entries of `spikes` as the next step. Spikes are sparse, so the
    /// scan builds a 16-bit mask per 16 neurons (one or two vector compares, see [`SpikeMask`]) and
    /// visits only the set bits.
    ///
    /// # Safety
    /// `M` must be usable on this CPU (see [`SpikeMask::mask16`]).
    #[inline(always)]
    unsafe fn push_step<M: SpikeMask>(&mut self, spikes: &[f32]) {
        let mut c = self.len();
        let chunks = spikes.chunks_exact(16);
        let rest = chunks.remainder();
        for (ci, chunk) in chunks.enumerate() {
            // SAFETY: forwarded from the caller.
            let mut m = unsafe { M::mask16(chunk.try_into().unwrap()) };
            while m != 0 {
                self.idx[c] = (ci * 16) as u32 + m.trailing_zeros();
                c += 1;
                m &= m - 1;
            }
        }
        let base = spikes.len() - rest.len();
        for (i, &s) in rest.iter().enumerate() {
            if s != 0.0 {
                self.idx[c] = (base + i) as u32;
                c += 1;
            }
        }
        self.offsets.push(c);
    }
    fn step(&self, t: usize) -> &[u32] {
        &self.idx[self.offsets[t]..self.offsets[t + 1]]
    }
    fn all(&self) -> &[u32] {
        &self.idx[..self.len()]
    }
}

#[derive(Debug, Clone)]
struct SnnNet {
    obs_dim: usize,
    act_dim: usize,
    pop: usize,
    timesteps: usize,
    model: NeuronModel,
    encoder: RegularEncoder,
    mu: Vec<f32>,
    /// sigma^2, computed as the tch network does (`sigma * sigma`).
    sigma_sq: Vec<f32>,
    layers: Vec<Dense>,
    /// Membrane decay per layer (PLIF: sigmoid of its logit).
    decays: Vec<f32>,
    dec_w: Vec<f32>,
    dec_b: Vec<f32>,
    // Preallocated work buffers.
    act: Vec<f32>,
    enc_v: Vec<f32>,
    enc_s: Vec<f32>,
    /// Population 0 = encoder, p = layers.{p-1}.
    events: Vec<Events>,
    /// Input currents of the current layer for every step (step t at `t * stride`).
    x: Vec<f32>,
    state: LayerState,
    rate: Vec<f32>,
    /// The decoder's pre-tanh output of the latest inference (a Gaussian policy's mean).
    pre: Vec<f32>,
    isa: Isa,
}

/// The vector instruction set the hot loops were compiled for, detected once at [`Policy::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// The build's baseline (SSE2 on x86_64).
    Baseline,
    /// AVX2 (+FMA enabled, which Rust never uses to contract `a * b + c`, so results are unchanged).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F: 16 lanes.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            // `SPIKERL_SIMD=baseline|avx2` caps the instruction set (benchmarks, debugging).
            let cap = std::env::var("SPIKERL_SIMD").unwrap_or_default();
            let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            if cap != "baseline" && cap != "avx2" && avx2 && std::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if cap != "baseline" && avx2 {
                return Self::Avx2;
            }
        }
        Self::Baseline
    }
}

impl SnnNet {
    fn forward(&mut self, obs: &[f32], action: &mut [f32], max_action: &[f32], stats: &mut InferenceStats) {
        match self.isa {
            // SAFETY: the portable mask runs anywhere.
            Isa::Baseline => unsafe { self.forward_impl::<PortableMask>(obs, action, max_action, stats) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2` is only chosen when the CPU reports AVX2 and FMA.
            Isa::Avx2 => unsafe { self.forward_avx2(obs, action, max_action, stats) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx512` is only chosen when the CPU reports AVX-512F, AVX2 and FMA.
            Isa::Avx512 => unsafe { self.forward_avx512(obs, action, max_action, stats) },
        }
    }

    /// The same code compiled for AVX2: the whole forward pass (encoder, accumulation, neuron loops) is
    /// inlined here, so every loop gets 8-lane vectors (a slab's 64 partial sums: 8 registers).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(
        &mut self,
        obs: &[f32],
        action: &mut [f32],
        max_action: &[f32],
        stats: &mut InferenceStats,
    ) {
        // SAFETY: this function only runs on CPUs with AVX2.
        unsafe { self.forward_impl::<AvxMask>(obs, action, max_action, stats) }
    }

    /// The same code for AVX-512 (a slab's partial sums: 4 registers of 16).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn forward_avx512(
        &mut self,
        obs: &[f32],
        action: &mut [f32],
        max_action: &[f32],
        stats: &mut InferenceStats,
    ) {
        // SAFETY: this function only runs on CPUs with AVX-512F and AVX2.
        unsafe { self.forward_impl::<AvxMask>(obs, action, max_action, stats) }
    }

    /// # Safety
    /// `M` must be usable on this CPU.
    #[inline(always)]
    unsafe fn forward_impl<M: SpikeMask>(
        &mut self,
        obs: &[f32],
        action: &mut [f32],
        max_action: &[f32],
        stats: &mut InferenceStats,
    ) {
        let pop = self.pop;
        // Encoder: squash, Gaussian receptive fields, regular spikes.
        for (d, o) in obs.iter().enumerate() {
            let s = o.tanh();
            for k in d * pop..(d + 1) * pop {
                let diff = s - self.mu[k];
                self.act[k] = (diff * diff / self.sigma_sq[k] * -0.5).exp();
            }
        }
        self.enc_v.fill(0.0);
        let enc = &mut self.events[0];
        enc.clear();
        for _ in 0..self.timesteps {
            for ((v, a), s) in self.enc_v.iter_mut().zip(&self.act).zip(self.enc_s.iter_mut()) {
                *s = self.encoder.step(v, a);
            }
            // SAFETY: forwarded from the caller.
            unsafe { enc.push_step::<M>(&self.enc_s) };
        }
        let enc_spikes = enc.len() as u64;
        stats.encoder_spikes += enc_spikes;
        stats.sops += enc_spikes * self.layers[0].fan_out as u64;

        // Spiking layers, each over all steps.
        for l in 0..self.layers.len() {
            let (before, after) = self.events.split_at_mut(l + 1);
            let (input, output) = (&before[l], &mut after[0]);
            let layer = &self.layers[l];
            let n = layer.fan_out;
            let decay = self.decays[l];
            self.state.reset(n);
            output.clear();
            accumulate_steps(layer, input, self.timesteps, &mut self.x);
            for t in 0..self.timesteps {
                let x = &self.x[t * layer.stride..][..n];
                match self.model {
                    NeuronModel::Lif(m) => step_layer::<Lif>(m, decay, x, &mut self.state),
                    NeuronModel::Clif(m) => step_layer::<Clif>(m, decay, x, &mut self.state),
                    NeuronModel::Dn(m) => step_layer::<Dn>(m, decay, x, &mut self.state),
                }
                // SAFETY: forwarded from the caller.
                unsafe { output.push_step::<M>(&self.state.s[..n]) };
            }
            let spikes = output.len() as u64;
            stats.spikes_per_layer[l] += spikes;
            let fan_out = self.layers.get(l + 1).map_or(1, |next| next.fan_out);
            stats.sops += spikes * fan_out as u64;
        }

        // Decoder: firing rate of the output population, weighted per action dimension.
        self.rate.fill(0.0);
        for &j in self.events[self.layers.len()].all() {
            self.rate[j as usize] += 1.0;
        }
        let t = self.timesteps as f32;
        for r in &mut self.rate {
            *r /= t;
        }
        for a in 0..self.act_dim {
            let w = &self.dec_w[a * pop..(a + 1) * pop];
            let r = &self.rate[a * pop..(a + 1) * pop];
            let y: f32 = w.iter().zip(r).map(|(w, r)| w * r).sum::<f32>() + self.dec_b[a];
            self.pre[a] = y;
            action[a] = y.tanh() * max_action[a];
        }
    }

    /// Adds the latest inference's spikes of each spiking layer to `counts[layer][neuron]`.
    fn count_layer_spikes(&self, counts: &mut [Vec<u64>]) {
        for (layer, events) in counts.iter_mut().zip(&self.events[1..]) {
            for &j in events.all() {
                layer[j as usize] += 1;
            }
        }
    }

    fn trace(&self) -> SpikeTrace {
        let mut sizes = vec![self.obs_dim * self.pop];
        sizes.extend(self.layers.iter().map(|l| l.fan_out));
        let spikes = self
            .events
            .iter()
            .zip(sizes)
            .map(|(ev, n)| {
                let mut train = vec![0u8; self.timesteps * n];
                for t in 0..self.timesteps {
                    for &j in ev.step(t) {
                        train[t * n + j as usize] = 1;
                    }
                }
                train
            })
            .collect();
        SpikeTrace { timesteps: self.timesteps, spikes }
    }
}

#[derive(Debug, Clone)]
struct AnnNet {
    layers: Vec<Dense>,
    /// Activations, padded to the widest stride.
    a: Vec<f32>,
    b: Vec<f32>,
    isa: Isa,
}

/// `y[start..start + B] = bias + sum_k x_k W_t[k]`, partial sums in registers (as in [`accumulate_steps`]).
/// ReLU zeros contribute nothing and are skipped (exact); MACs are still counted densely, as the energy
/// model's dense hardware would perform them.
#[inline(always)]
fn dense_block<const B: usize>(layer: &Dense, x: &[f32], y: &mut [f32], start: usize) {
    let mut acc: [f32; B] = layer.bias[start..start + B].try_into().unwrap();
    for (k, &xk) in x.iter().enumerate() {
        if xk != 0.0 {
            let row: &[f32; B] = layer.wt[k * layer.stride + start..][..B].try_into().unwrap();
            for (a, w) in acc.iter_mut().zip(row) {
                *a += xk * w;
            }
        }
    }
    y[start..start + B].copy_from_slice(&acc);
}

impl AnnNet {
    fn forward(&mut self, obs: &[f32], action: &mut [f32], max_action: &[f32], stats: &mut InferenceStats) {
        match self.isa {
            Isa::Baseline => self.forward_impl::<32>(obs, action, max_action, stats),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2` is only chosen when the CPU reports AVX2 and FMA.
            Isa::Avx2 => unsafe { self.forward_avx2(obs, action, max_action, stats) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx512` is only chosen when the CPU reports AVX-512F, AVX2 and FMA.
            Isa::Avx512 => unsafe { self.forward_avx512(obs, action, max_action, stats) },
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(
        &mut self,
        obs: &[f32],
        action: &mut [f32],
        max_action: &[f32],
        stats: &mut InferenceStats,
    ) {
        self.forward_impl::<64>(obs, action, max_action, stats)
    }

    /// The same code for AVX-512: 128 lanes = 8 registers of 16.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn forward_avx512(
        &mut self,
        obs: &[f32],
        action: &mut [f32],
        max_action: &[f32],
        stats: &mut InferenceStats,
    ) {
        self.forward_impl::<256>(obs, action, max_action, stats)
    }

    #[inline(always)]
    fn forward_impl<const B: usize>(
        &mut self,
        obs: &[f32],
        action: &mut [f32],
        max_action: &[f32],
        stats: &mut InferenceStats,
    ) {
        let last = self.layers.len() - 1;
        self.a[..obs.len()].copy_from_slice(obs);
        for (l, layer) in self.layers.iter().enumerate() {
            let (x, y) = (&self.a[..layer.fan_in], &mut self.b[..layer.stride]);
            let mut start = 0;
            while start + B <= layer.stride {
                dense_block::<B>(layer, x, y, start);
                start += B;
            }
            while start < layer.stride {
                dense_block::<LANE_BLOCK>(layer, x, y, start);
                start += LANE_BLOCK;
            }
            if l < last {
                for v in y.iter_mut() {
                    *v = v.max(0.0);
                }
            }
            stats.macs += (layer.fan_in * layer.fan_out) as u64;
            std::mem::swap(&mut self.a, &mut self.b);
        }
        for (o, (y, m)) in action.iter_mut().zip(self.a.iter().zip(max_action)) {
            *o = y.tanh() * m;
        }
    }
}

/// A Gaussian policy's log-std MLP (`log_std.layers.{i}`, ReLU between layers), squashed into the head's
/// bounds. Tiny next to the policy network, so plain loops.
#[derive(Debug, Clone)]
struct LogStdNet {
    head: crate::config::GaussianHead,
    /// Per layer: weight `[out, in]` row-major, bias, fan-in.
    layers: Vec<(Vec<f32>, Vec<f32>, usize)>,
    a: Vec<f32>,
    b: Vec<f32>,
}

impl LogStdNet {
    /// From tensors `check_tensors` has accepted for `cfg`.
    fn new(head: &crate::config::GaussianHead, cfg: &PolicyConfig, tensors: &NamedTensors) -> Self {
        let dims = head.layer_dims(cfg.obs_dim, cfg.act_dim);
        let layers = (0..dims.len())
            .map(|i| {
                let w = tensors[&format!("log_std.layers.{i}.weight")].data.clone();
                let b = tensors[&format!("log_std.layers.{i}.bias")].data.clone();
                (w, b, dims[i].0)
            })
            .collect();
        let widest = dims.iter().map(|&(i, o)| i.max(o)).max().unwrap_or(0);
        LogStdNet { head: head.clone(), layers, a: vec![0.0; widest], b: vec![0.0; widest] }
    }

    /// The squashed log-std for `obs`.
    fn forward(&mut self, obs: &[f32]) -> &[f32] {
        self.a[..obs.len()].copy_from_slice(obs);
        let last = self.layers.len() - 1;
        let mut width = obs.len();
        for (l, (w, bias, fan_in)) in self.layers.iter().enumerate() {
            let x = &self.a[..*fan_in];
            for (o, y) in self.b[..bias.len()].iter_mut().enumerate() {
                let row = &w[o * fan_in..(o + 1) * fan_in];
                let v = bias[o] + row.iter().zip(x).map(|(w, x)| w * x).sum::<f32>();
                *y = if l < last { v.max(0.0) } else { self.head.squash(v) };
            }
            width = bias.len();
            std::mem::swap(&mut self.a, &mut self.b);
        }
        &self.a[..width]
    }
}

#[derive(Debug, Clone)]
enum Net {
    Snn(Box<SnnNet>),
    Ann(AnnNet),
}

/// A policy ready to act: the network of a [`PolicyConfig`] with its weights, and activity counters.
#[derive(Debug, Clone)]
pub struct Policy {
    cfg: PolicyConfig,
    net: Net,
    /// A stochastic policy's log-std network (`PolicyConfig::gaussian`).
    log_std: Option<LogStdNet>,
    stats: InferenceStats,
    /// Per-neuron spike counts of each spiking layer `layers.{i}`, kept only after
    /// [`Policy::count_neuron_spikes`]: evaluations want dead and saturated neurons, the actors' inference
    /// path pays nothing for them.
    neuron_spikes: Option<Vec<Vec<u64>>>,
}

impl Policy {
    /// Builds the network `cfg` describes. Every parameter must be present with its exact shape, and
    /// nothing else (see [`crate::weights::expected_shapes`]).
    pub fn new(cfg: &PolicyConfig, tensors: &NamedTensors) -> Result<Self, SnnError> {
        check_tensors(cfg, tensors)?;
        let dims = cfg.layer_dims();
        let layout = match cfg.network {
            NetworkConfig::Ann { .. } => Layout::Rows,
            NetworkConfig::Snn(_) => Layout::Slabs,
        };
        let layers: Vec<Dense> = (0..dims.len()).map(|i| Dense::from_tensors(tensors, i, layout)).collect();
        let widest = dims.iter().map(|&(i, o)| i.max(o)).max().unwrap_or(0);
        let widest_stride = layers.iter().map(|l| l.stride).max().unwrap_or(0);
        let mut stats = InferenceStats::default();
        let net = match &cfg.network {
            NetworkConfig::Ann { .. } => {
                let n = widest.max(widest_stride);
                Net::Ann(AnnNet { layers, a: vec![0.0; n], b: vec![0.0; n], isa: Isa::detect() })
            }
            NetworkConfig::Snn(s) => {
                let decays = (0..dims.len())
                    .map(|i| match MembraneDecay::from_config(s) {
                        MembraneDecay::Fixed(d) => d,
                        MembraneDecay::Learned { .. } => {
                            sigmoid(tensors[&format!("layers.{i}.decay_logit")].data[0])
                        }
                    })
                    .collect();
                let n_enc = cfg.obs_dim * s.pop_size;
                let mut events = vec![Events::new(n_enc, s.timesteps)];
                events.extend(dims.iter().map(|&(_, o)| Events::new(o, s.timesteps)));
                stats.timesteps = s.timesteps;
                stats.encoder_neurons = n_enc;
                stats.neurons_per_layer = dims.iter().map(|&(_, o)| o).collect();
                stats.spikes_per_layer = vec![0; dims.len()];
                Net::Snn(Box::new(SnnNet {
                    obs_dim: cfg.obs_dim,
                    act_dim: cfg.act_dim,
                    pop: s.pop_size,
                    timesteps: s.timesteps,
                    model: NeuronModel::from_config(s),
                    encoder: RegularEncoder { threshold: s.encoder_threshold },
                    mu: tensors["encoder.mu"].data.clone(),
                    sigma_sq: tensors["encoder.sigma"].data.iter().map(|s| s * s).collect(),
                    layers,
                    decays,
                    dec_w: tensors["decoder.weight"].data.clone(),
                    dec_b: tensors["decoder.bias"].data.clone(),
                    act: vec![0.0; n_enc],
                    enc_v: vec![0.0; n_enc],
                    enc_s: vec![0.0; n_enc],
                    events,
                    x: vec![0.0; widest_stride * s.timesteps],
                    state: LayerState::new(widest),
                    rate: vec![0.0; cfg.act_dim * s.pop_size],
                    pre: vec![0.0; cfg.act_dim],
                    isa: Isa::detect(),
                }))
            }
        };
        let log_std = cfg.gaussian.as_ref().map(|g| LogStdNet::new(g, cfg, tensors));
        Ok(Self { cfg: cfg.clone(), net, log_std, stats, neuron_spikes: None })
    }

    /// The configuration this policy was built from.
    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// The action for one observation, in `[-max_action, max_action]`. Allocation-free.
    ///
    /// # Panics
    /// If `obs.len() != obs_dim` or `action.len() != act_dim` (a programming error, not remote input).
    pub fn act(&mut self, obs: &[f32], action: &mut [f32]) {
        assert_eq!(obs.len(), self.cfg.obs_dim, "observation length");
        assert_eq!(action.len(), self.cfg.act_dim, "action length");
        self.stats.inferences += 1;
        match &mut self.net {
            Net::Snn(n) => {
                n.forward(obs, action, &self.cfg.max_action, &mut self.stats);
                if let Some(counts) = &mut self.neuron_spikes {
                    n.count_layer_spikes(counts);
                }
            }
            Net::Ann(n) => n.forward(obs, action, &self.cfg.max_action, &mut self.stats),
        }
    }

    /// Whether this is a stochastic (Gaussian) policy, which explores by [`Policy::sample`].
    pub fn is_gaussian(&self) -> bool {
        self.log_std.is_some()
    }

    /// A Gaussian policy's exploring action: `tanh(mean + exp(log_std) * eps) * max_action`, with `mean` the
    /// network's pre-tanh output and `eps` standard normal draws, one per action dimension. A
    /// deterministic policy returns [`Policy::act`]'s action (its callers add their own noise).
    ///
    /// # Panics
    /// As [`Policy::act`], or if `eps.len() != act_dim`.
    pub fn sample(&mut self, obs: &[f32], eps: &[f32], action: &mut [f32]) {
        assert_eq!(eps.len(), self.cfg.act_dim, "one standard normal draw per action dimension");
        self.act(obs, action);
        let Some(head) = &mut self.log_std else { return };
        let pre = match &self.net {
            Net::Snn(n) => &n.pre[..],
            Net::Ann(n) => &n.a[..self.cfg.act_dim],
        };
        let log_std = head.forward(obs);
        for (i, a) in action.iter_mut().enumerate() {
            *a = (pre[i] + log_std[i].exp() * eps[i]).tanh() * self.cfg.max_action[i];
        }
    }

    /// Actions for `obs.len() / obs_dim` observations laid out row after row, written row after row into
    /// `actions`. Identical to calling [`Policy::act`] per row: the event-driven simulation gains nothing from
    /// batching, as the weights stay in cache between rows anyway.
    ///
    /// # Panics
    /// If `obs.len()` is not a multiple of `obs_dim` or `actions` does not have room for exactly one action
    /// per observation.
    pub fn act_batch(&mut self, obs: &[f32], actions: &mut [f32]) {
        let (od, ad) = (self.cfg.obs_dim, self.cfg.act_dim);
        assert_eq!(obs.len() % od, 0, "observation batch length is not a multiple of obs_dim");
        assert_eq!(actions.len(), obs.len() / od * ad, "action batch length");
        for (o, a) in obs.chunks_exact(od).zip(actions.chunks_exact_mut(ad)) {
            self.act(o, a);
        }
    }

    /// Like [`Policy::act`], also returning every population's spike trains (`None` for an ANN).
    /// Allocates; for tests and analysis.
    pub fn act_traced(&mut self, obs: &[f32], action: &mut [f32]) -> Option<SpikeTrace> {
        self.act(obs, action);
        match &self.net {
            Net::Snn(n) => Some(n.trace()),
            Net::Ann(_) => None,
        }
    }

    /// Activity counters since construction or the last [`Policy::reset_stats`].
    pub fn stats(&self) -> &InferenceStats {
        &self.stats
    }

    /// Zeroes the counters (keeping the network's sizes).
    pub fn reset_stats(&mut self) {
        let s = &mut self.stats;
        s.inferences = 0;
        s.encoder_spikes = 0;
        s.spikes_per_layer.iter_mut().for_each(|c| *c = 0);
        s.sops = 0;
        s.macs = 0;
        for layer in self.neuron_spikes.iter_mut().flatten() {
            layer.fill(0);
        }
    }

    /// From now on, also counts every spiking layer's spikes per neuron (see [`Policy::neuron_spikes`]),
    /// from zero. Opt-in: it costs a pass over each inference's spikes, which evaluations can afford
    /// and acting does not need. Nothing to count for an ANN.
    pub fn count_neuron_spikes(&mut self) {
        if let Net::Snn(_) = self.net {
            let sizes = &self.stats.neurons_per_layer;
            self.neuron_spikes = Some(sizes.iter().map(|&n| vec![0; n]).collect());
        }
    }

    /// Spikes of each neuron of each spiking layer `layers.{i}` over the inferences since
    /// [`Policy::count_neuron_spikes`] (or the last [`Policy::reset_stats`]); `None` unless counting.
    /// A neuron that fired at every step of every inference has `timesteps * inferences` (the stats').
    pub fn neuron_spikes(&self) -> Option<&[Vec<u64>]> {
        self.neuron_spikes.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NeuronKind, SnnConfig};
    use crate::init::initial_tensors;

    fn isas() -> Vec<Isa> {
        let mut v = vec![Isa::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                v.push(Isa::Avx2);
                if std::is_x86_feature_detected!("avx512f") {
                    v.push(Isa::Avx512);
                }
            }
        }
        v
    }

    fn with_isa(mut p: Policy, isa: Isa) -> Policy {
        match &mut p.net {
            Net::Snn(n) => n.isa = isa,
            Net::Ann(n) => n.isa = isa,
        }
        p
    }

    /// Every instruction-set variant computes bit-identical actions and spikes: they differ only in how
    /// many lanes run at once, never in the order of a sum.
    #[test]
    fn instruction_sets_agree_bitwise() {
        let mut cfgs: Vec<PolicyConfig> = NeuronKind::ALL
            .iter()
            .map(|&k| PolicyConfig {
                gaussian: None,
                obs_dim: 17,
                act_dim: 6,
                max_action: vec![1.0; 6],
                // Odd widths exercise the block tails and the mask remainders.
                network: NetworkConfig::Snn(SnnConfig { hidden: vec![300, 77], ..SnnConfig::paper(k) }),
            })
            .collect();
        cfgs.push(PolicyConfig {
            gaussian: None,
            obs_dim: 17,
            act_dim: 6,
            max_action: vec![1.0; 6],
            network: NetworkConfig::Ann { hidden: vec![300, 77] },
        });
        for cfg in cfgs {
            let mut w = initial_tensors(&cfg, 4).unwrap();
            for (name, t) in w.iter_mut() {
                if name.ends_with(".weight") {
                    t.data.iter_mut().for_each(|v| *v *= 3.0);
                }
            }
            let obs: Vec<f32> =
                (0..17 * 16).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 3.0).collect();
            let mut reference: Option<(Vec<f32>, Vec<Option<SpikeTrace>>)> = None;
            for isa in isas() {
                let mut p = with_isa(Policy::new(&cfg, &w).unwrap(), isa);
                let mut actions = vec![0.0; 16 * 6];
                let traces: Vec<Option<SpikeTrace>> =
                    obs.chunks(17).zip(actions.chunks_mut(6)).map(|(o, a)| p.act_traced(o, a)).collect();
                match &reference {
                    None => reference = Some((actions, traces)),
                    Some((ra, rt)) => {
                        assert_eq!(ra, &actions, "{isa:?} {:?}", cfg.network);
                        assert_eq!(rt, &traces, "{isa:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn per_neuron_counts_are_opt_in_and_sum_the_traces() {
        let cfg = PolicyConfig {
            gaussian: None,
            obs_dim: 17,
            act_dim: 6,
            max_action: vec![1.0; 6],
            network: NetworkConfig::Snn(SnnConfig {
                hidden: vec![300, 77],
                ..SnnConfig::paper(NeuronKind::Lif)
            }),
        };
        let mut w = initial_tensors(&cfg, 5).unwrap();
        for (name, t) in w.iter_mut() {
            if name.ends_with(".weight") {
                t.data.iter_mut().for_each(|v| *v *= 3.0);
            }
        }
        let obs: Vec<f32> = (0..17 * 8).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 3.0).collect();
        let mut plain = Policy::new(&cfg, &w).unwrap();
        let mut counted = Policy::new(&cfg, &w).unwrap();
        assert!(counted.neuron_spikes().is_none(), "off unless asked for");
        counted.count_neuron_spikes();
        let mut sums: Vec<Vec<u64>> = cfg.layer_dims().iter().map(|&(_, n)| vec![0; n]).collect();
        let (mut a, mut b) = (vec![0.0; 6], vec![0.0; 6]);
        for o in obs.chunks(17) {
            let trace = plain.act_traced(o, &mut a).unwrap();
            counted.act(o, &mut b);
            assert_eq!(a, b, "counting changes no action");
            for (sum, train) in sums.iter_mut().zip(&trace.spikes[1..]) {
                for step in train.chunks_exact(sum.len()) {
                    sum.iter_mut().zip(step).for_each(|(c, &s)| *c += u64::from(s));
                }
            }
        }
        assert_eq!(counted.neuron_spikes().unwrap(), &sums[..]);
        assert_eq!(plain.stats(), counted.stats());
        let total: u64 = sums.iter().flatten().sum();
        assert!(total > 0 && total == counted.stats().spikes_per_layer.iter().sum::<u64>());
        counted.reset_stats();
        assert!(counted.neuron_spikes().unwrap().iter().flatten().all(|&c| c == 0));
        // An ANN has no spiking neurons to count.
        let ann = PolicyConfig { network: NetworkConfig::Ann { hidden: vec![8] }, ..cfg };
        let mut p = Policy::new(&ann, &initial_tensors(&ann, 1).unwrap()).unwrap();
        p.count_neuron_spikes();
        assert!(p.neuron_spikes().is_none());
    }
}
