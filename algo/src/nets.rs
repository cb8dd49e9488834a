//! Networks that exist only on the learner: the twin critics (and their targets). The actor, the
//! Polyak target actor and the proxy are `spikerl_snn::torch::TorchPolicy` values, so that whatever the
//! learner trains can be exported under the same parameter names the plain-Rust actor loads.

use tch::{Tensor, nn};

/// A ReLU multilayer perceptron with a linear output; parameters `layers.{i}.weight|bias`.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
}

impl Mlp {
    pub fn new(p: &nn::Path, input: usize, hidden: &[usize], output: usize) -> Self {
        let widths: Vec<usize> =
            std::iter::once(input).chain(hidden.iter().copied()).chain([output]).collect();
        let layers = widths
            .windows(2)
            .enumerate()
            // PyTorch's default init, as the paper's critics have (tch's default is sqrt(6) times wider).
            .map(|(i, w)| spikerl_snn::torch::linear_init(&(p / "layers" / i), w[0], w[1]))
            .collect();
        Mlp { layers }
    }

    /// Another handle to the same variables (gradients reach them), which can move to another thread.
    fn handle(&self) -> Mlp {
        let layers = self
            .layers
            .iter()
            .map(|l| nn::Linear { ws: l.ws.shallow_clone(), bs: l.bs.as_ref().map(Tensor::shallow_clone) })
            .collect();
        Mlp { layers }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let last = self.layers.len() - 1;
        let mut h = x.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = h.apply(layer);
            if i < last {
                h = h.relu();
            }
        }
        h
    }
}

/// The Q networks Q(s, a) -> [B, 1]: twins under `q1.*` and `q2.*` (TD3, SAC), or one under `q1.*`
/// (DDPG).
#[derive(Debug)]
pub struct Critics {
    pub q1: Mlp,
    pub q2: Option<Mlp>,
}

impl Critics {
    /// Twin critics.
    pub fn new(p: &nn::Path, obs_dim: usize, act_dim: usize, hidden: &[usize]) -> Self {
        Critics::with_count(p, obs_dim, act_dim, hidden, 2)
    }

    /// One critic (`count` 1) or twins (`count` 2).
    pub fn with_count(p: &nn::Path, obs_dim: usize, act_dim: usize, hidden: &[usize], count: usize) -> Self {
        assert!(count == 1 || count == 2, "one critic or twins");
        Critics {
            q1: Mlp::new(&(p / "q1"), obs_dim + act_dim, hidden, 1),
            q2: (count == 2).then(|| Mlp::new(&(p / "q2"), obs_dim + act_dim, hidden, 1)),
        }
    }

    /// Both twins' values.
    ///
    /// # Panics
    /// With one critic.
    pub fn both(&self, obs: &Tensor, act: &Tensor) -> (Tensor, Tensor) {
        let x = Tensor::cat(&[obs, act], 1);
        (self.q1.forward(&x), self.q2.as_ref().expect("twin critics").forward(&x))
    }

    /// The smallest critic's value per row: min(Q1, Q2) for twins, Q1 alone otherwise.
    pub fn min_q(&self, obs: &Tensor, act: &Tensor) -> Tensor {
        let x = Tensor::cat(&[obs, act], 1);
        let q1 = self.q1.forward(&x);
        match &self.q2 {
            Some(q2) => q1.minimum(&q2.forward(&x)),
            None => q1,
        }
    }

    pub fn q1(&self, obs: &Tensor, act: &Tensor) -> Tensor {
        self.q1.forward(&Tensor::cat(&[obs, act], 1))
    }

