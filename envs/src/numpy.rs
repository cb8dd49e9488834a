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

    fn check_norm(v: [u64; 3], want: u64) {
        assert_eq!(norm3(v.map(f64::from_bits)).to_bits(), want, "norm of {v:x?}");
    }

    fn check_ctrl(a: &[u32], want: u32) {
        let a: Vec<f32> = a.iter().map(|&b| f32::from_bits(b)).collect();
        assert_eq!(ctrl_cost_f32(0.1, &a).to_bits(), want, "n = {}", a.len());
    }

    /// Reference values printed by NumPy 2.4.6 (OpenBLAS 0.3.31, glibc libm, x86-64 with AVX-512),
    /// chosen where the naive computation gives a different result.
    #[test]
    fn matches_numpy_where_naive_arithmetic_does_not() {
        // np.linalg.norm(v) where a plain left-to-right sum of squares differs.
        check_norm([0x3fc4ecdb6947330c, 0x3f9bee7844a632e2, 0xbfbf92be23b92098], 0x3fca7199ca96641d);
        check_norm([0x3f93554434f549e8, 0xbf6162e1dae173c3, 0x3faf311f569480a5], 0x3fb05634a04067a1);
        check_norm([0xbfc048588b842457, 0x3faf6fbad8a7a965, 0xbfbea2be671dc317], 0x3fc7b24fc85636c3);
        // np.float64(x) ** 2 where it differs from x * x.
        assert_eq!(pow2_f64(f64::from_bits(0x40123182c546243a)).to_bits(), 0x4034afff7102ee54);
        assert_eq!(pow2_f64(f64::from_bits(0xbffdce3b523dae80)).to_bits(), 0x400bc2fca1409e85);
        assert_eq!(pow2_f64(f64::from_bits(0x40123a4fee8d8f28)).to_bits(), 0x4034c4085dcf5603);
        // 0.1 * np.sum(np.square(a)) for float32 a, where a sequential sum differs (n >= 8).
        check_ctrl(&[0xbf701779, 0x3f8be6e9, 0x3f074381], 0x3e70fc3a);
        check_ctrl(
            &[0x3f14e4b1, 0xbfa3d390, 0x3f57e4eb, 0x400d9304, 0xbdf6247d, 0x3f3a1711, 0x3efdb140, 0x3f6ecc9d],
            0x3f6c87f5,
        );
        check_ctrl(
            &[
                0xbf32f8e3, 0xbf3122cf, 0xbf900027, 0xbf350fea, 0x3f2b2eb5, 0xbf473124, 0x3f988d5a,
                0xbef1549f, 0xbed7a01c, 0xbe0ed8be, 0x3f9d172c, 0x3eda9d8a, 0x3fcbb640, 0xc000f3f5,
                0x3f5a9fbb, 0x3fc35680, 0xbf58a986,
            ],
            0x3fe25143,
        );
        check_ctrl(
            &[
                0x3f436c55, 0xbf21b3ff, 0x3eeae970, 0x3fc68a05, 0xbe798a82, 0xbea1125f, 0xc0025a56,
                0xbeac07bc, 0xbf85463e, 0xbfe9c6f2, 0xbf075db3, 0x3f864125, 0x3fe95b16, 0x3f7571fe,
                0x3f682e05, 0x3edae845, 0xbec38d82, 0xbf6bd5e1, 0xc048e225, 0xbe97d62f, 0x3f66e6b3,
            ],
            0x4045350f,
        );
        check_ctrl(
            &[
                0xbf6b0e66, 0x3fa389d7, 0xbf3e9cc6, 0x3f910ec0, 0xbead2eeb, 0xbf72f948, 0xbf39ceae,
                0xbec8ca1a, 0x401421da, 0x3c8a5df3, 0x3d1ccf7d, 0x3f420865, 0xbf46eddb, 0x3f000786,
                0x3df73c95, 0x3ef34900, 0xbfdffffa, 0x3f662a7f, 0xbd708a49, 0x3f2945a4, 0x3fb92194,
                0x3f19bab7, 0xbe9393a9, 0xbf4139ac, 0x3fa0120d, 0x3f8f677f, 0xbbb461c2, 0x3e52650e,
                0x3ebdb345, 0x3fa9bdf3, 0xbe212a85, 0x3fc21e39, 0x3e0e50ca, 0xbf3d466d, 0x3fa9ffd9,
                0xbd9110a6, 0x3e40fce2, 0x3c9a0f01, 0xbe1cbd46, 0xbf7a8d2c, 0x3d2c8b16, 0xbf68a8d8,
                0x3f77e911, 0x3f2cfbdc, 0xbe4daa4a, 0xbf09f015, 0x3fa8f3e9, 0xbf5a1e94, 0xbfe490d2,
                0x3f921810, 0xbffdca2c, 0xbf4e37d5, 0x3fff4acd, 0xbfd85cf0, 0x3edacd39, 0xbf783659,
                0xc012243e, 0xbeeef6c1, 0x3ef90b23, 0x3dcfc8c9, 0x3ef9127f, 0xbfcdaf14, 0x3fc8a33b,
                0xbfdc2672, 0x3f3c67f3, 0xbee5e8b3, 0xbfd2f4c1, 0x3ed2f490, 0x3ce2fc0f, 0x3f4df973,
                0x3e1c0271, 0xbe573ac4, 0x3e19255f, 0x3f95979d, 0xbf3b5c85, 0xbf7c6810, 0x3e96ae0e,
                0x3f809fb9, 0xbf3af0fb, 0xbfd1ac15, 0x3fde7b7e, 0x3f66d042, 0x3e96ebc0, 0xc01b2d65,
                0x3fa6fa04, 0x3f44d9da, 0x3fc15da7, 0xbfc1ae08, 0xbf400bbc, 0xbfc419ca, 0xbf3f213f,
                0xbf9a90fb, 0xbe4e2954, 0xbf80a025, 0x3ff60820, 0x3de78207, 0xbdb14633, 0x3f24a80d,
                0x3f875c8e, 0x3f53e309, 0x3fe7d9b3, 0x3f8e9fa4, 0x3f9b2853, 0xbf265cc9, 0xbf0c831b,
                0xbf7c0484, 0x3e0dae53, 0x3fb5b107, 0x3f64e3c6, 0xbf102f2a, 0x3eb44ee3, 0xbf57e7f0,
                0xbef9d564, 0xbf73edb2, 0x3f0be030, 0xbfc4adb4, 0xbfe161d3, 0xbd508860, 0xbf72ee46,
                0xbe700efb, 0xbd4493c3, 0x4004ddf4, 0xbf9e3cff, 0x3d2cc125, 0x3f9f689b, 0x3e492811,
                0xbd96a079, 0x3f659580, 0x3d3cb7e6, 0xbf0c8118, 0x3f386b77, 0x3faa9c80, 0xbe29fa6e,
                0xbfc95e83, 0xbf14ef78, 0x3ff570a2,
            ],
            0x41663140,
        );
    }

    #[test]
    fn sums_of_nothing_and_negative_zero() {
        assert_eq!(sum_f64(&[1.0, 2.0, 3.0]), 6.0);
        assert_eq!(sum_sq_f32(&[]), 0.0);
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
