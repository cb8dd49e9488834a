//! Checkpoints in the run folder's `checkpoints/`:
//! - `policy.safetensors`: the acting policy in the wire format (spikerl-snn's `encode_policy`), loadable
//!   by actors and by PyTorch users (`safetensors.torch.load_file`);
//! - `learner.safetensors`: every network of the learner (actor, target policy or proxy, critics, target
//!   critics) under `actor.`, `target.`, `critic.`, `critic_target.` prefixes, with the counters in the
//!   metadata.
//! Both are written atomically (temp file + rename).

use crate::run_dir::write_atomic;
use crate::trainer::Trainer;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;
use tch::nn::VarStore;

pub const POLICY_FILE: &str = "policy.safetensors";
pub const LEARNER_FILE: &str = "learner.safetensors";

pub fn save(trainer: &Trainer, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let td3 = &trainer.td3;
    let policy = spikerl_snn::encode_policy(&td3.policy_config, &td3.export_policy(), td3.actor_updates)?;
    write_atomic(&dir.join(POLICY_FILE), &policy)?;

    let mut flat: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (prefix, vs) in [
        ("actor", &td3.actor_vs),
        ("target", td3.target_vs()),
        ("critic", &td3.critic_vs),
        ("critic_target", &td3.critic_target_vs),
    ] {
        collect(prefix, vs, &mut flat);
    }
    let views: Vec<(String, TensorView<'_>)> = flat
        .iter()
        .map(|(n, shape, bytes)| Ok((n.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let metadata = HashMap::from([
        ("format".to_string(), "spikerl-learner".to_string()),
        ("format_version".to_string(), "1".to_string()),
        ("iterations".to_string(), td3.iterations.to_string()),
        ("actor_updates".to_string(), td3.actor_updates.to_string()),
        ("config".to_string(), serde_json::to_string(&trainer.cfg)?),
    ]);
    let bytes = safetensors::serialize(views, Some(metadata))?;
    write_atomic(&dir.join(LEARNER_FILE), &bytes)?;
    Ok(())
}

fn collect(prefix: &str, vs: &VarStore, out: &mut Vec<(String, Vec<usize>, Vec<u8>)>) {
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in vars {
        let t = t.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float).contiguous();
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let values: Vec<f32> = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap_or_default();
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        out.push((format!("{prefix}.{name}"), shape, bytes));
    }
}
