//! Every random stream of a run derives from its one seed: network initialisation, replay sampling,
//! target-policy noise, the evaluation environment and each actor's environments and exploration.

use serde::Serialize;

/// libtorch's generator is process-global: seeding it and drawing the initial weights happen under this
/// lock, so learners built on parallel threads (tests, several seeds in one process) stay reproducible.
static TORCH_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`TORCH_INIT`], recovering it if a panicking holder poisoned it.
pub fn torch_init_lock() -> std::sync::MutexGuard<'static, ()> {
    TORCH_INIT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every random stream's seed, derived from the run seed.
#[derive(Clone, Debug, Serialize)]
pub struct Seeds {
    pub run: u64,
    pub torch: u64,
    pub replay: u64,
    /// TD3's target policy smoothing noise.
    pub target_noise: u64,
    pub eval_env: u64,
    /// Actor i's seed is `derive_seed(run, 1000 + i)`; in lockstep mode the single actor is 0.
    pub actor_base: u64,
}

impl Seeds {
    pub fn from_run(seed: u64) -> Seeds {
        Seeds {
            run: seed,
            torch: derive_seed(seed, 1),
            replay: derive_seed(seed, 2),
            target_noise: derive_seed(seed, 3),
            eval_env: seed + 100,
            actor_base: 1000,
        }
    }
}

/// Derives an independent stream seed (SplitMix64 finaliser over seed and stream index).
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
