//! [`VecEnv`]: `n` copies of one environment stepped together, with auto-reset, for actors.
//!
//! Like Gymnasium's vector environments in "same-step" autoreset mode, with cleanrl's `real_next_obs`
//! built in: [`VecStep::next_obs`] is always the true next observation of each transition (the final
//! observation when an episode ended), while [`VecEnv::obs`] already holds the first observation of
//! the new episode for such an env. Stepping is allocation-free after construction.
//!
//! # Threads
//! [`VecEnv::new`] steps the envs one after another on the caller's thread. [`VecEnv::with_threads`]
//! adds `W - 1` persistent worker threads, started once by the constructor. On each step the caller
//! writes every env's action into that env's slot and wakes the workers; then each thread, the
//! caller included, claims envs one at a time and steps them until none is left, first from its own
//! contiguous range of `n / W` envs, then from the others' ranges. The caller returns once every env
//! is done. An env's trajectory depends only on its own seed and actions, never on the thread that
//! steps it, so every `W` gives bit-identical results.
//!
//! Envs are stepped by whichever thread claims them, so they must be `Send` ([`Env`] requires it).
//! The MuJoCo ones are: mujoco-rs 7 declares `MjModel` `Send + Sync` and `MjData<Arc<MjModel>>`
//! `Send`, and MuJoCo supports one compiled model shared read-only by many `mjData`, each stepped by
//! one thread at a time (here: under its slot's lock).
//!
//! Own ranges keep an env on one thread (and its MuJoCo data in one core's cache) while the threads
//! keep up; claiming from the others' ranges matters whenever a thread is late: a worker that wakes
//! up late (a busy machine) or an env whose step takes longer (contacts, a reset) leaves the rest to
//! the threads that are running, instead of the step waiting for one thread's fixed share. What
//! remains of the cost: the wait for the last env and about a microsecond of locking per step.
//!
//! Workers and the caller spin for a short while ([`SPIN`]) before they sleep: waking a sleeping thread
//! costs tens of microseconds on a VM (a futex wake and an inter-processor interrupt), more than a
//! MuJoCo step, so a pool that slept between steps lost to one thread (0.67x for 2 envs on 2 idle cores).
//! docs/performance.md has the figures.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker keeps polling for the next step, and the caller for the last env, before sleeping:
/// longer than an acting loop spends between steps (inference, batching), far shorter than any wait
/// on the network.
const SPIN: Duration = Duration::from_micros(200);

/// Spins until `ready()` or [`SPIN`] has passed; true when ready.
fn spin_until(ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= SPIN {
            return ready();
        }
    }
}

use crate::{Env, EnvError, EnvSpec, Transition, make};

/// Return and length of a finished episode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpisodeStats {
    /// Sum of the episode's rewards.
    pub ret: f64,
    /// Number of steps.
    pub len: usize,
}

/// The outcome of one [`VecEnv::step`], one entry per env.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VecStep {
    /// `n * obs_dim`: the true next observation of each transition (the real final observation when
    /// the episode ended, not the reset one).
    pub next_obs: Vec<f64>,
    pub rewards: Vec<f64>,
    pub terminated: Vec<bool>,
    pub truncated: Vec<bool>,
    /// `Some` for each env whose episode ended on this step.
    pub finished: Vec<Option<EpisodeStats>>,
}

/// `n` time-limited copies of one environment.
pub struct VecEnv {
    spec: EnvSpec,
    runner: Runner,
    /// `n * obs_dim`: what the policy acts on now.
    obs: Vec<f64>,
    step: VecStep,
}

enum Runner {
    /// One thread: the envs are stepped in order on the caller's thread, nothing else is involved.
    Sequential(Vec<Episode>),
    Threaded(Pool),
}

/// Seed of env `i` of a [`VecEnv`] seeded with `seed` (Gymnasium's vector convention, `seed + i`).
pub fn env_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_add(i as u64)
}

impl VecEnv {
    /// `n` envs `id` (with time limit), stepped on the caller's thread; env `i` is reset with seed
    /// [`env_seed`]`(seed, i)`.
    pub fn new(id: &str, n: usize, seed: u64) -> Result<Self, EnvError> {
        Self::with_threads(id, n, seed, 1)
    }

