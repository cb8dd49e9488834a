#!/usr/bin/env python3
"""Install spikerl's native dependencies into .native/ (git-ignored), idempotently.

  .native/libtorch/{lib,include}   libtorch 2.13.0 for tch 0.26, taken from the PyPI torch wheel
  .native/mujoco/libmujoco.so      libmujoco 3.17.0, taken from the PyPI mujoco wheel

Only package registries are needed (pip download). Every wheel is checked against a pinned SHA-256 before
anything is extracted, and a stamp file records what was installed, so a second run does nothing.

  scripts/setup_native.py            CPU libtorch (default; no CUDA libraries linked)
  scripts/setup_native.py --cuda     full CUDA libtorch plus NVIDIA runtime wheels (GPU learner hosts)

Another torch version's libtorch, for a binary that runs against a host's own PyTorch (docs/performance.md,
"Running on a GPU host"; scripts/build_gpu_binary.sh):

  scripts/setup_native.py --torch 2.11.0 --cuda --dest .native-torch2.11.0
      DEST/libtorch/{lib,include}  every library of that wheel's torch/lib (libtorch_cuda.so included)
      DEST/nvidia/...              the NVIDIA runtime wheels that torch version depends on, resolved by pip
                                   and extracted as in site-packages, so that the wheel's own rpath
                                   ($ORIGIN/../../nvidia/*/lib) finds them: libtorch_cuda.so then loads
                                   on a host without a GPU (the CPU path runs; CUDA reports no device)
      DEST/mujoco/                 libmujoco, as in .native/
  ... --no-cuda-runtime            skip DEST/nvidia (enough to link; the GPU host brings its own)
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
# Other torch versions, selectable with --torch (the default, 2.13.0, is WHEELS["torch"] above and is what
# tch 0.26 is written for). Each pin is the wheel PyPI serves for these platform tags, hashed on download.
OTHER_TORCH = {
    "2.11.0": ("torch==2.11.0", "torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl",
               "7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a"),
}
DEFAULT_TORCH = "2.13.0"
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


def install_other_libtorch(version, cache, cuda, runtime):
    """libtorch of another torch version (OTHER_TORCH), in NATIVE/libtorch; with cuda and runtime, the NVIDIA
    wheels that version depends on in NATIVE/nvidia (site-packages layout)."""
    WHEELS[f"torch-{version}"] = OTHER_TORCH[version]
    dest = NATIVE / "libtorch"
    stamp = dest / ".spikerl-stamp"
    kind = ("cuda+runtime" if runtime else "cuda") if cuda else "cpu"
    want = f"{STAMP_VERSION} {OTHER_TORCH[version][2]} {kind}"
    if stamp.exists() and stamp.read_text().strip() == want:
        log(f"libtorch {version} ({kind}) already in {dest}")
        return
    shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(NATIVE / "nvidia", ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=NATIVE, prefix="libtorch."))
    os.chmod(staging, 0o755)
    torch = fetch(f"torch-{version}", cache)
    log(f"extracting libtorch {version} ({kind})")
    if cuda:
        with zipfile.ZipFile(torch) as z:
            libs = [n for n in z.namelist() if n.startswith("torch/lib/lib") and ".so" in n
                    and "torch_python" not in n]
    else:
        libs = [f"torch/lib/{n}" for n in TORCH_CPU_LIBS]
    extract(torch, libs + ["torch/include/"], staging, "torch/")
    if not (cuda and runtime):
        # libtorch_cpu.so needs libcudart and libcupti whatever the build: the pinned CUDA 13 ones.
        for key in ("cudart", "cupti"):
            extract(fetch(key, cache), [f"nvidia/cu13/lib/{l}" for l in ("libcudart.so.13", "libcupti.so.13")],
                    staging / "lib", "nvidia/cu13/lib/")
    else:
        deps = cache / f"cuda-deps-{version}"
        download_nvidia_deps(torch, deps)
        nvidia_staging = Path(tempfile.mkdtemp(dir=NATIVE, prefix="nvidia."))
        record = []
        for whl in sorted(deps.glob("nvidia_*.whl")):
            record.append(f"{whl.name} {sha256(whl)}")
            with zipfile.ZipFile(whl) as z:
                for n in z.namelist():
                    if n.startswith("nvidia/") and "/lib/" in n and ".so" in n and not n.endswith("/"):
                        target = nvidia_staging / n[len("nvidia/"):]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with z.open(n) as src, open(target, "wb") as out:
                            shutil.copyfileobj(src, out, 1 << 20)
        (nvidia_staging / "wheels.txt").write_text("\n".join(record) + "\n")
        os.chmod(nvidia_staging, 0o755)
        os.replace(nvidia_staging, NATIVE / "nvidia")
    (staging / "build-version").write_text(f"{version}\n")
    os.replace(staging, dest)
    stamp.write_text(want + "\n")
    log(f"libtorch {version} installed in {dest}")


def download_nvidia_deps(torch_wheel, deps):
    """The NVIDIA wheels a torch wheel requires on Linux (its METADATA), one pip call each so that a pin the
    registry lacks falls back to that package's newest release (same soname major within a CUDA major; only
    loading them matters here) instead of failing the whole set. Not hash-pinned: nvidia/wheels.txt records
    what was taken."""
    with zipfile.ZipFile(torch_wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        reqs = [l.split(":", 1)[1].split(";")[0].strip() for l in z.read(meta).decode().splitlines()
                if l.startswith("Requires-Dist:") and "Linux" in l]
    reqs = [r for r in reqs if r.startswith(("nvidia-", "cuda-toolkit"))]
    log(f"downloading {len(reqs)} NVIDIA requirements of {torch_wheel.name} (several GB)")
    for req in reqs:
        # cuda-toolkit[...] is a meta package: its dependencies are the wheels; the others need none.
        nodeps = [] if req.startswith("cuda-toolkit") else ["--no-deps"]
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", *nodeps, *PIP_PLATFORM, "-d", str(deps)]
        if subprocess.run(cmd + [req]).returncode != 0:
            name = req.split("==")[0]
            log(f"{req} is not in the registry: taking the newest {name}")
            subprocess.run(cmd + [name], check=True)


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
    ap.add_argument("--torch", default=DEFAULT_TORCH, choices=[DEFAULT_TORCH, *OTHER_TORCH],
                    help=f"torch version whose libtorch to install (default {DEFAULT_TORCH}, what tch 0.26 expects)")
    ap.add_argument("--dest", type=Path, default=None,
                    help="install into this directory instead of .native/ (relative to the repository)")
    ap.add_argument("--no-cuda-runtime", action="store_true",
                    help="with --torch other than the default and --cuda: skip the NVIDIA runtime wheels")
    args = ap.parse_args()
    global NATIVE
    if args.dest is not None:
        NATIVE = args.dest if args.dest.is_absolute() else ROOT / args.dest
    if args.torch != DEFAULT_TORCH and NATIVE == ROOT / ".native":
        sys.exit(f"setup-native: --torch {args.torch} needs --dest (.native/ holds the default {DEFAULT_TORCH})")
    if os.uname().machine != "x86_64":
        sys.exit(f"setup-native: only x86_64 Linux is supported by the pinned wheels (this is {os.uname().machine})")
    NATIVE.mkdir(exist_ok=True)
    cache = NATIVE / "wheels"
    cache.mkdir(exist_ok=True)
    if args.torch == DEFAULT_TORCH:
        install_libtorch(cache, args.cuda)
    else:
        install_other_libtorch(args.torch, cache, args.cuda, not args.no_cuda_runtime)
    install_mujoco(cache)
    if not args.keep_wheels:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
