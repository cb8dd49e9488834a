//! Checkpoints: everything a learner needs to continue a run as if nothing happened.
//!
//! `checkpoints/` in the run folder holds
//! - `ckpt-<iterations>/` (lockstep runs: `ckpt-<env steps>/`; the newest two are kept), each with
//!   - `nets.safetensors`: actor, target policy or proxy, critics, target critics (`actor.`, `target.`,
//!     `critic.`, `critic_target.` prefixes) and the Adam moments (`opt.actor.`, `opt.critic.`,
//!     `opt.proxy.`);
//!   - `replay.safetensors`: the replay buffer's rows;
//!   - `state.json`: counters, rate limiter, RNG states, evaluation history, actors' sequence numbers,
//!     and in lockstep runs the acting side ([`LockstepState`]);
//!   - `SHA256SUMS`: written last; a checkpoint whose sums do not match is corrupt and never loaded.
//! - `policy.safetensors`: the newest acting policy in the wire format (loadable by actors and by
//!   PyTorch users with `safetensors.torch.load_file`).
//!
//! A checkpoint is assembled in a temporary folder and renamed into place, so a crash or a full disk
//! mid-write leaves the previous checkpoint valid.

use crate::storage::run_folder::{EvalRecord, now_rfc3339, write_atomic};
use anyhow::{Context, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spikerl_algo::Learner;
use spikerl_algo::config::RunConfig;
use spikerl_algo::rate_limiter::RateLimiter;
use spikerl_algo::replay::{ReplayBuffer, Transitions};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use tch::Tensor;
use tch::nn::VarStore;

pub const POLICY_FILE: &str = "policy.safetensors";
const NETS_FILE: &str = "nets.safetensors";
const REPLAY_FILE: &str = "replay.safetensors";
const STATE_FILE: &str = "state.json";
const SUMS_FILE: &str = "SHA256SUMS";
const KEEP: usize = 2;
const STATE_FORMAT: u32 = 1;

/// An actor as checkpoints remember it: a resumed learner keeps ids, deduplicates resent batches and
/// continues the delivery ledger (`inserted`: transitions stored from it; 0 in checkpoints older than it).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActorRecord {
    pub name: String,
    pub id: u32,
    pub last_sequence: u64,
    #[serde(default)]
    pub inserted: u64,
}

/// A ChaCha generator's position: its seed and word position.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RngState {
    pub seed: [u8; 32],
    /// u128 as a decimal string (JSON numbers cannot hold it).
    pub word_pos: String,
}

impl RngState {
    pub fn of(rng: &ChaCha8Rng) -> Self {
        RngState { seed: rng.get_seed(), word_pos: rng.get_word_pos().to_string() }
    }

    pub fn restore(&self) -> anyhow::Result<ChaCha8Rng> {
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_word_pos(self.word_pos.parse().context("rng word position")?);
        Ok(rng)
    }
}

/// The acting side of a lockstep run (`train --sync`) at a checkpoint, taken between two env steps:
/// with the learner's state it continues the run bit for bit. The environment's physics is not copied
/// field by field: it is rebuilt by restarting the current episode from the same random stream and
/// replaying its actions, which reproduces everything MuJoCo keeps (warm starts, quantities left from
/// the last substep) and needs nothing per environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockstepState {
    /// Env steps done: the next step's index.
    pub env_steps: u64,
    /// The exploration stream (uniform random actions, then Gaussian noise).
    pub exploration_rng: RngState,
    /// How the current episode began: the seed of the run's first, seeded reset...
    pub episode_seed: Option<u64>,
    /// ...or the environment's random stream just before an unseeded reset.
    pub episode_rng: Option<RngState>,
    /// The current episode's actions so far (f32 bit patterns, `act_dim` per step).
    pub episode_actions: Vec<u32>,
    /// The observation the replay must arrive at (f64 bit patterns): a check that it did.
    pub observation: Vec<u64>,
    /// The current episode's return so far (f64 bit pattern) and length.
    pub episode_return: u64,
    pub episode_length: u64,
    /// Episodes finished.
    pub episodes: u64,
}

