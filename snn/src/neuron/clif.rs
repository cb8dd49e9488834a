//! Current-based LIF (PopSAN's neuron).
//!
//! `I = 0.5 I + x; V = 0.75 V (1 - S) + I; S = H(V - V_th)`: the synaptic current has its own decay, so an
//! input spike keeps driving the membrane for a few steps.

use super::{Neuron, NeuronState, Signal};

/// CLIF with its current decay. The membrane decay arrives as the `v_decay` argument (config `v_decay`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clif {
    /// Current decay (0.5).
    pub i_decay: f32,
    /// V_th.
    pub threshold: f32,
    /// Surrogate half-width.
    pub window: f32,
}

impl Neuron for Clif {
    #[inline(always)]
    fn step<S: Signal>(&self, st: &mut NeuronState<S>, x: &S, v_decay: &S) {
        st.i = st.i.scaled(self.i_decay).plus(x);
        st.v = st.v.times(v_decay).times(&st.s.one_minus()).plus(&st.i);
        st.s = st.v.spike(self.threshold, self.window);
    }
}

#[cfg(test)]
mod tests {
    use super::super::NeuronModel;
    use super::super::test_util::{assert_close, run};
    use super::*;

    #[test]
    fn clif_hand_computed() {
        let m = NeuronModel::Clif(Clif { i_decay: 0.5, threshold: 0.5, window: 0.5 });
        // t1: I = 0.2, V = 0.2.   t2: I = 0.1 + 0.2 = 0.3, V = 0.15 + 0.3 = 0.45.
        // t3: I = 0.15 + 0.2 = 0.35, V = 0.3375 + 0.35 = 0.6875 (spike).
        // t4: I = 0.175 + 0 = 0.175, V = 0 + 0.175 (reset).  t5: I = 0.0875 + 0.5 = 0.5875, V = 0.13125 + 0.5875 = 0.71875 (spike).
        let got = run(m, 0.75, &[0.2, 0.2, 0.2, 0.0, 0.5]);
        let want = [
            (0.2, 0.0, 0.2, 0.),
            (0.45, 0.0, 0.3, 0.),
            (0.6875, 1.0, 0.35, 0.),
            (0.175, 0.0, 0.175, 0.),
            (0.71875, 1.0, 0.5875, 0.),
        ];
        assert_close(&got, &want);
    }
}
