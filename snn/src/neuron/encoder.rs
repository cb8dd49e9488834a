//! The encoder's deterministic spike generator (PopSAN's "regular" spikes).
//!
//! Each encoder neuron receives its Gaussian receptive-field activation `A` in `[0, 1]` as a constant input
//! and fires regularly: `v += A; S = H(v - 0.999); v -= 0.999 S` (soft reset keeps the remainder, so the
//! spike count over T steps is about `T A`). In training its spike function passes gradients straight
//! through, so `mu` and `sigma` learn.

use super::Signal;

/// Soft-reset integrate-and-fire with a fixed threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegularEncoder {
    /// 0.999 in the paper: just below 1 so that A = 1 fires every step despite rounding.
    pub threshold: f32,
}

impl RegularEncoder {
    /// One step: integrates `a` into `v`, returns the spike and subtracts the threshold if it fired.
    #[inline(always)]
    pub fn step<S: Signal>(&self, v: &mut S, a: &S) -> S {
        let nv = v.plus(a);
        let s = nv.spike_straight_through(self.threshold);
        *v = nv.minus(&s.scaled(self.threshold));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_spikes_hand_computed() {
        let e = RegularEncoder { threshold: 0.999 };
        // A = 0.6: v = 0.6; 1.2 -> spike, 0.201; 0.801; 1.401 -> spike, 0.402; 1.002 -> spike, 0.003.
        let mut v = 0.0f32;
        let s: Vec<f32> = (0..5).map(|_| e.step(&mut v, &0.6)).collect();
        assert_eq!(s, [0.0, 1.0, 0.0, 1.0, 1.0]);
        assert!((v - 0.003).abs() < 1e-5);
        // A = 1 fires every step; A = 0 never.
        let mut v = 0.0f32;
        assert!((0..5).all(|_| e.step(&mut v, &1.0) == 1.0));
        let mut v = 0.0f32;
        assert!((0..5).all(|_| e.step(&mut v, &0.0) == 0.0));
    }
}
