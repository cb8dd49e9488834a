//! Our environments against Gymnasium 1.4.0, bit for bit.
//!
//! Each fixture (see `fixtures/README.md`; regenerate with `scripts/gen_env_fixtures.py`) holds a
//! state right after a Gymnasium reset, the reset observation, and a full horizon of float32 actions
//! with the observation, reward and flags Gymnasium's unwrapped env returned for each. We set the state
//! on a fresh unwrapped env, replay the actions, and require identical f64 bits everywhere: no
//! tolerance is needed, because the physics is the same MuJoCo build and the reward arithmetic
//! reproduces NumPy's (float32 control costs with pairwise sums, `pow` squares, OpenBLAS norms).
//! This fails, for example, if a control cost is computed in f64 (rewards off by ~1e-9), if
//! `mj_rnePostConstraint` is skipped (Ant-v5/Humanoid observations hold stale `cfrc_ext`) or if Ant's
//! velocity is recomputed from qpos.

use std::path::{Path, PathBuf};

use spikerl_envs::{known_ids, make_unwrapped};

/// One reference trajectory.
struct Fixture {
    qpos: Vec<f64>,
    qvel: Vec<f64>,
    obs0: Vec<f64>,
    act_dim: usize,
    obs_dim: usize,
    actions: Vec<f32>,
    obs: Vec<f64>,
    rewards: Vec<f64>,
    /// bit 0: terminated, bit 1: truncated.
    flags: Vec<u8>,
}

fn fixture_path(id: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{id}.bin"))
}

/// Reads `SPKFIX01` + 5 x u32 (nq, nv, act_dim, obs_dim, steps) + f64 qpos, qvel, obs0 + f32 actions
/// + f64 obs + f64 rewards + u8 flags, all little-endian.
fn load(id: &str) -> Fixture {
    let path = fixture_path(id);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/gen_env_fixtures.py)", path.display()));
    assert_eq!(&bytes[..8], b"SPKFIX01", "{id}: not a fixture file");
    let mut at = 8;
    let mut u32s = [0usize; 5];
    for v in &mut u32s {
        *v = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
    }
    let [nq, nv, act_dim, obs_dim, steps] = u32s;
    let mut f64s = |n: usize| -> Vec<f64> {
        let v = bytes[at..at + 8 * n]
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        at += 8 * n;
        v
    };
    let qpos = f64s(nq);
    let qvel = f64s(nv);
    let obs0 = f64s(obs_dim);
    let n_act = steps * act_dim;
    let actions: Vec<f32> = bytes[at..at + 4 * n_act]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    at += 4 * n_act;
    let mut f64s = |n: usize| -> Vec<f64> {
        let v = bytes[at..at + 8 * n]
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        at += 8 * n;
        v
    };
    let obs = f64s(steps * obs_dim);
    let rewards = f64s(steps);
    let flags = bytes[at..at + steps].to_vec();
    assert_eq!(at + steps, bytes.len(), "{id}: trailing bytes");
    Fixture { qpos, qvel, obs0, act_dim, obs_dim, actions, obs, rewards, flags }
}

/// How one replay compared with its fixture.
#[derive(Default)]
struct Report {
    steps: usize,
    obs_mismatches: usize,
    reward_mismatches: usize,
    flag_mismatches: usize,
    max_abs_diff: f64,
    first_mismatch: Option<String>,
}

/// Bitwise equality (so NaN == NaN with the same payload, and -0.0 != 0.0).
fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits()
}

fn replay(id: &str) -> Report {
    let fx = load(id);
    let mut env = make_unwrapped(id).unwrap();
    assert_eq!(env.spec().obs_dim, fx.obs_dim, "{id}: obs_dim");
    assert_eq!(env.spec().act_dim, fx.act_dim, "{id}: act_dim");
    let mut r = Report::default();
    let note = |r: &mut Report, what: String| {
        if r.first_mismatch.is_none() {
            r.first_mismatch = Some(what);
        }
    };

    let obs0 = env.set_state(&fx.qpos, &fx.qvel).unwrap();
    for (j, (&a, &b)) in obs0.iter().zip(&fx.obs0).enumerate() {
        if !same(a, b) {
            r.obs_mismatches += 1;
            r.max_abs_diff = r.max_abs_diff.max((a - b).abs());
            note(&mut r, format!("reset obs[{j}]: ours {a:e}, gymnasium {b:e}"));
        }
    }

    for (t, action) in fx.actions.chunks_exact(fx.act_dim).enumerate() {
        let s = env.step(action);
        r.steps += 1;
        let want = &fx.obs[t * fx.obs_dim..(t + 1) * fx.obs_dim];
        for (j, (&a, &b)) in s.obs.iter().zip(want).enumerate() {
            if !same(a, b) {
                r.obs_mismatches += 1;
                r.max_abs_diff = r.max_abs_diff.max((a - b).abs());
                note(&mut r, format!("step {t} obs[{j}]: ours {a:e}, gymnasium {b:e}"));
            }
        }
        if !same(s.reward, fx.rewards[t]) {
            r.reward_mismatches += 1;
            r.max_abs_diff = r.max_abs_diff.max((s.reward - fx.rewards[t]).abs());
            note(&mut r, format!("step {t} reward: ours {:e}, gymnasium {:e}", s.reward, fx.rewards[t]));
        }
        let flags = u8::from(s.terminated) | (u8::from(s.truncated) << 1);
        if flags != fx.flags[t] {
            r.flag_mismatches += 1;
            note(&mut r, format!("step {t} flags: ours {flags:#b}, gymnasium {:#b}", fx.flags[t]));
        }
    }
    r
}

#[test]
fn all_environments_match_gymnasium_bit_for_bit() {
    let mut failures = Vec::new();
    for &id in known_ids() {
        let r = replay(id);
        eprintln!(
            "{id:<28} {:>5} steps  obs mismatches {:>6}  reward mismatches {:>5}  flag mismatches {:>4}  max |diff| {:e}",
            r.steps, r.obs_mismatches, r.reward_mismatches, r.flag_mismatches, r.max_abs_diff
        );
        if r.obs_mismatches + r.reward_mismatches + r.flag_mismatches > 0 {
            failures.push(format!("{id}: {}", r.first_mismatch.unwrap_or_default()));
        }
    }
    assert!(failures.is_empty(), "not identical to Gymnasium:\n{}", failures.join("\n"));
}

#[test]
fn fixtures_cover_every_id_and_full_horizon() {
    for &id in known_ids() {
        let fx = load(id);
        let spec = spikerl_envs::spec(id).unwrap();
        assert_eq!(fx.rewards.len(), spec.max_episode_steps, "{id}");
        // The fixture exercises what the test claims to: out-of-bounds actions everywhere, terminations
        // wherever the task has them.
        let out_of_bounds = fx
            .actions
            .chunks_exact(fx.act_dim)
            .any(|a| a.iter().zip(&spec.act_high).any(|(&x, &h)| f64::from(x).abs() > h));
        assert!(out_of_bounds, "{id}: no out-of-bounds action");
        let terminates = !id.starts_with("HalfCheetah")
            && !id.starts_with("Swimmer")
            && !id.starts_with("Reacher")
            && !id.starts_with("Pendulum");
        assert_eq!(fx.flags.iter().any(|f| f & 1 == 1), terminates, "{id}: terminations");
    }
}
