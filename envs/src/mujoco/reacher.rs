//! Reacher: a two-link arm bringing its fingertip to a target (50-step episodes).
//!
//! Observation: cos `qpos[:2]`, sin `qpos[:2]`, `qpos[2:]` (the target, part of the state), `qvel[:2]`,
//! fingertip - target (3-D in v4, 11 dims; xy in v5, 10 dims).
//! Reward: `-|fingertip - target| - sum a^2`, the norm being NumPy's (OpenBLAS `ddot` with fused
//! multiply-adds, [`crate::numpy::norm3`]) and the sum of squares float32. v4 computes it *before*
//! stepping, v5 after. Never terminates.
//! Reset: qpos U(0.1); the goal drawn from U(0.2)^2 until its norm is below 0.2, into `qpos[-2:]`;
//! qvel U(0.005) with `qvel[-2:]` = 0.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{MujocoEnv, Sim, Task, add_uniform};
use crate::EnvError;
use crate::numpy::{norm3, sum_sq_f32};

pub(crate) struct Reacher {
    v5: bool,
    fingertip: usize,
    target: usize,
}

impl Reacher {
    pub(crate) fn env(id: &str, v5: bool) -> Result<MujocoEnv<Reacher>, EnvError> {
        let obs_dim = if v5 { 10 } else { 11 };
        MujocoEnv::new(id, "reacher.xml", 2, obs_dim, 50, |sim| {
            Ok(Reacher { v5, fingertip: sim.body_id("fingertip")?, target: sim.body_id("target")? })
        })
    }

    /// `get_body_com("fingertip") - get_body_com("target")`.
    fn vec(&self, sim: &Sim) -> [f64; 3] {
        let xpos = sim.data().xpos();
        let (f, t) = (xpos[self.fingertip], xpos[self.target]);
        [f[0] - t[0], f[1] - t[1], f[2] - t[2]]
    }

    fn reward(&self, sim: &Sim, action: &[f32]) -> f64 {
        let reward_dist = -norm3(self.vec(sim));
        let reward_ctrl = -sum_sq_f32(action);
        reward_dist + f64::from(reward_ctrl)
    }
}

impl Task for Reacher {
    /// The v4 reward, computed before the step.
    type Before = Option<f64>;

    fn reset_state(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]) {
        add_uniform(rng, qpos, 0.1);
        let goal = loop {
            let g: [f64; 2] = std::array::from_fn(|_| -0.2 + 0.4 * rng.random::<f64>());
            if g[0].hypot(g[1]) < 0.2 {
                break g;
            }
        };
        let nq = qpos.len();
        qpos[nq - 2..].copy_from_slice(&goal);
        add_uniform(rng, qvel, 0.005);
        let nv = qvel.len();
        qvel[nv - 2..].fill(0.0);
    }

    fn before(&self, sim: &Sim, action: &[f32]) -> Option<f64> {
        (!self.v5).then(|| self.reward(sim, action))
    }

    fn after(&self, sim: &Sim, action: &[f32], before: Option<f64>) -> (f64, bool) {
        (before.unwrap_or_else(|| self.reward(sim, action)), false)
    }

    fn observe(&self, sim: &Sim, obs: &mut [f64]) {
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        obs[0] = qpos[0].cos();
        obs[1] = qpos[1].cos();
        obs[2] = qpos[0].sin();
        obs[3] = qpos[1].sin();
        let goal = &qpos[2..];
        obs[4..4 + goal.len()].copy_from_slice(goal);
        let at = 4 + goal.len();
        obs[at..at + 2].copy_from_slice(&qvel[..2]);
        let v = self.vec(sim);
        let dims = if self.v5 { 2 } else { 3 };
        obs[at + 2..].copy_from_slice(&v[..dims]);
    }
}
