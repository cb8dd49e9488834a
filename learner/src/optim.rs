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
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
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
        self.steps += 1;
        let t = self.steps as i32;
        let bias1 = 1.0 - self.beta1.powi(t);
        let bias2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        let step_size = self.lr / bias1;
        tch::no_grad(|| {
            for (_, p, m, v) in &mut self.params {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.lerp_(&g, 1.0 - self.beta1);
                let _ = v.g_mul_scalar_(self.beta2).addcmul_(&(&g * (1.0 - self.beta2)), &g);
                let denom = v.sqrt() / bias2_sqrt + self.eps;
                let _ = p.addcdiv_(&(&*m * -step_size), &denom);
            }
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
                    return Err(format!("optimizer state {key} has shape {:?}, expected {:?}", t.size(), p.size()));
                }
                tch::no_grad(|| slot.copy_(&t));
            }
        }
        self.steps = steps;
        Ok(())
    }
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
        let saved: std::collections::HashMap<String, Tensor> = a.state().into_iter().map(|(k, t)| (k, t.copy())).collect();
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
}
