//! Training metrics that need more than a one-line macro call: the run's info series and the series
//! initialised when a run starts, and the spiking network's activity and energy at each evaluation.
//! Every name is defined in docs/metrics.md.

use crate::storage::run_folder::LayerActivity;
use spikerl_algo::config::RunConfig;
use spikerl_metrics::{actor, eval, learner, run, snn};
use spikerl_snn::{InferenceStats, MAC_ENERGY_PJ, NetworkConfig, PolicyConfig, ann_equivalent_macs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Publishes what describes the run and initialises the run's series that dashboards and alerts rely
/// on (the trainer adds its counters: `Trainer::announce`). `mode` is "distributed" (gRPC learner) or
/// "sync" (lockstep, no actors).
pub fn run_started(
    cfg: &RunConfig,
    policy: &PolicyConfig,
    run_id: &str,
    mode: &'static str,
    checkpoint_interval: Option<Duration>,
) {
    let neuron = match cfg.algo {
        spikerl_algo::Algo::Ann => "none".to_string(),
        _ => cfg.neuron.to_string(),
    };
    metrics::gauge!(
        run::INFO,
        "run_id" => run_id.to_string(),
        "env" => cfg.env_id.clone(),
        "algo" => cfg.algo.to_string(),
        "neuron" => neuron,
        "mode" => mode
    )
    .set(1.0);
    metrics::gauge!(learner::TRAIN_ITERATIONS_TARGET).set(cfg.steps as f64);
    metrics::gauge!(learner::RANDOM_STEPS).set(cfg.random_steps as f64);
    metrics::gauge!(learner::TARGET_SAMPLES_PER_INSERT).set(cfg.update_ratio);
    metrics::gauge!(learner::CHECKPOINT_INTERVAL_SECONDS)
        .set(checkpoint_interval.map_or(0.0, |d| d.as_secs_f64()));
    // The age of the newest durable state: at start, nothing has been trained yet that could be lost.
    metrics::gauge!(learner::CHECKPOINT_LAST_SUCCESS_TIMESTAMP_SECONDS).set(unix_now());
    let ann_nj = ann_equivalent_macs(policy) as f64 * MAC_ENERGY_PJ / 1000.0;
    metrics::gauge!(snn::ANN_ENERGY_NANOJOULES_PER_INFERENCE).set(ann_nj);
    // A spiking actor's populations, unmeasured until an evaluation (on resume, the next one may be
    // many steps away). An ANN has none.
    if let NetworkConfig::Snn(_) = policy.network {
        metrics::gauge!(snn::LAYER_FIRING_RATE, "layer" => "encoder").set(f64::NAN);
        for i in 0..policy.layer_dims().len() {
            metrics::gauge!(snn::LAYER_FIRING_RATE, "layer" => format!("layers.{i}")).set(f64::NAN);
            metrics::gauge!(snn::LAYER_DEAD_NEURONS, "layer" => format!("layers.{i}")).set(f64::NAN);
            metrics::gauge!(snn::LAYER_SATURATED_NEURONS, "layer" => format!("layers.{i}")).set(f64::NAN);
        }
    }
    if mode == "sync" {
        // The lockstep learner steps the environment itself and exports the actor's step and episode
        // series (docs/metrics.md, Actors): present from the start like an actor's.
        metrics::counter!(actor::ENV_STEPS_TOTAL).increment(0);
        metrics::counter!(actor::EPISODES_TOTAL).increment(0);
        metrics::gauge!(actor::EPISODE_RETURN_LAST).set(f64::NAN);
        metrics::gauge!(actor::EPISODE_LENGTH_LAST).set(f64::NAN);
    }
}

/// Records an evaluation's return and the spiking network's activity during it: firing rate per
/// population, dead and saturated neurons per spiking layer (`layers`, from the evaluation's per-neuron
/// counts), operations per inference and the paper's energy model next to the ANN equivalent.
pub fn record_evaluation(initial: f64, cfg: &PolicyConfig, s: &InferenceStats, layers: &[LayerActivity]) {
    metrics::gauge!(eval::RETURN_INITIAL).set(initial);
    let slots = |neurons: usize| neurons as f64 * s.timesteps as f64 * s.inferences as f64;
    let rate =
        |spikes: u64, neurons: usize| if slots(neurons) > 0.0 { spikes as f64 / slots(neurons) } else { 0.0 };
    if s.encoder_neurons > 0 {
        metrics::gauge!(snn::LAYER_FIRING_RATE, "layer" => "encoder")
            .set(rate(s.encoder_spikes, s.encoder_neurons));
    }
    for (i, (&spikes, &neurons)) in s.spikes_per_layer.iter().zip(&s.neurons_per_layer).enumerate() {
        metrics::gauge!(snn::LAYER_FIRING_RATE, "layer" => format!("layers.{i}")).set(rate(spikes, neurons));
    }
    for (i, l) in layers.iter().enumerate() {
        metrics::gauge!(snn::LAYER_DEAD_NEURONS, "layer" => format!("layers.{i}")).set(l.dead as f64);
        metrics::gauge!(snn::LAYER_SATURATED_NEURONS, "layer" => format!("layers.{i}"))
            .set(l.saturated as f64);
    }
    metrics::gauge!(snn::TIMESTEPS).set(s.timesteps as f64);
    metrics::gauge!(snn::MACS_PER_INFERENCE).set(s.macs_per_inference());
    let ann_nj = ann_equivalent_macs(cfg) as f64 * MAC_ENERGY_PJ / 1000.0;
    metrics::gauge!(snn::ANN_ENERGY_NANOJOULES_PER_INFERENCE).set(ann_nj);
    let ratio = if ann_nj > 0.0 { s.energy_nj_per_inference() / ann_nj } else { f64::NAN };
    metrics::gauge!(snn::ENERGY_RATIO_TO_ANN).set(ratio);
}
