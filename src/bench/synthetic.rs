//! Synthetic minibatches of an environment's shapes, so that `bench update` and `bench ensemble` measure
//! the learner alone.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use spikerl_algo::td3::Batch;
use tch::{Device, Tensor};

/// `n` transitions with uniform values in the usual ranges (observations in ±2, actions and rewards in
/// ±1), none terminal.
pub fn random_batch(rng: &mut ChaCha8Rng, n: usize, od: usize, ad: usize, device: Device) -> Batch {
    let mut v = |len: usize, scale: f32| -> Tensor {
        let data: Vec<f32> = (0..len).map(|_| rng.random_range(-scale..scale)).collect();
        Tensor::from_slice(&data).to_device(device)
    };
    let (n64, od64, ad64) = (n as i64, od as i64, ad as i64);
    Batch {
        obs: v(n * od, 2.0).view([n64, od64]),
        actions: v(n * ad, 1.0).view([n64, ad64]),
        rewards: v(n, 1.0).view([n64, 1]),
        next_obs: v(n * od, 2.0).view([n64, od64]),
        not_done: Tensor::ones([n64, 1], (tch::Kind::Float, device)),
    }
}