/// The non-tensor part of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LearnerState {
    pub format_version: u32,
    pub run_id: String,
    pub config: RunConfig,
    pub iterations: u64,
    pub actor_updates: u64,
    pub adam_steps_actor: u64,
    pub adam_steps_critic: u64,
    pub adam_steps_proxy: Option<u64>,
    /// SAC's temperature optimiser (none in TD3's, DDPG's and older checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adam_steps_alpha: Option<u64>,
    pub limiter: RateLimiter,
    pub replay_len: usize,
    pub replay_cursor: usize,
    pub replay_rng: RngState,
    pub noise_rng: RngState,
    pub next_eval: u64,
    pub evals: Vec<EvalRecord>,
    pub actors: Vec<ActorRecord>,
    /// Lockstep runs only: the acting side (none in distributed runs' and older checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockstep: Option<LockstepState>,
    pub wall_seconds: f64,
    pub saved_at: String,
}

/// What a checkpoint holds, borrowed from whoever trains (`Trainer::save_checkpoint` assembles it).
pub struct Snapshot<'a> {
    pub cfg: &'a RunConfig,
    pub obs_dim: usize,
    pub act_dim: usize,
    pub learner: &'a Learner,
    /// The replay buffer and limiter as they were at one moment (copied under the replay lock, so
    /// that actors' inserts are held only for the copy, not for the write).
    pub replay: ReplaySnapshot,
    pub limiter: RateLimiter,
    pub next_eval: u64,
    pub evals: &'a [EvalRecord],
    pub lockstep: Option<&'a LockstepState>,
    pub wall_seconds: f64,
}

/// The filled rows of a replay buffer, its write position and its sampling generator.
pub struct ReplaySnapshot {
    len: usize,
    cursor: usize,
    rows: Transitions,
    rng: ChaCha8Rng,
}

impl ReplaySnapshot {
    /// Copies the buffer's filled rows (all of them once the ring is full).
    pub fn of(buffer: &ReplayBuffer) -> ReplaySnapshot {
        let (od, ad) = (buffer.obs_dim(), buffer.act_dim());
        let (len, cursor, data, rng) = buffer.parts();
        ReplaySnapshot { len, cursor, rows: replay_rows(data, len, od, ad), rng: rng.clone() }
    }
}

/// What [`Loaded::restore_into`] gives back besides the networks it loads in place.
pub struct Restored {
    pub buffer: ReplayBuffer,
    pub limiter: RateLimiter,
    pub next_eval: u64,
    pub evals: Vec<EvalRecord>,
    pub wall_seconds: f64,
    pub actors: Vec<ActorRecord>,
}

