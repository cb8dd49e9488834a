//! [`VecEnv`]: `n` copies of one environment stepped together, with auto-reset, for actors.
//!
//! Like Gymnasium's vector environments in "same-step" autoreset mode, with cleanrl's `real_next_obs`
//! built in: [`VecStep::next_obs`] is always the true next observation of each transition (the final
//! observation when an episode ended), while [`VecEnv::obs`] already holds the first observation of
//! the new episode for such an env. Stepping is allocation-free after construction.
//!
//! # Threads
//! [`VecEnv::new`] steps the envs one after another on the caller's thread. [`VecEnv::with_threads`]
//! splits them into `W` contiguous chunks: the caller steps the first chunk itself while `W - 1`
//! persistent worker threads, started once by the constructor, step the others. An env's trajectory
//! depends only on its own seed and actions, never on the thread that steps it, so every `W` gives
//! bit-identical results. Each worker owns its envs; per step it receives its rows of the actions and
//! returns its rows of the outcome over a pair of one-slot channels, the buffers going back and forth
//! (no allocation, no lock held while stepping), and the caller copies the rows in and out. That
//! hand-off, a wake-up of a parked thread per worker and step, is what bounds the speed-up for cheap
//! steps (docs/performance.md has the figures).

use std::any::Any;
use std::ops::Range;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::{Env, EnvError, EnvSpec, make};

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

impl VecStep {
    fn zeroed(n: usize, obs_dim: usize) -> VecStep {
        VecStep {
            next_obs: vec![0.0; n * obs_dim],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            finished: vec![None; n],
        }
    }
}

/// `n` time-limited copies of one environment.
pub struct VecEnv {
    spec: EnvSpec,
    /// The envs this thread steps: all of them, or the first chunk when there are workers.
    local: Chunk,
    /// Threads stepping the other chunks, in env order; empty for one thread, and then nothing but
    /// `local` is involved in a step.
    workers: Vec<Worker>,
    /// `n * obs_dim`: what the policy acts on now.
    obs: Vec<f64>,
    step: VecStep,
    /// Set when a worker thread died (a panic inside an env): its envs died with it, so every later
    /// step fails with this reason.
    broken: Option<String>,
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

    /// [`VecEnv::new`] with the envs split over `threads` threads (the caller's and `threads - 1`
    /// workers; more threads than envs are not started). Same results as with one thread, bit for bit.
    pub fn with_threads(id: &str, n: usize, seed: u64, threads: usize) -> Result<Self, EnvError> {
        if n == 0 {
            return Err(EnvError::BadInput(
                "VecEnv needs at least one environment".into(),
            ));
        }
        let envs = (0..n).map(|_| make(id)).collect::<Result<Vec<_>, _>>()?;
        Self::from_envs(envs, seed, threads)
    }

    /// A `VecEnv` over environments built by the caller (all with the same spec; time limits are the
    /// caller's business), split over `threads` threads as in [`VecEnv::with_threads`]. Env `i` is
    /// reset here with seed [`env_seed`]`(seed, i)`.
    pub fn from_envs(
        mut envs: Vec<Box<dyn Env>>,
        seed: u64,
        threads: usize,
    ) -> Result<Self, EnvError> {
        if envs.is_empty() {
            return Err(EnvError::BadInput(
                "VecEnv needs at least one environment".into(),
            ));
        }
        if threads == 0 {
            return Err(EnvError::BadInput(
                "VecEnv needs at least one thread".into(),
            ));
        }
        let spec = envs[0].spec().clone();
        if let Some(i) = envs.iter().position(|e| *e.spec() != spec) {
            return Err(EnvError::BadInput(format!(
                "VecEnv envs must share one spec: env {i} is {} but env 0 is {}",
                envs[i].spec().id,
                spec.id
            )));
        }
        let (n, d, a) = (envs.len(), spec.obs_dim, spec.act_dim);
        let mut obs = vec![0.0; n * d];
        for (i, (env, row)) in envs.iter_mut().zip(obs.chunks_exact_mut(d)).enumerate() {
            env.reset_into(Some(env_seed(seed, i)), row);
        }
        // Chunk k holds n / w envs, one more for the first n % w: the caller's chunk is never the
        // smaller one, since it starts stepping while the workers are still waking up.
        let w = threads.min(n);
        let mut starts = vec![0];
        for k in 0..w {
            starts.push(starts[k] + n / w + usize::from(k < n % w));
        }
        let mut workers = Vec::with_capacity(w - 1);
        for k in (1..w).rev() {
            // On an error the workers already started are dropped, which stops them.
            workers.push(Worker::start(envs.split_off(starts[k]), starts[k], d, a)?);
        }
        workers.reverse();
        Ok(VecEnv {
            local: Chunk::new(envs),
            workers,
            obs,
            step: VecStep::zeroed(n, d),
            spec,
            broken: None,
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
        1 + self.workers.len()
    }

    /// `n * obs_dim`, row-major: the observations the policy should act on now.
    pub fn obs(&self) -> &[f64] {
        &self.obs
    }

    /// Steps every env with its row of `actions` (`n * act_dim`, row-major). Envs whose episode ends
    /// are reset (seed `None`). Non-finite actions are rejected: they mean a broken policy.
    ///
    /// An error from an env comes back as it is (the first one in env order); envs may then have been
    /// stepped or not. A worker thread that panicked gives [`EnvError::Worker`], now and on every later
    /// call.
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
            return Err(EnvError::BadInput(format!(
                "action {} of env {} is not finite",
                i % a,
                i / a
            )));
        }
        if self.workers.is_empty() {
            let rows = Rows::of(&mut self.step, &mut self.obs, 0..n, d);
            self.local.step(actions, d, a, rows)?;
        } else {
            self.step_threaded(actions)?;
        }
        Ok(&self.step)
    }