    /// The critic update's forward and backward: `(Q_i, mse(Q_i, y))` per critic, with the losses'
    /// gradients accumulated into the critics' variables (the gradient of their sum). With twins and
    /// `threads >= 2` (CPU) the two critics run at once, one per thread of libtorch's OpenMP team, each op
    /// single-threaded inside the region (`crate::omp`): twin 23-256-256-1 MLPs on 256 rows keep one core
    /// busier than they keep two. The gradients are the same as one backward through the sum.
    pub fn losses_backward(
        &self,
        obs: &Tensor,
        act: &Tensor,
        y: &Tensor,
        threads: usize,
    ) -> Vec<(Tensor, Tensor)> {
        let x = Tensor::cat(&[obs, act], 1);
        let step = |net: &Mlp, x: &Tensor, y: &Tensor| {
            let q = net.forward(x);
            let loss = q.mse_loss(y, tch::Reduction::Mean);
            loss.backward();
            (q, loss)
        };
        let nets: Vec<&Mlp> = std::iter::once(&self.q1).chain(self.q2.as_ref()).collect();
        if nets.len() < 2 || threads < 2 || x.device() != tch::Device::Cpu {
            return nets.iter().map(|n| step(n, &x, y)).collect();
        }
        use std::sync::Mutex;
        let jobs: Vec<Mutex<Option<(Mlp, Tensor, Tensor)>>> = nets
            .iter()
            .map(|q| Mutex::new(Some((q.handle(), x.shallow_clone(), y.shallow_clone()))))
            .collect();
        let done: Vec<Mutex<Option<(Tensor, Tensor)>>> = vec![Mutex::new(None), Mutex::new(None)];
        crate::omp::parallel(2, &|i| {
            let job = jobs[i].lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some((net, x, y)) = job {
                *done[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(step(&net, &x, &y));
            }
        });
        done.into_iter()
            .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()).expect("each critic ran"))
            .collect()
    }
}

/// Polyak averaging target <- tau * source + (1 - tau) * target, over every variable by name.
///
/// Contiguous f32 CPU variables take one fused pass over plain slices; that needs the two variables'
/// storage apart, which is checked (a store averaged with itself, or with variables sharing its memory,
/// takes libtorch's path, which handles aliasing).
pub fn soft_update(target: &nn::VarStore, source: &nn::VarStore, tau: f64) {
    let src = source.variables();
    tch::no_grad(|| {
        for (name, mut t) in target.variables() {
            let s = &src[&name];
            match (crate::optim::host_f32(&t), crate::optim::host_f32(s)) {
                // SAFETY: contiguous f32 CPU tensors of the same shape, `numel` elements each, whose
                // memory does not overlap (checked); the stores' variables are used by no one else
                // during an update.
                (Some(tp), Some(sp)) if t.size() == s.size() && disjoint(tp, sp, t.numel()) => unsafe {
                    let n = t.numel();
                    polyak(std::slice::from_raw_parts_mut(tp, n), std::slice::from_raw_parts(sp, n), tau);
                },
                _ => {
                    t.copy_(&(&t * (1.0 - tau) + s * tau));
                }
            }
        }
    });
}

/// Whether `n` f32 values at `a` and `n` at `b` occupy separate memory.
fn disjoint(a: *mut f32, b: *mut f32, n: usize) -> bool {
    let (a, b) = (a as usize, b as usize);
    let bytes = n * std::mem::size_of::<f32>();
    a + bytes <= b || b + bytes <= a
}

/// `t = t (1 - tau) + s tau` in one pass, the operations libtorch's three kernels perform (each factor
/// rounded to f32 as libtorch rounds a double scalar for an f32 tensor), so the result is the same.
fn polyak(t: &mut [f32], s: &[f32], tau: f64) {
    let (keep, take) = ((1.0 - tau) as f32, tau as f32);
    for (t, &s) in t.iter_mut().zip(s) {
        *t = *t * keep + s * take;
    }
}

