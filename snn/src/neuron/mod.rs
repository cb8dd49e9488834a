//! Spiking neuron models, written once for both implementations.
//!
//! Each neuron's state update is a generic function over [`Signal`], the handful of arithmetic operations
//! it needs. The plain-Rust [`crate::Policy`] instantiates it with `f32` (one neuron at a time, inside a
//! loop the compiler vectorises); the tch network (`crate::torch`, feature `torch`) instantiates it with
//! `tch::Tensor` (a whole layer and batch at once, differentiable). Sharing one definition is what keeps
//! the two bit-for-bit identical in the forward pass: both perform the same f32 operations in the same
//! order. Adding a neuron means one file here implementing [`Neuron`], plus a [`NeuronModel`] variant.
//!
//! Conventions (method.md): every state variable starts at 0 at the first step of every inference; the
//! spike of the *previous* step resets; `S = H(V - V_th)` with `H(x) = 1` for `x > 0` (strictly), and in
//! training the rectangular surrogate `dS/dV = 1` for `|V - V_th| < window`, else 0.

mod clif;
mod dn;
mod encoder;
mod lif;

pub use clif::Clif;
pub use dn::Dn;
pub use encoder::RegularEncoder;
pub use lif::Lif;

use crate::config::{NeuronKind, SnnConfig};

/// The arithmetic a neuron update needs.
///
/// Implemented for `f32` here and for `tch::Tensor` in `crate::torch`. Each method is one rounding step in
/// both, so a neuron written against this trait computes identical values in both implementations.
pub trait Signal: Sized {
    /// `self + other`.
    fn plus(&self, other: &Self) -> Self;
    /// `self - other`.
    fn minus(&self, other: &Self) -> Self;
    /// `self * other` (elementwise; `other` may be a per-layer scalar).
    fn times(&self, other: &Self) -> Self;
    /// `self * c`.
    fn scaled(&self, c: f32) -> Self;
    /// `1 - self`: applied to spikes (0 or 1), hence exact.
    fn one_minus(&self) -> Self;
    /// `H(self - threshold)`, with the rectangular surrogate gradient of half-width `window` in training.
    fn spike(&self, threshold: f32, window: f32) -> Self;
    /// `H(self - threshold)` with a straight-through (identity) gradient: the encoder's spike function.
    fn spike_straight_through(&self, threshold: f32) -> Self;
}

impl Signal for f32 {
    #[inline(always)]
    fn plus(&self, other: &Self) -> Self {
        self + other
    }
    #[inline(always)]
    fn minus(&self, other: &Self) -> Self {
        self - other
    }
    #[inline(always)]
    fn times(&self, other: &Self) -> Self {
        self * other
    }
    #[inline(always)]
    fn scaled(&self, c: f32) -> Self {
        self * c
    }
    #[inline(always)]
    fn one_minus(&self) -> Self {
        1.0 - self
    }
    #[inline(always)]
    fn spike(&self, threshold: f32, _window: f32) -> Self {
        if *self > threshold { 1.0 } else { 0.0 }
    }
    #[inline(always)]
    fn spike_straight_through(&self, threshold: f32) -> Self {
        if *self > threshold { 1.0 } else { 0.0 }
    }
}

/// The state of one neuron (f32) or one layer (tensor). Every variable starts at zero.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NeuronState<S> {
    /// Membrane voltage V.
    pub v: S,
    /// Spike S of the latest step (0 or 1); it resets V at the next step.
    pub s: S,
    /// Synaptic current I (CLIF, DN; unused by the LIF family).
    pub i: S,
    /// Recovery variable U (DN only).
    pub u: S,
}

/// One spiking neuron model.
pub trait Neuron: Copy {
    /// Advances one time step. `x = W S_in + b` is this step's synaptic input; `v_decay` is the layer's
    /// membrane decay (a constant for LIF/CLIF, 1 for IF, PLIF's learned `sigmoid(decay_logit)`; DN ignores
    /// it). Leaves the new spike in `st.s`.
    fn step<S: Signal>(&self, st: &mut NeuronState<S>, x: &S, v_decay: &S);
}

/// The neuron of a configured network, with its constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NeuronModel {
    /// LIF, PLIF and IF: they differ only in where the membrane decay comes from ([`MembraneDecay`]).
    Lif(Lif),
    /// Current-based LIF.
    Clif(Clif),
    /// Dynamic neuron.
    Dn(Dn),
}

/// Where a layer's membrane decay comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MembraneDecay {
    /// A constant (LIF and CLIF: `v_decay`; IF: 1; DN: unused, reported as 1).
    Fixed(f32),
    /// PLIF: a per-layer parameter `decay_logit`, decay = sigmoid(decay_logit), starting at `init`.
    Learned { init: f32 },
}

impl NeuronModel {
    /// The model and constants `cfg` asks for.
    pub fn from_config(cfg: &SnnConfig) -> Self {
        let (threshold, window) = (cfg.v_threshold, cfg.surrogate_window);
        match cfg.neuron {
            NeuronKind::Lif | NeuronKind::Plif | NeuronKind::If => Self::Lif(Lif { threshold, window }),
            NeuronKind::Clif => Self::Clif(Clif { i_decay: cfg.i_decay, threshold, window }),
            NeuronKind::Dn => Self::Dn(Dn { i_decay: cfg.i_decay, c: cfg.dn, threshold, window }),
        }
    }

    /// Dispatches one step to the concrete model. Hot loops should match once outside the loop instead
    /// (as `crate::Policy` does); this is for the tensor implementation and tests.
    pub fn step<S: Signal>(&self, st: &mut NeuronState<S>, x: &S, v_decay: &S) {
        match self {
            Self::Lif(n) => n.step(st, x, v_decay),
            Self::Clif(n) => n.step(st, x, v_decay),
            Self::Dn(n) => n.step(st, x, v_decay),
        }
    }
}

impl MembraneDecay {
    /// The decay `cfg.neuron` uses.
    pub fn from_config(cfg: &SnnConfig) -> Self {
        match cfg.neuron {
            NeuronKind::Lif | NeuronKind::Clif => Self::Fixed(cfg.v_decay),
            NeuronKind::If | NeuronKind::Dn => Self::Fixed(1.0),
            NeuronKind::Plif => Self::Learned { init: cfg.v_decay },
        }
    }
}

/// `ln(p / (1 - p))`: PLIF's logit for an initial decay `p`.
pub fn logit(p: f32) -> f32 {
    (p / (1.0 - p)).ln()
}

/// The logistic function, as PLIF turns its logit into a decay.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// Runs `model` on a sequence of inputs from the zero state; returns (V, S, I, U) after each step.
    pub fn run(model: NeuronModel, decay: f32, xs: &[f32]) -> Vec<(f32, f32, f32, f32)> {
        let mut st = NeuronState::<f32>::default();
        xs.iter()
            .map(|x| {
                model.step(&mut st, x, &decay);
                (st.v, st.s, st.i, st.u)
            })
            .collect()
    }

    pub fn assert_close(got: &[(f32, f32, f32, f32)], want: &[(f32, f32, f32, f32)]) {
        assert_eq!(got.len(), want.len());
        for (t, (g, w)) in got.iter().zip(want).enumerate() {
            let ok = |a: f32, b: f32| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
            assert!(
                ok(g.0, w.0) && g.1 == w.1 && ok(g.2, w.2) && ok(g.3, w.3),
                "step {t}: got {g:?}, want {w:?}"
            );
        }
    }
}
