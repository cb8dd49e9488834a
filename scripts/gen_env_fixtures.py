#!/usr/bin/env python3
"""Record Gymnasium reference trajectories for spikerl-envs' identity test (envs/tests/gymnasium_identity.rs).

  python3 scripts/gen_env_fixtures.py            # all 20 ids -> envs/tests/fixtures/
  python3 scripts/gen_env_fixtures.py Hopper-v5  # some ids only

Runs itself inside a virtual environment (.native/gym-venv, git-ignored; created on first use from the
package registry) with the pinned stack the Rust crate must match: gymnasium[mujoco] 1.4.0, mujoco
3.17.0 (without the pin pip takes 4.x, which diverges) and numpy 2.4.6 (NumPy 2 type promotion decides
float32 control costs).

For each id, with Gymnasium's *unwrapped* env: reset with a fixed seed, record qpos/qvel (classic
control: the state vector as qpos, no qvel) and the reset observation, then take max_episode_steps
float32 actions and record obs, reward, terminated, truncated after every one, stepping through
terminations as the unwrapped env allows. Actions are uniform over the action space, with a few
slightly outside the bounds (costs use the unclipped action) and a few exactly on them.
MountainCarContinuous pushes along its velocity instead, so that it reaches the goal and terminates.

The file format is documented in envs/tests/fixtures/README.md.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".native" / "gym-venv"
OUT = ROOT / "envs" / "tests" / "fixtures"
PINS = ["gymnasium[mujoco]==1.4.0", "mujoco==3.17.0", "numpy==2.4.6"]
MAGIC = b"SPKFIX01"
RESET_SEED = 20240611
ACTION_SEED = 7

IDS = [
    "HalfCheetah-v4", "HalfCheetah-v5", "Hopper-v4", "Hopper-v5", "Walker2d-v4", "Walker2d-v5",
    "Ant-v4", "Ant-v5", "Humanoid-v4", "Humanoid-v5", "InvertedPendulum-v4", "InvertedPendulum-v5",
    "InvertedDoublePendulum-v4", "InvertedDoublePendulum-v5", "Swimmer-v4", "Swimmer-v5",
    "Reacher-v4", "Reacher-v5", "Pendulum-v1", "MountainCarContinuous-v0",
]


def ensure_venv():
    """Re-run this script with the venv's interpreter, creating the venv first if needed."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not python.exists():
        print(f"[fixtures] creating {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True)
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def actions_for(env_id, env, rng, steps):
    """The float32 action sequence for env_id (MountainCar: generated online, see record())."""
    import numpy as np
    low = env.action_space.low.astype(np.float64)
    high = env.action_space.high.astype(np.float64)
    acts = rng.uniform(low, high, size=(steps, len(low)))
    t = np.arange(steps)
    # 5% of the steps slightly out of bounds, 2% exactly on them (the bounds are symmetric).
    out = t % 20 == 3
    side = np.where(rng.uniform(size=(out.sum(), len(low))) < 0.5, low, high)
    acts[out] = side * rng.uniform(1.01, 1.3, size=side.shape)
    edge = t % 50 == 11
    acts[edge] = np.where(rng.uniform(size=(edge.sum(), len(low))) < 0.5, low, high)
    return acts.astype(np.float32)


def record(env_id):
    import gymnasium as gym
    import numpy as np
    env = gym.make(env_id)
    steps = env.spec.max_episode_steps
    env = env.unwrapped
    obs0, _ = env.reset(seed=RESET_SEED)
    if hasattr(env, "data"):
        qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
    else:
        qpos, qvel = np.array(env.state, dtype=np.float64), np.zeros(0)
    rng = np.random.default_rng([ACTION_SEED, IDS.index(env_id)])
    mountain_car = env_id.startswith("MountainCar")
    planned = None if mountain_car else actions_for(env_id, env, rng, steps)
    acts, obs, rew, flags = [], [], [], []
    for t in range(steps):
        if mountain_car:
            # Push along the velocity (with noise, sometimes out of bounds or exactly on them).
            v = float(env.state[1])
            a = (1.0 if v >= 0 else -1.0) * rng.uniform(0.6, 1.3)
            if rng.uniform() < 0.05:
                a = float(rng.choice([-1.0, 1.0]))
            action = np.array([a], dtype=np.float32)
        else:
            action = planned[t]
        o, r, term, trunc, _ = env.step(action)
        acts.append(np.asarray(action, dtype=np.float32))
        obs.append(np.asarray(o, dtype=np.float64))
        rew.append(float(r))
        flags.append(int(bool(term)) | (int(bool(trunc)) << 1))
    acts, obs = np.stack(acts), np.stack(obs)
    path = OUT / f"{env_id}.bin"
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<5I", len(qpos), len(qvel), acts.shape[1], obs.shape[1], steps))
        f.write(np.asarray(qpos, "<f8").tobytes())
        f.write(np.asarray(qvel, "<f8").tobytes())
        f.write(np.asarray(obs0, "<f8").tobytes())
        f.write(np.asarray(acts, "<f4").tobytes())
        f.write(np.asarray(obs, "<f8").tobytes())
        f.write(np.asarray(rew, "<f8").tobytes())
        f.write(bytes(flags))
    n_term = sum(f & 1 for f in flags)
    print(f"[fixtures] {env_id}: {steps} steps, {n_term} terminated, {path.stat().st_size} bytes", flush=True)
    return {"steps": steps, "terminated_steps": n_term, "bytes": path.stat().st_size}


def main():
    ensure_venv()
    import gymnasium
    import mujoco
    import numpy
    ids = sys.argv[1:] or IDS
    unknown = [i for i in ids if i not in IDS]
    if unknown:
        sys.exit(f"unknown ids: {unknown}; known: {IDS}")
    OUT.mkdir(parents=True, exist_ok=True)
    # MuJoCo writes warnings (half_cheetah.xml's deprecated `settotalmass`) to MUJOCO_LOG.TXT in the
    # working directory: keep that out of the repository.
    os.chdir(tempfile.mkdtemp(prefix="spikerl-fixtures-"))
    manifest_path = OUT / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"files": {}}
    manifest.update({
        "gymnasium": gymnasium.__version__, "mujoco": mujoco.__version__, "numpy": numpy.__version__,
        "reset_seed": RESET_SEED, "action_seed": ACTION_SEED,
    })
    for env_id in ids:
        manifest["files"][f"{env_id}.bin"] = record(env_id)
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
