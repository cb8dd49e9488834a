//! Pendulum-v1: swing a pendulum up and keep it upright (200-step episodes, never terminates).
//!
//! State `(th, thdot)` in float64; action: torque in [-2, 2], clipped (in float32) before use, and the
//! cost uses the clipped torque:
//! `cost = angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2`, reward `-cost` (of the state before the
//! step). Dynamics with g = 10, m = l = 1, dt = 0.05:
//! `thdot' = clip(thdot + (15 sin th + 3 u) dt, -8, 8)`, `th' = th + thdot' dt`.
//! Observation `(cos th, sin th, thdot)` as float32. Reset: th U(pi), thdot U(1).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::f64::consts::PI;

use crate::numpy::{clip, pow2_f32, pow2_f64, remainder};
use crate::{Core, EnvSpec};

const MAX_SPEED: f64 = 8.0;
const MAX_TORQUE: f64 = 2.0;
const DT: f64 = 0.05;

pub(crate) struct Pendulum {
    spec: EnvSpec,
    th: f64,
    thdot: f64,
    /// The last clipped torque, for rendering (Gymnasium's `last_u`; `None` after a reset).
    last_u: Option<f32>,
}

impl Pendulum {
    pub(crate) fn new() -> Self {
        let spec = EnvSpec {
            id: "Pendulum-v1".into(),
            obs_dim: 3,
            act_dim: 1,
            act_low: vec![-MAX_TORQUE],
            act_high: vec![MAX_TORQUE],
            dt: DT,
            frame_skip: 1,
            max_episode_steps: 200,
        };
        Pendulum { spec, th: 0.0, thdot: 0.0, last_u: None }
    }

    fn observe(&self, obs: &mut [f64]) {
        // np.array([cos, sin, thdot], dtype=np.float32)
        obs[0] = f64::from(self.th.cos() as f32);
        obs[1] = f64::from(self.th.sin() as f32);
        obs[2] = f64::from(self.thdot as f32);
    }
}

/// `(x + pi) % (2 pi) - pi` with NumPy's remainder.
fn angle_normalize(x: f64) -> f64 {
    remainder(x + PI, 2.0 * PI) - PI
}

impl Core for Pendulum {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, rng: &mut ChaCha8Rng, obs: &mut [f64]) {
        self.th = -PI + (2.0 * PI) * rng.random::<f64>();
        self.thdot = -1.0 + 2.0 * rng.random::<f64>();
        self.last_u = None;
        self.observe(obs);
    }

    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> (f64, bool) {
        let (th, thdot) = (self.th, self.thdot);
        // np.clip on the float32 action array stays float32 (NaN passes through).
        let u = action[0].clamp(-MAX_TORQUE as f32, MAX_TORQUE as f32);
        // Scalar `** 2` is C pow; `0.001 * u**2` is a float32 product (NEP 50), widened when added.
        let costs = pow2_f64(angle_normalize(th)) + 0.1 * pow2_f64(thdot) + f64::from(0.001f32 * pow2_f32(u));
        // `3 * g / (2 * l)` = 15.0 (float64); `3.0 / (m * l**2) * u` = 3 * u in float32.
        let newthdot = thdot + (15.0 * th.sin() + f64::from(3.0f32 * u)) * DT;
        let newthdot = clip(newthdot, -MAX_SPEED, MAX_SPEED);
        self.th = th + newthdot * DT;
        self.thdot = newthdot;
        self.last_u = Some(u);
        self.observe(obs);
        (-costs, false)
    }

    fn set_state(&mut self, qpos: &[f64], _qvel: &[f64], obs: &mut [f64]) {
        self.th = qpos[0];
        self.thdot = qpos[1];
        self.observe(obs);
    }

    fn state_dims(&self) -> (usize, usize) {
        (2, 0)
    }

    fn scene(&mut self) -> crate::render::Scene<'_> {
        crate::render::Scene(crate::render::SceneKind::Pendulum { theta: self.th, last_torque: self.last_u })
    }
}
