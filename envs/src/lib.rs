//! Gymnasium-identical environments for spikerl.
//!
//! Users compare our returns with Gymnasium numbers, so these are Gymnasium 1.4.0's environments step
//! for step, not look-alikes: given the same state and the same float32 actions they produce the same
//! observations, rewards and flags, bit for bit (`tests/gymnasium_identity.rs` replays reference
//! trajectories recorded with Python Gymnasium, see `tests/fixtures/README.md`).
//!
//! * MuJoCo locomotion and balance tasks, `-v4` and `-v5` with Gymnasium's default arguments:
//!   HalfCheetah, Hopper, Walker2d, Ant, Humanoid, InvertedPendulum, InvertedDoublePendulum, Swimmer,
//!   Reacher (module `mujoco`; the XML models are compiled into the binary).
//! * Classic control in plain Rust: Pendulum-v1 and MountainCarContinuous-v0.
//!
//! # Using it
//! [`make`] gives an environment wrapped in Gymnasium's time limit (truncation at
//! [`EnvSpec::max_episode_steps`]), [`make_unwrapped`] the bare environment. [`vector::VecEnv`] steps
//! several copies with auto-reset for actors, on the caller's thread or spread over worker threads;
//! [`evaluate`] runs deterministic evaluation episodes; [`trajectory`] backs the `spikerl env` commands (`env replay` steps a recorded trajectory; "replay" alone means the learner's replay buffer).
//!
//! # What decides bit-identity
//! The physics is MuJoCo 3.17.0 itself (through `mujoco-rs`), stepped exactly like Gymnasium
//! (`ctrl = action` unclipped, `mj_step` frame_skip times, then `mj_rnePostConstraint`). The rewards
//! need NumPy's arithmetic: float32 control costs with pairwise summation, `pow` for scalar squares,
//! NEP 50 type promotion in classic control. Those rules live in one module (`numpy`), with the why.
//!
//! Reset noise comes from our own RNG (ChaCha8 seeded with the `u64` seed), drawn from the same
//! distributions as Gymnasium but not the same numbers as NumPy's PCG64: the same seed gives the same
//! episode on every machine, and the same state and actions give Gymnasium's trajectory.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod classic;
mod mujoco;
mod numpy;
pub mod render;
pub mod trajectory;
pub mod vector;

/// Static description of an environment: spaces, timing and episode length.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EnvSpec {
    /// Gymnasium id, e.g. `"HalfCheetah-v5"`.
    pub id: String,
    /// Length of the observation vector.
    pub obs_dim: usize,
    /// Length of the action vector.
    pub act_dim: usize,
    /// Lower action bounds. For MuJoCo tasks the model's `ctrlrange` (Gymnasium's `Box` holds these
    /// rounded to float32).
    pub act_low: Vec<f64>,
    /// Upper action bounds.
    pub act_high: Vec<f64>,
    /// Seconds of simulated time per environment step (`timestep * frame_skip`; 1.0 for
    /// MountainCarContinuous, whose dynamics have no time unit).
    pub dt: f64,
    /// Physics substeps per environment step (1 for classic control).
    pub frame_skip: usize,
    /// Gymnasium's registered time limit.
    pub max_episode_steps: usize,
}

/// Result of one environment step.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Observation after the step.
    pub obs: Vec<f64>,
    /// Reward of the step.
    pub reward: f64,
    /// The task ended (e.g. the robot fell): do not bootstrap.
    pub terminated: bool,
    /// The time limit cut the episode: bootstrap from `obs`.
    pub truncated: bool,
}

/// A step's outcome without the observation, for the allocation-free [`Env::step_into`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transition {
    /// Reward of the step.
    pub reward: f64,
    /// The task ended.
    pub terminated: bool,
    /// The time limit cut the episode.
    pub truncated: bool,
}

/// Errors of this crate. Bad input never panics; it comes back as one of these.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The id is not one of [`known_ids`].
    #[error("unknown environment id '{id}'; known ids: {}", known.join(", "))]
    UnknownId { id: String, known: Vec<&'static str> },
    /// Wrong lengths, non-finite numbers, malformed JSON.
    #[error("bad input: {0}")]
    BadInput(String),
    /// MuJoCo failed (e.g. a model did not compile) or output could not be written.
    #[error("physics: {0}")]
    Physics(String),
    /// A worker thread of a threaded [`vector::VecEnv`] panicked (its envs are lost: the `VecEnv`
    /// cannot step any more) or could not be started.
    #[error("env worker thread: {0}")]
    Worker(String),
}

