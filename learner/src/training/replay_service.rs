//! The replay buffer and its rate limiter behind one lock, shared by the gRPC ingest tasks (async,
//! waiting on a tokio `Notify` when the limiter holds inserts) and the training thread (blocking on a
//! `Condvar` when the limiter holds updates). Sampling and inserting are short memcpys, so one mutex is
//! cheaper than anything cleverer. The per-actor delivery ledger (last batch sequence stored, transitions
//! stored) lives under the same lock: a batch's rows and its sequence enter together, so a checkpoint, which
//! snapshots both under the lock, can never hold a batch without knowing it has it (a resend after a
//! restart would be stored twice), and two streams of one reconnecting actor cannot both store a batch.

use spikerl_algo::rate_limiter::RateLimiter;
use spikerl_algo::replay::{ReplayBuffer, Transitions};
use spikerl_metrics::learner;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

pub struct ReplayState {
    pub buffer: ReplayBuffer,
    pub limiter: RateLimiter,
    /// Set when the run ends: waiters give up.
    pub closed: bool,
    /// The learner's column of the delivery ledger, per actor id (distributed runs only).
    pub delivered: BTreeMap<u32, Delivered>,
}

/// What the learner has stored from one actor: the last batch sequence (batches at or below it are
/// duplicates) and the transitions stored, each once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    pub last_sequence: u64,
    pub inserted: u64,
}

/// A batch's sender and its sequence number (strictly increasing per actor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub actor_id: u32,
    pub sequence: u64,
}

/// The outcome of an insert from an actor; each carries the total inserted so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    New(u64),
    /// Already stored (a resend after a lost acknowledgement): acknowledged, not inserted again.
    Duplicate(u64),
}

pub struct ReplayService {
    state: Mutex<ReplayState>,
    learner_wake: Condvar,
    inserters_wake: tokio::sync::Notify,
}

/// Why an insert did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum InsertError {
    Closed,
}

