#!/usr/bin/env python3
"""Install spikerl's native dependencies into .native/ (git-ignored), idempotently.

  .native/libtorch/{lib,include}   libtorch 2.13.0 for tch 0.26, taken from the PyPI torch wheel
  .native/mujoco/libmujoco.so      libmujoco 3.17.0, taken from the PyPI mujoco wheel

Only package registries are needed (pip download). Every wheel is checked against a pinned SHA-256 before
anything is extracted, and a stamp file records what was installed, so a second run does nothing.

  scripts/setup_native.py            CPU libtorch (default; no CUDA libraries linked)
  scripts/setup_native.py --cuda     full CUDA libtorch plus NVIDIA runtime wheels (GPU learner hosts)
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NATIVE = ROOT / ".native"

# (requirement, wheel file name, sha256). Fixed platform and python tags make the file, and so its hash,
# the same whatever python3 runs this script.
WHEELS = {
    "torch": ("torch==2.13.0", "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl",
              "60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7"),
    "cudart": ("nvidia-cuda-runtime==13.0.96",
               "nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
               "7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548"),
    "cupti": ("nvidia-cuda-cupti==13.0.85", "nvidia_cuda_cupti-13.0.85-py3-none-manylinux_2_25_x86_64.whl",
              "4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8"),
    "mujoco": ("mujoco==3.17.0", "mujoco-3.17.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
               "d66928d86a2d1b601bbaa4dc11db50214d17d5301bb8afd84721313b67ff0874"),
}
PIP_PLATFORM = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp"] + [
    a for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_25_x86_64",
                "manylinux_2_17_x86_64", "manylinux2014_x86_64") for a in ("--platform", p)]

# The CPU subset of the torch wheel: libtorch_cpu.so still needs libcudart/libcupti (from their own wheels)
# but never libtorch_cuda.so, so CPU builds don't link CUDA.
TORCH_CPU_LIBS = ["libtorch_cpu.so", "libtorch.so", "libc10.so", "libgomp.so.1", "libshm.so",
                  "libtorch_global_deps.so"]
STAMP_VERSION = "1"


def log(msg):
    print(f"[setup-native] {msg}", flush=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(key, cache):
    req, name, digest = WHEELS[key]
    path = cache / name
    if not (path.exists() and sha256(path) == digest):
        log(f"downloading {req}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *PIP_PLATFORM,
                        "-d", str(cache), req], check=True)
        if not path.exists():
            sys.exit(f"setup-native: pip did not produce {name}")
        got = sha256(path)
        if got != digest:
            path.unlink()
            sys.exit(f"setup-native: checksum mismatch for {name}: expected {digest}, got {got}")
    return path


def extract(wheel, members, dest, strip):
    """Extract the wheel members (exact names or prefixes ending in '/') under dest, removing `strip`."""
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            if info.is_dir():
                continue
            if not any(info.filename == m or (m.endswith("/") and info.filename.startswith(m)) for m in members):
                continue
            target = dest / info.filename[len(strip):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def install_libtorch(cache, cuda):
    dest = NATIVE / "libtorch"
    stamp = dest / ".spikerl-stamp"
    want = f"{STAMP_VERSION} {WHEELS['torch'][2]} {'cuda' if cuda else 'cpu'}"
    if stamp.exists() and stamp.read_text().strip() == want:
        log(f"libtorch 2.13.0 ({'cuda' if cuda else 'cpu'}) already in {dest}")
        return
    shutil.rmtree(dest, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=NATIVE, prefix="libtorch."))
    os.chmod(staging, 0o755)
    torch = fetch("torch", cache)
    log("extracting libtorch")
    if cuda:
        with zipfile.ZipFile(torch) as z:
            libs = [n for n in z.namelist() if n.startswith("torch/lib/lib") and ".so" in n
                    and "torch_python" not in n]
    else:
        libs = [f"torch/lib/{n}" for n in TORCH_CPU_LIBS]
    extract(torch, libs + ["torch/include/"], staging, "torch/")
    for key in ("cudart", "cupti"):
        extract(fetch(key, cache), [f"nvidia/cu13/lib/{l}" for l in ("libcudart.so.13", "libcupti.so.13")],
                staging / "lib", "nvidia/cu13/lib/")
    if cuda:
        install_cuda_runtime(staging / "lib", cache)
    (staging / "build-version").write_text("2.13.0\n")
    os.replace(staging, dest)
    stamp.write_text(want + "\n")
    log(f"libtorch installed in {dest}")


def install_cuda_runtime(lib, cache):
    """The GPU build: every NVIDIA wheel torch depends on, resolved by pip (not pinned by hash here)."""
    log("downloading torch's CUDA dependency wheels (several GB)")
    deps = cache / "cuda-deps"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", *PIP_PLATFORM, "-d", str(deps),
                    "torch==2.13.0"], check=True)
    for whl in deps.glob("nvidia_*.whl"):
        with zipfile.ZipFile(whl) as z:
            for n in z.namelist():
                if "/lib/" in n and ".so" in n and not n.endswith("/"):
                    target = lib / Path(n).name
                    with z.open(n) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)


def install_mujoco(cache):
    dest = NATIVE / "mujoco"
    stamp = dest / ".spikerl-stamp"
    want = f"{STAMP_VERSION} {WHEELS['mujoco'][2]}"
    if stamp.exists() and stamp.read_text().strip() == want:
        log(f"libmujoco 3.17.0 already in {dest}")
        return
    shutil.rmtree(dest, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=NATIVE, prefix="mujoco."))
    os.chmod(staging, 0o755)
    wheel = fetch("mujoco", cache)
    extract(wheel, ["mujoco/libmujoco.so.3.17.0"], staging, "mujoco/")
    # mujoco-rs links against a file named exactly libmujoco.so; the soname inside is libmujoco.so.3.17.0.
    os.symlink("libmujoco.so.3.17.0", staging / "libmujoco.so")
    os.replace(staging, dest)
    stamp.write_text(want + "\n")
    log(f"libmujoco installed in {dest}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cuda", action="store_true", help="install the CUDA build of libtorch (GPU learner)")
    ap.add_argument("--keep-wheels", action="store_true", help="keep downloaded wheels in .native/wheels")
    args = ap.parse_args()
    if os.uname().machine != "x86_64":
        sys.exit(f"setup-native: only x86_64 Linux is supported by the pinned wheels (this is {os.uname().machine})")
    NATIVE.mkdir(exist_ok=True)
    cache = NATIVE / "wheels"
    cache.mkdir(exist_ok=True)
    install_libtorch(cache, args.cuda)
    install_mujoco(cache)
    if not args.keep_wheels:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
