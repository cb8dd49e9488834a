//! The MuJoCo environments: shared plumbing ([`Sim`], [`MujocoEnv`]) and one module per family.
//!
//! Gymnasium's `MujocoEnv` base class is reproduced by [`Sim`]:
//! * step: `ctrl = action` (float32 widened, not clipped: MuJoCo clamps to `ctrlrange` internally and
//!   the costs use the raw action), `mj_step` `frame_skip` times, then `mj_rnePostConstraint` (MuJoCo
//!   only fills `cfrc_ext`/`cacc` during a step when the model has force sensors);
//! * reset: `mj_resetData` (which also clears the solver's warm start), `qpos = qpos0 + noise`,
//!   `qvel = noise`, `mj_forward`;
//! * `set_state`: write qpos and qvel, `mj_forward`, nothing else (no reset, as Gymnasium).
//!
//! A family module supplies a [`Task`]: reset noise, observation, reward and termination. Quantities
//! such as body positions are read from `mjData` as MuJoCo left them after the last substep, never
//! recomputed, because that is what Gymnasium reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once, OnceLock};

use mujoco_rs::prelude::{MjData, MjModel, MjtObjBase};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::{Core, Env, EnvError, EnvSpec, Wrapped};

mod ant;
mod balance;
mod humanoid;
mod planar;
mod reacher;

/// The Gymnasium 1.4.0 XML models, compiled into the binary (they reference no other files).
const ASSETS: &[(&str, &str)] = &[
    ("ant.xml", include_str!("../../assets/ant.xml")),
    ("half_cheetah.xml", include_str!("../../assets/half_cheetah.xml")),
    ("hopper.xml", include_str!("../../assets/hopper.xml")),
    ("humanoid.xml", include_str!("../../assets/humanoid.xml")),
    ("inverted_double_pendulum.xml", include_str!("../../assets/inverted_double_pendulum.xml")),
    ("inverted_pendulum.xml", include_str!("../../assets/inverted_pendulum.xml")),
    ("reacher.xml", include_str!("../../assets/reacher.xml")),
    ("swimmer.xml", include_str!("../../assets/swimmer.xml")),
    ("walker2d.xml", include_str!("../../assets/walker2d.xml")),
    ("walker2d_v5.xml", include_str!("../../assets/walker2d_v5.xml")),
];

/// Builds the MuJoCo environment `name`-v4/v5, or `None` if `name` is not one.
pub(crate) fn build(name: &str, v5: bool, time_limit: bool) -> Option<Result<Box<dyn Env>, EnvError>> {
    fn boxed<T: Task>(r: Result<MujocoEnv<T>, EnvError>, time_limit: bool) -> Result<Box<dyn Env>, EnvError> {
        Ok(Box::new(Wrapped::new(r?, time_limit)))
    }
    let id = format!("{name}-v{}", if v5 { 5 } else { 4 });
    Some(match name {
        "HalfCheetah" => boxed(planar::env(planar::Kind::HalfCheetah, &id, v5), time_limit),
        "Hopper" => boxed(planar::env(planar::Kind::Hopper, &id, v5), time_limit),
        "Walker2d" => boxed(planar::env(planar::Kind::Walker2d, &id, v5), time_limit),
        "Swimmer" => boxed(planar::env(planar::Kind::Swimmer, &id, v5), time_limit),
        "Ant" => boxed(ant::Ant::env(&id, v5), time_limit),
        "Humanoid" => boxed(humanoid::Humanoid::env(&id, v5), time_limit),
        "InvertedPendulum" => boxed(balance::InvertedPendulum::env(&id, v5), time_limit),
        "InvertedDoublePendulum" => boxed(balance::InvertedDoublePendulum::env(&id, v5), time_limit),
        "Reacher" => boxed(reacher::Reacher::env(&id, v5), time_limit),
        _ => return None,
    })
}

/// Compiled models, one per XML for the whole process: every env of a kind shares it (read-only).
fn model(file: &str) -> Result<Arc<MjModel>, EnvError> {
    static MODELS: OnceLock<Mutex<HashMap<&'static str, Arc<MjModel>>>> = OnceLock::new();
    static LOG_HOOK: Once = Once::new();

    // Route MuJoCo's messages (e.g. the deprecation warning half_cheetah.xml triggers, instability
    // warnings) to the `log` crate instead of MUJOCO_LOG.TXT in the working directory and stdout.
    LOG_HOOK.call_once(|| {
        // SAFETY: no MuJoCo call can run concurrently: every model (and so every MjData) of this
        // process comes from this function, which cannot get past `call_once` before the hook is in.
        unsafe { mujoco_rs::logging::install_logging_hook() };
    });

    let (name, xml) = ASSETS
        .iter()
        .find(|(name, _)| *name == file)
        .ok_or_else(|| EnvError::Physics(format!("no embedded model named {file}")))?;
    let mut models = MODELS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = models.get(name) {
        return Ok(Arc::clone(m));
    }
    let m = Arc::new(
        MjModel::from_xml_string(xml).map_err(|e| EnvError::Physics(format!("loading {file}: {e:?}")))?,
    );
    models.insert(name, Arc::clone(&m));
    Ok(m)
}

