//! The replay buffer: a fixed-capacity ring of transitions in flat f32 arrays (one allocation each, so
//! sampling copies contiguous rows and checkpoints write the arrays as they are).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A batch of transitions laid out row-major, as they arrive from an actor or leave for training.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transitions {
    pub obs: Vec<f32>,
    pub actions: Vec<f32>,
    pub rewards: Vec<f32>,
    pub next_obs: Vec<f32>,
    /// 1.0 where the episode truly terminated (no bootstrapping), else 0.0. Time-limit truncation is
    /// not stored: TD3 bootstraps through it, and `next_obs` already holds the real final observation.
    pub terminated: Vec<f32>,
}

impl Transitions {
    pub fn with_capacity(n: usize, obs_dim: usize, act_dim: usize) -> Self {
        Transitions {
            obs: Vec::with_capacity(n * obs_dim),
            actions: Vec::with_capacity(n * act_dim),
            rewards: Vec::with_capacity(n),
            next_obs: Vec::with_capacity(n * obs_dim),
            terminated: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    pub fn clear(&mut self) {
        self.obs.clear();
        self.actions.clear();
        self.rewards.clear();
        self.next_obs.clear();
        self.terminated.clear();
    }

    /// Appends one transition.
    pub fn push(&mut self, obs: &[f32], action: &[f32], reward: f32, next_obs: &[f32], terminated: bool) {
        self.obs.extend_from_slice(obs);
        self.actions.extend_from_slice(action);
        self.rewards.push(reward);
        self.next_obs.extend_from_slice(next_obs);
        self.terminated.push(if terminated { 1.0 } else { 0.0 });
    }
}

/// Uniform-sampling FIFO replay buffer.
pub struct ReplayBuffer {
    obs_dim: usize,
    act_dim: usize,
    capacity: usize,
    len: usize,
    /// Slot the next insert overwrites.
    cursor: usize,
    data: Transitions,
    rng: ChaCha8Rng,
}

impl ReplayBuffer {
    pub fn new(capacity: usize, obs_dim: usize, act_dim: usize, seed: u64) -> Self {
        let mut data = Transitions::default();
        data.obs.resize(capacity * obs_dim, 0.0);
        data.actions.resize(capacity * act_dim, 0.0);
        data.rewards.resize(capacity, 0.0);
        data.next_obs.resize(capacity * obs_dim, 0.0);
        data.terminated.resize(capacity, 0.0);
        ReplayBuffer {
            obs_dim,
            act_dim,
            capacity,
            len: 0,
            cursor: 0,
            data,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Inserts every transition of `batch` (shapes already validated by the caller), overwriting the
    /// oldest once full.
    pub fn insert(&mut self, batch: &Transitions) {
        let (od, ad) = (self.obs_dim, self.act_dim);
        for i in 0..batch.len() {
            let c = self.cursor;
            self.data.obs[c * od..(c + 1) * od].copy_from_slice(&batch.obs[i * od..(i + 1) * od]);
            self.data.actions[c * ad..(c + 1) * ad].copy_from_slice(&batch.actions[i * ad..(i + 1) * ad]);
            self.data.rewards[c] = batch.rewards[i];
            self.data.next_obs[c * od..(c + 1) * od].copy_from_slice(&batch.next_obs[i * od..(i + 1) * od]);
            self.data.terminated[c] = batch.terminated[i];
            self.cursor = (c + 1) % self.capacity;
            self.len = (self.len + 1).min(self.capacity);
        }
    }

    /// Fills `out` with `n` transitions drawn uniformly with replacement. Panics if empty (the rate
    /// limiter never lets training start before `random_steps` >= one batch are in).
    pub fn sample_into(&mut self, n: usize, out: &mut Transitions) {
        assert!(self.len > 0, "sampling from an empty replay buffer");
        out.clear();
        let (od, ad) = (self.obs_dim, self.act_dim);
        for _ in 0..n {
            let i = self.rng.random_range(0..self.len);
            out.obs.extend_from_slice(&self.data.obs[i * od..(i + 1) * od]);
            out.actions.extend_from_slice(&self.data.actions[i * ad..(i + 1) * ad]);
            out.rewards.push(self.data.rewards[i]);
            out.next_obs.extend_from_slice(&self.data.next_obs[i * od..(i + 1) * od]);
            out.terminated.push(self.data.terminated[i]);
        }
    }

    /// The stored state, for checkpoints: (len, cursor, arrays, rng).
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    pub fn act_dim(&self) -> usize {
        self.act_dim
    }

    pub fn parts(&self) -> (usize, usize, &Transitions, &ChaCha8Rng) {
        (self.len, self.cursor, &self.data, &self.rng)
    }

    /// Rebuilds a buffer from checkpointed parts, checking every array's length.
    pub fn from_parts(
        obs_dim: usize,
        act_dim: usize,
        capacity: usize,
        len: usize,
        cursor: usize,
        data: Transitions,
        rng: ChaCha8Rng,
    ) -> Result<Self, String> {
        let ok = len <= capacity
            && cursor < capacity.max(1)
            && data.obs.len() == capacity * obs_dim
            && data.next_obs.len() == capacity * obs_dim
            && data.actions.len() == capacity * act_dim
            && data.rewards.len() == capacity
            && data.terminated.len() == capacity;
        if !ok {
            return Err(format!(
                "replay arrays do not match capacity {capacity} (len {len}, cursor {cursor})"
            ));
        }
        Ok(ReplayBuffer { obs_dim, act_dim, capacity, len, cursor, data, rng })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: f32, terminated: bool) -> Transitions {
        let mut t = Transitions::default();
        t.push(&[v, v], &[v], v, &[v + 1.0, v + 1.0], terminated);
        t
    }

    #[test]
    fn ring_overwrites_oldest_and_keeps_rows_together() {
        let mut rb = ReplayBuffer::new(3, 2, 1, 0);
        for v in 0..5 {
            rb.insert(&one(v as f32, v == 4));
        }
        assert_eq!(rb.len(), 3);
        let mut out = Transitions::default();
        rb.sample_into(200, &mut out);
        for i in 0..200 {
            let v = out.rewards[i];
            assert!((2.0..=4.0).contains(&v), "sampled an overwritten transition {v}");
            assert_eq!(out.obs[2 * i], v);
            assert_eq!(out.actions[i], v);
            assert_eq!(out.next_obs[2 * i + 1], v + 1.0);
            assert_eq!(out.terminated[i], if v == 4.0 { 1.0 } else { 0.0 });
        }
    }

    #[test]
    fn sampling_is_seeded() {
        let fill = |seed| {
            let mut rb = ReplayBuffer::new(100, 2, 1, seed);
            for v in 0..100 {
                rb.insert(&one(v as f32, false));
            }
            let mut out = Transitions::default();
            rb.sample_into(32, &mut out);
            out.rewards
        };
        assert_eq!(fill(7), fill(7));
        assert_ne!(fill(7), fill(8));
    }
}