impl ReplayService {
    pub fn new(buffer: ReplayBuffer, limiter: RateLimiter) -> Self {
        ReplayService {
            state: Mutex::new(ReplayState { buffer, limiter, closed: false, delivered: BTreeMap::new() }),
            learner_wake: Condvar::new(),
            inserters_wake: tokio::sync::Notify::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, ReplayState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts a batch from an actor once the rate limiter allows it (this wait is the actors'
    /// backpressure), unless its sequence shows it is already stored.
    pub async fn insert_from(&self, batch: &Transitions, origin: Origin) -> Result<Stored, InsertError> {
        loop {
            // Register interest before checking, so a wake between check and await is not lost.
            let notified = self.inserters_wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(stored) = self.try_store(batch, Some(origin))? {
                return Ok(stored);
            }
            // The timeout is a safety net only; wakes come from record_update and close.
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    /// Inserts if the limiter allows it now: Ok(Some(total)) when inserted, Ok(None) when held. For rows
    /// of no actor (the lockstep learner's own, a bench's).
    pub fn try_insert(&self, batch: &Transitions) -> Result<Option<u64>, InsertError> {
        Ok(self.try_store(batch, None)?.map(|s| match s {
            Stored::New(total) | Stored::Duplicate(total) => total,
        }))
    }

    /// The one insert path: the duplicate check, the limiter, the rows and the ledger under one lock.
    fn try_store(&self, batch: &Transitions, origin: Option<Origin>) -> Result<Option<Stored>, InsertError> {
        let mut s = self.lock();
        if s.closed {
            return Err(InsertError::Closed);
        }
        if let Some(o) = origin
            && s.delivered.get(&o.actor_id).is_some_and(|d| o.sequence <= d.last_sequence)
        {
            return Ok(Some(Stored::Duplicate(s.limiter.inserted)));
        }
        let n = batch.len() as u64;
        if !s.limiter.can_insert(n) {
            return Ok(None);
        }
        s.buffer.insert(batch);
        s.limiter.record_insert(n);
        if let Some(o) = origin {
            let d = s.delivered.entry(o.actor_id).or_default();
            d.last_sequence = o.sequence;
            d.inserted += n;
        }
        let total = s.limiter.inserted;
        let size = s.buffer.len();
        drop(s);
        metrics::gauge!(learner::REPLAY_SIZE).set(size as f64);
        self.learner_wake.notify_all();
        Ok(Some(Stored::New(total)))
    }

    /// What has been stored from `actor_id` (nothing for an actor never heard from).
    pub fn delivered(&self, actor_id: u32) -> Delivered {
        self.lock().delivered.get(&actor_id).copied().unwrap_or_default()
    }

    /// Blocks until the limiter allows one training iteration, then samples `count` minibatches of
    /// `size` into `out`. Returns false when the service was closed.
    pub fn wait_and_sample(&self, count: usize, size: usize, out: &mut Vec<Transitions>) -> bool {
        let mut s = self.lock();
        while !s.limiter.can_update() {
            if s.closed {
                return false;
            }
            s = self
                .learner_wake
                .wait_timeout(s, Duration::from_millis(200))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        out.resize_with(count, Transitions::default);
        for t in out.iter_mut() {
            s.buffer.sample_into(size, t);
        }
        true
    }

    /// Counts one finished training iteration and lets held inserts re-check.
    pub fn record_update(&self) {
        self.lock().limiter.record_update();
        self.inserters_wake.notify_waiters();
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.learner_wake.notify_all();
        self.inserters_wake.notify_waiters();
    }

    /// (inserted, updates, replay size, samples-per-insert ratio, iterations owed).
    pub fn counters(&self) -> Counters {
        let s = self.lock();
        Counters {
            inserted: s.limiter.inserted,
            updates: s.limiter.updates,
            replay_size: s.buffer.len() as u64,
            ratio: s.limiter.current_ratio(),
            owed: s.limiter.owed(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub inserted: u64,
    pub updates: u64,
    pub replay_size: u64,
    pub ratio: f64,
    pub owed: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rows(n: usize, x: f32) -> Transitions {
        let mut t = Transitions::default();
        for _ in 0..n {
            t.push(&[x, x], &[x], x, &[x, x], false);
        }
        t
    }

    fn service() -> ReplayService {
        ReplayService::new(ReplayBuffer::new(1000, 2, 1, 0), RateLimiter::new(1.0, u64::MAX, f64::INFINITY))
    }

    fn store(s: &ReplayService, n: usize, actor_id: u32, sequence: u64) -> Stored {
        s.try_store(&rows(n, sequence as f32), Some(Origin { actor_id, sequence })).unwrap().unwrap()
    }

    #[test]
    fn a_resent_batch_is_acknowledged_not_stored_twice() {
        let s = service();
        assert_eq!(store(&s, 3, 0, 1), Stored::New(3));
        assert_eq!(store(&s, 4, 0, 2), Stored::New(7));
        // The same sequences again (an acknowledgement was lost), and an older one: duplicates.
        assert_eq!(store(&s, 4, 0, 2), Stored::Duplicate(7));
        assert_eq!(store(&s, 3, 0, 1), Stored::Duplicate(7));
        // Another actor's sequence 1 is its own.
        assert_eq!(store(&s, 2, 1, 1), Stored::New(9));
        assert_eq!(s.lock().buffer.len(), 9);
        assert_eq!(s.delivered(0), Delivered { last_sequence: 2, inserted: 7 });
        assert_eq!(s.delivered(1), Delivered { last_sequence: 1, inserted: 2 });
        assert_eq!(s.delivered(7), Delivered::default(), "an actor never heard from");
    }

    /// Many streams insert while snapshots are taken: every snapshot's rows are exactly the ledger's
    /// (what a checkpoint holds and what it says it holds agree, so a resend after a restart is a
    /// duplicate, never a second copy).
    #[test]
    fn the_ledger_and_the_rows_never_disagree_under_concurrent_inserts() {
        let s = Arc::new(service());
        let writers: Vec<_> = (0..4u32)
            .map(|actor| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for seq in 1..=40 {
                        assert!(matches!(store(&s, 5, actor, seq), Stored::New(_)));
                    }
                })
            })
            .collect();
        let mut snapshots = 0;
        while writers.iter().any(|w| !w.is_finished()) || snapshots == 0 {
            let g = s.lock();
            let ledger: u64 = g.delivered.values().map(|d| d.inserted).sum();
            assert_eq!(g.buffer.len() as u64, ledger);
            assert_eq!(g.limiter.inserted, ledger);
            for d in g.delivered.values() {
                assert_eq!(d.inserted, 5 * d.last_sequence, "{d:?}");
            }
            snapshots += 1;
        }
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(s.lock().buffer.len(), 4 * 40 * 5);
    }
}