/// A Gymnasium environment.
///
/// The four required methods are Gymnasium's API. The provided `try_step`, `reset_into` and
/// `step_into` are the checked and allocation-free forms the vectorised runner uses; the environments
/// of this crate implement them directly.
pub trait Env: Send {
    /// The environment's static description.
    fn spec(&self) -> &EnvSpec;

    /// Gymnasium reset: `Some(seed)` reseeds this env's RNG (deterministic: same seed -> same initial
    /// state, on every machine); `None` continues the stream.
    fn reset(&mut self, seed: Option<u64>) -> Vec<f64>;

    /// One step. Actions are float32 as in Gymnasium's `Box(float32)`; NOT clipped by the env (MuJoCo
    /// clamps ctrl itself; costs use the raw action).
    ///
    /// # Panics
    /// If `action.len() != spec().act_dim` (a programming error, as indexing out of bounds is). Use
    /// [`Env::try_step`] for actions from outside the program.
    fn step(&mut self, action: &[f32]) -> Step;

    /// Gymnasium's `set_state(qpos, qvel)` (classic control: `qpos` = the state vector, `qvel` empty),
    /// returns the observation. Validates lengths and finiteness. Like Gymnasium's, it resets nothing
    /// else: not the solver warm start, not the time-limit counter.
    fn set_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<Vec<f64>, EnvError>;

    /// The random stream the next unseeded [`Env::reset`] draws its initial state from (Gymnasium's
    /// `np_random`). With [`Env::set_random_stream`] it lets a caller restart an episode exactly as it
    /// began, e.g. to rebuild a checkpointed environment by replaying the episode's actions.
    fn random_stream(&self) -> ChaCha8Rng;

    /// Replaces the random stream (see [`Env::random_stream`]).
    fn set_random_stream(&mut self, rng: ChaCha8Rng);

    /// [`Env::step`] that returns [`EnvError::BadInput`] for a wrong action length instead of panicking.
    fn try_step(&mut self, action: &[f32]) -> Result<Step, EnvError> {
        check_action_len(self.spec(), action)?;
        Ok(self.step(action))
    }

    /// [`Env::reset`] writing the observation into `obs` (`obs_dim` long).
    ///
    /// # Panics
    /// If `obs.len() != spec().obs_dim`.
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f64]) {
        obs.copy_from_slice(&self.reset(seed));
    }

    /// Checked [`Env::step`] writing the observation into `obs` (`obs_dim` long) instead of allocating.
    ///
    /// # Panics
    /// If `obs.len() != spec().obs_dim`.
    fn step_into(&mut self, action: &[f32], obs: &mut [f64]) -> Result<Transition, EnvError> {
        let step = self.try_step(action)?;
        obs.copy_from_slice(&step.obs);
        Ok(Transition { reward: step.reward, terminated: step.terminated, truncated: step.truncated })
    }

    /// What [`render::Renderer`] draws of the current state; every environment of this crate gives one,
    /// other implementations `None` (they cannot be rendered).
    fn scene(&mut self) -> Option<render::Scene<'_>> {
        None
    }
}

fn check_action_len(spec: &EnvSpec, action: &[f32]) -> Result<(), EnvError> {
    if action.len() == spec.act_dim {
        Ok(())
    } else {
        Err(EnvError::BadInput(format!(
            "{}: action has {} elements, expected {}",
            spec.id,
            action.len(),
            spec.act_dim
        )))
    }
}

/// What each environment of this crate implements: the unwrapped dynamics, writing into caller
/// buffers. [`Wrapped`] adds the RNG, input checks and the time limit once for all of them.
pub(crate) trait Core: Send {
    fn spec(&self) -> &EnvSpec;
    /// Gymnasium's reset body after seeding: draw the initial state from `rng`, write the observation.
    fn reset(&mut self, rng: &mut ChaCha8Rng, obs: &mut [f64]);
    /// One step; the action has the right length. Returns (reward, terminated).
    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> (f64, bool);
    /// Set the state (lengths and finiteness already checked against [`Core::state_dims`]).
    fn set_state(&mut self, qpos: &[f64], qvel: &[f64], obs: &mut [f64]);
    /// Lengths of `qpos` and `qvel` that [`Core::set_state`] takes.
    fn state_dims(&self) -> (usize, usize);
    /// The state the renderer draws.
    fn scene(&mut self) -> render::Scene<'_>;
}

/// Seed of the RNG before the first seeded reset, so that `reset(None)` is deterministic too.
const DEFAULT_SEED: u64 = 0;

/// A [`Core`] with its RNG and, for [`make`], Gymnasium's `TimeLimit`.
struct Wrapped<C> {
    core: C,
    rng: ChaCha8Rng,
    /// `Some(max_episode_steps)` for [`make`], `None` for [`make_unwrapped`].
    limit: Option<usize>,
    /// Steps since the last reset (TimeLimit's `_elapsed_steps`).
    elapsed: usize,
}

