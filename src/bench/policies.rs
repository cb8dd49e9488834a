//! The policies the benchmarks measure: the paper's network for an environment with its initial weights,
//! or the trained weights of a `--policy` file checked against that network.

use spikerl_algo::{Algo, RunConfig};
use spikerl_learner::training::trainer::max_action;
use spikerl_snn::{NamedTensors, NeuronKind, PolicyConfig};

/// A `--policy` file that cannot be read, is not a policy file, or holds another network than the one
/// benchmarked: the user's input, not the benchmark, is wrong (the binary exits 2 on it).
#[derive(Debug)]
pub struct BadPolicyFile(pub String);

impl std::fmt::Display for BadPolicyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadPolicyFile {}

/// The actor weights of a `policy.safetensors` (a run folder's `checkpoints/`), checked against the
/// network the benchmark builds from `--env`, `--algo` and `--neuron`: trained weights fire at the rates
/// training reaches (30 to 60% on HalfCheetah), where the event-driven paths cost more than at the
/// initial weights' 4 to 5%.
pub fn trained_weights(
    path: &std::path::Path,
    expected: &PolicyConfig,
) -> Result<NamedTensors, BadPolicyFile> {
    let bytes =
        std::fs::read(path).map_err(|e| BadPolicyFile(format!("cannot read {}: {e}", path.display())))?;
    let (cfg, tensors, _) = spikerl_snn::decode_policy(&bytes)
        .map_err(|e| BadPolicyFile(format!("{} is not a policy file: {e}", path.display())))?;
    if &cfg != expected {
        return Err(BadPolicyFile(format!(
            "{}: its network ({:?}) is not the one benchmarked ({:?}); pass the --env, --algo and --neuron it was trained with",
            path.display(),
            cfg.network,
            expected.network
        )));
    }
    Ok(tensors)
}

/// The paper's acting policy for `env` (initial weights, seed 0).
pub fn paper_policy(
    env: &str,
    algo: Algo,
    neuron: NeuronKind,
) -> anyhow::Result<(PolicyConfig, NamedTensors)> {
    let spec = spikerl_envs::spec(env)?;
    let max_action = max_action(&spec)?;
    let cfg = RunConfig::paper(env, algo, neuron, 0).policy_config(spec.obs_dim, spec.act_dim, max_action);
    let tensors = spikerl_snn::initial_tensors(&cfg, 0)?;
    Ok((cfg, tensors))
}
