//! The replay buffer and its rate limiter behind one lock, shared by the gRPC ingest tasks (async,
//! waiting on a tokio `Notify` when the limiter holds inserts) and the training thread (blocking on a
//! `Condvar` when the limiter holds updates). Sampling and inserting are short memcpys, so one mutex is
//! cheaper than anything cleverer.

use spikerl_algo::rate_limiter::RateLimiter;
use spikerl_algo::replay::{ReplayBuffer, Transitions};
use spikerl_metrics::learner;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

pub struct ReplayState {
    pub buffer: ReplayBuffer,
    pub limiter: RateLimiter,
    /// Set when the run ends: waiters give up.
    pub closed: bool,
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
            state: Mutex::new(ReplayState { buffer, limiter, closed: false }),
            learner_wake: Condvar::new(),
            inserters_wake: tokio::sync::Notify::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, ReplayState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts once the rate limiter allows it (this wait is the actors' backpressure). Returns the
    /// total inserted so far.
    pub async fn insert(&self, batch: &Transitions) -> Result<u64, InsertError> {
        loop {
            // Register interest before checking, so a wake between check and await is not lost.
            let notified = self.inserters_wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(total) = self.try_insert(batch)? {
                return Ok(total);
            }
            // The timeout is a safety net only; wakes come from record_update and close.
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    /// Inserts if the limiter allows it now: Ok(Some(total)) when inserted, Ok(None) when held.
    pub fn try_insert(&self, batch: &Transitions) -> Result<Option<u64>, InsertError> {
        let mut s = self.lock();
        if s.closed {
            return Err(InsertError::Closed);
        }
        let n = batch.len() as u64;
        if !s.limiter.can_insert(n) {
            return Ok(None);
        }
        s.buffer.insert(batch);
        s.limiter.record_insert(n);
        let total = s.limiter.inserted;
        let size = s.buffer.len();
        drop(s);
        metrics::gauge!(learner::REPLAY_SIZE).set(size as f64);
        self.learner_wake.notify_all();
        Ok(Some(total))
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