impl<C: Core> Wrapped<C> {
    fn new(core: C, time_limit: bool) -> Self {
        let limit = time_limit.then(|| core.spec().max_episode_steps);
        Wrapped { core, rng: ChaCha8Rng::seed_from_u64(DEFAULT_SEED), limit, elapsed: 0 }
    }
}

impl<C: Core> Env for Wrapped<C> {
    fn spec(&self) -> &EnvSpec {
        self.core.spec()
    }

    fn reset(&mut self, seed: Option<u64>) -> Vec<f64> {
        let mut obs = vec![0.0; self.core.spec().obs_dim];
        self.reset_into(seed, &mut obs);
        obs
    }

    fn step(&mut self, action: &[f32]) -> Step {
        let mut obs = vec![0.0; self.core.spec().obs_dim];
        match self.step_into(action, &mut obs) {
            Ok(t) => Step { obs, reward: t.reward, terminated: t.terminated, truncated: t.truncated },
            Err(e) => panic!("{e}"),
        }
    }

    fn set_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<Vec<f64>, EnvError> {
        let id = &self.core.spec().id;
        let (nq, nv) = self.core.state_dims();
        if qpos.len() != nq || qvel.len() != nv {
            return Err(EnvError::BadInput(format!(
                "{id}: set_state takes qpos of length {nq} and qvel of length {nv}, got {} and {}",
                qpos.len(),
                qvel.len()
            )));
        }
        if let Some(i) = qpos.iter().chain(qvel).position(|x| !x.is_finite()) {
            let (name, j) = if i < nq { ("qpos", i) } else { ("qvel", i - nq) };
            return Err(EnvError::BadInput(format!("{id}: {name}[{j}] is not finite")));
        }
        let mut obs = vec![0.0; self.core.spec().obs_dim];
        self.core.set_state(qpos, qvel, &mut obs);
        Ok(obs)
    }

    fn random_stream(&self) -> ChaCha8Rng {
        self.rng.clone()
    }

    fn set_random_stream(&mut self, rng: ChaCha8Rng) {
        self.rng = rng;
    }

    fn try_step(&mut self, action: &[f32]) -> Result<Step, EnvError> {
        check_action_len(self.core.spec(), action)?;
        Ok(self.step(action))
    }

    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f64]) {
        if let Some(seed) = seed {
            self.rng = ChaCha8Rng::seed_from_u64(seed);
        }
        self.elapsed = 0;
        self.core.reset(&mut self.rng, obs);
    }

    fn step_into(&mut self, action: &[f32], obs: &mut [f64]) -> Result<Transition, EnvError> {
        check_action_len(self.core.spec(), action)?;
        let (reward, terminated) = self.core.step(action, obs);
        self.elapsed += 1;
        let truncated = self.limit.is_some_and(|limit| self.elapsed >= limit);
        Ok(Transition { reward, terminated, truncated })
    }

    fn scene(&mut self) -> Option<render::Scene<'_>> {
        Some(self.core.scene())
    }
}

/// Every id [`make`] accepts, in a stable order.
pub fn known_ids() -> &'static [&'static str] {
    KNOWN_IDS
}

const KNOWN_IDS: &[&str] = &[
    "HalfCheetah-v4",
    "HalfCheetah-v5",
    "Hopper-v4",
    "Hopper-v5",
    "Walker2d-v4",
    "Walker2d-v5",
    "Ant-v4",
    "Ant-v5",
    "Humanoid-v4",
    "Humanoid-v5",
    "InvertedPendulum-v4",
    "InvertedPendulum-v5",
    "InvertedDoublePendulum-v4",
    "InvertedDoublePendulum-v5",
    "Swimmer-v4",
    "Swimmer-v5",
    "Reacher-v4",
    "Reacher-v5",
    "Pendulum-v1",
    "MountainCarContinuous-v0",
];

fn unknown(id: &str) -> EnvError {
    EnvError::UnknownId { id: id.to_owned(), known: KNOWN_IDS.to_vec() }
}

fn build(id: &str, time_limit: bool) -> Result<Box<dyn Env>, EnvError> {
    fn boxed<C: Core + 'static>(core: C, time_limit: bool) -> Box<dyn Env> {
        Box::new(Wrapped::new(core, time_limit))
    }
    let (name, version) = id.rsplit_once("-v").ok_or_else(|| unknown(id))?;
    let v5 = match version {
        "5" => true,
        "4" => false,
        _ if id == "Pendulum-v1" => return Ok(boxed(classic::Pendulum::new(), time_limit)),
        _ if id == "MountainCarContinuous-v0" => {
            return Ok(boxed(classic::MountainCar::new(), time_limit));
        }
        _ => return Err(unknown(id)),
    };
    mujoco::build(name, v5, time_limit).ok_or_else(|| unknown(id))?
}

