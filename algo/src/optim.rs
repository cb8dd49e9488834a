//! Adam with its state in the open, so checkpoints can hold it (tch's optimiser keeps its moments inside
//! libtorch, out of reach). Semantics are PyTorch's `torch.optim.Adam` defaults: betas (0.9, 0.999),
//! eps 1e-8, no weight decay, no AMSGrad, bias-corrected moments, gradients set to zero between steps.

use tch::{Tensor, nn};

pub struct Adam {
    pub lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Steps taken (PyTorch's `state['step']`, shared by all parameters here since they step together).
    pub steps: u64,
    /// Trainable variables by name, sorted, with their first and second moments.
    params: Vec<(String, Tensor, Tensor, Tensor)>,
}

impl Adam {
    pub fn new(vs: &nn::VarStore, lr: f64) -> Adam {
        let mut vars: Vec<(String, Tensor)> =
            vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(name, p)| {
                let (m, v) = (p.zeros_like().detach(), p.zeros_like().detach());
                (name, p, m, v)
            })
            .collect();
        Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, steps: 0, params }
    }

    pub fn zero_grad(&mut self) {
        for (_, p, _, _) in &mut self.params {
            p.zero_grad();
        }
    }

    /// One Adam step over every parameter that received a gradient.
    pub fn step(&mut self) {
        self.step_with(|_, p| p.grad());
    }

    /// One Adam step with gradients computed elsewhere (a hand-written backward), by variable name;
    /// parameters without one are left alone, as `step` leaves those autograd did not reach.
    pub fn step_with_grads(&mut self, grads: &std::collections::HashMap<String, Tensor>) {
        self.step_with(|name, _| grads.get(name).map_or_else(Tensor::new, |g| g.contiguous()));
    }

    /// `grad_of(name, parameter)` gives each parameter's gradient, or an undefined tensor for none.
    fn step_with(&mut self, grad_of: impl Fn(&str, &Tensor) -> Tensor) {
        self.steps += 1;
        let t = self.steps as i32;
        let rule = AdamRule {
            one_minus_beta1: (1.0 - self.beta1) as f32,
            beta2: self.beta2 as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            bias2_sqrt: (1.0 - self.beta2.powi(t)).sqrt() as f32,
            eps: self.eps as f32,
            step_size: (self.lr / (1.0 - self.beta1.powi(t))) as f32,
        };
        let threads = tch::get_num_threads().max(1) as usize;
        tch::no_grad(|| {
            // The gradients stay alive (and their buffers with them) until every chunk has run.
            let mut grads = Vec::with_capacity(self.params.len());
            let mut host = Vec::with_capacity(self.params.len());
            for (name, p, m, v) in &mut self.params {
                let g = grad_of(name, p);
                if !g.defined() {
                    continue;
                }
                match (host_f32(p), host_f32(&g), host_f32(m), host_f32(v)) {
                    (Some(pp), Some(gp), Some(mp), Some(vp)) => {
                        host.push(HostParam { p: pp, g: gp, m: mp, v: vp, n: p.numel() })
                    }
                    _ => rule.apply_tensors(p, &g, m, v),
                }
                grads.push(g);
            }
            rule.apply_host(&host, threads);
        });
    }

    /// zero_grad, backward, step.
    pub fn backward_step(&mut self, loss: &Tensor) {
        self.zero_grad();
        loss.backward();
        self.step();
    }

    /// The moments as named tensors (`m.<param>`, `v.<param>`), for checkpoints.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (name, _, m, v) in &self.params {
            out.push((format!("m.{name}"), m.shallow_clone()));
            out.push((format!("v.{name}"), v.shallow_clone()));
        }
        out
    }

    /// Restores moments saved by [`Adam::state`]; every parameter's moments must be present with the
    /// right shape.
    pub fn load_state(&mut self, steps: u64, get: &dyn Fn(&str) -> Option<Tensor>) -> Result<(), String> {
        for (name, p, m, v) in &mut self.params {
            for (prefix, slot) in [("m", &mut *m), ("v", &mut *v)] {
                let key = format!("{prefix}.{name}");
                let t = get(&key).ok_or_else(|| format!("optimizer state lacks {key}"))?;
                if t.size() != p.size() {
                    return Err(format!(
                        "optimizer state {key} has shape {:?}, expected {:?}",
                        t.size(),
                        p.size()
                    ));
                }
                tch::no_grad(|| slot.copy_(&t));
            }
        }
        self.steps = steps;
        Ok(())
    }
}

/// Elements per task of the fused update (128 KB of each of p, g, m and v, so a task's data fits a core's L2).
const ADAM_CHUNK: usize = 32 * 1024;
/// Elements per thread below which the fused update stays on one thread.
const ADAM_PARALLEL_MIN: usize = 64 * 1024;

/// One parameter's buffers for the fused update, as raw pointers so that chunks can go to other threads.
struct HostParam {
    p: *mut f32,
    g: *mut f32,
    m: *mut f32,
    v: *mut f32,
    n: usize,
}

