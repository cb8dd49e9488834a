//! The actor's decoding of policy weights from the learner (safetensors + config metadata) and the
//! build of its acting network, through `spikerl_snn::policy_from_bytes`; one inference on success.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((mut policy, _)) = spikerl_snn::policy_from_bytes(data) {
        let cfg = policy.config().clone();
        let mut action = vec![0.0; cfg.act_dim];
        policy.act(&vec![0.5; cfg.obs_dim], &mut action);
    }
});
