//! The threaded `VecEnv` against the sequential one: same trajectories bit for bit, errors and panics
//! of an env reach the caller, workers end when it is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spikerl_envs::vector::{VecEnv, VecStep};
use spikerl_envs::{Env, EnvError, EnvSpec, Step, make};

/// Everything a step exposes, as bits (so that -0.0 vs 0.0 or NaN payloads would count as different).
fn record(s: &VecStep, obs: &[f64]) -> Vec<u64> {
    let mut out: Vec<u64> = s.next_obs.iter().chain(&s.rewards).chain(obs).map(|x| x.to_bits()).collect();
    out.extend(s.terminated.iter().zip(&s.truncated).map(|(&a, &b)| u64::from(a) | u64::from(b) << 1));
    for f in &s.finished {
        out.extend(f.map_or([u64::MAX, u64::MAX], |e| [e.ret.to_bits(), e.len as u64]));
    }
    out
}

/// `steps` steps of `n` envs on `threads` threads with random actions (the same for every thread count)
/// spanning 1.5 times the action box; returns every step's record and the number of finished episodes.
fn trajectory(id: &str, n: usize, threads: usize, steps: usize) -> (Vec<Vec<u64>>, usize) {
    let mut v = VecEnv::with_threads(id, n, 11, threads).unwrap();
    assert_eq!(v.threads(), threads.min(n));
    let spec = v.spec().clone();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut out = vec![v.obs().iter().map(|x| x.to_bits()).collect()];
    let mut episodes = 0;
    for _ in 0..steps {
        let actions: Vec<f32> = (0..n * spec.act_dim)
            .map(|i| 1.5 * spec.act_high[i % spec.act_dim] as f32 * rng.random_range(-1.0f32..1.0))
            .collect();
        let s = v.step(&actions).unwrap().clone();
        episodes += s.finished.iter().flatten().count();
        out.push(record(&s, v.obs()));
    }
    (out, episodes)
}

#[test]
fn threads_give_the_sequential_trajectories_bit_for_bit() {
    // Hopper falls within tens of steps under random actions (terminations, resets at odd times in
    // every env); Pendulum runs into its 200-step time limit (truncations, all envs at once).
    for (id, steps, min_episodes) in [("Hopper-v4", 400, 20), ("Pendulum-v1", 450, 10)] {
        let n = 5;
        let (sequential, episodes) = trajectory(id, n, 1, steps);
        assert!(episodes >= min_episodes, "{id}: only {episodes} episodes ended: resets not exercised");
        // 2 and 3: fewer threads than envs; 5: as many; 8: more threads than envs (5 started).
        for threads in [2, 3, 5, 8] {
            let (threaded, _) = trajectory(id, n, threads, steps);
            for (t, (a, b)) in sequential.iter().zip(&threaded).enumerate() {
                assert!(a == b, "{id}, {threads} threads: step {t} differs from one thread");
            }
        }
    }
}

#[test]
fn bad_actions_are_errors_and_leave_the_threads_working() {
    let mut v = VecEnv::with_threads("Pendulum-v1", 3, 0, 2).unwrap();
    assert!(matches!(v.step(&[0.0, 0.0]), Err(EnvError::BadInput(_))));
    assert!(matches!(v.step(&[0.0, 0.0, 0.0, 0.0]), Err(EnvError::BadInput(_))));
    for bad in [f32::NAN, f32::INFINITY] {
        let err = v.step(&[0.0, 0.0, bad]).expect_err("must fail");
        assert!(matches!(err, EnvError::BadInput(_)));
        assert!(err.to_string().contains("env 2"), "{err}");
    }
    assert_eq!(v.step(&[0.1, 0.2, 0.3]).unwrap().rewards.len(), 3);
    assert!(matches!(VecEnv::with_threads("Pendulum-v1", 2, 0, 0), Err(EnvError::BadInput(_))));
    assert!(matches!(VecEnv::with_threads("Pendulum-v1", 0, 0, 2), Err(EnvError::BadInput(_))));
    assert!(matches!(VecEnv::with_threads("Nope-v1", 2, 0, 2), Err(EnvError::UnknownId { .. })));
}

#[test]
fn envs_with_different_specs_are_refused() {
    let envs = vec![make("Pendulum-v1").unwrap(), make("MountainCarContinuous-v0").unwrap()];
    let err = VecEnv::from_envs(envs, 0, 2).err().expect("must fail");
    assert!(err.to_string().contains("MountainCarContinuous-v0"), "{err}");
}

