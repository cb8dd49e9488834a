//! One run's learner, whichever base it trains with: TD3 and DDPG (`Td3`) or SAC (`Sac`). The trainer,
//! checkpoints and benchmarks go through this type; the algorithms stay in their own modules.

use crate::config::{Base, RunConfig};
use crate::optim::Adam;
use crate::sac::Sac;
use crate::td3::{Batch, PhaseTimes, Td3, UpdateStats};
use rand_chacha::ChaCha8Rng;
use spikerl_snn::PolicyConfig;
use tch::{Device, nn};

pub enum Learner {
    /// TD3 or DDPG.
    Td3(Td3),
    Sac(Sac),
}

impl Learner {
    /// The learner a run with master seed `seed` starts from (`Td3::seeded` / `Sac::seeded`).
    pub fn seeded(run: &RunConfig, policy_config: PolicyConfig, seed: u64, device: Device) -> Learner {
        match run.base {
            Base::Td3 | Base::Ddpg => Learner::Td3(Td3::seeded(run, policy_config, seed, device)),
            Base::Sac => Learner::Sac(Sac::seeded(run, policy_config, seed, device)),
        }
    }

    pub fn update(&mut self, sample: impl FnMut() -> Batch) -> UpdateStats {
        match self {
            Learner::Td3(l) => l.update(sample),
            Learner::Sac(l) => l.update(sample),
        }
    }

    /// Training iterations done.
    pub fn iterations(&self) -> u64 {
        match self {
            Learner::Td3(l) => l.iterations,
            Learner::Sac(l) => l.iterations,
        }
    }

    /// Actor updates done: the policy's version.
    pub fn actor_updates(&self) -> u64 {
        match self {
            Learner::Td3(l) => l.actor_updates,
            Learner::Sac(l) => l.actor_updates,
        }
    }

    pub fn device(&self) -> Device {
        match self {
            Learner::Td3(l) => l.device(),
            Learner::Sac(l) => l.device(),
        }
    }

    pub fn policy_config(&self) -> &PolicyConfig {
        match self {
            Learner::Td3(l) => &l.policy_config,
            Learner::Sac(l) => &l.policy_config,
        }
    }

    pub fn has_proxy(&self) -> bool {
        match self {
            Learner::Td3(l) => l.has_proxy(),
            Learner::Sac(l) => l.has_proxy(),
        }
    }

    /// The acting policy's weights under their stable names.
    pub fn export_policy(&self) -> spikerl_snn::NamedTensors {
        match self {
            Learner::Td3(l) => l.export_policy(),
            Learner::Sac(l) => l.export_policy(),
        }
    }

    pub fn phase_times(&self) -> PhaseTimes {
        match self {
            Learner::Td3(l) => l.phase_times,
            Learner::Sac(l) => l.phase_times,
        }
    }

    pub fn td3(&self) -> Option<&Td3> {
        match self {
            Learner::Td3(l) => Some(l),
            Learner::Sac(_) => None,
        }
    }

    pub fn td3_mut(&mut self) -> Option<&mut Td3> {
        match self {
            Learner::Td3(l) => Some(l),
            Learner::Sac(_) => None,
        }
    }

    /// Every variable store a checkpoint holds, under the prefix it is stored with. TD3's names are the
    /// ones checkpoints have always had; SAC's target is its proxy (if any) and it adds `alpha`.
    pub fn stores(&self) -> Vec<(&'static str, &nn::VarStore)> {
        match self {
            Learner::Td3(l) => vec![
                ("actor", &l.actor_vs),
                ("target", l.target_vs()),
                ("critic", &l.critic_vs),
                ("critic_target", &l.critic_target_vs),
            ],
            Learner::Sac(l) => {
                let mut v = vec![
                    ("actor", &l.actor_vs),
                    ("critic", &l.critic_vs),
                    ("critic_target", &l.critic_target_vs),
                    ("alpha", &l.alpha_vs),
                ];
                v.extend(l.proxy_vs().map(|p| ("target", p)));
                v
            }
        }
    }

    /// Every optimiser, by the name its state is stored under (`opt.<name>.*`).
    pub fn optimisers(&self) -> Vec<(&'static str, &Adam)> {
        let (actor, critic, proxy, alpha) = match self {
            Learner::Td3(l) => (&l.actor_opt, &l.critic_opt, l.proxy_opt(), None),
            Learner::Sac(l) => (&l.actor_opt, &l.critic_opt, l.proxy_opt(), Some(&l.alpha_opt)),
        };
        let mut v = vec![("actor", actor), ("critic", critic)];
        v.extend(proxy.map(|o| ("proxy", o)));
        v.extend(alpha.map(|o| ("alpha", o)));
        v
    }

    /// [`Learner::optimisers`], mutable.
    pub fn optimisers_mut(&mut self) -> Vec<(&'static str, &mut Adam)> {
        let (actor, critic, proxy, alpha) = match self {
            Learner::Td3(l) => {
                let (a, c, p) = l.optimisers_mut();
                (a, c, p, None)
            }
            Learner::Sac(l) => {
                let (a, c, p, t) = l.optimisers_mut();
                (a, c, p, Some(t))
            }
        };
        let mut v = vec![("actor", actor), ("critic", critic)];
        v.extend(proxy.map(|o| ("proxy", o)));
        v.extend(alpha.map(|o| ("alpha", o)));
        v
    }

    /// Restores the counters and the noise stream a checkpoint holds.
    pub fn set_progress(&mut self, iterations: u64, actor_updates: u64, noise_rng: ChaCha8Rng) {
        match self {
            Learner::Td3(l) => {
                (l.iterations, l.actor_updates, l.noise_rng) = (iterations, actor_updates, noise_rng)
            }
            Learner::Sac(l) => {
                (l.iterations, l.actor_updates, l.noise_rng) = (iterations, actor_updates, noise_rng)
            }
        }
    }

    pub fn noise_rng(&self) -> &ChaCha8Rng {
        match self {
            Learner::Td3(l) => &l.noise_rng,
            Learner::Sac(l) => &l.noise_rng,
        }
    }
}
