//! The CPU training path's matrix products: row-major `f32` matrices with free transposes (strides), on
//! the `gemm` crate's kernels.
//!
//! Why not libtorch's: its CPU matrix product is MKL, which on AMD CPUs runs its AVX2 code (about 98
//! GFLOP/s a core on the Zen 5 machine of docs/performance.md), while the gemm crate's AVX-512 kernels,
//! chosen at run time where the CPU has them, run about 210 GFLOP/s on the same core
//! (`cargo run --release -p spikerl-algo --example gemm_probe` prints both). Used by the learner's
//! dense MLPs (`spikerl_algo::dense`) and by the backward through time (`super::bptt`).

use std::ops::Range;
use std::sync::Mutex;

/// A strided read-only matrix operand: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        View { data, rs: cols, cs: 1 }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        View { data, rs: 1, cs: cols }
    }

    pub(crate) fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `c = a b` (or `c += a b` with `accumulate`) for `a` `[m, k]`, `b` `[k, n]` and `c` row-major `[m, n]`
/// with row stride `c_rs`, on the calling thread.
///
/// # Panics
/// If an operand is too short for its shape and strides.
// BLAS's shape: three dimensions, the output and its stride, the mode, two operands.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
    a: View<'_>,
    b: View<'_>,
) {
    assert!(a.fits(m, k) && b.fits(k, n), "matmul: operand too short for [{m}, {k}] x [{k}, {n}]");
    assert!(m == 0 || n == 0 || (m - 1) * c_rs + n <= c.len(), "matmul: output too short for [{m}, {n}]");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                c[r * c_rs..r * c_rs + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the asserts above keep every element the kernel touches inside the three slices (strides
    // are non-negative); `c` is exclusively borrowed and cannot alias `a` or `b`. The kernel computes
    // dst = alpha dst + beta lhs rhs (alpha applies only when it reads dst) and is fastest on a
    // column-major dst, so it gets the transposed problem c^T = b^T a^T (what the `gemm` crate's own
    // front end does); `Parallelism::None` keeps it on this thread.
    unsafe {
        gemm_f32::gemm::f32::get_gemm_fn()(
            n,
            m,
            k,
            c.as_mut_ptr(),
            c_rs as isize,
            1,
            accumulate,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm_common::Parallelism::None,
        );
    }
}

/// [`matmul`] with the rows of `c` (and of `a`) split into blocks of at least `min_rows`, at most one a
/// thread, run on libtorch's OpenMP team (`super::omp`); on the calling thread with `threads < 2`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_parallel(
    threads: usize,
    min_rows: usize,
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
    a: View<'_>,
    b: View<'_>,
) {
    let blocks = threads.min(m / min_rows.max(1)).max(1);
    if blocks < 2 {
        return matmul(m, n, k, c, c_rs, accumulate, a, b);
    }
    assert!(a.fits(m, k), "matmul: operand too short for [{m}, {k}] x [{k}, {n}]");
    assert!(n == 0 || (m - 1) * c_rs + n <= c.len(), "matmul: output too short for [{m}, {n}]");
    let per = m.div_ceil(blocks);
    let ranges: Vec<Range<usize>> = (0..blocks).map(|i| (i * per).min(m)..((i + 1) * per).min(m)).collect();
    // Disjoint rows of c for each block; a block's last row may end before the next block's first.
    let mut rest = c;
    let mut parts = Vec::with_capacity(blocks);
    for r in &ranges {
        let len = (r.len() * c_rs).min(rest.len());
        let (here, tail) = std::mem::take(&mut rest).split_at_mut(len);
        parts.push(Mutex::new(here));
        rest = tail;
    }
    super::omp::parallel(blocks, &|i| {
        let r = &ranges[i];
        if r.is_empty() {
            return;
        }
        let mut c = parts[i].lock().unwrap_or_else(|p| p.into_inner());
        let a = View { data: &a.data[r.start * a.rs..], rs: a.rs, cs: a.cs };
        matmul(r.len(), n, k, &mut c, c_rs, accumulate, a, b);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_handles_transposes_strides_and_accumulation() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32).sin()).collect();
        let naive = |i: usize, j: usize| (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f32>();
        let mut c = vec![1.0f32; m * n];
        matmul(m, n, k, &mut c, n, false, View::rows(&a, k), View::rows(&b, n));
        for i in 0..m {
            for j in 0..n {
                assert!((c[i * n + j] - naive(i, j)).abs() < 1e-5);
            }
        }
        // Accumulate, with b given as the transpose of its transpose.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        matmul(m, n, k, &mut c, n, true, View::rows(&a, k), View::transposed(&bt, k));
        for i in 0..m {
            for j in 0..n {
                assert!((c[i * n + j] - 2.0 * naive(i, j)).abs() < 1e-4);
            }
        }
    }

    #[test]
    #[should_panic(expected = "operand too short")]
    fn matmul_refuses_short_operands() {
        let mut c = vec![0.0; 4];
        matmul(2, 2, 3, &mut c, 2, false, View::rows(&[1.0; 5], 3), View::rows(&[1.0; 6], 2));
    }

    #[test]
    fn the_parallel_split_computes_the_same_product() {
        let (m, n, k) = (130, 9, 17);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 3) % 5) as f32 * 0.5).collect();
        let mut one = vec![0.0f32; m * n];
        matmul(m, n, k, &mut one, n, false, View::transposed(&a, m), View::rows(&b, n));
        for threads in [2, 3, 8] {
            let mut split = vec![0.0f32; m * n];
            matmul_parallel(
                threads,
                16,
                m,
                n,
                k,
                &mut split,
                n,
                false,
                View::transposed(&a, m),
                View::rows(&b, n),
            );
            assert_eq!(split, one, "{threads} threads: integer-valued sums are exact in any order");
        }
    }
}