/// One MuJoCo simulation, stepped the way Gymnasium's `MujocoEnv` steps it.
pub(crate) struct Sim {
    data: MjData<Arc<MjModel>>,
    frame_skip: usize,
    /// `model.opt.timestep * frame_skip`, computed as Gymnasium's `dt` property does.
    dt: f64,
    /// Scratch for reset (no allocation per episode).
    qpos: Vec<f64>,
    qvel: Vec<f64>,
}

impl Sim {
    fn new(file: &str, frame_skip: usize) -> Result<Sim, EnvError> {
        let model = model(file)?;
        let dt = model.ffi().opt.timestep * frame_skip as f64;
        let (nq, nv) = (model.ffi().nq as usize, model.ffi().nv as usize);
        let data = MjData::try_new(model).map_err(|e| EnvError::Physics(format!("{file}: {e:?}")))?;
        Ok(Sim { data, frame_skip, dt, qpos: vec![0.0; nq], qvel: vec![0.0; nv] })
    }

    pub(crate) fn model(&self) -> &MjModel {
        self.data.model()
    }
    pub(crate) fn data(&self) -> &MjData<Arc<MjModel>> {
        &self.data
    }
    pub(crate) fn dt(&self) -> f64 {
        self.dt
    }
    /// For the renderer only: `mjv_updateScene` takes the data mutably (scratch on its stack).
    pub(crate) fn data_for_render(&mut self) -> &mut MjData<Arc<MjModel>> {
        &mut self.data
    }
    pub(crate) fn qpos(&self) -> &[f64] {
        self.data.qpos()
    }
    pub(crate) fn qvel(&self) -> &[f64] {
        self.data.qvel()
    }
    fn nq(&self) -> usize {
        self.qpos.len()
    }
    fn nv(&self) -> usize {
        self.qvel.len()
    }
    fn nu(&self) -> usize {
        self.model().ffi().nu as usize
    }

    /// Id of the body `name`; the names are those of our embedded XMLs, so a miss is a bug here.
    pub(crate) fn body_id(&self, name: &str) -> Result<usize, EnvError> {
        self.model()
            .name_to_id(MjtObjBase::mjOBJ_BODY, name)
            .ok_or_else(|| EnvError::Physics(format!("model has no body named {name}")))
    }

    /// Gymnasium's `do_simulation(action, frame_skip)`.
    fn do_simulation(&mut self, action: &[f32]) {
        for (c, &a) in self.data.ctrl_mut().iter_mut().zip(action) {
            *c = f64::from(a);
        }
        for _ in 0..self.frame_skip {
            self.data.step();
        }
        self.data.rne_post_constraint();
    }

    /// Gymnasium's `reset`: `mj_resetData`, then `init(qpos = qpos0, qvel = 0)` adds the noise, then
    /// `set_state`.
    fn reset(&mut self, init: impl FnOnce(&mut [f64], &mut [f64])) {
        self.data.reset();
        let mut qpos = std::mem::take(&mut self.qpos);
        let mut qvel = std::mem::take(&mut self.qvel);
        qpos.copy_from_slice(self.model().qpos0());
        qvel.fill(0.0);
        init(&mut qpos, &mut qvel);
        self.set_state(&qpos, &qvel);
        self.qpos = qpos;
        self.qvel = qvel;
    }

    /// Gymnasium's `set_state` (the models have no actuator activations, so `act` needs nothing).
    fn set_state(&mut self, qpos: &[f64], qvel: &[f64]) {
        self.data.qpos_mut().copy_from_slice(qpos);
        self.data.qvel_mut().copy_from_slice(qvel);
        self.data.forward();
    }
}

/// `x += U[-scale, scale)` elementwise, as `np_random.uniform(low=-scale, high=scale)`.
pub(crate) fn add_uniform(rng: &mut ChaCha8Rng, x: &mut [f64], scale: f64) {
    for v in x {
        // NumPy's formula: low + (high - low) * U[0, 1).
        *v += -scale + (2.0 * scale) * rng.random::<f64>();
    }
}

