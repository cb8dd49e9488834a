//! Dynamic neuron (MDC-SAN), exactly as method.md writes it:
//!
//! ```text
//! I = 0.5 I + x
//! V = V (1 - S) + 0.021 S        (reset to c on the previous step's spike)
//! U = U + 0.132 S                (recovery jump)
//! dV = V^2 - V - U + I
//! dU = -0.172 V + 0.529 U        (both derivatives from the values above)
//! V += dV;  U += dU
//! S = H(V - V_th)
//! ```

use super::{Neuron, NeuronState, Signal};
use crate::config::DnConstants;

/// DN with its constants. Ignores the `v_decay` argument (DN has no multiplicative leak).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dn {
    /// Current decay (0.5).
    pub i_decay: f32,
    /// Reset voltage, recovery jump and recovery coefficients.
    pub c: DnConstants,
    /// V_th.
    pub threshold: f32,
    /// Surrogate half-width.
    pub window: f32,
}

impl Neuron for Dn {
    #[inline(always)]
    fn step<S: Signal>(&self, st: &mut NeuronState<S>, x: &S, _v_decay: &S) {
        st.i = st.i.scaled(self.i_decay).plus(x);
        st.v = st.v.times(&st.s.one_minus()).plus(&st.s.scaled(self.c.reset_v));
        st.u = st.u.plus(&st.s.scaled(self.c.u_jump));
        let dv = st.v.times(&st.v).minus(&st.v).minus(&st.u).plus(&st.i);
        let du = st.v.scaled(self.c.du_dv).plus(&st.u.scaled(self.c.du_du));
        st.v = st.v.plus(&dv);
        st.u = st.u.plus(&du);
        st.s = st.v.spike(self.threshold, self.window);
    }
}

#[cfg(test)]
mod tests {
    use super::super::NeuronModel;
    use super::super::test_util::{assert_close, run};
    use super::*;

    #[test]
    fn dn_hand_computed() {
        let m = NeuronModel::Dn(Dn { i_decay: 0.5, c: DnConstants::default(), threshold: 0.5, window: 0.5 });
        // t1: I = 0.4; V = 0, U = 0; dV = 0 - 0 - 0 + 0.4 = 0.4; dU = 0 -> V = 0.4, U = 0, no spike.
        // t2: I = 0.2 + 0.4 = 0.6; dV = 0.16 - 0.4 - 0 + 0.6 = 0.36; dU = -0.172*0.4 = -0.0688
        //     -> V = 0.76 (spike), U = -0.0688.
        // t3: I = 0.3 + 0 = 0.3; reset: V = 0.021, U = -0.0688 + 0.132 = 0.0632;
        //     dV = 0.000441 - 0.021 - 0.0632 + 0.3 = 0.216241; dU = -0.003612 + 0.0334328 = 0.0298208
        //     -> V = 0.237241, U = 0.0930208, no spike.
        let got = run(m, 1.0, &[0.4, 0.4, 0.0]);
        let want = [(0.4, 0.0, 0.4, 0.0), (0.76, 1.0, 0.6, -0.0688), (0.237241, 0.0, 0.3, 0.0930208)];
        assert_close(&got, &want);
    }
}
