//! Every Prometheus series spikerl exports, in one place: a constant per name, documented by its help
//! text, next to its catalogue entry (type, unit, help) in [`ALL`]. Code records through the constants
//! (`metrics::gauge!(learner::REPLAY_SIZE)`), the binary describes every entry of [`ALL`] at start, and
//! docs/metrics.md defines each one for people (a test here keeps the two name lists equal).
//!
//! A constant is its series' name without `spikerl_` and the module's prefix, in capitals
//! (`spikerl_learner_replay_size` is `learner::REPLAY_SIZE`); `process::BUILD_INFO` is the one exception.
//! Label keys and values stay with the code that sets them.

use metrics::Unit;

pub mod seed_label;

/// A series' Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One series: what the exporter describes (`# HELP`, `# TYPE`, the unit) and docs/metrics.md defines.
#[derive(Clone, Copy, Debug)]
pub struct Series {
    pub name: &'static str,
    pub kind: Kind,
    /// None for dimensionless values (losses, returns, ratios) and info series.
    pub unit: Option<Unit>,
    pub help: &'static str,
}

impl Series {
    /// The catalogue entry for `name`, if it is one of spikerl's series.
    pub fn find(name: &str) -> Option<&'static Series> {
        ALL.iter().find(|s| s.name == name)
    }
}