    fn step_threaded(&mut self, actions: &[f32]) -> Result<(), EnvError> {
        let (d, a) = (self.spec.obs_dim, self.spec.act_dim);
        if self.broken.is_none() && self.workers.iter().any(|w| w.job.is_none()) {
            // Only a panic on this thread, in the middle of a step, leaves a job out.
            self.broken = Some("a previous step was interrupted".into());
        }
        if let Some(why) = &self.broken {
            return Err(EnvError::Worker(why.clone()));
        }
        // Workers first, so that they step while this thread steps its own chunk.
        for w in &mut self.workers {
            if let Some(mut job) = w.job.take() {
                job.actions
                    .copy_from_slice(&actions[w.envs.start * a..w.envs.end * a]);
                let sent = match &w.jobs {
                    Some(tx) => tx.send(job).map_err(|e| e.0),
                    None => Err(job),
                };
                if let Err(job) = sent {
                    // The worker is gone; the receive below finds out why.
                    w.job = Some(job);
                }
            }
        }
        let own = 0..self.local.envs.len();
        let rows = Rows::of(&mut self.step, &mut self.obs, own.clone(), d);
        let mut result = self.local.step(&actions[..own.end * a], d, a, rows);
        for w in &mut self.workers {
            let reply = match w.job.take() {
                // Not sent: its thread had already ended.
                Some(job) => {
                    w.job = Some(job);
                    Err(())
                }
                None => w.done.recv().map_err(|_| ()),
            };
            let failure = match reply {
                Ok(mut job) => {
                    let out = Rows::of(&mut self.step, &mut self.obs, w.envs.clone(), d);
                    out.copy_from(&job);
                    let r = std::mem::replace(&mut job.result, Ok(()));
                    w.job = Some(job);
                    r.err()
                }
                // It dropped its end of the channel without replying: it panicked.
                Err(()) => {
                    let why = w.failure();
                    self.broken.get_or_insert_with(|| why.clone());
                    Some(EnvError::Worker(why))
                }
            };
            if let (Ok(()), Some(e)) = (&result, failure) {
                result = Err(e);
            }
        }
        result
    }
}

/// Envs stepped one after another on one thread, with their running episode statistics.
struct Chunk {
    envs: Vec<Box<dyn Env>>,
    /// Return and length of each env's current episode.
    returns: Vec<f64>,
    lens: Vec<usize>,
}

impl Chunk {
    fn new(envs: Vec<Box<dyn Env>>) -> Chunk {
        let n = envs.len();
        Chunk {
            envs,
            returns: vec![0.0; n],
            lens: vec![0; n],
        }
    }

    /// Steps env `i` with row `i` of `actions`, writing row `i` of `s`; resets ended episodes.
    fn step(&mut self, actions: &[f32], d: usize, a: usize, s: Rows<'_>) -> Result<(), EnvError> {
        for (i, env) in self.envs.iter_mut().enumerate() {
            let next = &mut s.next_obs[i * d..(i + 1) * d];
            let t = env.step_into(&actions[i * a..(i + 1) * a], next)?;
            s.rewards[i] = t.reward;
            s.terminated[i] = t.terminated;
            s.truncated[i] = t.truncated;
            self.returns[i] += t.reward;
            self.lens[i] += 1;
            let obs = &mut s.obs[i * d..(i + 1) * d];
            if t.terminated || t.truncated {
                s.finished[i] = Some(EpisodeStats {
                    ret: self.returns[i],
                    len: self.lens[i],
                });
                self.returns[i] = 0.0;
                self.lens[i] = 0;
                env.reset_into(None, obs);
            } else {
                s.finished[i] = None;
                obs.copy_from_slice(next);
            }
        }
        Ok(())
    }
}

