//! MountainCarContinuous-v0: drive an underpowered car up a hill (999-step episodes).
//!
//! `force = min(max(a, -1), 1)`; `v += 0.0015 force - 0.0025 cos(3 x)`, clipped to +-0.07;
//! `x += v`, clipped to [-1.2, 0.6], with `v = 0` when stuck at the left wall moving left; terminated
//! when `x >= 0.45` and `v >= 0`; reward `100 [terminated] - 0.1 a^2` with the *unclipped* action.
//! Reset: x U[-0.6, -0.4), v = 0. The observation is the state as float32.
//!
//! The types are the delicate part: after a reset the state is float64, after a step it is float32
//! (Gymnasium stores `np.array(..., dtype=float32)`), a clipped force is a Python float while an
//! unclipped one stays float32, and each combination rounds differently. [`Np`] carries them.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::numpy::{Np, pow2_f64};
use crate::{Core, EnvSpec};

const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;
const GOAL_POSITION: f64 = 0.45;
const POWER: f64 = 0.0015;

pub(crate) struct MountainCar {
    spec: EnvSpec,
    position: Np,
    velocity: Np,
}

impl MountainCar {
    pub(crate) fn new() -> Self {
        let spec = EnvSpec {
            id: "MountainCarContinuous-v0".into(),
            obs_dim: 2,
            act_dim: 1,
            act_low: vec![-1.0],
            act_high: vec![1.0],
            dt: 1.0,
            frame_skip: 1,
            max_episode_steps: 999,
        };
        MountainCar { spec, position: Np::F64(-0.5), velocity: Np::F64(0.0) }
    }

    fn observe(&self, obs: &mut [f64]) {
        obs[0] = f64::from(self.position.value() as f32);
        obs[1] = f64::from(self.velocity.value() as f32);
    }
}

impl Core for MountainCar {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, rng: &mut ChaCha8Rng, obs: &mut [f64]) {
        // np.array([uniform(-0.6, -0.4), 0]) is float64.
        self.position = Np::F64(-0.6 + 0.2 * rng.random::<f64>());
        self.velocity = Np::F64(0.0);
        self.observe(obs);
    }

    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> (f64, bool) {
        let py = Np::Py;
        let a = Np::F32(action[0]);
        // Python's max/min return one of their arguments: the float32 action or the Python float bound.
        let mut force = if py(-1.0).gt(a) { py(-1.0) } else { a };
        if py(1.0).lt(force) {
            force = py(1.0);
        }
        let position = self.position;
        // `math.cos(3 * position)` evaluates 3 * position in the position's type, then cos in float64.
        let hill = py(0.0025 * py(3.0).mul(position).value().cos());
        let mut velocity = self.velocity.add(force.mul(py(POWER)).sub(hill));
        if velocity.gt(py(MAX_SPEED)) {
            velocity = py(MAX_SPEED);
        }
        if velocity.lt(py(-MAX_SPEED)) {
            velocity = py(-MAX_SPEED);
        }
        let mut position = position.add(velocity);
        if position.gt(py(MAX_POSITION)) {
            position = py(MAX_POSITION);
        }
        if position.lt(py(MIN_POSITION)) {
            position = py(MIN_POSITION);
        }
        if position.eq(py(MIN_POSITION)) && velocity.lt(py(0.0)) {
            velocity = py(0.0);
        }
        let terminated = position.ge(py(GOAL_POSITION)) && velocity.ge(py(0.0));
        let bonus = if terminated { 100.0 } else { 0.0 };
        // math.pow(action[0], 2) * 0.1 in float64, with the unclipped action.
        let reward = bonus - pow2_f64(f64::from(action[0])) * 0.1;
        self.position = Np::F32(position.value() as f32);
        self.velocity = Np::F32(velocity.value() as f32);
        self.observe(obs);
        (reward, terminated)
    }

    fn set_state(&mut self, qpos: &[f64], _qvel: &[f64], obs: &mut [f64]) {
        // A state set from outside is float64, like the one reset draws.
        self.position = Np::F64(qpos[0]);
        self.velocity = Np::F64(qpos[1]);
        self.observe(obs);
    }

    fn scene(&mut self) -> crate::render::Scene<'_> {
        crate::render::Scene(crate::render::SceneKind::MountainCar { position: self.position.value() })
    }

    fn state_dims(&self) -> (usize, usize) {
        (2, 0)
    }
}
