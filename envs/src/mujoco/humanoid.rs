//! Humanoid: a 3-D biped rewarded for the x speed of its centre of mass.
//!
//! * v4 (376 obs: `qpos[2:]`, qvel, cinert, cvel, qfrc_actuator, cfrc_ext):
//!   `(1.25 v + 5) - 0.1 sum ctrl^2`.
//! * v5 (348 obs: the same with the world body dropped from cinert/cvel/cfrc_ext and the free joint's
//!   6 dofs from qfrc_actuator): `(1.25 v + 5 healthy) - (0.1 sum ctrl^2 + min(5e-7 sum cfrc_ext^2, 10))`.
//!
//! The control cost squares `data.ctrl` (float64), not the float32 action. The centre of mass is
//! Gymnasium's `einsum("b,bj->j", body_mass, xipos) / body_mass.sum()`: a left-to-right sum over bodies
//! divided by NumPy's pairwise sum of the masses, with `xipos` as MuJoCo left it after the last substep.
//! Healthy: 1 < z < 2; terminated when unhealthy. Reset: U(0.01) on qpos and qvel.

use rand_chacha::ChaCha8Rng;

use super::{MujocoEnv, Noise, Sim, Task, concat, flat};
use crate::EnvError;
use crate::numpy::{sum_f64, sum_sq_f64};

pub(crate) struct Humanoid {
    v5: bool,
    /// `body_mass.sum()`, constant for the model.
    total_mass: f64,
}

impl Humanoid {
    pub(crate) fn env(id: &str, v5: bool) -> Result<MujocoEnv<Humanoid>, EnvError> {
        let obs_dim = if v5 { 348 } else { 376 };
        MujocoEnv::new(id, "humanoid.xml", 5, obs_dim, 1000, |sim| {
            Ok(Humanoid { v5, total_mass: sum_f64(sim.model().body_mass()) })
        })
    }

    /// x of the centre of mass.
    fn mass_center_x(&self, sim: &Sim) -> f64 {
        let num =
            sim.model().body_mass().iter().zip(sim.data().xipos()).fold(0.0, |acc, (&m, p)| acc + m * p[0]);
        num / self.total_mass
    }
}

impl Task for Humanoid {
    /// Centre-of-mass x before the step.
    type Before = f64;

    fn reset_state(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]) {
        Noise::Uniform(0.01).apply(rng, qpos, qvel);
    }

    fn before(&self, sim: &Sim, _action: &[f32]) -> f64 {
        self.mass_center_x(sim)
    }

    fn after(&self, sim: &Sim, _action: &[f32], x_before: f64) -> (f64, bool) {
        let x_velocity = (self.mass_center_x(sim) - x_before) / sim.dt();
        let z = sim.qpos()[2];
        let healthy = 1.0 < z && z < 2.0;
        let forward_reward = 1.25 * x_velocity;
        let ctrl_cost = 0.1 * sum_sq_f64(sim.data().ctrl());
        let reward = if self.v5 {
            let healthy_reward = if healthy { 5.0 } else { 0.0 };
            // np.clip(cost, -inf, 10): NaN stays NaN.
            let contact_cost =
                (5e-7 * sum_sq_f64(flat(sim.data().cfrc_ext(), 0))).clamp(f64::NEG_INFINITY, 10.0);
            (forward_reward + healthy_reward) - (ctrl_cost + contact_cost)
        } else {
            (forward_reward + 5.0) - ctrl_cost
        };
        (reward, !healthy)
    }

    fn observe(&self, sim: &Sim, obs: &mut [f64]) {
        let d = sim.data();
        let (bodies, actuated) = if self.v5 { (1, 6) } else { (0, 0) };
        concat(
            obs,
            &[
                &sim.qpos()[2..],
                sim.qvel(),
                flat(d.cinert(), bodies),
                flat(d.cvel(), bodies),
                &d.qfrc_actuator()[actuated..],
                flat(d.cfrc_ext(), bodies),
            ],
        );
    }
}
