//! Balancing tasks on a cart: InvertedPendulum and InvertedDoublePendulum.
//!
//! InvertedPendulum (2 substeps; obs qpos, qvel): terminated when the observation is not finite or
//! `|qpos[1]| > 0.2`; reward 1 (v4) or `not terminated` (v5). Reset: U(0.01) on qpos and qvel.
//!
//! InvertedDoublePendulum (5 substeps; obs `qpos[0]`, sin `qpos[1:]`, cos `qpos[1:]`, clip(qvel, 10),
//! clip(qfrc_constraint, 10), v5 keeping only `qfrc_constraint[0]`): with `(x, _, y)` the tip site,
//! `r = alive - (0.01 x^2 + (y - 2)^2) - (1e-3 v1^2 + 5e-3 v2^2)`, alive 10 (v4) or
//! `10 * not terminated` (v5); terminated when `y <= 1`. The squares are NumPy scalar `**`, i.e. C
//! `pow` ([`crate::numpy::pow2_f64`]). Reset: qpos U(0.1), qvel 0.1 N.

use rand_chacha::ChaCha8Rng;

use super::{MujocoEnv, Noise, Sim, Task, clip_into};
use crate::EnvError;
use crate::numpy::pow2_f64;

pub(crate) struct InvertedPendulum {
    v5: bool,
}

impl InvertedPendulum {
    pub(crate) fn env(id: &str, v5: bool) -> Result<MujocoEnv<InvertedPendulum>, EnvError> {
        MujocoEnv::new(id, "inverted_pendulum.xml", 2, 4, 1000, |_| Ok(InvertedPendulum { v5 }))
    }
}

impl Task for InvertedPendulum {
    type Before = ();

    fn reset_state(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]) {
        Noise::Uniform(0.01).apply(rng, qpos, qvel);
    }

    fn before(&self, _sim: &Sim, _action: &[f32]) {}

    fn after(&self, sim: &Sim, _action: &[f32], _: ()) -> (f64, bool) {
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        let finite = qpos.iter().chain(qvel).all(|x| x.is_finite());
        let terminated = !finite || qpos[1].abs() > 0.2;
        let reward = if self.v5 && terminated { 0.0 } else { 1.0 };
        (reward, terminated)
    }

    fn observe(&self, sim: &Sim, obs: &mut [f64]) {
        super::concat(obs, &[sim.qpos(), sim.qvel()]);
    }
}

pub(crate) struct InvertedDoublePendulum {
    v5: bool,
}

impl InvertedDoublePendulum {
    pub(crate) fn env(id: &str, v5: bool) -> Result<MujocoEnv<InvertedDoublePendulum>, EnvError> {
        let obs_dim = if v5 { 9 } else { 11 };
        MujocoEnv::new(id, "inverted_double_pendulum.xml", 5, obs_dim, 1000, |_| {
            Ok(InvertedDoublePendulum { v5 })
        })
    }
}

impl Task for InvertedDoublePendulum {
    type Before = ();

    fn reset_state(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]) {
        Noise::UniformNormal(0.1).apply(rng, qpos, qvel);
    }

    fn before(&self, _sim: &Sim, _action: &[f32]) {}

    fn after(&self, sim: &Sim, _action: &[f32], _: ()) -> (f64, bool) {
        let [x, _, y] = sim.data().site_xpos()[0];
        let terminated = y <= 1.0;
        let (v1, v2) = (sim.qvel()[1], sim.qvel()[2]);
        let dist_penalty = 0.01 * pow2_f64(x) + pow2_f64(y - 2.0);
        let vel_penalty = 1e-3 * pow2_f64(v1) + 5e-3 * pow2_f64(v2);
        let alive_bonus = if self.v5 && terminated { 0.0 } else { 10.0 };
        (alive_bonus - dist_penalty - vel_penalty, terminated)
    }

    fn observe(&self, sim: &Sim, obs: &mut [f64]) {
        let qpos = sim.qpos();
        let angles = &qpos[1..];
        let n = angles.len();
        obs[0] = qpos[0];
        for (i, &a) in angles.iter().enumerate() {
            obs[1 + i] = a.sin();
            obs[1 + n + i] = a.cos();
        }
        let at = 1 + 2 * n;
        let nv = sim.qvel().len();
        clip_into(&mut obs[at..at + nv], sim.qvel(), 10.0);
        // v5 keeps only the first constraint force (the others are always 0).
        clip_into(&mut obs[at + nv..], sim.data().qfrc_constraint(), 10.0);
    }
}
