//! Ant: a quadruped on a free joint, rewarded for the torso's x speed.
//!
//! * v4 (27 obs: `qpos[2:]`, qvel): `(v + 1) - 0.5 sum a^2`.
//! * v5 (105 obs: + `clip(cfrc_ext[1:], -1, 1)` flattened):
//!   `(v + healthy) - (0.5 sum a^2 + 5e-4 sum clip(cfrc_ext, -1, 1)^2)`, the contact sum over all
//!   bodies including the world.
//!
//! `v` is the change of the torso's `xpos.x` (body 1), read from `mjData` before and after the step:
//! MuJoCo computed those positions during the last substep, from the state before its integration,
//! and recomputing them from qpos would not match. Healthy: qpos and qvel finite and
//! 0.2 <= z <= 1.0; terminated when unhealthy. Reset: qpos U(0.1), qvel 0.1 N.

use rand_chacha::ChaCha8Rng;

use super::{MujocoEnv, Noise, Sim, Task, concat, flat};
use crate::EnvError;
use crate::numpy::{clip, ctrl_cost_f32, sum_sq_clipped_f64};

pub(crate) struct Ant {
    v5: bool,
    /// The torso ("main body" 1 in v5, `get_body_com("torso")` in v4: the same body).
    torso: usize,
}

impl Ant {
    pub(crate) fn env(id: &str, v5: bool) -> Result<MujocoEnv<Ant>, EnvError> {
        let obs_dim = if v5 { 105 } else { 27 };
        MujocoEnv::new(id, "ant.xml", 5, obs_dim, 1000, |sim| Ok(Ant { v5, torso: sim.body_id("torso")? }))
    }
}

impl Task for Ant {
    /// Torso x before the step.
    type Before = f64;

    fn reset_state(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]) {
        Noise::UniformNormal(0.1).apply(rng, qpos, qvel);
    }

    fn before(&self, sim: &Sim, _action: &[f32]) -> f64 {
        sim.data().xpos()[self.torso][0]
    }

    fn after(&self, sim: &Sim, action: &[f32], x_before: f64) -> (f64, bool) {
        let x_velocity = (sim.data().xpos()[self.torso][0] - x_before) / sim.dt();
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        let z = qpos[2];
        let healthy = qpos.iter().chain(qvel).all(|x| x.is_finite()) && (0.2..=1.0).contains(&z);
        let ctrl_cost = f64::from(ctrl_cost_f32(0.5, action));
        let reward = if self.v5 {
            let contact_cost = 5e-4 * sum_sq_clipped_f64(flat(sim.data().cfrc_ext(), 0), -1.0, 1.0);
            let healthy_reward = if healthy { 1.0 } else { 0.0 };
            // `x_velocity * 1` (forward_reward_weight) is exact and left out.
            (x_velocity + healthy_reward) - (ctrl_cost + contact_cost)
        } else {
            (x_velocity + 1.0) - ctrl_cost
        };
        (reward, !healthy)
    }

    fn observe(&self, sim: &Sim, obs: &mut [f64]) {
        let qpos = &sim.qpos()[2..];
        let qvel = sim.qvel();
        let n = qpos.len() + qvel.len();
        concat(&mut obs[..n], &[qpos, qvel]);
        if self.v5 {
            for (o, &f) in obs[n..].iter_mut().zip(flat(sim.data().cfrc_ext(), 1)) {
                *o = clip(f, -1.0, 1.0);
            }
        }
    }
}