    /// [`VecEnv::new`] with the envs stepped by `threads` threads: the caller's and `threads - 1`
    /// workers (fewer when there are fewer envs). Same results as with one thread, bit for bit.
    pub fn with_threads(id: &str, n: usize, seed: u64, threads: usize) -> Result<Self, EnvError> {
        if n == 0 {
            return Err(EnvError::BadInput("VecEnv needs at least one environment".into()));
        }
        let envs = (0..n).map(|_| make(id)).collect::<Result<Vec<_>, _>>()?;
        Self::from_envs(envs, seed, threads)
    }

    /// A `VecEnv` over environments built by the caller (all with the same spec; time limits are the
    /// caller's business), stepped by `threads` threads as in [`VecEnv::with_threads`]. Env `i` is
    /// reset here with seed [`env_seed`]`(seed, i)`.
    pub fn from_envs(mut envs: Vec<Box<dyn Env>>, seed: u64, threads: usize) -> Result<Self, EnvError> {
        if envs.is_empty() {
            return Err(EnvError::BadInput("VecEnv needs at least one environment".into()));
        }
        if threads == 0 {
            return Err(EnvError::BadInput("VecEnv needs at least one thread".into()));
        }
        let spec = envs[0].spec().clone();
        if let Some(i) = envs.iter().position(|e| *e.spec() != spec) {
            return Err(EnvError::BadInput(format!(
                "VecEnv envs must share one spec: env {i} is {} but env 0 is {}",
                envs[i].spec().id,
                spec.id
            )));
        }
        let (n, d) = (envs.len(), spec.obs_dim);
        let mut obs = vec![0.0; n * d];
        for (i, (env, row)) in envs.iter_mut().zip(obs.chunks_exact_mut(d)).enumerate() {
            env.reset_into(Some(env_seed(seed, i)), row);
        }
        let episodes: Vec<Episode> = envs.into_iter().map(Episode::new).collect();
        let runner = match threads.min(n) {
            1 => Runner::Sequential(episodes),
            w => Runner::Threaded(Pool::start(episodes, &spec, w - 1)?),
        };
        Ok(VecEnv {
            runner,
            obs,
            step: VecStep {
                next_obs: vec![0.0; n * d],
                rewards: vec![0.0; n],
                terminated: vec![false; n],
                truncated: vec![false; n],
                finished: vec![None; n],
            },
            spec,
        })
    }

    /// The spec shared by all envs.
    pub fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Number of envs.
    pub fn num_envs(&self) -> usize {
        self.step.rewards.len()
    }

    /// Threads stepping the envs: the caller's plus the workers (at most the number of envs).
    pub fn threads(&self) -> usize {
        match &self.runner {
            Runner::Sequential(_) => 1,
            Runner::Threaded(pool) => 1 + pool.workers.len(),
        }
    }

    /// `n * obs_dim`, row-major: the observations the policy should act on now.
    pub fn obs(&self) -> &[f64] {
        &self.obs
    }

    /// Steps every env with its row of `actions` (`n * act_dim`, row-major). Envs whose episode ends
    /// are reset (seed `None`). Non-finite actions are rejected: they mean a broken policy.
    ///
    /// An error from an env comes back as it is (the first one in env order); the other envs may then
    /// have been stepped or not. With worker threads, a panic inside an env becomes
    /// [`EnvError::Worker`], now and on every later call (that env's state is unknown).
    pub fn step(&mut self, actions: &[f32]) -> Result<&VecStep, EnvError> {
        let (n, d, a) = (self.num_envs(), self.spec.obs_dim, self.spec.act_dim);
        if actions.len() != n * a {
            return Err(EnvError::BadInput(format!(
                "{}: {} actions for {n} envs of action size {a}, expected {}",
                self.spec.id,
                actions.len(),
                n * a
            )));
        }
        if let Some(i) = actions.iter().position(|x| !x.is_finite()) {
            return Err(EnvError::BadInput(format!("action {} of env {} is not finite", i % a, i / a)));
        }
        let s = &mut self.step;
        match &mut self.runner {
            Runner::Sequential(episodes) => {
                for (i, e) in episodes.iter_mut().enumerate() {
                    let next = &mut s.next_obs[i * d..(i + 1) * d];
                    let obs = &mut self.obs[i * d..(i + 1) * d];
                    let (t, finished) = e.step(&actions[i * a..(i + 1) * a], next, obs)?;
                    s.rewards[i] = t.reward;
                    s.terminated[i] = t.terminated;
                    s.truncated[i] = t.truncated;
                    s.finished[i] = finished;
                }
            }
            Runner::Threaded(pool) => pool.step(actions, s, &mut self.obs)?,
        }
        Ok(&self.step)
    }
}

