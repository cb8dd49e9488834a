//! The samples-per-insert rate limiter (after DeepMind Reverb's SampleToInsertRatio), expressed in
//! training iterations per inserted transition. It keeps a distributed run at the algorithm's
//! update-to-data ratio whatever the number or speed of actors: the learner waits when it would train on
//! too little new data, and inserts wait (backpressure to actors) when the learner falls behind.
//! A pure state machine: the waiting itself is done by the replay service around it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateLimiter {
    /// Training iterations owed per inserted transition beyond `min_size`.
    pub ratio: f64,
    /// Updates may start once this many transitions were inserted.
    pub min_size: u64,
    /// Inserts are held while more than this many iterations are owed.
    pub tolerance: f64,
    pub inserted: u64,
    pub updates: u64,
}

impl RateLimiter {
    pub fn new(ratio: f64, min_size: u64, tolerance: f64) -> Self {
        RateLimiter { ratio, min_size, tolerance, inserted: 0, updates: 0 }
    }

    /// Iterations owed by the learner right now (negative never happens while the rules are kept).
    pub fn owed(&self) -> f64 {
        self.ratio * self.inserted.saturating_sub(self.min_size) as f64 - self.updates as f64
    }

    /// Whether one more training iteration is allowed.
    pub fn can_update(&self) -> bool {
        self.inserted >= self.min_size && self.owed() >= 1.0
    }

    /// Whether inserting `n` more transitions keeps the learner within tolerance. A batch that could
    /// never fit (n alone exceeds the tolerance) is let in once nothing is owed, so it cannot deadlock.
    pub fn can_insert(&self, n: u64) -> bool {
        let after =
            self.ratio * (self.inserted + n).saturating_sub(self.min_size) as f64 - self.updates as f64;
        after <= self.tolerance || self.owed() < 1.0
    }

    pub fn record_insert(&mut self, n: u64) {
        self.inserted += n;
    }

    pub fn record_update(&mut self) {
        self.updates += 1;
    }

    /// Samples per insert as Reverb reports it: iterations per transition beyond min_size.
    pub fn current_ratio(&self) -> f64 {
        let beyond = self.inserted.saturating_sub(self.min_size);
        if beyond == 0 { 0.0 } else { self.updates as f64 / beyond as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_updates_before_min_size() {
        let mut rl = RateLimiter::new(1.0, 100, 10.0);
        rl.record_insert(99);
        assert!(!rl.can_update());
        rl.record_insert(1);
        assert!(!rl.can_update(), "exactly min_size owes nothing yet");
        rl.record_insert(1);
        assert!(rl.can_update());
    }

    #[test]
    fn keeps_one_update_per_transition_within_tolerance() {
        let mut rl = RateLimiter::new(1.0, 0, 5.0);
        // An actor inserts as fast as allowed, the learner updates as fast as allowed: the ratio must
        // stay within tolerance at every moment.
        for round in 0..1000 {
            if rl.can_insert(1) {
                rl.record_insert(1);
            }
            if round % 3 == 0 && rl.can_update() {
                rl.record_update();
            }
            assert!(rl.owed() <= 5.0 + 1e-9, "inserts ran ahead: owed {}", rl.owed());
            assert!(rl.owed() >= 0.0, "updates ran ahead: owed {}", rl.owed());
        }
        // A stalled learner: inserts stop once the tolerance is reached.
        let mut extra = 0;
        while rl.can_insert(1) {
            rl.record_insert(1);
            extra += 1;
            assert!(extra <= 5, "inserts were never held");
        }
        assert!(rl.owed() > 4.0 && rl.owed() <= 5.0, "held at the tolerance: owed {}", rl.owed());
        while rl.can_update() {
            rl.record_update();
        }
        assert_eq!(rl.updates, rl.inserted);
        assert!((rl.current_ratio() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn oversized_batch_cannot_deadlock() {
        let mut rl = RateLimiter::new(1.0, 0, 5.0);
        assert!(rl.can_insert(50), "a batch larger than the tolerance is let in when nothing is owed");
        rl.record_insert(50);
        assert!(!rl.can_insert(1));
    }
}