/// `x += scale * N(0, 1)` elementwise, as `scale * np_random.standard_normal()`.
pub(crate) fn add_normal(rng: &mut ChaCha8Rng, x: &mut [f64], scale: f64) {
    for v in x {
        *v += scale * rng.sample::<f64, _>(StandardNormal);
    }
}

/// Reset noise of most tasks: uniform on qpos, uniform or normal on qvel.
#[derive(Clone, Copy)]
pub(crate) enum Noise {
    /// `qpos += U(s)`, `qvel += U(s)`.
    Uniform(f64),
    /// `qpos += U(s)`, `qvel += s * N`.
    UniformNormal(f64),
}

impl Noise {
    pub(crate) fn apply(self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]) {
        match self {
            Noise::Uniform(s) => {
                add_uniform(rng, qpos, s);
                add_uniform(rng, qvel, s);
            }
            Noise::UniformNormal(s) => {
                add_uniform(rng, qpos, s);
                add_normal(rng, qvel, s);
            }
        }
    }
}

/// What distinguishes one MuJoCo environment from another.
pub(crate) trait Task: Send + 'static {
    /// What the reward needs from the state before the step (e.g. the x position).
    type Before;
    /// Draw the initial state: `qpos` arrives as `qpos0`, `qvel` as zeros.
    fn reset_state(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]);
    /// Called before stepping the physics.
    fn before(&self, sim: &Sim, action: &[f32]) -> Self::Before;
    /// Called after stepping: (reward, terminated).
    fn after(&self, sim: &Sim, action: &[f32], before: Self::Before) -> (f64, bool);
    /// Write the observation (`obs_dim` long).
    fn observe(&self, sim: &Sim, obs: &mut [f64]);
}

/// A MuJoCo environment: the simulation, its task and spec.
pub(crate) struct MujocoEnv<T> {
    sim: Sim,
    task: T,
    spec: EnvSpec,
}

impl<T: Task> MujocoEnv<T> {
    /// Loads `file` and builds the spec from the model (action bounds from `ctrlrange`).
    pub(crate) fn new(
        id: &str,
        file: &str,
        frame_skip: usize,
        obs_dim: usize,
        max_episode_steps: usize,
        task: impl FnOnce(&Sim) -> Result<T, EnvError>,
    ) -> Result<Self, EnvError> {
        let sim = Sim::new(file, frame_skip)?;
        let ranges = sim.model().actuator_ctrlrange();
        let spec = EnvSpec {
            id: id.to_owned(),
            obs_dim,
            act_dim: sim.nu(),
            act_low: ranges.iter().map(|r| r[0]).collect(),
            act_high: ranges.iter().map(|r| r[1]).collect(),
            dt: sim.dt(),
            frame_skip,
            max_episode_steps,
        };
        let task = task(&sim)?;
        Ok(MujocoEnv { sim, task, spec })
    }
}

impl<T: Task> Core for MujocoEnv<T> {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, rng: &mut ChaCha8Rng, obs: &mut [f64]) {
        let task = &self.task;
        self.sim.reset(|qpos, qvel| task.reset_state(rng, qpos, qvel));
        self.task.observe(&self.sim, obs);
    }

    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> (f64, bool) {
        let before = self.task.before(&self.sim, action);
        self.sim.do_simulation(action);
        let out = self.task.after(&self.sim, action, before);
        self.task.observe(&self.sim, obs);
        out
    }

    fn set_state(&mut self, qpos: &[f64], qvel: &[f64], obs: &mut [f64]) {
        self.sim.set_state(qpos, qvel);
        self.task.observe(&self.sim, obs);
    }

    fn state_dims(&self) -> (usize, usize) {
        (self.sim.nq(), self.sim.nv())
    }

    fn scene(&mut self) -> crate::render::Scene<'_> {
        crate::render::Scene(crate::render::SceneKind::Mujoco(self.sim.data_for_render()))
    }
}

/// Copies `parts` one after the other into `obs` (which they exactly fill).
pub(crate) fn concat(obs: &mut [f64], parts: &[&[f64]]) {
    let mut at = 0;
    for p in parts {
        obs[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    debug_assert_eq!(at, obs.len());
}

/// `np.clip(src, -limit, limit)` into `dst`.
pub(crate) fn clip_into(dst: &mut [f64], src: &[f64], limit: f64) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = crate::numpy::clip(s, -limit, limit);
    }
}

/// The flat `nbody * N` view of a per-body array such as `cfrc_ext`, skipping the first `skip` bodies.
pub(crate) fn flat<const N: usize>(rows: &[[f64; N]], skip: usize) -> &[f64] {
    rows[skip..].as_flattened()
}
