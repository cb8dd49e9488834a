//! Leaky integrate-and-fire, and its two relatives.
//!
//! `V = d V (1 - S) + x; S = H(V - V_th)` with the membrane decay `d`:
//! - LIF: `d = 0.75` (fixed);
//! - IF: `d = 1` (no leak);
//! - PLIF: `d = sigmoid(decay_logit)`, one learned scalar per layer, initialised at 0.75.

use super::{Neuron, NeuronState, Signal};

/// The LIF family's update. The decay is an argument because PLIF learns it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lif {
    /// V_th.
    pub threshold: f32,
    /// Surrogate half-width.
    pub window: f32,
}

impl Neuron for Lif {
    #[inline(always)]
    fn step<S: Signal>(&self, st: &mut NeuronState<S>, x: &S, v_decay: &S) {
        st.v = st.v.times(v_decay).times(&st.s.one_minus()).plus(x);
        st.s = st.v.spike(self.threshold, self.window);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_close, run};
    use super::super::{NeuronModel, logit, sigmoid};
    use super::*;

    const LIF: NeuronModel = NeuronModel::Lif(Lif { threshold: 0.5, window: 0.5 });

    #[test]
    fn lif_hand_computed() {
        // V1 = 0.3 (no spike); V2 = 0.75*0.3 + 0.3 = 0.525 > 0.5 (spike); V3 = 0.75*0.525*0 + 0.2 = 0.2 (reset);
        // V4 = 0.15 + 0.4 = 0.55 (spike); V5 = 0 + (-0.1) = -0.1.
        let got = run(LIF, 0.75, &[0.3, 0.3, 0.2, 0.4, -0.1]);
        let want = [
            (0.3, 0.0, 0., 0.),
            (0.525, 1.0, 0., 0.),
            (0.2, 0.0, 0., 0.),
            (0.55, 1.0, 0., 0.),
            (-0.1, 0.0, 0., 0.),
        ];
        assert_close(&got, &want);
    }

    #[test]
    fn threshold_is_strict() {
        // Exactly V_th does not spike: H(0) = 0, as PopSAN's `gt`.
        assert_eq!(run(LIF, 0.75, &[0.5])[0].1, 0.0);
    }

    #[test]
    fn if_hand_computed() {
        // No leak: V1 = 0.2; V2 = 0.4; V3 = 0.6 (spike); V4 = 0 + 0.2 = 0.2 (reset); V5 = 0.2 + 0.35 = 0.55 (spike).
        let got = run(LIF, 1.0, &[0.2, 0.2, 0.2, 0.2, 0.35]);
        let want = [
            (0.2, 0.0, 0., 0.),
            (0.4, 0.0, 0., 0.),
            (0.6, 1.0, 0., 0.),
            (0.2, 0.0, 0., 0.),
            (0.55, 1.0, 0., 0.),
        ];
        assert_close(&got, &want);
    }

    #[test]
    fn plif_hand_computed() {
        // PLIF with a learned decay of sigmoid(0) = 0.5: V1 = 0.4; V2 = 0.2 + 0.4 = 0.6 (spike);
        // V3 = 0 + 0.4 = 0.4; V4 = 0.2 + 0.1 = 0.3.
        let d = sigmoid(0.0);
        assert_eq!(d, 0.5);
        let got = run(LIF, d, &[0.4, 0.4, 0.4, 0.1]);
        let want = [(0.4, 0.0, 0., 0.), (0.6, 1.0, 0., 0.), (0.4, 0.0, 0., 0.), (0.3, 0.0, 0., 0.)];
        assert_close(&got, &want);
        // The initial logit reproduces the paper's 0.75.
        assert!((sigmoid(logit(0.75)) - 0.75).abs() < 1e-6);
    }
}
