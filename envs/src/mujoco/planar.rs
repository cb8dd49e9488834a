//! Planar runners rewarded for forward speed `d qpos[0] / dt`: HalfCheetah, Hopper, Walker2d, Swimmer.
//!
//! | Env | obs | reward | terminated | reset noise |
//! |---|---|---|---|---|
//! | HalfCheetah (5 substeps) | `qpos[1:]`, qvel | v - 0.1 sum a^2 | never | qpos U(0.1), qvel 0.1 N |
//! | Hopper (4) | `qpos[1:]`, clip(qvel, 10) | (v + healthy) - 1e-3 sum a^2 | unhealthy | U(0.005) both |
//! | Walker2d (4) | `qpos[1:]`, clip(qvel, 10) | (v + healthy) - 1e-3 sum a^2 | unhealthy | U(0.005) both |
//! | Swimmer (4) | `qpos[2:]`, qvel | v - 1e-4 sum a^2 | never | U(0.1) both |
//!
//! The healthy bonus (1) is paid on every step in v4 (its default `terminate_when_unhealthy=True`
//! makes `is_healthy or terminate` always true) and only while healthy in v5. The sums of squares are
//! float32 ([`crate::numpy::ctrl_cost_f32`]).

use rand_chacha::ChaCha8Rng;

use super::{MujocoEnv, Noise, Sim, Task, clip_into};
use crate::EnvError;
use crate::numpy::ctrl_cost_f32;

/// Which runner.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    HalfCheetah,
    Hopper,
    Walker2d,
    Swimmer,
}

/// The task of one planar runner.
pub(crate) struct Planar {
    kind: Kind,
    v5: bool,
    ctrl_cost_weight: f64,
    noise: Noise,
    /// Leading qpos entries left out of the observation (the x, and for Swimmer also y, position).
    skipped_qpos: usize,
    /// Hopper and Walker2d clip the velocities in their observation to +-10.
    clip_qvel: bool,
}

/// Builds `id` (`kind`, version 4 or 5).
pub(crate) fn env(kind: Kind, id: &str, v5: bool) -> Result<MujocoEnv<Planar>, EnvError> {
    let (file, frame_skip, ctrl_cost_weight, noise) = match kind {
        Kind::HalfCheetah => ("half_cheetah.xml", 5, 0.1, Noise::UniformNormal(0.1)),
        Kind::Hopper => ("hopper.xml", 4, 1e-3, Noise::Uniform(5e-3)),
        // v5 has its own XML: friction 1.9 on both feet (v4: 0.9 on `foot_geom`).
        Kind::Walker2d => {
            (if v5 { "walker2d_v5.xml" } else { "walker2d.xml" }, 4, 1e-3, Noise::Uniform(5e-3))
        }
        Kind::Swimmer => ("swimmer.xml", 4, 1e-4, Noise::Uniform(0.1)),
    };
    let skipped_qpos = if kind == Kind::Swimmer { 2 } else { 1 };
    let clip_qvel = matches!(kind, Kind::Hopper | Kind::Walker2d);
    let task = Planar { kind, v5, ctrl_cost_weight, noise, skipped_qpos, clip_qvel };
    let obs_dim = match kind {
        Kind::HalfCheetah | Kind::Walker2d => 17,
        Kind::Hopper => 11,
        Kind::Swimmer => 8,
    };
    MujocoEnv::new(id, file, frame_skip, obs_dim, 1000, |sim| {
        debug_assert_eq!(sim.qpos().len() + sim.qvel().len() - skipped_qpos, obs_dim);
        Ok(task)
    })
}

impl Planar {
    /// `is_healthy` of Hopper and Walker2d (`None` for tasks without health).
    fn healthy(&self, qpos: &[f64], qvel: &[f64]) -> Option<bool> {
        let (z, angle) = (qpos[1], qpos[2]);
        match self.kind {
            Kind::Hopper => {
                // state_vector()[2:] strictly inside (-100, 100), z > 0.7, |angle| < 0.2; NaN fails all.
                let state_ok = qpos[2..].iter().chain(qvel).all(|&s| -100.0 < s && s < 100.0);
                Some(state_ok && 0.7 < z && z < f64::INFINITY && -0.2 < angle && angle < 0.2)
            }
            Kind::Walker2d => Some(0.8 < z && z < 2.0 && -1.0 < angle && angle < 1.0),
            Kind::HalfCheetah | Kind::Swimmer => None,
        }
    }
}

impl Task for Planar {
    /// x position before the step.
    type Before = f64;

    fn reset_state(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]) {
        self.noise.apply(rng, qpos, qvel);
    }

    fn before(&self, sim: &Sim, _action: &[f32]) -> f64 {
        sim.qpos()[0]
    }

    fn after(&self, sim: &Sim, action: &[f32], x_before: f64) -> (f64, bool) {
        // forward_reward_weight is 1.0: multiplying by it is exact, so it is left out.
        let x_velocity = (sim.qpos()[0] - x_before) / sim.dt();
        let ctrl_cost = f64::from(ctrl_cost_f32(self.ctrl_cost_weight, action));
        match self.healthy(sim.qpos(), sim.qvel()) {
            None => (x_velocity - ctrl_cost, false),
            Some(healthy) => {
                let healthy_reward = if healthy || !self.v5 { 1.0 } else { 0.0 };
                ((x_velocity + healthy_reward) - ctrl_cost, !healthy)
            }
        }
    }

    fn observe(&self, sim: &Sim, obs: &mut [f64]) {
        let qpos = &sim.qpos()[self.skipped_qpos..];
        let qvel = sim.qvel();
        let (pos, vel) = obs.split_at_mut(qpos.len());
        pos.copy_from_slice(qpos);
        if self.clip_qvel {
            clip_into(vel, qvel, 10.0);
        } else {
            vel.copy_from_slice(qvel);
        }
    }
}