/// Copies every variable of `source` into `target` (same names and shapes).
pub fn hard_update(target: &mut nn::VarStore, source: &nn::VarStore) {
    target.copy(source).expect("target and source networks are built from the same config");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_update_of_a_store_with_itself_takes_the_aliasing_safe_path() {
        // Same store as target and source: the fused pass would read and write one buffer through two
        // slices; the overlap check sends it to libtorch, where t (1 - tau) + t tau leaves t as it was.
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let w = vs.root().var("w", &[4, 3], nn::Init::Uniform { lo: -1.0, up: 1.0 });
        let before = w.copy();
        soft_update(&vs, &vs, 0.25);
        let diff = (&w - &before).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "a store averaged with itself changed by {diff}");
        // Two stores: the fused pass, the documented mix.
        let other = nn::VarStore::new(tch::Device::Cpu);
        let s = other.root().var("w", &[4, 3], nn::Init::Const(1.0));
        soft_update(&vs, &other, 0.25);
        let want = &before * 0.75 + &s * 0.25;
        assert!((&w - &want).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn twin_losses_on_two_threads_give_the_gradients_of_one_backward() {
        tch::manual_seed(6);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let critic = Critics::new(&vs.root(), 5, 2, &[32, 32]);
        let obs = Tensor::randn([64, 5], (tch::Kind::Float, tch::Device::Cpu));
        let act = Tensor::randn([64, 2], (tch::Kind::Float, tch::Device::Cpu));
        let y = Tensor::randn([64, 1], (tch::Kind::Float, tch::Device::Cpu));
        let grads = |vs: &nn::VarStore| {
            let mut g: Vec<(String, Tensor)> =
                vs.variables().into_iter().map(|(k, v)| (k, v.grad().copy())).collect();
            g.sort_by(|a, b| a.0.cmp(&b.0));
            g
        };
        let (q1, q2) = critic.both(&obs, &act);
        (q1.mse_loss(&y, tch::Reduction::Mean) + q2.mse_loss(&y, tch::Reduction::Mean)).backward();
        let reference = grads(&vs);
        for mut v in vs.variables().into_values() {
            v.zero_grad();
        }
        let [(p1, l1), (p2, l2)] = <[_; 2]>::try_from(critic.losses_backward(&obs, &act, &y, 2)).unwrap();
        assert!(p1.equal(&q1) && p2.equal(&q2));
        assert!(l1.double_value(&[]) > 0.0 && l2.double_value(&[]) > 0.0);
        for ((name, want), (_, got)) in reference.iter().zip(grads(&vs)) {
            assert!(got.equal(want), "{name}: the parallel backward's gradient differs");
        }
    }

    #[test]
    fn fused_polyak_equals_the_libtorch_ops() {
        tch::manual_seed(3);
        let t = Tensor::randn([1000], (tch::Kind::Float, tch::Device::Cpu));
        let s = Tensor::randn([1000], (tch::Kind::Float, tch::Device::Cpu));
        let want = Vec::<f32>::try_from(&t * (1.0 - 0.005) + &s * 0.005).unwrap();
        let mut got = Vec::<f32>::try_from(&t).unwrap();
        polyak(&mut got, &Vec::<f32>::try_from(&s).unwrap(), 0.005);
        assert_eq!(got, want, "bit for bit");
    }

    #[test]
    fn critics_start_as_pytorch_linear_layers() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _critic = Critics::new(&vs.root(), 17, 6, &[256, 256]);
        for (name, t) in vs.variables() {
            let fan_in = if name.ends_with("weight") {
                t.size()[1]
            } else if name.contains("layers.0") {
                23
            } else {
                256
            };
            let bound = 1.0 / (fan_in as f64).sqrt();
            let max = t.abs().max().double_value(&[]);
            assert!(max <= bound, "{name}: |w| up to {max}, PyTorch's default bound is {bound}");
            // Uniform on ±bound: std bound/sqrt(3). tch's default would be sqrt(6) times that.
            if t.numel() > 1000 {
                let std = t.std(true).double_value(&[]);
                let expected = bound / 3f64.sqrt();
                assert!((std / expected - 1.0).abs() < 0.05, "{name}: std {std}, expected {expected}");
            }
        }
    }
}
