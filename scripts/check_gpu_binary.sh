#!/usr/bin/env bash
# Checks here, without a GPU, the folder scripts/build_gpu_binary.sh packed: that its spikerl loads the
# other torch version's libraries through LD_LIBRARY_PATH (as on the GPU host, where that is
# <site-packages>/torch/lib) and runs its CPU path. See docs/performance.md, "Running on a GPU host".
#
#   scripts/check_gpu_binary.sh                 TORCH=2.11.0, dist-gpu/torch2.11.0/
#   QUICK=1 scripts/check_gpu_binary.sh         skip the learner's unit tests (the slow part)
#
# .native-torch$TORCH/libtorch/lib stands in for the host's torch/lib: the wheel's own libraries, with the
# NVIDIA runtime wheels next to it as in site-packages (setup_native.py --cuda), so libtorch_cuda.so and
# everything it needs load; this machine has no driver (libcuda.so.1), so libtorch finds no CUDA device and
# the CPU path runs. Writes its figures to ${CHECK_OUT:-target-gpu/check-$TORCH}/.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH=${TORCH:-2.11.0}
DIST=${DIST:-dist-gpu/torch$TORCH}
TORCH_LIB=$PWD/.native-torch$TORCH/libtorch/lib
OUT=${CHECK_OUT:-target-gpu/check-$TORCH}
mkdir -p "$OUT"
log() { echo "[check-gpu] $*" >&2; }
run() { LD_LIBRARY_PATH=$TORCH_LIB nice -n 19 "$@"; }

[[ -x $DIST/spikerl ]] || { log "no $DIST/spikerl: run scripts/build_gpu_binary.sh"; exit 1; }
cat "$DIST/BUILD-INFO"
du -b "$DIST"/* | awk '{printf "  %6.1f MiB  %s\n", $1 / 1048576, $2}'

log "without LD_LIBRARY_PATH the binary must not find a libtorch (nothing of this machine in its rpath)"
if env -u LD_LIBRARY_PATH "$DIST/spikerl" --version >/dev/null 2>"$OUT/no-ld-path.txt"; then
    log "it ran without LD_LIBRARY_PATH: it found a libtorch somewhere else"; exit 1
fi
head -1 "$OUT/no-ld-path.txt" | sed 's/^/  /'

log "libraries it loads with LD_LIBRARY_PATH=$TORCH_LIB"
LD_LIBRARY_PATH=$TORCH_LIB ldd "$DIST/spikerl" > "$OUT/ldd.txt"
grep -E 'torch|c10|mujoco|cudart|cublas|cudnn|nccl|libcuda\.' "$OUT/ldd.txt" | sed 's/^\s*/  /'
if grep -q 'not found' "$OUT/ldd.txt"; then grep 'not found' "$OUT/ldd.txt"; exit 1; fi
grep -q "$TORCH_LIB/libtorch_cuda.so" "$OUT/ldd.txt" || { log "libtorch_cuda.so is not loaded from $TORCH_LIB"; exit 1; }

if [[ -z ${QUICK:-} && -x $DIST/algo-tests ]]; then
    # The learner's unit tests, built against this binary's headers, on the other version's libraries:
    # the check that the parts of the C++ ABI spikerl uses agree (docs/performance.md). The CUDA test skips.
    log "algo-tests: the spikerl-algo unit tests on libtorch $TORCH (CPU)"
    run "$DIST/algo-tests" --test-threads 2 2>&1 | tee "$OUT/algo-tests.txt" | grep -E '^test result|SKIPPED|FAILED|panicked' || true
    grep -q '^test result: ok' "$OUT/algo-tests.txt" || { log "algo-tests failed: $OUT/algo-tests.txt"; exit 1; }
fi

log "bench update --env HalfCheetah-v4 --algo proxy --neuron lif --json (CPU)"
run "$DIST/spikerl" bench update --env HalfCheetah-v4 --algo proxy --neuron lif --json ${ITERATIONS:+--iterations $ITERATIONS} \
    | tee "$OUT/bench-update-proxy.json"

log "train --env Pendulum-v1 --algo proxy --neuron lif --sync --steps 300 --random-steps 200 --batch-size 64 (CPU)"
rm -rf "$OUT/train"
run "$DIST/spikerl" train --env Pendulum-v1 --algo proxy --neuron lif --sync --steps 300 --random-steps 200 --batch-size 64 \
    --eval-every 250 --eval-episodes 1 --threads 1 --no-progress --out "$OUT/train" 2>&1 | tail -5
cat "$OUT/train/evals.csv"
log "ok: $OUT"