/// The environment `id` wrapped in Gymnasium's time limit: `truncated` becomes true at
/// `max_episode_steps` (and stays true until the next reset, which clears the counter).
pub fn make(id: &str) -> Result<Box<dyn Env>, EnvError> {
    build(id, true)
}

/// The environment `id` without time limit: `truncated` is always false (Gymnasium's `env.unwrapped`).
pub fn make_unwrapped(id: &str) -> Result<Box<dyn Env>, EnvError> {
    build(id, false)
}

/// The static description of `id`.
pub fn spec(id: &str) -> Result<EnvSpec, EnvError> {
    Ok(make_unwrapped(id)?.spec().clone())
}

/// Deterministic evaluation: `episodes` episodes on a fresh (time-limited) env seeded with `seed` at the
/// first reset (then `None`), returns each episode's return. The policy writes the action for an
/// observation into its second argument (`act_dim` long, zeroed before each call).
pub fn evaluate(
    id: &str,
    episodes: usize,
    seed: u64,
    policy: impl FnMut(&[f64], &mut [f32]),
) -> Result<Vec<f64>, EnvError> {
    Ok(evaluate_episodes(id, episodes, seed, policy)?.into_iter().map(|e| e.ret).collect())
}

/// One evaluation episode: its undiscounted return and its length in steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Episode {
    pub ret: f64,
    pub length: u64,
}

/// [`evaluate`]'s episodes with their lengths (`spikerl eval`). `policy` is called once per step, in
/// order, so the first `episodes[0].length` calls are the first episode's.
pub fn evaluate_episodes(
    id: &str,
    episodes: usize,
    seed: u64,
    policy: impl FnMut(&[f64], &mut [f32]),
) -> Result<Vec<Episode>, EnvError> {
    evaluate_episodes_observed(id, episodes, seed, policy, |_, _| Ok(()))
}

/// [`evaluate_episodes`] with `observe(episode, env)` called after every reset and every step, with the
/// environment as it is then (a video captures its frames there); an error from it ends the episodes.
pub fn evaluate_episodes_observed<E: From<EnvError>>(
    id: &str,
    episodes: usize,
    seed: u64,
    mut policy: impl FnMut(&[f64], &mut [f32]),
    mut observe: impl FnMut(usize, &mut dyn Env) -> Result<(), E>,
) -> Result<Vec<Episode>, E> {
    let mut env = make(id)?;
    let spec = env.spec().clone();
    let mut obs = vec![0.0; spec.obs_dim];
    let mut action = vec![0.0f32; spec.act_dim];
    let mut out = Vec::with_capacity(episodes);
    for episode in 0..episodes {
        env.reset_into((episode == 0).then_some(seed), &mut obs);
        observe(episode, env.as_mut())?;
        let (mut ret, mut length) = (0.0, 0);
        loop {
            action.fill(0.0);
            policy(&obs, &mut action);
            let t = env.step_into(&action, &mut obs)?;
            ret += t.reward;
            length += 1;
            observe(episode, env.as_mut())?;
            if t.terminated || t.truncated {
                break;
            }
        }
        out.push(Episode { ret, length });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_id_lists_known_ids() {
        for bad in ["Nope-v4", "HalfCheetah-v3", "Pendulum-v4", "", "HalfCheetah"] {
            let err = make(bad).err().expect("must fail");
            assert!(matches!(err, EnvError::UnknownId { .. }), "{bad}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("'{bad}'")), "{msg}");
            for id in known_ids() {
                assert!(msg.contains(id), "{msg} lacks {id}");
            }
        }
    }

    #[test]
    fn every_known_id_builds_with_consistent_spec() {
        for &id in known_ids() {
            let mut env = make(id).unwrap();
            let spec = env.spec().clone();
            assert_eq!(spec.id, id);
            assert_eq!(spec.act_low.len(), spec.act_dim);
            assert_eq!(spec.act_high.len(), spec.act_dim);
            let obs = env.reset(Some(1));
            assert_eq!(obs.len(), spec.obs_dim, "{id}");
            let step = env.step(&vec![0.0; spec.act_dim]);
            assert_eq!(step.obs.len(), spec.obs_dim, "{id}");
            assert!(step.reward.is_finite(), "{id}");
        }
    }
}
