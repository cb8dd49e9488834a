//! The matrix products behind docs/performance.md's GFLOP/s figures, on one thread: libtorch's MKL
//! (`sgemm_` called directly, and `Tensor::mm` with its dispatch) against the `gemm` crate's kernels that
//! `spikerl_algo::dense` uses. `cargo run --release -p spikerl-algo --example gemm_probe` (an example, not
//! a `spikerl bench` subcommand: it looks up MKL's `sgemm_` inside libtorch with `dlsym`, which the
//! binary has no other use for).
use spikerl_algo::dense::{View, matmul};
use std::ffi::{c_char, c_int, c_void};

type Sgemm = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    *const c_int,
    *const c_int,
    *const c_int,
    *const f32,
    *const f32,
    *const c_int,
    *const f32,
    *const c_int,
    *const f32,
    *mut f32,
    *const c_int,
);

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = std::time::Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    tch::set_num_threads(1);
    let _ = tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu));
    // SAFETY: a lookup only; libtorch's CPU build exports MKL's Fortran BLAS `sgemm_`.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"sgemm_".as_ptr()) };
    // SAFETY: `sgemm_` has the Fortran BLAS signature.
    let sgemm = (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, Sgemm>(p) });
    println!("[m x k] x [k x n], 1 thread        MKL sgemm_      at::mm    dense::matmul (gemm crate)");
    for &(m, n, k) in &[
        (256usize, 256usize, 256usize),
        (256, 256, 23),
        (256, 23, 256),
        (256, 512, 512),
        (256, 1, 256),
        (1280, 256, 170),
    ] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0f32; m * n];
        let reps = (2e9 / (2.0 * (m * n * k) as f64)).clamp(100.0, 20000.0) as usize;
        let (mi, ni, ki) = (m as c_int, n as c_int, k as c_int);
        let mkl = sgemm.map(|sgemm| {
            // SAFETY: row-major C = A B as column-major C^T = B^T A^T; every buffer has the sizes given.
            time(reps, || unsafe {
                sgemm(
                    c"N".as_ptr(),
                    c"N".as_ptr(),
                    &ni,
                    &mi,
                    &ki,
                    &1.0,
                    b.as_ptr(),
                    &ni,
                    a.as_ptr(),
                    &ki,
                    &0.0,
                    c.as_mut_ptr(),
                    &ni,
                )
            })
        });
        let ta = tch::Tensor::ones([m as i64, k as i64], (tch::Kind::Float, tch::Device::Cpu));
        let tb = tch::Tensor::ones([k as i64, n as i64], (tch::Kind::Float, tch::Device::Cpu));
        let mm = time(reps, || drop(ta.mm(&tb)));
        let dense = time(reps, || matmul(m, n, k, &mut c, n, false, View::rows(&a, k), View::rows(&b, n)));
        let gf = |s: f64| 2.0 * (m * n * k) as f64 / s / 1e9;
        let mkl = mkl.map_or("absent".to_string(), |s| format!("{:.1} GFLOP/s", gf(s)));
        println!(
            "[{m} x {k}] x [{k} x {n}]{:>w$}{mkl:>14} {:>8.1} GFLOP/s {:>8.1} GFLOP/s",
            "",
            gf(mm),
            gf(dense),
            w = 14usize.saturating_sub(format!("{m}{k}{k}{n}").len())
        );
    }
    // Operand layouts of the dense path at [256 x 256] x [256 x 256]: forward (b = W^T), backward to the
    // input (both row-major), weight gradient (a = dz^T).
    let n = 256;
    let a = vec![0.5f32; n * n];
    let b = vec![0.25f32; n * n];
    let mut c = vec![0f32; n * n];
    let reps = 2000;
    for (name, ta, tb) in
        [("a b", false, false), ("a b^T", false, true), ("a^T b", true, false), ("a^T b^T", true, true)]
    {
        let va = if ta { View::transposed(&a, n) } else { View::rows(&a, n) };
        let vb = if tb { View::transposed(&b, n) } else { View::rows(&b, n) };
        let s = time(reps, || matmul(n, n, n, &mut c, n, false, va, vb));
        let s_acc = time(reps, || matmul(n, n, n, &mut c, n, true, va, vb));
        println!(
            "dense::matmul {name:<8} 256^3: {:.1} GFLOP/s, accumulating {:.1}",
            2.0 * (n * n * n) as f64 / s / 1e9,
            2.0 * (n * n * n) as f64 / s_acc / 1e9
        );
    }
}
