//! [`VecEnv`]: `n` copies of one environment stepped together, with auto-reset, for actors.
//!
//! Like Gymnasium's vector environments in "same-step" autoreset mode, with cleanrl's `real_next_obs`
//! built in: [`VecStep::next_obs`] is always the true next observation of each transition (the final
//! observation when an episode ended), while [`VecEnv::obs`] already holds the first observation of
//! the new episode for such an env. Stepping is sequential and allocation-free after construction.

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

/// `n` time-limited copies of one environment.
pub struct VecEnv {
    envs: Vec<Box<dyn Env>>,
    spec: EnvSpec,
    /// `n * obs_dim`: what the policy acts on now.
    obs: Vec<f64>,
    step: VecStep,
    /// Running return and length of each env's current episode.
    returns: Vec<f64>,
    lens: Vec<usize>,
}

/// Seed of env `i` of a [`VecEnv`] seeded with `seed` (Gymnasium's vector convention, `seed + i`).
pub fn env_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_add(i as u64)
}

impl VecEnv {
    /// `n` envs `id` (with time limit); env `i` is reset with seed [`env_seed`]`(seed, i)`.
    pub fn new(id: &str, n: usize, seed: u64) -> Result<Self, EnvError> {
        if n == 0 {
            return Err(EnvError::BadInput(
                "VecEnv needs at least one environment".into(),
            ));
        }
        let envs = (0..n).map(|_| make(id)).collect::<Result<Vec<_>, _>>()?;
        let spec = envs[0].spec().clone();
        let d = spec.obs_dim;
        let mut v = VecEnv {
            obs: vec![0.0; n * d],
            step: VecStep {
                next_obs: vec![0.0; n * d],
                rewards: vec![0.0; n],
                terminated: vec![false; n],
                truncated: vec![false; n],
                finished: vec![None; n],
            },
            returns: vec![0.0; n],
            lens: vec![0; n],
            envs,
            spec,
        };
        for (i, (env, obs)) in v.envs.iter_mut().zip(v.obs.chunks_exact_mut(d)).enumerate() {
            env.reset_into(Some(env_seed(seed, i)), obs);
        }
        Ok(v)
    }

    /// The spec shared by all envs.
    pub fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Number of envs.
    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }

    /// `n * obs_dim`, row-major: the observations the policy should act on now.
    pub fn obs(&self) -> &[f64] {
        &self.obs
    }

    /// Steps every env with its row of `actions` (`n * act_dim`, row-major). Envs whose episode ends
    /// are reset (seed `None`). Non-finite actions are rejected: they mean a broken policy.
    pub fn step(&mut self, actions: &[f32]) -> Result<&VecStep, EnvError> {
        let (n, d, a) = (self.envs.len(), self.spec.obs_dim, self.spec.act_dim);
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
        let s = &mut self.step;
        for (i, env) in self.envs.iter_mut().enumerate() {
            let next = &mut s.next_obs[i * d..(i + 1) * d];
            let t = env.step_into(&actions[i * a..(i + 1) * a], next)?;
            s.rewards[i] = t.reward;
            s.terminated[i] = t.terminated;
            s.truncated[i] = t.truncated;
            self.returns[i] += t.reward;
            self.lens[i] += 1;
            let obs = &mut self.obs[i * d..(i + 1) * d];
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
        Ok(&self.step)
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