/// One chunk's rows of a step's outputs.
struct Rows<'a> {
    next_obs: &'a mut [f64],
    obs: &'a mut [f64],
    rewards: &'a mut [f64],
    terminated: &'a mut [bool],
    truncated: &'a mut [bool],
    finished: &'a mut [Option<EpisodeStats>],
}

impl<'a> Rows<'a> {
    /// Rows `envs` of `step` and `obs`.
    fn of(step: &'a mut VecStep, obs: &'a mut [f64], envs: Range<usize>, d: usize) -> Rows<'a> {
        let (lo, hi) = (envs.start, envs.end);
        Rows {
            next_obs: &mut step.next_obs[lo * d..hi * d],
            obs: &mut obs[lo * d..hi * d],
            rewards: &mut step.rewards[lo..hi],
            terminated: &mut step.terminated[lo..hi],
            truncated: &mut step.truncated[lo..hi],
            finished: &mut step.finished[lo..hi],
        }
    }

    /// Copies a worker's outcome into these rows.
    fn copy_from(self, job: &Job) {
        self.next_obs.copy_from_slice(&job.step.next_obs);
        self.obs.copy_from_slice(&job.obs);
        self.rewards.copy_from_slice(&job.step.rewards);
        self.terminated.copy_from_slice(&job.step.terminated);
        self.truncated.copy_from_slice(&job.step.truncated);
        self.finished.copy_from_slice(&job.step.finished);
    }
}

/// What travels between the caller and a worker on each step: the chunk's actions in, its outcome
/// back. Allocated once per worker; owned by whichever side is working with it.
struct Job {
    actions: Vec<f32>,
    obs: Vec<f64>,
    step: VecStep,
    result: Result<(), EnvError>,
}

/// A persistent thread that owns and steps envs `envs` of a [`VecEnv`].
struct Worker {
    envs: Range<usize>,
    /// The job's buffers while they are on the caller's side (between steps); `None` while the
    /// worker has them.
    job: Option<Job>,
    /// `None` once dropped, which tells the worker to end.
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Job>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn start(
        envs: Vec<Box<dyn Env>>,
        first: usize,
        d: usize,
        a: usize,
    ) -> Result<Worker, EnvError> {
        let n = envs.len();
        let range = first..first + n;
        // One slot each way: a worker never has more than one job, and its reply never waits for the
        // caller (which matters when the caller is dropping the VecEnv instead of receiving).
        let (jobs, todo) = sync_channel::<Job>(1);
        let (finished, done) = sync_channel::<Job>(1);
        let mut chunk = Chunk::new(envs);
        let thread = std::thread::Builder::new()
            .name(format!("env-{}-{}", range.start, range.end - 1))
            .spawn(move || {
                // Ends when the VecEnv drops its sender.
                while let Ok(mut job) = todo.recv() {
                    let rows = Rows::of(&mut job.step, &mut job.obs, 0..n, d);
                    job.result = chunk.step(&job.actions, d, a, rows);
                    if finished.send(job).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| {
                EnvError::Worker(format!("cannot start a thread for envs {range:?}: {e}"))
            })?;
        Ok(Worker {
            job: Some(Job {
                actions: vec![0.0; n * a],
                obs: vec![0.0; n * d],
                step: VecStep::zeroed(n, d),
                result: Ok(()),
            }),
            envs: range,
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Why the thread ended, once it has (joins it).
    fn failure(&mut self) -> String {
        let envs = &self.envs;
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(panic)) => format!(
                "the thread stepping envs {envs:?} panicked: {}",
                panic_message(&*panic)
            ),
            _ => format!("the thread stepping envs {envs:?} has ended"),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the job channel ends the worker's loop; joining waits until it has dropped its envs.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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
            let actions: Vec<f32> = (0..3)
                .map(|i| if (t / 5 + i) % 2 == 0 { 3.0 } else { -3.0 })
                .collect();
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
        assert!(matches!(
            v.step(&[0.0, f32::NAN]),
            Err(EnvError::BadInput(_))
        ));
        assert!(VecEnv::new("Pendulum-v1", 0, 0).is_err());
    }
}