/// Pendulum that fails on a chosen step (by panicking or with an error) and counts its drops.
struct Faulty {
    inner: Box<dyn Env>,
    steps: usize,
    fail_at: Option<(usize, bool)>,
    dropped: Arc<AtomicUsize>,
}

impl Faulty {
    fn envs(
        n: usize,
        faulty: usize,
        fail_at: (usize, bool),
        dropped: &Arc<AtomicUsize>,
    ) -> Vec<Box<dyn Env>> {
        (0..n)
            .map(|i| {
                Box::new(Faulty {
                    inner: make("Pendulum-v1").unwrap(),
                    steps: 0,
                    fail_at: (i == faulty).then_some(fail_at),
                    dropped: dropped.clone(),
                }) as Box<dyn Env>
            })
            .collect()
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Env for Faulty {
    fn spec(&self) -> &EnvSpec {
        self.inner.spec()
    }
    fn reset(&mut self, seed: Option<u64>) -> Vec<f64> {
        self.inner.reset(seed)
    }
    fn step(&mut self, action: &[f32]) -> Step {
        self.inner.step(action)
    }
    fn set_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<Vec<f64>, EnvError> {
        self.inner.set_state(qpos, qvel)
    }
    fn random_stream(&self) -> rand_chacha::ChaCha8Rng {
        self.inner.random_stream()
    }
    fn set_random_stream(&mut self, rng: rand_chacha::ChaCha8Rng) {
        self.inner.set_random_stream(rng)
    }
    fn step_into(&mut self, action: &[f32], obs: &mut [f64]) -> Result<spikerl_envs::Transition, EnvError> {
        self.steps += 1;
        match self.fail_at {
            Some((at, true)) if self.steps == at => panic!("injected panic at step {at}"),
            Some((at, false)) if self.steps == at => {
                Err(EnvError::Physics(format!("injected error at step {at}")))
            }
            _ => self.inner.step_into(action, obs),
        }
    }
}

#[test]
fn an_env_error_reaches_the_caller() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut v = VecEnv::from_envs(Faulty::envs(4, 3, (3, false), &dropped), 0, 2).unwrap();
    let a = [0.0f32; 4];
    v.step(&a).unwrap();
    v.step(&a).unwrap();
    let err = v.step(&a).expect_err("env 3 fails on its third step");
    assert!(matches!(err, EnvError::Physics(ref m) if m.contains("injected error")), "{err}");
    // An error is not fatal: the env keeps working afterwards, as with one thread.
    v.step(&a).unwrap();
    drop(v);
    assert_eq!(dropped.load(Ordering::SeqCst), 4);
}

#[test]
fn a_panic_in_an_env_becomes_an_error_and_stays_one() {
    let dropped = Arc::new(AtomicUsize::new(0));
    // 5 envs on 3 threads; env 2 panics on its second step (on whichever thread steps it).
    let mut v = VecEnv::from_envs(Faulty::envs(5, 2, (2, true), &dropped), 0, 3).unwrap();
    let a = [0.0f32; 5];
    v.step(&a).unwrap();
    let err = v.step(&a).expect_err("env 2 panicked");
    let msg = err.to_string();
    assert!(matches!(err, EnvError::Worker(_)), "{msg}");
    assert!(msg.contains("env 2 panicked: injected panic at step 2"), "{msg}");
    // That env's state is unknown: every later step fails the same way, without hanging.
    for _ in 0..3 {
        assert!(matches!(v.step(&a), Err(EnvError::Worker(m)) if m.contains("injected panic")));
    }
    // The panic did not take a thread down: dropping joins both workers and drops every env.
    drop(v);
    assert_eq!(dropped.load(Ordering::SeqCst), 5);
}

#[test]
fn dropping_ends_the_workers() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut v = VecEnv::from_envs(Faulty::envs(6, usize::MAX, (0, false), &dropped), 3, 4).unwrap();
    assert_eq!(v.threads(), 4);
    for _ in 0..10 {
        v.step(&[0.5; 6]).unwrap();
    }
    // The workers share the envs: they are dropped once the threads have ended, and `drop` waits for
    // that.
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    drop(v);
    assert_eq!(dropped.load(Ordering::SeqCst), 6);
}

#[test]
fn a_threaded_vec_env_can_move_between_threads() {
    fn send<T: Send>(_: &T) {}
    let v = VecEnv::with_threads("HalfCheetah-v4", 2, 0, 2).unwrap();
    send(&v);
    let obs = std::thread::spawn(move || {
        let mut v = v;
        v.step(&[0.0; 12]).unwrap();
        v.obs().to_vec()
    })
    .join()
    .unwrap();
    assert_eq!(obs.len(), 34);
}
