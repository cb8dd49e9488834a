#!/usr/bin/env bash
# Issue 9's GPU check: training iterations/s of the learner on CUDA, one call, a few minutes. For a host
# with an NVIDIA GPU and a driver for CUDA 13 (the CUDA build of libtorch 2.13.0).
#
#   scripts/bench_gpu.sh                  set-up (CUDA libtorch, several GB) + build + measure
#   BENCH_SKIP_BUILD=1 scripts/bench_gpu.sh   measure only
#   ITERATIONS=2000 scripts/bench_gpu.sh      longer timings
#
# Prints one line per figure and leaves the JSON in target/bench-gpu/<time>/. What it measures:
# `spikerl bench update --device cuda` for PT-TD3 / vanilla / ANN (LIF, HalfCheetah-v4 shapes, batch 256),
# `spikerl bench ensemble --device cuda` for 1, 4, 8 and 16 seeds batched, and `spikerl train --sync --seeds 0-7
# --device cuda` end to end, stacked against separate.
# On CUDA the SNN runs through libtorch (the plain-Rust paths are CPU-only), so an iteration is several
# hundred small kernels: expect kernel-launch latency, not FLOPs, to bound one seed (see the per-phase
# table), and batching seeds to raise seeds x it/s nearly linearly until the GPU fills.
set -euo pipefail
cd "$(dirname "$0")/.."

ITERATIONS=${ITERATIONS:-500}
OUT=target/bench-gpu/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
log() { echo "[bench-gpu] $*" >&2; }

command -v nvidia-smi >/dev/null || { echo "bench-gpu: no nvidia-smi: this host has no NVIDIA driver" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt" >&2

if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    python3 scripts/setup_native.py --cuda
    # tch's build script decides at build time whether to link libtorch_cuda: rebuild it for the CUDA
    # libtorch that now sits where the CPU one was.
    cargo clean --release -p torch-sys
    cargo build --release --bin spikerl
fi
SPIKERL=target/release/spikerl

for algo in proxy vanilla ann; do
    log "bench update --algo $algo --device cuda --iterations $ITERATIONS"
    "$SPIKERL" bench update --env HalfCheetah-v4 --algo "$algo" --neuron lif --device cuda \
        --iterations "$ITERATIONS" | tee -a "$OUT/update.txt"
    "$SPIKERL" bench update --env HalfCheetah-v4 --algo "$algo" --neuron lif --device cuda \
        --iterations "$ITERATIONS" --json >> "$OUT/update.jsonl"
done

for algo in proxy ann; do
    log "bench ensemble --algo $algo --device cuda --seeds 1,4,8,16"
    "$SPIKERL" bench ensemble --env HalfCheetah-v4 --algo "$algo" --neuron lif --device cuda \
        --seeds 1,4,8,16 --iterations "$ITERATIONS" --json | tee -a "$OUT/ensemble.jsonl"
done

# The same seeds end to end: lockstep training of 8 HalfCheetah seeds in one process, stacked vs separate
# (seed-iterations/s in the summary line includes the environments, evaluation off).
for batching in stacked separate; do
    log "train --sync --seeds 0-7 --seed-batching $batching --device cuda"
    "$SPIKERL" train --sync --seeds 0-7 --seed-batching "$batching" --device cuda --env HalfCheetah-v4 \
        --algo proxy --neuron lif --steps 1000 --random-steps 1000 --eval-every 0 --no-progress \
        --out "$OUT/train-$batching" | tee -a "$OUT/train.txt"
done

python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"\nGPU: {(out / 'gpu.txt').read_text().strip()}")
print(f"{'algo':<8} {'ms/iteration':>13} {'it/s':>8}   (issue 9 aims at >= 1000 PT-TD3 it/s)")
for line in (out / "update.jsonl").read_text().splitlines():
    d = json.loads(line)
    print(f"{d['algo']:<8} {d['ms_per_iteration']:>13.3f} {d['iterations_per_second']:>8.0f}")
print(f"JSON: {out}")
PY
