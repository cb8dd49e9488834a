//! The learner's decoding and validation of request messages from the network (protobuf decode, then
//! the handlers' checks), through `spikerl_learner::service::server::fuzzing::check`: byte 0 picks the message
//! kind and run spec, the rest is the message. A panic anywhere, or an accepted message that does not
//! fit the run, is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spikerl_learner::service::server::Accepted;
use spikerl_learner::service::server::fuzzing::{self, RUN_ID};

fuzz_target!(|data: &[u8]| {
    let (info, result) = fuzzing::check(data);
    match result {
        Ok(Accepted::Register(r)) => {
            assert_eq!(r.protocol_version, spikerl_proto::PROTOCOL_VERSION);
            assert!((1..=256).contains(&r.actor_name.len()));
        }
        Ok(Accepted::Subscribe(s)) => assert!(s.run_id == RUN_ID && s.actor_id <= 1),
        Ok(Accepted::Batch(rows)) => {
            let n = rows.len();
            assert!((1..=info.max_batch_transitions).contains(&n));
            assert_eq!(rows.obs.len(), n * info.obs_dim);
            assert_eq!(rows.next_obs.len(), n * info.obs_dim);
            assert_eq!(rows.actions.len(), n * info.act_dim);
            assert_eq!(rows.terminated.len(), n);
            for v in [&rows.obs, &rows.next_obs, &rows.actions, &rows.rewards] {
                assert!(v.iter().all(|x| x.is_finite()));
            }
        }
        Err(_) => {}
    }
});