/// Writes a complete checkpoint of `snapshot` (plus the actors' sequence numbers) into `dir`.
/// Returns the new checkpoint's folder.
pub fn save(
    snapshot: &Snapshot<'_>,
    run_id: &str,
    actors: Vec<ActorRecord>,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let learner = snapshot.learner;
    let policy = spikerl_snn::encode_policy(
        learner.policy_config(),
        &learner.export_policy(),
        learner.actor_updates(),
    )?;
    write_atomic(&dir.join(POLICY_FILE), &policy).context("writing policy.safetensors")?;

    // Numbered by training iterations, or by env steps in lockstep runs: those checkpoint during the
    // random steps too, before the first iteration, and a seed group's seeds must find the same step.
    let number = snapshot.lockstep.map_or(learner.iterations(), |l| l.env_steps);
    let name = format!("ckpt-{number:012}");
    let tmp = dir.join(format!(".tmp-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let result = write_checkpoint(snapshot, run_id, actors, &tmp);
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let final_dir = dir.join(&name);
    // A checkpoint of the same iteration can already exist (a shutdown checkpoint right after a periodic
    // one): move it aside rather than delete it, so that if the rename below fails the good one is put
    // back instead of lost.
    let previous = dir.join(format!(".old-{name}-{}", std::process::id()));
    let moved_aside = final_dir.exists() && fs::rename(&final_dir, &previous).is_ok();
    if let Err(e) = fs::rename(&tmp, &final_dir) {
        let _ = fs::remove_dir_all(&tmp);
        if moved_aside {
            let _ = fs::rename(&previous, &final_dir);
        }
        return Err(e).with_context(|| format!("renaming the new checkpoint into {}", final_dir.display()));
    }
    if moved_aside {
        let _ = fs::remove_dir_all(&previous);
    }
    sync_dir(dir);
    prune(dir, KEEP);
    Ok(final_dir)
}

fn write_checkpoint(
    snapshot: &Snapshot<'_>,
    run_id: &str,
    actors: Vec<ActorRecord>,
    tmp: &Path,
) -> anyhow::Result<()> {
    fs::create_dir_all(tmp)?;
    let learner = snapshot.learner;
    let mut nets: Vec<(String, Tensor)> = Vec::new();
    for (prefix, vs) in learner.stores() {
        nets.extend(vs.variables().into_iter().map(|(n, t)| (format!("{prefix}.{n}"), t)));
    }
    let optimisers = learner.optimisers();
    for (name, opt) in &optimisers {
        nets.extend(opt.state().into_iter().map(|(n, t)| (format!("opt.{name}.{n}"), t)));
    }
    let steps_of = |name: &str| optimisers.iter().find(|(n, _)| *n == name).map(|(_, o)| o.steps);
    let mut sums = String::new();
    let bytes = serialize_tensors(&nets)?;
    write_file(tmp, NETS_FILE, &bytes, &mut sums)?;
    drop(bytes);

    let ReplaySnapshot { len, cursor, rows, rng } = &snapshot.replay;
    let (len, cursor) = (*len, *cursor);
    let replay = serialize_replay(rows, len, snapshot.obs_dim, snapshot.act_dim)?;
    write_file(tmp, REPLAY_FILE, &replay, &mut sums)?;
    drop(replay);

    let state = LearnerState {
        format_version: STATE_FORMAT,
        run_id: run_id.to_string(),
        config: snapshot.cfg.clone(),
        iterations: learner.iterations(),
        actor_updates: learner.actor_updates(),
        adam_steps_actor: steps_of("actor").unwrap_or_default(),
        adam_steps_critic: steps_of("critic").unwrap_or_default(),
        adam_steps_proxy: steps_of("proxy"),
        adam_steps_alpha: steps_of("alpha"),
        limiter: snapshot.limiter.clone(),
        replay_len: len,
        replay_cursor: cursor,
        replay_rng: RngState::of(rng),
        noise_rng: RngState::of(learner.noise_rng()),
        next_eval: snapshot.next_eval,
        evals: snapshot.evals.to_vec(),
        actors,
        lockstep: snapshot.lockstep.cloned(),
        wall_seconds: snapshot.wall_seconds,
        saved_at: now_rfc3339(),
    };
    write_file(tmp, STATE_FILE, &serde_json::to_vec_pretty(&state)?, &mut sums)?;
    write_file(tmp, SUMS_FILE, sums.as_bytes(), &mut String::new())?;
    sync_dir(tmp);
    Ok(())
}

fn write_file(dir: &Path, name: &str, bytes: &[u8], sums: &mut String) -> anyhow::Result<()> {
    use std::io::Write;
    let path = dir.join(name);
    let mut f = fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    f.sync_all().with_context(|| format!("syncing {}", path.display()))?;
    sums.push_str(&format!("{}  {name}\n", hex(&Sha256::digest(bytes))));
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes all but the newest `keep` checkpoints (and stale temporary or set-aside folders left by a
/// crashed process).
fn prune(dir: &Path, keep: usize) {
    let mut all = list(dir);
    all.reverse();
    for old in all.into_iter().skip(keep) {
        let _ = fs::remove_dir_all(old);
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = name.starts_with(".tmp-") || name.starts_with(".old-");
            if stale && !name.ends_with(&format!("-{}", std::process::id())) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Checkpoint folders, oldest first.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("ckpt-") && e.path().is_dir())
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn serialize_tensors(named: &[(String, Tensor)]) -> anyhow::Result<Vec<u8>> {
    let flat: Vec<(String, Vec<usize>, Vec<u8>)> = named
        .iter()
        .map(|(n, t)| {
            let t = t.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float).contiguous();
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let values = Vec::<f32>::try_from(t.flatten(0, -1)).context("tensor to f32")?;
            Ok((n.clone(), shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()))
        })
        .collect::<anyhow::Result<_>>()?;
    serialize_flat(&flat)
}

fn serialize_flat(flat: &[(String, Vec<usize>, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let views: Vec<(String, TensorView<'_>)> = flat
        .iter()
        .map(|(n, shape, bytes)| Ok((n.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let meta = HashMap::from([("format".to_string(), "spikerl-checkpoint".to_string())]);
    Ok(safetensors::serialize(views, Some(meta))?)
}

/// The first `len` rows of each replay array (all of them once the ring is full).
fn replay_rows(data: &Transitions, len: usize, od: usize, ad: usize) -> Transitions {
    Transitions {
        obs: data.obs[..len * od].to_vec(),
        actions: data.actions[..len * ad].to_vec(),
        rewards: data.rewards[..len].to_vec(),
        next_obs: data.next_obs[..len * od].to_vec(),
        terminated: data.terminated[..len].to_vec(),
    }
}

fn serialize_replay(t: &Transitions, len: usize, od: usize, ad: usize) -> anyhow::Result<Vec<u8>> {
    let le = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let flat = vec![
        ("obs".to_string(), vec![len, od], le(&t.obs)),
        ("actions".to_string(), vec![len, ad], le(&t.actions)),
        ("rewards".to_string(), vec![len], le(&t.rewards)),
        ("next_obs".to_string(), vec![len, od], le(&t.next_obs)),
        ("terminated".to_string(), vec![len], le(&t.terminated)),
    ];
    serialize_flat(&flat)
}

/// A verified checkpoint read into memory.
pub struct Loaded {
    pub path: PathBuf,
    pub state: LearnerState,
    nets: Vec<u8>,
    replay: Vec<u8>,
}

/// Reads the newest checkpoint in `dir` whose checksums verify, reporting (and skipping) corrupt ones.
pub fn load_latest(dir: &Path) -> anyhow::Result<Loaded> {
    let candidates = list(dir);
    if candidates.is_empty() {
        bail!("no checkpoint in {} to resume from", dir.display());
    }
    let mut problems = Vec::new();
    for path in candidates.iter().rev() {
        match load(path) {
            Ok(l) => {
                if !problems.is_empty() {
                    tracing::warn!(skipped = ?problems, used = %path.display(), "newer checkpoints were corrupt; resuming from an older one");
                }
                return Ok(l);
            }
            Err(e) => {
                tracing::error!(checkpoint = %path.display(), error = %format!("{e:#}"), "corrupt checkpoint skipped");
                problems.push(format!("{}: {e:#}", path.display()));
            }
        }
    }
    bail!("no valid checkpoint in {}:\n  {}", dir.display(), problems.join("\n  "))
}

/// Reads and verifies one checkpoint folder.
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let sums =
        fs::read_to_string(path.join(SUMS_FILE)).context("missing SHA256SUMS (incomplete checkpoint)")?;
    let mut files = HashMap::new();
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let (digest, name) =
            line.split_once("  ").with_context(|| format!("malformed SHA256SUMS line '{line}'"))?;
        let bytes = fs::read(path.join(name)).with_context(|| format!("reading {name}"))?;
        let got = hex(&Sha256::digest(&bytes));
        if got != digest {
            bail!("{name} is corrupt: SHA-256 {got}, expected {digest}");
        }
        files.insert(name.to_string(), bytes);
    }
    let mut take =
        |name: &str| files.remove(name).with_context(|| format!("SHA256SUMS does not list {name}"));
    let state: LearnerState = serde_json::from_slice(&take(STATE_FILE)?).context("state.json")?;
    if state.format_version != STATE_FORMAT {
        bail!(
            "checkpoint format {} is not supported (this build reads {STATE_FORMAT})",
            state.format_version
        );
    }
    let nets = take(NETS_FILE)?;
    let replay = take(REPLAY_FILE)?;
    SafeTensors::deserialize(&nets).context("nets.safetensors")?;
    SafeTensors::deserialize(&replay).context("replay.safetensors")?;
    Ok(Loaded { path: path.to_path_buf(), state, nets, replay })
}

fn tensor_of(st: &SafeTensors<'_>, name: &str) -> Option<Tensor> {
    let view = st.tensor(name).ok()?;
    if view.dtype() != Dtype::F32 {
        return None;
    }
    let values: Vec<f32> =
        view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    Some(Tensor::from_slice(&values).view(shape.as_slice()))
}

fn copy_into(vs: &VarStore, prefix: &str, st: &SafeTensors<'_>) -> anyhow::Result<()> {
    for (name, mut var) in vs.variables() {
        let key = format!("{prefix}.{name}");
        let t = tensor_of(st, &key).with_context(|| format!("checkpoint lacks {key}"))?;
        if t.size() != var.size() {
            bail!("{key} has shape {:?} in the checkpoint, {:?} in this build", t.size(), var.size());
        }
        tch::no_grad(|| var.copy_(&t.to_device(var.device())));
    }
    Ok(())
}

impl Loaded {
    /// Restores networks, optimisers, counters and the noise stream into `td3`, a freshly built learner
    /// of the same configuration, and returns the replay buffer (of `capacity` rows), limiter, schedule
    /// and actors' sequence records for the trainer to take.
    pub fn restore_into(
        &self,
        learner: &mut Learner,
        obs_dim: usize,
        act_dim: usize,
        capacity: usize,
    ) -> anyhow::Result<Restored> {
        let s = &self.state;
        let nets = SafeTensors::deserialize(&self.nets)?;
        let device = learner.device();
        {
            for (prefix, vs) in learner.stores() {
                copy_into(vs, prefix, &nets)?;
            }
            let nets = &nets;
            for (name, opt) in learner.optimisers_mut() {
                let steps = match name {
                    "actor" => Some(s.adam_steps_actor),
                    "critic" => Some(s.adam_steps_critic),
                    "proxy" => s.adam_steps_proxy,
                    "alpha" => s.adam_steps_alpha,
                    other => unreachable!("no optimiser is named {other}"),
                };
                let Some(steps) = steps else {
                    bail!("the checkpoint's algorithm does not match this run's (it has no {name} optimiser)")
                };
                let prefix = format!("opt.{name}");
                let get = |k: &str| tensor_of(nets, &format!("{prefix}.{k}")).map(|t| t.to_device(device));
                opt.load_state(steps, &get).map_err(anyhow::Error::msg)?;
            }
            if s.adam_steps_proxy.is_some() != learner.has_proxy() {
                bail!("the checkpoint's algorithm does not match this run's (proxy present in one only)");
            }
            learner.set_progress(s.iterations, s.actor_updates, s.noise_rng.restore()?);
        }

        let replay = SafeTensors::deserialize(&self.replay)?;
        let (od, ad, cap) = (obs_dim, act_dim, capacity);
        let rows = |name: &str, width: usize| -> anyhow::Result<Vec<f32>> {
            let v = replay.tensor(name).with_context(|| format!("replay lacks {name}"))?;
            if v.dtype() != Dtype::F32 || v.data().len() != s.replay_len * width * 4 {
                bail!("replay {name} has the wrong size for {} rows", s.replay_len);
            }
            let mut out: Vec<f32> =
                v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            out.resize(cap * width, 0.0);
            Ok(out)
        };
        let data = Transitions {
            obs: rows("obs", od)?,
            actions: rows("actions", ad)?,
            rewards: rows("rewards", 1)?,
            next_obs: rows("next_obs", od)?,
            terminated: rows("terminated", 1)?,
        };
        let buffer = ReplayBuffer::from_parts(
            od,
            ad,
            cap,
            s.replay_len,
            s.replay_cursor,
            data,
            s.replay_rng.restore()?,
        )
        .map_err(anyhow::Error::msg)?;
        Ok(Restored {
            buffer,
            limiter: s.limiter.clone(),
            next_eval: s.next_eval,
            evals: s.evals.clone(),
            wall_seconds: s.wall_seconds,
            actors: s.actors.clone(),
        })
    }
}
