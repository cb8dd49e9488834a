#!/usr/bin/env python3
"""Record Gymnasium's rendered frames for spikerl's video test (tests/video.rs).

  python3 scripts/gen_render_fixtures.py            # all ids -> envs/tests/fixtures/render/
  python3 scripts/gen_render_fixtures.py Hopper-v4  # some ids only

Runs itself inside the same virtual environment as scripts/gen_env_fixtures.py (.native/gym-venv, the
pinned gymnasium[mujoco] 1.4.0, mujoco 3.17.0, numpy 2.4.6), adding PyOpenGL (MuJoCo's OSMesa backend,
MUJOCO_GL=osmesa, needs Debian's libosmesa6) and pygame (the classic-control renderer) on first use.

For each id, with `gym.make(id, render_mode="rgb_array").unwrapped`: reset with a fixed seed and render
(the first render creates the MuJoCo viewer, whose camera lookat comes from this state), then take a few
seeded random float32 actions and render again, twice. Every frame is saved as PNG with the state it
shows (MuJoCo: qpos, qvel; classic control: env.state as qpos) and, for frames after a step, the state
before that step and the action (Pendulum's torque arrow depends on the last action, so the test
reproduces it by stepping). The format is documented in envs/tests/fixtures/README.md.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".native" / "gym-venv"
OUT = ROOT / "envs" / "tests" / "fixtures" / "render"
PINS = ["gymnasium[mujoco]==1.4.0", "mujoco==3.17.0", "numpy==2.4.6"]
EXTRA = ["PyOpenGL", "pygame"]
RESET_SEED = 20240611
ACTION_SEED = 11

# id -> steps before each later frame (frame 0 is the reset state).
PLAN = {
    "HalfCheetah-v4": [25, 25],
    "Hopper-v4": [15, 15],
    "InvertedPendulum-v4": [8, 8],
    "Pendulum-v1": [4, 9],
    "MountainCarContinuous-v0": [30, 60],
}


def ensure_venv():
    """Re-run this script with the venv's interpreter, creating or completing the venv first."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() != VENV.resolve():
        if not python.exists():
            print(f"[render-fixtures] creating {VENV}", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True)
        os.execv(str(python), [str(python), __file__, *sys.argv[1:]])
    try:
        import OpenGL  # noqa: F401
        import pygame  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *EXTRA], check=True)


def state_of(env):
    import numpy as np
    if hasattr(env, "data"):
        return [float(x) for x in env.data.qpos], [float(x) for x in env.data.qvel]
    return [float(x) for x in np.asarray(env.state, dtype=np.float64)], []


def record(env_id):
    import gymnasium as gym
    import numpy as np
    from PIL import Image

    env = gym.make(env_id, render_mode="rgb_array")
    fps = env.metadata["render_fps"]
    env = env.unwrapped
    env.reset(seed=RESET_SEED)
    rng = np.random.default_rng(ACTION_SEED)
    frames = []

    def save(extra):
        img = env.render()
        name = f"{env_id}_{len(frames)}.png"
        Image.fromarray(np.ascontiguousarray(img)).save(OUT / name, optimize=True)
        qpos, qvel = state_of(env)
        frames.append({"file": name, "height": int(img.shape[0]), "width": int(img.shape[1]),
                       "qpos": qpos, "qvel": qvel, **extra})

    save({})
    for steps in PLAN[env_id]:
        for i in range(steps):
            before = state_of(env)
            if env_id == "MountainCarContinuous-v0":
                # Push along the velocity so that the car swings.
                action = np.array([1.0 if env.state[1] >= 0 else -1.0], dtype=np.float32)
            else:
                action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
            env.step(action)
        save({"prev_qpos": before[0], "prev_qvel": before[1], "action": [float(a) for a in action]})
    env.close()
    return {"render_fps": fps, "frames": frames}


def main():
    ensure_venv()
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import gymnasium
    import mujoco
    import numpy

    ids = sys.argv[1:] or list(PLAN)
    unknown = [i for i in ids if i not in PLAN]
    if unknown:
        sys.exit(f"unknown ids {unknown}; known: {list(PLAN)}")
    OUT.mkdir(parents=True, exist_ok=True)
    manifest_path = OUT / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"envs": {}}
    manifest.update({
        "gymnasium": gymnasium.__version__, "mujoco": mujoco.__version__, "numpy": numpy.__version__,
        "mujoco_gl": os.environ["MUJOCO_GL"], "reset_seed": RESET_SEED, "action_seed": ACTION_SEED,
    })
    for env_id in ids:
        print(f"[render-fixtures] {env_id}", flush=True)
        manifest["envs"][env_id] = record(env_id)
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"[render-fixtures] {OUT}: {total / 1e6:.2f} MB", flush=True)


if __name__ == "__main__":
    main()