/// An env with the return and length of its current episode.
struct Episode {
    env: Box<dyn Env>,
    ret: f64,
    len: usize,
}

impl Episode {
    fn new(env: Box<dyn Env>) -> Episode {
        Episode { env, ret: 0.0, len: 0 }
    }

    /// One step with auto-reset: `next` gets the true next observation, `obs` the one to act on now
    /// (the same, or the first of a new episode). Returns the episode's stats when it ended.
    fn step(
        &mut self,
        action: &[f32],
        next: &mut [f64],
        obs: &mut [f64],
    ) -> Result<(Transition, Option<EpisodeStats>), EnvError> {
        let t = self.env.step_into(action, next)?;
        self.ret += t.reward;
        self.len += 1;
        if t.terminated || t.truncated {
            let stats = EpisodeStats { ret: self.ret, len: self.len };
            self.ret = 0.0;
            self.len = 0;
            self.env.reset_into(None, obs);
            Ok((t, Some(stats)))
        } else {
            obs.copy_from_slice(next);
            Ok((t, None))
        }
    }
}

/// The worker threads and what they share with the caller.
struct Pool {
    shared: Arc<Shared>,
    workers: Vec<Worker>,
    /// Set once an env panicked: its state is unknown, so every later step fails with this reason.
    broken: Option<String>,
}

