//! The handful of NumPy arithmetic rules that Gymnasium's reward code depends on, reproduced bit for bit.
//!
//! Gymnasium computes rewards with NumPy (2.x, NEP 50 promotion), and the last bits of a reward depend on
//! how NumPy evaluates an expression, not only on what it means:
//!
//! * `np.sum` adds with *pairwise summation*: eight running partial sums for 8 <= n <= 128, recursive
//!   halving above that, a plain loop below 8. A left-to-right loop differs in the last bits.
//! * A Python float times a NumPy `float32` scalar stays `float32` (NEP 50), so `0.1 * np.sum(a**2)`
//!   for a float32 action is a float32 product: `weight as f32 * sum_f32`.
//! * `x ** 2` on a NumPy *scalar* calls C `pow`/`powf`, which is not always the correctly rounded
//!   square (it differs from `x * x` when the exact square lies halfway between two floats, about one
//!   case in a thousand). Arrays (`np.square`) multiply.
//! * `np.linalg.norm` of a short float64 vector is OpenBLAS `ddot`, whose tail loop accumulates with
//!   fused multiply-adds on x86-64 (the reference machine: Haswell kernel, AVX-512 CPU).
//! * `%` on floats is `np.remainder`: C `fmod` corrected to take the sign of the divisor.
//!
//! Every helper here was checked against NumPy 2.4 on random inputs; the fixture test
//! (`tests/gymnasium_identity.rs`) checks them in context.

use std::hint::black_box;

/// Elements NumPy sums in one unrolled block before it splits recursively (`PW_BLOCKSIZE`).
const PW_BLOCKSIZE: usize = 128;

/// Floating-point types NumPy's pairwise summation is used with here.
pub(crate) trait Float: Copy + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> {
    const ZERO: Self;
}
impl Float for f32 {
    const ZERO: Self = 0.0;
}
impl Float for f64 {
    const ZERO: Self = 0.0;
}