/// `NAME = "series_name": Kind(Unit), "help";` per series, in modules by role: defines each constant
/// (its doc comment is the help text) and lists every entry in [`ALL`], so a name cannot exist without
/// its description or the other way round.
macro_rules! catalogue {
    ($(
        $(#[$module_doc:meta])*
        mod $module:ident {
            $( $konst:ident = $name:literal : $kind:ident $(($unit:ident))?, $help:literal; )*
        }
    )*) => {
        $(
            $(#[$module_doc])*
            pub mod $module {
                $( #[doc = $help] pub const $konst: &str = $name; )*
            }
        )*

        /// Every series spikerl can export.
        pub const ALL: &[Series] = &[
            $($( Series { name: $module::$konst, kind: Kind::$kind, unit: unit!($($unit)?), help: $help }, )*)*
        ];

        /// (module, constant, name) of every entry, to check the naming rule.
        #[cfg(test)]
        const IDENTS: &[(&str, &str, &str)] = &[$($( (stringify!($module), stringify!($konst), $name), )*)*];
    };
}

macro_rules! unit {
    () => {
        None
    };
    ($unit:ident) => {
        Some(Unit::$unit)
    };
}

catalogue! {
    /// Every role: the process (standard Prometheus client names, read from /proc) and the binary.
    mod process {
        CPU_SECONDS_TOTAL = "process_cpu_seconds_total": Counter(Seconds),
            "User and system CPU time of the process (whole seconds).";
        RESIDENT_MEMORY_BYTES = "process_resident_memory_bytes": Gauge(Bytes),
            "Resident set size of the process.";
        VIRTUAL_MEMORY_BYTES = "process_virtual_memory_bytes": Gauge(Bytes),
            "Virtual memory size of the process.";
        OPEN_FDS = "process_open_fds": Gauge(Count),
            "Open file descriptors of the process.";
        MAX_FDS = "process_max_fds": Gauge(Count),
            "Soft limit on open file descriptors.";
        THREADS = "process_threads": Gauge(Count),
            "OS threads of the process.";
        START_TIME_SECONDS = "process_start_time_seconds": Gauge(Seconds),
            "Start time of the process, Unix seconds.";
        BUILD_INFO = "spikerl_build_info": Gauge,
            "Always 1; labels: version of the spikerl binary.";
    }

    /// The run a learner trains (`role="learner"`).
    mod run {
        INFO = "spikerl_run_info": Gauge,
            "Always 1; labels describe the run: run_id, env, algo, neuron, mode (distributed|sync).";
    }

    /// The learner: progress, ingest, training, policies, durable state.
    mod learner {
        // Progress.
        TRAIN_ITERATIONS_TOTAL = "spikerl_learner_train_iterations_total": Counter(Count),
            "Training iterations done (one TD3 critic update each; continues across resumes).";
        TRAIN_ITERATIONS_TARGET = "spikerl_learner_train_iterations_target": Gauge(Count),
            "Training iterations the run will do in total (--steps).";
        RANDOM_STEPS = "spikerl_learner_random_steps": Gauge(Count),
            "Uniform-random env steps before training starts (--random-steps).";
        // Ingest: transitions from actors, their validation, the replay buffer and the rate limiter.
        TRANSITIONS_INSERTED_TOTAL = "spikerl_learner_transitions_inserted_total": Counter(Count),
            "Transitions inserted into the replay buffer, per actor id after deduplication (the delivery ledger; continues across resumes); one unlabelled total in --sync mode.";
        TRANSITIONS_RECEIVED_TOTAL = "spikerl_learner_transitions_received_total": Counter(Count),
            "Transitions received in valid batches, per actor id, resent duplicates included.";
        TRANSITIONS_REJECTED_TOTAL = "spikerl_learner_transitions_rejected_total": Counter(Count),
            "Rejected requests or batches, by reason (unknown_run, unknown_actor, empty, oversized, shape, non_finite, message_too_large, undecodable).";
        DUPLICATE_BATCHES_TOTAL = "spikerl_learner_duplicate_batches_total": Counter(Count),
            "Batches already stored that an actor resent (acknowledged, not inserted again).";
        UNAUTHENTICATED_REQUESTS_TOTAL = "spikerl_learner_unauthenticated_requests_total": Counter(Count),
            "gRPC requests refused for a missing or wrong token.";
        REPLAY_SIZE = "spikerl_learner_replay_size": Gauge(Count),
            "Transitions held in the replay buffer.";
        SAMPLES_PER_INSERT = "spikerl_learner_samples_per_insert": Gauge,
            "Training iterations per inserted transition beyond the random steps (the rate limiter's measure).";
        TARGET_SAMPLES_PER_INSERT = "spikerl_learner_target_samples_per_insert": Gauge,
            "The configured update-to-data ratio the rate limiter holds.";
        INSERT_WAIT_SECONDS = "spikerl_learner_insert_wait_seconds": Histogram(Seconds),
            "Time a received batch waited for the rate limiter before insertion (actor backpressure).";
        SAMPLE_WAIT_SECONDS = "spikerl_learner_sample_wait_seconds": Histogram(Seconds),
            "Time the training thread waited for the rate limiter (data starvation) per iteration.";
        // Training iterations.
        UPDATE_DURATION_SECONDS = "spikerl_learner_update_duration_seconds": Histogram(Seconds),
            "Duration of one training iteration (critic, delayed actor, proxy steps).";
        CRITIC_LOSS = "spikerl_learner_critic_loss": Gauge,
            "Critic loss (sum of both critics' MSE) of the latest iteration.";
        ACTOR_LOSS = "spikerl_learner_actor_loss": Gauge,
            "Actor loss (-Q1) of the latest actor update.";
        PROXY_LOSS = "spikerl_learner_proxy_loss": Gauge,
            "Proxy imitation loss of the latest actor update (proxy algorithm; NaN otherwise).";
        SAC_ALPHA = "spikerl_learner_sac_alpha": Gauge,
            "SAC's entropy temperature alpha after the latest iteration (--base sac; NaN otherwise).";
        Q_MEAN = "spikerl_learner_q_mean": Gauge,
            "Mean Q1 estimate over the latest minibatch.";
        TD_TARGET_MEAN = "spikerl_learner_td_target_mean": Gauge,
            "Mean TD target over the latest minibatch.";
        // Policies, the actors acting with them and their episodes.
        POLICY_VERSION = "spikerl_learner_policy_version": Gauge(Count),
            "Newest published policy version (actor updates so far).";
        POLICY_LAG = "spikerl_learner_policy_lag": Gauge(Count),
            "Largest policy lag among the connected actors' latest batches (versions; NaN with no actor connected).";
        BATCH_POLICY_LAG = "spikerl_learner_batch_policy_lag": Histogram(Count),
            "Per stored batch: policy versions between the newest and the one that chose its actions.";
        CONNECTED_ACTORS = "spikerl_learner_connected_actors": Gauge(Count),
            "Open transition streams (connected actors).";
        EPISODES_TOTAL = "spikerl_learner_episodes_total": Counter(Count),
            "Training episodes finished, per actor id, as reported in batches.";
        EPISODE_RETURN_LAST = "spikerl_learner_episode_return_last": Gauge,
            "Return of the latest finished training episode (with exploration noise).";
        EPISODE_LENGTH_LAST = "spikerl_learner_episode_length_last": Gauge(Count),
            "Length in env steps of the latest finished training episode.";
        // Durable state: checkpoints and evals.csv.
        CHECKPOINT_DURATION_SECONDS = "spikerl_learner_checkpoint_duration_seconds": Histogram(Seconds),
            "Time to write one checkpoint.";
        CHECKPOINT_LAST_SUCCESS_TIMESTAMP_SECONDS = "spikerl_learner_checkpoint_last_success_timestamp_seconds": Gauge(Seconds),
            "Unix time of the latest successful checkpoint (the run's start until the first).";
        CHECKPOINT_INTERVAL_SECONDS = "spikerl_learner_checkpoint_interval_seconds": Gauge(Seconds),
            "Configured periodic checkpoint interval (0: checkpoints only at the end).";
        CHECKPOINT_FAILURES_TOTAL = "spikerl_learner_checkpoint_failures_total": Counter(Count),
            "Checkpoints that failed to write.";
        EVAL_WRITE_FAILURES_TOTAL = "spikerl_learner_eval_write_failures_total": Counter(Count),
            "Evaluations that could not be appended to the run folder's evals.csv.";
    }

    /// The learner's evaluations (deterministic episodes every `--eval-every` env steps).
    mod eval {
        RETURN_LAST = "spikerl_eval_return_last": Gauge,
            "Mean return of the latest evaluation (deterministic policy; NaN before the first).";
        RETURN_BEST = "spikerl_eval_return_best": Gauge,
            "Best evaluation mean return of the run so far.";
        RETURN_INITIAL = "spikerl_eval_return_initial": Gauge,
            "Mean return of the run's first evaluation (the untrained policy).";
    }

    /// The spiking network's activity and energy, measured during the latest evaluation.
    mod snn {
        FIRING_RATE = "spikerl_snn_firing_rate": Gauge,
            "Mean firing probability per neuron and time step over hidden and output layers.";
        LAYER_FIRING_RATE = "spikerl_snn_layer_firing_rate": Gauge,
            "Firing probability per neuron and time step, per population (encoder, layers.N).";
        LAYER_DEAD_NEURONS = "spikerl_snn_layer_dead_neurons": Gauge(Count),
            "Neurons of a spiking layer (layers.N) that never fired during the latest evaluation.";
        LAYER_SATURATED_NEURONS = "spikerl_snn_layer_saturated_neurons": Gauge(Count),
            "Neurons of a spiking layer (layers.N) that fired at every time step of the latest evaluation.";
        SOPS_PER_INFERENCE = "spikerl_snn_sops_per_inference": Gauge(Count),
            "Synaptic operations per inference (one action).";
        MACS_PER_INFERENCE = "spikerl_snn_macs_per_inference": Gauge(Count),
            "Multiply-accumulates per inference (dense layers; 0 for a pure SNN).";
        TIMESTEPS = "spikerl_snn_timesteps": Gauge(Count),
            "Simulation time steps per inference (0 for an ANN).";
        ENERGY_NANOJOULES_PER_INFERENCE = "spikerl_snn_energy_nanojoules_per_inference": Gauge,
            "Estimated energy per inference in nJ: SOPs x 77 fJ + MACs x 3.97 pJ.";
        ANN_ENERGY_NANOJOULES_PER_INFERENCE = "spikerl_snn_ann_energy_nanojoules_per_inference": Gauge,
            "Energy per inference in nJ of the equivalent ANN (same widths): MACs x 3.97 pJ.";
        ENERGY_RATIO_TO_ANN = "spikerl_snn_energy_ratio_to_ann": Gauge,
            "Estimated energy per inference divided by the equivalent ANN's.";
    }

    /// The learner's gRPC server, per method (and status code).
    mod grpc {
        SERVER_STARTED_TOTAL = "spikerl_grpc_server_started_total": Counter(Count),
            "gRPC calls started, per method.";
        SERVER_HANDLED_TOTAL = "spikerl_grpc_server_handled_total": Counter(Count),
            "gRPC calls completed, per method and status code.";
        SERVER_HANDLING_SECONDS = "spikerl_grpc_server_handling_seconds": Histogram(Seconds),
            "Duration of gRPC calls until completion (a stream's whole lifetime), per method.";
        SERVER_IN_FLIGHT = "spikerl_grpc_server_in_flight": Gauge(Count),
            "gRPC calls in progress, per method.";
    }

    /// Actors (and the lockstep learner, which steps its environment itself, for steps and episodes).
    mod actor {
        INFO = "spikerl_actor_info": Gauge,
            "Always 1; labels: actor id, run_id and env given at registration.";
        ENV_STEPS_TOTAL = "spikerl_actor_env_steps_total": Counter(Count),
            "Environment transitions stepped (every env of the actor).";
        EPISODES_TOTAL = "spikerl_actor_episodes_total": Counter(Count),
            "Training episodes finished.";
        EPISODE_RETURN_LAST = "spikerl_actor_episode_return_last": Gauge,
            "Return of the latest finished training episode (with exploration noise).";
        EPISODE_LENGTH_LAST = "spikerl_actor_episode_length_last": Gauge(Count),
            "Length in env steps of the latest finished training episode.";
        POLICY_VERSION = "spikerl_actor_policy_version": Gauge(Count),
            "Policy version the actor acts with next.";
        CONNECTED = "spikerl_actor_connected": Gauge,
            "1 while registered with the learner and streaming, else 0.";
        RECONNECTS_TOTAL = "spikerl_actor_reconnects_total": Counter(Count),
            "Connection attempts retried after an error (with backoff).";
        GRPC_ERRORS_TOTAL = "spikerl_actor_grpc_errors_total": Counter(Count),
            "gRPC errors seen by the actor that led to a retry, by status code.";
        TRANSITIONS_PRODUCED_TOTAL = "spikerl_actor_transitions_produced_total": Counter(Count),
            "Transitions the acting loop handed to the streamer in batches (the delivery ledger).";
        TRANSITIONS_ACKED_TOTAL = "spikerl_actor_transitions_acked_total": Counter(Count),
            "Produced transitions the learner acknowledged as stored, each counted once (the delivery ledger).";
        LOST_BATCHES_TOTAL = "spikerl_actor_lost_batches_total": Counter(Count),
            "Batches lost because the learner went back further than the actor retains.";
        BROADCAST_LATENCY_SECONDS = "spikerl_actor_broadcast_latency_seconds": Histogram(Seconds),
            "Time from a policy's publication on the learner to its receipt (wall clocks of both).";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Histogram series' suffixes: no other name may end with one, or a histogram's `_count` could be
    /// taken for a series of its own.
    const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

    #[test]
    fn names_are_unique_valid_prometheus_names_and_follow_the_conventions() {
        let mut seen = BTreeSet::new();
        for s in ALL {
            let n = s.name;
            assert!(seen.insert(n), "{n} is catalogued twice");
            // Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*, colons being reserved for recording rules.
            let mut chars = n.chars();
            assert!(chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_'), "{n}");
            assert!(chars.all(|c| c.is_ascii_alphanumeric() || c == '_'), "{n} is not a valid name");
            assert!(n.chars().all(|c| !c.is_ascii_uppercase()), "{n}: lower case");
            assert!(
                n.starts_with("spikerl_") || n.starts_with("process_"),
                "{n}: spikerl_ or process_ prefix"
            );
            assert!(!HISTOGRAM_SUFFIXES.iter().any(|x| n.ends_with(x)), "{n} ends like a histogram series");
            assert_eq!(
                s.kind == Kind::Counter,
                n.ends_with("_total"),
                "{n}: counters, and only they, end in _total"
            );
            if s.kind == Kind::Histogram && s.unit == Some(Unit::Seconds) {
                assert!(n.ends_with("_seconds"), "{n}: durations are in seconds and say so");
            }
            if n.ends_with("_seconds") || n.ends_with("_seconds_total") {
                assert_eq!(s.unit, Some(Unit::Seconds), "{n}");
            }
            assert!(s.help.len() > 10 && s.help.ends_with('.'), "{n}: help is a sentence: {:?}", s.help);
        }
        assert_eq!(seen.len(), 71, "the catalogue changed size: update docs/metrics.md and this count");
    }

    #[test]
    fn each_constant_is_its_name_without_prefixes() {
        for &(module, konst, name) in IDENTS {
            let rest = name.strip_prefix("spikerl_").unwrap_or(name);
            let rest = rest.strip_prefix(module).and_then(|r| r.strip_prefix('_')).unwrap_or(rest);
            assert_eq!(konst.to_ascii_lowercase(), rest, "{module}::{konst} names {name}");
        }
        assert_eq!(learner::REPLAY_SIZE, "spikerl_learner_replay_size");
        assert_eq!(Series::find(process::BUILD_INFO).map(|s| s.kind), Some(Kind::Gauge));
    }

    /// docs/metrics.md defines a series wherever it names one in backticks (`name` or `name{labels}`).
    fn documented() -> BTreeSet<&'static str> {
        include_str!("../../docs/metrics.md")
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|s| s.split('{').next().unwrap_or(s).trim())
            .filter(|s| (s.starts_with("spikerl_") || s.starts_with("process_")) && !s.ends_with('_'))
            .filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .map(|s| {
                // A histogram's own series (`x_count`) stands for the histogram.
                HISTOGRAM_SUFFIXES
                    .iter()
                    .filter_map(|x| s.strip_suffix(x))
                    .find(|base| Series::find(base).is_some_and(|b| b.kind == Kind::Histogram))
                    .unwrap_or(s)
            })
            .collect()
    }

    #[test]
    fn docs_define_exactly_the_catalogued_series() {
        let documented = documented();
        let catalogued: BTreeSet<&str> = ALL.iter().map(|s| s.name).collect();
        let undocumented: Vec<_> = catalogued.difference(&documented).collect();
        assert!(undocumented.is_empty(), "catalogued but not defined in docs/metrics.md: {undocumented:?}");
        let uncatalogued: Vec<_> = documented.difference(&catalogued).collect();
        assert!(uncatalogued.is_empty(), "defined in docs/metrics.md but not catalogued: {uncatalogued:?}");
    }
}