/// A worker's wake-up slot (its sender dropped to stop it) and its thread.
struct Worker {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What the caller and the workers of a [`Pool`] share.
struct Shared {
    /// One per env; locked by whichever thread steps it (never contended: the counter hands each env
    /// to one thread per step) and by the caller to write actions and read results.
    slots: Vec<Mutex<Slot>>,
    /// Envs are claimed from W contiguous ranges, one per thread (the caller's is the first): each
    /// thread takes from its own range first and then from the others', so that, when all keep
    /// up, an env is stepped by the same thread every time and its MuJoCo data stays in that
    /// core's cache.
    ranges: Vec<Claims>,
    /// Steps started so far: a worker that sees it change has a step to work on.
    generation: AtomicU64,
    /// Envs done in the current step; the caller spins, then sleeps on `all_done` (under `sleep`)
    /// until it reaches n.
    done: AtomicUsize,
    sleep: Mutex<()>,
    all_done: Condvar,
}

/// A range of envs claimed one at a time from the front.
struct Claims {
    start: usize,
    end: usize,
    /// The next env to claim in the current step; `>= end` when none is left.
    next: AtomicUsize,
}

/// One env with its inputs and outputs for the current step.
struct Slot {
    episode: Episode,
    action: Vec<f32>,
    next_obs: Vec<f64>,
    obs: Vec<f64>,
    outcome: Result<(Transition, Option<EpisodeStats>), EnvError>,
}

/// A mutex whose holder panicked is still usable here: slots are written by `catch_unwind`-guarded
/// steps only, and the counters are plain numbers.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    fn start(episodes: Vec<Episode>, spec: &EnvSpec, workers: usize) -> Result<Pool, EnvError> {
        let slots = episodes
            .into_iter()
            .map(|episode| {
                Mutex::new(Slot {
                    episode,
                    action: vec![0.0; spec.act_dim],
                    next_obs: vec![0.0; spec.obs_dim],
                    obs: vec![0.0; spec.obs_dim],
                    outcome: Err(EnvError::Worker("not stepped yet".into())),
                })
            })
            .collect::<Vec<_>>();
        let (n, w) = (slots.len(), workers + 1);
        // Range k holds n / w envs, one more for the first n % w.
        let mut start = 0;
        let ranges = (0..w)
            .map(|k| {
                let end = start + n / w + usize::from(k < n % w);
                // Nothing to claim until the first step.
                let claims = Claims { start, end, next: AtomicUsize::new(end) };
                start = end;
                claims
            })
            .collect();
        let shared = Arc::new(Shared {
            slots,
            ranges,
            generation: AtomicU64::new(0),
            done: AtomicUsize::new(n),
            sleep: Mutex::new(()),
            all_done: Condvar::new(),
        });
        // On an error the workers already started are stopped by the pool's drop.
        let mut pool = Pool { shared, workers: Vec::with_capacity(workers), broken: None };
        for k in 1..=workers {
            // One slot: a wake-up sent while the worker is still busy with the last step is kept,
            // and a second one would be redundant.
            let (wake, woken) = sync_channel::<()>(1);
            let shared = Arc::clone(&pool.shared);
            let thread = std::thread::Builder::new()
                .name(format!("env-worker-{k}"))
                .spawn(move || {
                    let mut seen = 0;
                    loop {
                        // Poll for the next step while one is likely to come soon...
                        while spin_until(|| shared.generation.load(Ordering::Acquire) != seen) {
                            seen = shared.generation.load(Ordering::Acquire);
                            shared.work(k);
                        }
                        // ...then sleep until woken. Ends when the pool drops its sender. A wake-up
                        // for a step already done by polling just leads back to polling.
                        if woken.recv().is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| EnvError::Worker(format!("cannot start env worker thread {k}: {e}")))?;
            pool.workers.push(Worker { wake: Some(wake), thread: Some(thread) });
        }
        Ok(pool)
    }

    fn step(&mut self, actions: &[f32], s: &mut VecStep, obs: &mut [f64]) -> Result<(), EnvError> {
        if let Some(why) = &self.broken {
            return Err(EnvError::Worker(why.clone()));
        }
        let sh = &*self.shared;
        let n = sh.slots.len();
        let a = actions.len() / n;
        for (slot, action) in sh.slots.iter().zip(actions.chunks_exact(a)) {
            lock(slot).action.copy_from_slice(action);
        }
        // `done` before the claims: a worker can count an env only after claiming one. The claims
        // before the generation: a worker that sees the new generation finds them reset.
        sh.done.store(0, Ordering::Release);
        for r in &sh.ranges {
            r.next.store(r.start, Ordering::Release);
        }
        sh.generation.fetch_add(1, Ordering::AcqRel);
        for w in &self.workers {
            // A full slot means a wake-up is still pending, which is as good. A worker cannot have
            // ended (it does so only when its sender is dropped; env panics are caught), and if one
            // had, the other threads would still step every env.
            if let Some(wake) = &w.wake {
                let _ = wake.try_send(());
            }
        }
        sh.work(0);
        if !spin_until(|| sh.done.load(Ordering::Acquire) >= n) {
            let mut guard = lock(&sh.sleep);
            // Checked under `sleep`: the last env's notify takes that lock, so it cannot slip in
            // between this check and the wait.
            while sh.done.load(Ordering::Acquire) < n {
                guard = sh.all_done.wait(guard).unwrap_or_else(PoisonError::into_inner);
            }
        }
        let d = obs.len() / n;
        let mut result = Ok(());
        for (i, slot) in sh.slots.iter().enumerate() {
            let mut slot = lock(slot);
            match &slot.outcome {
                Ok((t, finished)) => {
                    s.next_obs[i * d..(i + 1) * d].copy_from_slice(&slot.next_obs);
                    obs[i * d..(i + 1) * d].copy_from_slice(&slot.obs);
                    s.rewards[i] = t.reward;
                    s.terminated[i] = t.terminated;
                    s.truncated[i] = t.truncated;
                    s.finished[i] = *finished;
                }
                Err(_) => {
                    // The placeholder (an empty String) does not allocate; the next step overwrites it.
                    let taken = std::mem::replace(&mut slot.outcome, Err(EnvError::Worker(String::new())));
                    if let Err(e) = taken {
                        if let EnvError::Worker(why) = &e {
                            self.broken.get_or_insert_with(|| why.clone());
                        }
                        if result.is_ok() {
                            result = Err(e);
                        }
                    }
                }
            }
        }
        result
    }
}

impl Shared {
    /// Claims envs of the current step one at a time, from range `home` first, then from the
    /// following ones, and steps them until none is left. Run by the caller (`home` 0) and by each
    /// woken worker; a worker woken late finds nothing and goes back to sleep.
    fn work(&self, home: usize) {
        let (n, w) = (self.slots.len(), self.ranges.len());
        for r in (home..w).chain(0..home).map(|k| &self.ranges[k]) {
            loop {
                let i = r.next.fetch_add(1, Ordering::AcqRel);
                if i >= r.end {
                    break;
                }
                self.step_env(i, n);
            }
        }
    }

