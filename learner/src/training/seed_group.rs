//! Several seeds of one configuration trained side by side in one learner process (`spikerl train --sync
//! --seeds ...`): one [`Trainer`] per seed (its own replay buffer, rate limiter, evaluations and run
//! folder, each built exactly as a single run with that seed builds it), and one training iteration of
//! every seed at a time, either as one stacked [`Ensemble`] (batched matmuls over the seeds; what pays
//! where per-kernel overhead dominates, as on a GPU) or as the seeds' own `Td3` learners one after the
//! other (what a single run does, seed by seed).

use spikerl_algo::config::{Base, RunConfig, SeedBatching};
use spikerl_algo::ensemble::Ensemble;

use crate::storage::run_folder::RunFolder;
use crate::training::trainer::Trainer;
use anyhow::Context;
use spikerl_algo::td3::Batch;
use spikerl_snn::NamedTensors;
use std::time::Instant;

/// The seeds' trainers and, when stacked, the ensemble that trains them.
pub struct SeedGroup {
    trainers: Vec<Trainer>,
    /// The training state of every seed when stacked; the trainers' learners then lag behind it until
    /// [`SeedGroup::trainers`] writes it back.
    ensemble: Option<Ensemble>,
    written_back: bool,
}

impl SeedGroup {
    /// A group of the seeds' trainers (each `Trainer::build` of `cfg` with its seed replaced, as a single
    /// run builds it; fresh, or restored from checkpoints taken at the same iteration).
    pub fn of(cfg: &RunConfig, trainers: Vec<Trainer>, batching: SeedBatching) -> anyhow::Result<SeedGroup> {
        anyhow::ensure!(!trainers.is_empty(), "a seed group needs at least one seed");
        // The stacked ensemble is TD3's (twin critics, delayed actor); other bases train their seeds
        // separately, which computes the same as single runs.
        let batching = if batching == SeedBatching::Stacked && cfg.base != Base::Td3 {
            tracing::warn!(base = %cfg.base, "stacked seed groups train TD3 only: training the seeds separately");
            SeedBatching::Separate
        } else {
            batching
        };
        let ensemble = match batching {
            SeedBatching::Stacked => {
                let members: Vec<_> =
                    trainers.iter().map(|t| t.learner.td3().expect("a TD3 learner")).collect();
                Some(
                    Ensemble::from_members(cfg, &members)
                        .map_err(anyhow::Error::msg)
                        .context("stacking the seeds' learners")?,
                )
            }
            SeedBatching::Separate => None,
        };
        Ok(SeedGroup { trainers, ensemble, written_back: true })
    }

    /// Training iterations done (every seed did as many).
    pub fn iterations(&self) -> u64 {
        self.ensemble.as_ref().map_or(self.trainers[0].learner.iterations(), |e| e.iterations)
    }

    /// The acting policies' version: delayed actor updates done.
    pub fn policy_version(&self) -> u64 {
        self.ensemble.as_ref().map_or(self.trainers[0].learner.actor_updates(), |e| e.actor_updates)
    }

    /// Whether every seed has done all its training iterations.
    pub fn done(&self) -> bool {
        self.iterations() >= self.trainers[0].cfg.steps
    }

    /// Training iterations the rate limiters owe: the fewest any seed is owed (the seeds step together).
    pub fn owed(&self) -> f64 {
        self.trainers.iter().map(|t| t.replay.counters().owed).fold(f64::INFINITY, f64::min)
    }

    /// Seed s's replay service, to insert its transitions.
    pub fn replay(&self, s: usize) -> &crate::training::replay_service::ReplayService {
        &self.trainers[s].replay
    }

    /// Seed s's current acting policy under the wire names.
    pub fn policy_weights(&self, s: usize) -> NamedTensors {
        match &self.ensemble {
            Some(e) => e.export_member(s),
            None => self.trainers[s].policy_weights(),
        }
    }

    /// One training iteration of every seed, each on minibatches from its own replay buffer. None when a
    /// replay service closed.
    pub fn iterate(&mut self) -> Option<()> {
        let Some(ensemble) = &mut self.ensemble else {
            for t in &mut self.trainers {
                t.iterate()?;
            }
            return Some(());
        };
        let mut draws = Vec::with_capacity(self.trainers.len());
        for t in &mut self.trainers {
            draws.push(t.draw()?.into_iter());
        }
        let started = Instant::now();
        let stats =
            ensemble.update(|s| -> Batch { draws[s].next().expect("one sampled minibatch per draw") });
        let took = started.elapsed() / self.trainers.len() as u32;
        for (t, st) in self.trainers.iter_mut().zip(stats) {
            t.record(st, took);
        }
        self.written_back = false;
        Some(())
    }

    /// Writes each seed's training scalars into its run folder's TensorBoard files where due (see
    /// [`Trainer::write_training_scalars_if_due`]). They are the trainers' own records of the iterations:
    /// no write-back from the ensemble.
    pub fn write_training_scalars_if_due(&mut self, env_steps: u64, run_folders: &mut [RunFolder]) {
        for (t, dir) in self.trainers.iter_mut().zip(run_folders) {
            t.write_training_scalars_if_due(env_steps, dir);
        }
    }

    /// The seeds' trainers, each learner holding its seed's current state (written back from the
    /// ensemble first when stacked), for evaluations and checkpoints.
    pub fn trainers(&mut self) -> anyhow::Result<&mut [Trainer]> {
        if let (Some(e), false) = (&self.ensemble, self.written_back) {
            for (s, t) in self.trainers.iter_mut().enumerate() {
                e.write_member(s, t.learner.td3_mut().expect("stacked seeds are TD3 learners"))
                    .map_err(anyhow::Error::msg)
                    .context("writing a seed's state back from the ensemble")?;
            }
            self.written_back = true;
        }
        Ok(&mut self.trainers)
    }

    /// The trainers, written back, once training is over.
    pub fn into_trainers(mut self) -> anyhow::Result<Vec<Trainer>> {
        self.trainers()?;
        Ok(self.trainers)
    }
}