// SAFETY: see `AdamRule::apply_host`: the buffers outlive the parallel region and tasks write disjoint ranges.
unsafe impl Sync for HostParam {}

/// The constants of one Adam step (PyTorch's update rule, bias corrections folded in).
#[derive(Clone, Copy, Debug)]
struct AdamRule {
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bias2_sqrt: f32,
    eps: f32,
    step_size: f32,
}

impl AdamRule {
    /// The update as one pass over p, g, m, v (CPU): where libtorch runs about nine kernels per
    /// parameter, each a pass over memory, this runs one. Same operations in the same order as
    /// `apply_tensors`; libtorch's vectorised kernels may contract to fused multiply-adds, so the two
    /// agree to a few ulps, not bit for bit. On one thread the proxy's 275k parameters take about 0.17 ms;
    /// `apply_host` spreads larger steps over libtorch's own OpenMP team (threads of our own, started
    /// right after a libtorch parallel region, would compete with its workers, which spin for a while
    /// before sleeping: two such threads made a proxy step 1.6 ms slower, not faster).
    fn apply(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m += self.one_minus_beta1 * (g - *m);
            *v = *v * self.beta2 + g * self.one_minus_beta2 * g;
            let denom = v.sqrt() / self.bias2_sqrt + self.eps;
            *p += *m * -self.step_size / denom;
        }
    }

    /// [`AdamRule::apply`] over every host parameter, cut into chunks spread over libtorch's OpenMP team
    /// (the threads that just ran the backward, so nothing competes with them; a learner's 100k to 300k
    /// parameters are several passes over a few MB of memory). Small steps stay on the calling thread.
    fn apply_host(&self, params: &[HostParam], threads: usize) {
        let total: usize = params.iter().map(|h| h.n).sum();
        let chunks: Vec<(usize, std::ops::Range<usize>)> = params
            .iter()
            .enumerate()
            .flat_map(|(i, h)| (0..h.n).step_by(ADAM_CHUNK).map(move |s| (i, s..(s + ADAM_CHUNK).min(h.n))))
            .collect();
        let run = |(i, r): &(usize, std::ops::Range<usize>)| {
            let h = &params[*i];
            // SAFETY: `step_with` took each pointer from a distinct contiguous f32 CPU tensor of `h.n`
            // elements that outlives this call (p, m and v are the optimiser's own; the gradient is held
            // by the caller), and chunks are disjoint ranges, so no element is touched by two tasks.
            unsafe {
                self.apply(
                    std::slice::from_raw_parts_mut(h.p.add(r.start), r.len()),
                    std::slice::from_raw_parts(h.g.add(r.start), r.len()),
                    std::slice::from_raw_parts_mut(h.m.add(r.start), r.len()),
                    std::slice::from_raw_parts_mut(h.v.add(r.start), r.len()),
                )
            }
        };
        let workers = threads.min(total / ADAM_PARALLEL_MIN).max(1);
        if workers == 1 {
            chunks.iter().for_each(run);
        } else {
            crate::omp::parallel(workers, &|w| chunks.iter().skip(w).step_by(workers).for_each(run));
        }
    }

    /// The same update in libtorch ops, for tensors that are not contiguous f32 on the CPU (CUDA).
    fn apply_tensors(&self, p: &mut Tensor, g: &Tensor, m: &mut Tensor, v: &mut Tensor) {
        let _ = m.lerp_(g, f64::from(self.one_minus_beta1));
        let _ = v.g_mul_scalar_(f64::from(self.beta2)).addcmul_(&(g * f64::from(self.one_minus_beta2)), g);
        let denom = v.sqrt() / f64::from(self.bias2_sqrt) + f64::from(self.eps);
        let _ = p.addcdiv_(&(&*m * -f64::from(self.step_size)), &denom);
    }
}