/// NumPy's `pairwise_sum` over `f(x)` for each `x` in `xs`, evaluated in `T` (no widening).
fn pairwise<T: Float, S: Copy>(xs: &[S], f: &impl Fn(S) -> T) -> T {
    let n = xs.len();
    if n < 8 {
        // NumPy starts this loop from -0.0, we from +0.0: that only differs when every term is -0.0,
        // and the reduction's final `0.0 + res` (below, in the callers) erases the difference.
        let mut res = T::ZERO;
        for &x in xs {
            res = res + f(x);
        }
        res
    } else if n <= PW_BLOCKSIZE {
        let mut r = [T::ZERO; 8];
        for (acc, &x) in r.iter_mut().zip(&xs[..8]) {
            *acc = f(x);
        }
        let blocks_end = n - n % 8;
        for chunk in xs[8..blocks_end].chunks_exact(8) {
            for (acc, &x) in r.iter_mut().zip(chunk) {
                *acc = *acc + f(x);
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &xs[blocks_end..] {
            res = res + f(x);
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise(&xs[..n2], f) + pairwise(&xs[n2..], f)
    }
}

/// `np.sum(np.square(a))` for a contiguous float32 array: squares and sums in float32.
pub(crate) fn sum_sq_f32(a: &[f32]) -> f32 {
    // The reduction adds the pairwise result to the identity 0.0 (turns -0.0 into +0.0).
    0.0 + pairwise(a, &|x: f32| x * x)
}

/// `np.sum(np.square(a))` for a contiguous float64 array.
pub(crate) fn sum_sq_f64(a: &[f64]) -> f64 {
    0.0 + pairwise(a, &|x: f64| x * x)
}

/// `np.sum(np.square(np.clip(a, lo, hi)))` for a contiguous float64 array.
pub(crate) fn sum_sq_clipped_f64(a: &[f64], lo: f64, hi: f64) -> f64 {
    0.0 + pairwise(a, &|x: f64| {
        let c = clip(x, lo, hi);
        c * c
    })
}

/// `np.sum(a)` for a contiguous float64 array.
pub(crate) fn sum_f64(a: &[f64]) -> f64 {
    0.0 + pairwise(a, &|x: f64| x)
}

/// `weight * np.sum(np.square(action))` with a float32 action and a Python-float weight: NumPy 2 keeps
/// the product in float32 (the weight is rounded to float32 first). Computing this in f64 changes
/// rewards by 1e-11..2e-7.
pub(crate) fn ctrl_cost_f32(weight: f64, action: &[f32]) -> f32 {
    weight as f32 * sum_sq_f32(action)
}

/// `np.clip(x, lo, hi)` for a scalar: NaN stays NaN.
#[inline]
pub(crate) fn clip(x: f64, lo: f64, hi: f64) -> f64 {
    // f64::clamp propagates NaN like NumPy's clip (its own panics are for NaN/inverted bounds only,
    // which callers never pass).
    x.clamp(lo, hi)
}

/// `x ** 2` for a NumPy float64 scalar (or a Python float): C `pow(x, 2.0)`.
///
/// `black_box` keeps LLVM from rewriting `pow(x, 2.0)` into `x * x`, which rounds ties differently.
#[inline]
pub(crate) fn pow2_f64(x: f64) -> f64 {
    x.powf(black_box(2.0))
}

/// `x ** 2` for a NumPy float32 scalar: C `powf(x, 2.0f)`.
#[inline]
pub(crate) fn pow2_f32(x: f32) -> f32 {
    x.powf(black_box(2.0))
}

/// `np.remainder(a, b)` (Python's `%` on NumPy floats): the result has the sign of `b`.
pub(crate) fn remainder(a: f64, b: f64) -> f64 {
    let m = a % b; // C fmod
    if b == 0.0 {
        m
    } else if m != 0.0 {
        if (b < 0.0) != (m < 0.0) { m + b } else { m }
    } else {
        0.0f64.copysign(b)
    }
}

/// `np.linalg.norm(v)` for a float64 3-vector: `sqrt(ddot(v, v))`, where OpenBLAS's ddot tail loop
/// accumulates with fused multiply-adds.
pub(crate) fn norm3(v: [f64; 3]) -> f64 {
    let dot = v[2].mul_add(v[2], v[1].mul_add(v[1], v[0] * v[0]));
    dot.sqrt()
}

/// A NumPy scalar as Gymnasium's classic-control code sees it, with NEP 50 promotion.
///
/// The classic-control environments mix `np.float64`, `np.float32` and plain Python floats in one
/// expression (MountainCarContinuous's state even changes from float64 to float32 after its first
/// step), and the result type decides the rounding. `Py` is a Python float: "weak", it takes the
/// precision of the NumPy operand it meets, and stays float64 with another Python float.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Np {
    F64(f64),
    F32(f32),
    Py(f64),
}

/// The precision an operation between two [`Np`] values is carried out in.
#[derive(Clone, Copy, PartialEq)]
enum Prec {
    F64,
    F32,
    Py,
}

impl Np {
    fn prec(self) -> Prec {
        match self {
            Np::F64(_) => Prec::F64,
            Np::F32(_) => Prec::F32,
            Np::Py(_) => Prec::Py,
        }
    }

    /// The exact value as f64 (float32 values widen exactly).
    pub(crate) fn value(self) -> f64 {
        match self {
            Np::F64(x) | Np::Py(x) => x,
            Np::F32(x) => f64::from(x),
        }
    }

    /// NEP 50: float64 wins over everything, float32 wins over a Python float, two Python floats
    /// stay Python floats.
    fn promote(a: Np, b: Np) -> Prec {
        match (a.prec(), b.prec()) {
            (Prec::F64, _) | (_, Prec::F64) => Prec::F64,
            (Prec::F32, _) | (_, Prec::F32) => Prec::F32,
            _ => Prec::Py,
        }
    }

    fn binary(self, other: Np, f64_op: impl Fn(f64, f64) -> f64, f32_op: impl Fn(f32, f32) -> f32) -> Np {
        match Np::promote(self, other) {
            Prec::F64 => Np::F64(f64_op(self.value(), other.value())),
            Prec::Py => Np::Py(f64_op(self.value(), other.value())),
            // A Python float meeting a float32 is rounded to float32 first.
            Prec::F32 => Np::F32(f32_op(self.value() as f32, other.value() as f32)),
        }
    }

    pub(crate) fn add(self, o: Np) -> Np {
        self.binary(o, |a, b| a + b, |a, b| a + b)
    }
    pub(crate) fn sub(self, o: Np) -> Np {
        self.binary(o, |a, b| a - b, |a, b| a - b)
    }
    pub(crate) fn mul(self, o: Np) -> Np {
        self.binary(o, |a, b| a * b, |a, b| a * b)
    }

    /// `self > o` evaluated in the promoted precision (a float32 compared with a Python float compares
    /// against the float32 rounding of that float).
    pub(crate) fn gt(self, o: Np) -> bool {
        match Np::promote(self, o) {
            Prec::F32 => (self.value() as f32) > (o.value() as f32),
            _ => self.value() > o.value(),
        }
    }
    pub(crate) fn lt(self, o: Np) -> bool {
        o.gt(self)
    }
    pub(crate) fn ge(self, o: Np) -> bool {
        match Np::promote(self, o) {
            Prec::F32 => (self.value() as f32) >= (o.value() as f32),
            _ => self.value() >= o.value(),
        }
    }
    pub(crate) fn eq(self, o: Np) -> bool {
        match Np::promote(self, o) {
            Prec::F32 => (self.value() as f32) == (o.value() as f32),
            _ => self.value() == o.value(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_matches_numpy_examples() {
        // Reference values printed by NumPy 2.4: np.sum(np.square(np.arange(n, dtype=np.float32) * 0.1))
        // is exact for small n either way, so check the structure on values where order matters.
        let a: Vec<f64> = (0..20).map(|i| 1.0 + f64::from(i) * 1e-16).collect();
        // Sequential and pairwise sums of these differ; pairwise groups 8 lanes first.
        let seq: f64 = a.iter().fold(0.0, |s, x| s + x);
        let pw = sum_f64(&a);
        assert!((seq - pw).abs() < 1e-14);
        assert_eq!(sum_f64(&[1.0, 2.0, 3.0]), 6.0);
        assert_eq!(sum_sq_f32(&[]), 0.0);
        assert_eq!(sum_sq_f32(&[-0.0]), 0.0);
        assert!(sum_sq_f32(&[-0.0]).is_sign_positive());
    }

    #[test]
    fn remainder_takes_sign_of_divisor() {
        assert_eq!(remainder(-1.0, 3.0), 2.0);
        assert_eq!(remainder(1.0, -3.0), -2.0);
        assert_eq!(remainder(4.0, 2.0), 0.0);
        assert!(remainder(-4.0, 2.0).is_sign_positive());
    }

    #[test]
    fn nep50_promotion() {
        let a = Np::F32(0.1);
        let b = Np::Py(0.2);
        assert_eq!(a.add(b), Np::F32(0.1f32 + 0.2f32));
        assert_eq!(Np::F64(0.1).add(Np::F32(0.2)), Np::F64(0.1 + f64::from(0.2f32)));
        assert_eq!(Np::Py(0.1).add(Np::Py(0.2)), Np::Py(0.1 + 0.2));
        // 0.07 as float32 is above 0.07: a float32 equal to it is not "greater" in float32.
        assert!(!Np::F32(0.07).gt(Np::Py(0.07)));
        assert!(Np::F64(f64::from(0.07f32)).gt(Np::Py(0.07)));
    }

    #[test]
    fn pow2_rounds_like_libm_not_like_a_product() {
        // 1.3776855f32^2 lies exactly halfway between two float32 values: x*x rounds to even,
        // powf (and so NumPy's float32 scalar `x ** 2`) rounds up. Found with NumPy 2.4 on glibc.
        let x = 1.377_685_5_f32;
        assert_eq!(pow2_f32(x), 1.898_017_5_f32);
        assert_eq!(x * x, 1.898_017_4_f32);
    }
}
