//! The newest policy received from the learner, shared between the subscriber task (writes) and the
//! acting thread (reads). The acting thread checks an atomic version per step and builds its own
//! `Policy` (with its own buffers) only when a newer one arrived.

use spikerl_metrics::actor;
use spikerl_snn::{NamedTensors, Policy, PolicyConfig};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct PolicySlot {
    /// Version + 1 of the stored policy; 0 = none yet (versions start at 0).
    stamp: AtomicU64,
    latest: Mutex<Option<(u64, PolicyConfig, NamedTensors)>>,
}

impl PolicySlot {
    pub fn store(&self, version: u64, cfg: PolicyConfig, tensors: NamedTensors) {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some((version, cfg, tensors));
        self.stamp.store(version + 1, Ordering::Release);
        metrics::gauge!(actor::POLICY_VERSION).set(version as f64);
    }

    /// The newest version, if any.
    pub fn version(&self) -> Option<u64> {
        self.stamp.load(Ordering::Acquire).checked_sub(1)
    }

    /// A fresh `Policy` if a version newer than `have` (any version when `have` is None) is stored.
    pub fn newer_than(&self, have: Option<u64>) -> Option<(Policy, u64)> {
        let newest = self.version()?;
        if have.is_some_and(|h| newest <= h) {
            return None;
        }
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let (version, cfg, tensors) = latest.as_ref()?;
        match Policy::new(cfg, tensors) {
            Ok(p) => Some((p, *version)),
            Err(e) => {
                tracing::error!(error = %e, version, "received weights do not build a policy; keeping the old one");
                None
            }
        }
    }
}
