//! The `seed` label of `spikerl train --seeds`: several seeds' learners train in one process (one thread),
//! and each series must say which seed it belongs to, or counters would add up over seeds and gauges
//! hold whichever seed wrote last. Code that records for one seed enters its [`SeedScope`]; the process's
//! recorder, wrapped in [`SeedLabelled`], adds `seed="N"` to every series registered while a scope is
//! entered on the recording thread. Outside a scope (a single run, the distributed learner, an actor,
//! the process collector) nothing changes.

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use std::cell::Cell;

thread_local! {
    static SEED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// While alive, series recorded on this thread carry `seed="N"` (nested scopes restore the outer one).
pub struct SeedScope {
    outer: Option<u64>,
}

impl SeedScope {
    /// Enters `seed`'s scope; `None` leaves the thread's current scope as it is.
    pub fn enter(seed: Option<u64>) -> SeedScope {
        let outer = SEED.with(Cell::get);
        if seed.is_some() {
            SEED.with(|s| s.set(seed));
        }
        SeedScope { outer }
    }
}

impl Drop for SeedScope {
    fn drop(&mut self) {
        SEED.with(|s| s.set(self.outer));
    }
}

/// The seed whose scope this thread is in.
pub fn current() -> Option<u64> {
    SEED.with(Cell::get)
}

/// A recorder that adds the current [`SeedScope`]'s label to every series it registers.
pub struct SeedLabelled<R>(pub R);

impl<R> SeedLabelled<R> {
    fn key(key: &Key) -> Key {
        match current() {
            Some(seed) => key.clone().with_extra_labels(vec![Label::new("seed", seed.to_string())]),
            None => key.clone(),
        }
    }
}

impl<R: Recorder> Recorder for SeedLabelled<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description)
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description)
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description)
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0.register_counter(&Self::key(key), metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(&Self::key(key), metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.0.register_histogram(&Self::key(key), metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Remembers each registered series as `name{labels}`.
    #[derive(Default)]
    struct Registered(Mutex<Vec<String>>);

    impl Registered {
        fn push(&self, key: &Key) {
            let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            self.0.lock().unwrap().push(format!("{}{{{}}}", key.name(), labels.join(",")));
        }
    }

    impl Recorder for Registered {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            self.push(key);
            Counter::noop()
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            self.push(key);
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            self.push(key);
            Histogram::noop()
        }
    }

    #[test]
    fn series_in_a_scope_carry_its_seed_and_others_do_not() {
        let recorder = SeedLabelled(Registered::default());
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("steps").increment(1);
            {
                let _seed = SeedScope::enter(Some(4));
                metrics::counter!("steps", "actor" => "0").increment(10);
                let _none = SeedScope::enter(None);
                metrics::gauge!("ret").set(2.0);
                let _nine = SeedScope::enter(Some(9));
                metrics::histogram!("took").record(1.0);
            }
            assert_eq!(current(), None, "every scope restored the outer one");
            metrics::counter!("steps").increment(1);
        });
        assert_eq!(
            *recorder.0.0.lock().unwrap(),
            ["steps{}", "steps{actor=0,seed=4}", "ret{seed=4}", "took{seed=9}", "steps{}"]
        );
    }
}