/// The data pointer of a contiguous f32 CPU tensor, or None for any other tensor (the fused CPU loops
/// here and in `nets` fall back to libtorch ops for those).
pub(crate) fn host_f32(t: &Tensor) -> Option<*mut f32> {
    (t.device() == tch::Device::Cpu && t.kind() == tch::Kind::Float && t.is_contiguous() && t.numel() > 0)
        .then(|| t.data_ptr() as *mut f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Hand-computed first steps of PyTorch's Adam on f(w) = sum(w^2) / 2 (gradient = w).
    #[test]
    fn matches_pytorch_adam_update_rule() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0]));
        let mut opt = Adam::new(&vs, 0.1);
        for _ in 0..2 {
            let loss = (&w * &w).sum(Kind::Float) * 0.5;
            opt.backward_step(&loss);
        }
        // Step 1: m = 0.1 g, v = 0.001 g^2 -> m_hat = g, v_hat = g^2 -> w -= 0.1 * sign(g).
        // Step 2 (w = 0.9, -1.9): m = 0.09*1 + 0.1*0.9 = 0.18 (x sign), v = 0.000999*1 + 0.001*0.81.
        let m = 0.9 * 0.1 * 1.0 + 0.1 * 0.9;
        let v = 0.999 * 0.001 * 1.0 + 0.001 * 0.81;
        let m_hat = m / (1.0 - 0.9f64.powi(2));
        let v_hat = v / (1.0 - 0.999f64.powi(2));
        let expected0 = 0.9 - 0.1 * m_hat / (v_hat.sqrt() + 1e-8);
        let got: Vec<f32> = Vec::try_from(&w).unwrap();
        assert!((got[0] as f64 - expected0).abs() < 1e-6, "{got:?} vs {expected0}");
        assert_eq!(opt.steps, 2);
    }

    #[test]
    fn state_round_trips() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0]));
        let mut a = Adam::new(&vs, 0.1);
        a.backward_step(&(&w * &w).sum(Kind::Float));
        let saved: std::collections::HashMap<String, Tensor> =
            a.state().into_iter().map(|(k, t)| (k, t.copy())).collect();
        let vs2 = nn::VarStore::new(Device::Cpu);
        let _w2 = vs2.root().var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0]));
        let mut b = Adam::new(&vs2, 0.1);
        b.load_state(a.steps, &|k| saved.get(k).map(|t| t.shallow_clone())).unwrap();
        for ((ka, ta), (kb, tb)) in a.state().iter().zip(b.state().iter()) {
            assert_eq!(ka, kb);
            assert!(ta.equal(tb));
        }
        assert!(b.load_state(1, &|_| None).is_err());
    }

    #[test]
    fn fused_update_matches_the_libtorch_ops() {
        tch::manual_seed(5);
        let n = 100_003;
        let rand = || Tensor::randn([n], (Kind::Float, Device::Cpu));
        let (p0, g, m0, v0) = (rand(), rand(), rand() * 0.1, rand().abs() * 0.01);
        let rule = AdamRule {
            one_minus_beta1: 0.1,
            beta2: 0.999,
            one_minus_beta2: 1e-3,
            bias2_sqrt: 0.3,
            eps: 1e-8,
            step_size: 3e-3,
        };
        let (mut p1, mut m1, mut v1) = (p0.copy(), m0.copy(), v0.copy());
        rule.apply_tensors(&mut p1, &g, &mut m1, &mut v1);
        let vec = |t: &Tensor| Vec::<f32>::try_from(t).unwrap();
        let (mut p2, mut m2, mut v2) = (vec(&p0), vec(&m0), vec(&v0));
        rule.apply(&mut p2, &vec(&g), &mut m2, &mut v2);
        for (name, a, b) in [("p", vec(&p1), p2), ("m", vec(&m1), m2), ("v", vec(&v1), v2)] {
            // A few ulps of each value, or of its inputs where it is a difference that cancels (m near 0).
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= 1e-7 + 1e-5 * x.abs(), "{name}: {x} (libtorch) vs {y} (fused)");
            }
        }
        let moved = vec(&p0).iter().zip(vec(&p1)).filter(|(a, b)| a != &b).count();
        assert!(moved > n as usize / 2, "the step must move the parameters");
    }
    #[test]
    fn parallel_fused_update_is_the_serial_one() {
        use rand::SeedableRng;
        use rand_distr::Distribution;
        let rule = AdamRule {
            one_minus_beta1: 0.1,
            beta2: 0.999,
            one_minus_beta2: 1e-3,
            bias2_sqrt: 0.3,
            eps: 1e-8,
            step_size: 3e-3,
        };
        // Sizes around the chunk and threshold edges, enough in all to go parallel.
        let sizes = [5, ADAM_CHUNK, ADAM_CHUNK + 1, 3 * ADAM_PARALLEL_MIN + 7];
        // The inputs come from this test's own generator: libtorch's global one is shared with tests
        // running beside this one, whose draws would make the serial and parallel inputs differ.
        let inputs = || -> Vec<[Tensor; 4]> {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let mut normal = |n: usize, scale: f32| {
                let v: Vec<f32> = (0..n)
                    .map(|_| scale * Distribution::<f32>::sample(&rand_distr::StandardNormal, &mut rng))
                    .collect();
                Tensor::from_slice(&v)
            };
            sizes
                .iter()
                .map(|&n| [normal(n, 1.0), normal(n, 1.0), normal(n, 0.1), normal(n, 0.01).abs()])
                .collect()
        };
        let run = |threads: usize| {
            let mut sets = inputs();
            let host: Vec<HostParam> = sets
                .iter_mut()
                .map(|[p, g, m, v]| HostParam {
                    p: host_f32(p).unwrap(),
                    g: host_f32(g).unwrap(),
                    m: host_f32(m).unwrap(),
                    v: host_f32(v).unwrap(),
                    n: p.numel(),
                })
                .collect();
            rule.apply_host(&host, threads);
            sets
        };
        let serial = run(1);
        let before = inputs();
        for (a, b) in serial.iter().zip(&before) {
            assert!(!a[0].equal(&b[0]), "the step must move the parameters");
        }
        for threads in [2, 3] {
            let parallel = run(threads);
            for (a, b) in serial.iter().zip(&parallel) {
                for (x, y) in a.iter().zip(b) {
                    assert!(x.equal(y), "{threads} threads");
                }
            }
        }
    }
}