    fn step_env(&self, i: usize, n: usize) {
        {
            let mut guard = lock(&self.slots[i]);
            let slot = &mut *guard;
            // A panic stays inside this env's step: the thread lives on and the caller gets an
            // error instead of waiting forever for this env.
            slot.outcome = catch_unwind(AssertUnwindSafe(|| {
                slot.episode.step(&slot.action, &mut slot.next_obs, &mut slot.obs)
            }))
            .unwrap_or_else(|panic| {
                Err(EnvError::Worker(format!("env {i} panicked: {}", panic_message(&*panic))))
            });
        }
        if self.done.fetch_add(1, Ordering::AcqRel) + 1 == n {
            let _guard = lock(&self.sleep);
            self.all_done.notify_one();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Dropping the wake-up senders ends the workers' loops; joining waits for them.
        for w in &mut self.workers {
            drop(w.wake.take());
        }
        for w in &mut self.workers {
            if let Some(thread) = w.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::make_unwrapped;

    #[test]
    fn auto_reset_keeps_true_final_observation() {
        // Pendulum never terminates: its 200-step time limit ends every episode at the same step.
        let mut v = VecEnv::new("Pendulum-v1", 2, 7).unwrap();
        let mut reference = make_unwrapped("Pendulum-v1").unwrap();
        let mut expected = reference.reset(Some(env_seed(7, 0)));
        assert_eq!(&v.obs()[..3], &expected[..]);
        let actions = [0.5f32, -1.0];
        for t in 1..=200 {
            let s = v.step(&actions).unwrap().clone();
            let r = reference.step(&actions[..1]);
            expected = r.obs.clone();
            assert_eq!(&s.next_obs[..3], &expected[..], "step {t}");
            assert_eq!(s.rewards[0], r.reward);
            if t < 200 {
                assert!(s.finished.iter().all(Option::is_none));
                assert_eq!(&v.obs()[..3], &expected[..]);
            } else {
                assert!(s.truncated.iter().all(|&x| x) && !s.terminated[0]);
                let stats = s.finished[0].expect("episode finished");
                assert_eq!(stats.len, 200);
                // The reset observation replaced obs(), not next_obs.
                let after_reset = reference.reset(None);
                assert_eq!(&v.obs()[..3], &after_reset[..]);
                assert_ne!(&v.obs()[..3], &s.next_obs[..3]);
            }
        }
    }

    #[test]
    fn terminations_reset_with_episode_stats() {
        // Random-ish large actions topple the InvertedPendulum within a few steps.
        let mut v = VecEnv::new("InvertedPendulum-v5", 3, 1).unwrap();
        let mut finished = 0;
        for t in 0..200 {
            let actions: Vec<f32> = (0..3).map(|i| if (t / 5 + i) % 2 == 0 { 3.0 } else { -3.0 }).collect();
            let s = v.step(&actions).unwrap();
            for i in 0..3 {
                if let Some(stats) = s.finished[i] {
                    assert!(s.terminated[i]);
                    // v5 pays 1 per step before the terminating one.
                    assert_eq!(stats.ret, (stats.len - 1) as f64);
                    finished += 1;
                }
            }
        }
        assert!(finished > 3);
    }

    #[test]
    fn bad_actions_are_errors() {
        let mut v = VecEnv::new("Pendulum-v1", 2, 0).unwrap();
        assert!(matches!(v.step(&[0.0]), Err(EnvError::BadInput(_))));
        assert!(matches!(v.step(&[0.0, f32::NAN]), Err(EnvError::BadInput(_))));
        assert!(VecEnv::new("Pendulum-v1", 0, 0).is_err());
    }
}
