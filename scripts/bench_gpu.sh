#!/usr/bin/env bash
# The GPU learner measured on a GPU host: one call of at most 8 minutes, with the folder that
# scripts/build_gpu_binary.sh packed (spikerl + libmujoco, under 64 MiB; the host has no Rust toolchain and
# brings libtorch itself: its PyTorch's torch/lib). See docs/performance.md, "Running on a GPU host".
#
#   scripts/bench_gpu.sh                        on the GPU host: everything below, JSON under $OUT
#   DEVICE=cpu scripts/bench_gpu.sh             the same steps on the CPU with short settings (a check
#                                               of the script on a machine without a GPU; under nice)
#
# Environment: OUT (output folder; default target/bench-gpu/<time>), DIST (the packed folder; default the
# only dist-gpu/torch*/), SPIKERL (a binary to use instead of DIST/spikerl), TORCH_LIB (the libtorch
# directory; default torch/lib of the python3 that imports torch, else .native-torch*/libtorch/lib),
# DEVICE (cuda), ITERATIONS (bench update; 300 on CUDA), THREADS (libtorch threads), BUDGET (seconds for
# the whole run, 470: a step that would not fit runs with what is left, or is skipped under 10 s).
#
# Steps, each under its own `timeout` so that a hang costs its slot and not the call:
#   nvidia-smi                                     gpu.txt
#   CUDA-vs-CPU update test (DIST/algo-tests)      cuda-test.txt   (SPIKERL_REQUIRE=cuda: a skip fails)
#   bench update --device cuda --json, LIF         update-{ann,vanilla,proxy}.json
#   bench ensemble --device cuda --seeds 1,4,8,16  ensemble-{proxy,ann}.json
#   train --sync --device cuda, HalfCheetah-v4     train-1seed.json, train-seeds-stacked.json (0-7)
#                                                  (env steps/s end to end, evaluation off)
#   summary                                        summary.json and a table
# On CUDA the SNN runs through libtorch (the plain-Rust paths are CPU-only), so an iteration is several
# hundred small kernels: expect kernel-launch latency, not FLOPs, to bound one seed, and batching seeds to
# raise seeds x it/s nearly linearly until the GPU fills.
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=${DEVICE:-cuda}
OUT=${OUT:-target/bench-gpu/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
log() { echo "[bench-gpu $(date +%T)] $*" >&2; }
STARTED=$SECONDS
BUDGET=${BUDGET:-470}
FAILED=()

if [[ $DEVICE == cuda ]]; then
    ITERATIONS=${ITERATIONS:-300}; ENS_ITERATIONS=40; SEEDS=1,4,8,16
    TRAIN_RANDOM=1000; TRAIN_STEPS=2000; GROUP_STEPS=1000; GROUP=0-7
else
    ITERATIONS=${ITERATIONS:-10}; ENS_ITERATIONS=3; SEEDS=1,2
    TRAIN_RANDOM=300; TRAIN_STEPS=100; GROUP_STEPS=30; GROUP=0-1
fi
NICE=()
[[ $DEVICE == cpu ]] && NICE=(nice -n 19)

# --- the binary and the libtorch it runs on ---------------------------------------------------------
if [[ -z ${SPIKERL:-} ]]; then
    if [[ -z ${DIST:-} ]]; then
        dists=(dist-gpu/torch*/)
        [[ ${#dists[@]} == 1 && -d ${dists[0]} ]] || { log "set DIST: found ${dists[*]}"; exit 1; }
        DIST=${dists[0]%/}
    fi
    SPIKERL=$DIST/spikerl
fi
DIST=${DIST:-$(dirname "$SPIKERL")}
[[ -x $SPIKERL ]] || { log "no binary $SPIKERL: run scripts/build_gpu_binary.sh (here, then carry dist-gpu/)"; exit 1; }
# One import of the host's torch (several seconds): its lib dir and version.
HOST_TORCH=$(timeout 60 python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib")); print("host torch", torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null) || HOST_TORCH=
if [[ -z ${TORCH_LIB:-} ]]; then
    TORCH_LIB=$(head -1 <<<"$HOST_TORCH")
    [[ -n $TORCH_LIB ]] || TORCH_LIB=$(ls -d "$PWD"/.native-torch*/libtorch/lib 2>/dev/null | head -1)
fi
[[ -d $TORCH_LIB ]] || { log "no libtorch: set TORCH_LIB to <site-packages>/torch/lib"; exit 1; }
export LD_LIBRARY_PATH=$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# Nothing of the caller's SPIKERL_* run options may leak into the measured commands.
while read -r v; do unset "$v"; done < <(env | grep -o '^SPIKERL_[A-Z_]*' | grep -v '^SPIKERL$')
{
    echo "binary: $SPIKERL"; cat "$DIST/BUILD-INFO" 2>/dev/null
    echo "libtorch: $TORCH_LIB"; tail -n +2 <<<"$HOST_TORCH"
    echo "device: $DEVICE"; echo "host: $(uname -srm); $(ldd --version 2>&1 | head -1)"
} | tee "$OUT/setup.txt" >&2

# step NAME TIMEOUT_S OUTFILE CMD...: runs CMD under timeout, stdout to OUTFILE, stderr to NAME.log.
step() {
    local name=$1 limit=$2 out=$3; shift 3
    local left=$((BUDGET - (SECONDS - STARTED)))
    (( limit > left )) && limit=$left
    if (( limit < 10 )); then
        FAILED+=("$name (skipped: out of time)"); log "$name skipped: ${left}s of the budget left"
        return 1
    fi
    log "$name (timeout ${limit}s)"
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "${NICE[@]}" "$@" > "$out" 2> "$OUT/$name.log"
    local rc=$?
    echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $((SECONDS - t0))}" >> "$OUT/steps.jsonl"
    if (( rc != 0 )); then
        FAILED+=("$name (rc $rc$( ((rc == 124 || rc == 137)) && echo ', timed out'))")
        log "$name failed (rc $rc): $(tail -3 "$OUT/$name.log" | tr '\n' ' ')"
    fi
    return $rc
}

# --- 0. does it start at all (glibc >= 2.35, libtorch and its CUDA libraries found)? ------------------
if ! timeout 60 "$SPIKERL" --version > "$OUT/version.txt" 2> "$OUT/version.log"; then
    log "$SPIKERL does not start: $(head -3 "$OUT/version.log")"
    LD_DEBUG=libs timeout 30 "$SPIKERL" --version 2>&1 | grep -E 'not found|error|cannot' | head -20 > "$OUT/ld-debug.txt"
    exit 1
fi

# --- 1. the GPU ----------------------------------------------------------------------------------
if [[ $DEVICE == cuda ]]; then
    if ! command -v nvidia-smi >/dev/null; then log "no nvidia-smi: this host has no NVIDIA driver"; exit 1; fi
    step nvidia-smi 20 "$OUT/gpu.txt" nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
    cat "$OUT/gpu.txt" >&2
fi

# --- 2. the CUDA-vs-CPU update test ----------------------------------------------------------------
if [[ -x $DIST/algo-tests ]]; then
    # On CUDA a skip (no device seen) is a failure; on CPU the test skips, saying so.
    REQ=(); [[ $DEVICE == cuda ]] && REQ=(env SPIKERL_REQUIRE=cuda)
    step cuda-test 60 "$OUT/cuda-test.txt" "${REQ[@]}" "$DIST/algo-tests" \
        td3::tests::cuda_update_matches_cpu_where_a_gpu_is_present --exact --nocapture --test-threads 1
    grep -E 'SKIPPED|test result|panicked' "$OUT/cuda-test.txt" "$OUT/cuda-test.log" | sed 's/^/  /' >&2
else
    log "no $DIST/algo-tests: the CUDA-vs-CPU test is not run"
fi

# --- 3. one training iteration, per algorithm ------------------------------------------------------
for algo in ann vanilla proxy; do
    step "update-$algo" 50 "$OUT/update-$algo.json" "$SPIKERL" bench update --env HalfCheetah-v4 --algo "$algo" \
        --neuron lif --device "$DEVICE" --iterations "$ITERATIONS" ${THREADS:+--threads $THREADS} --json
done

# --- 4. seeds batched --------------------------------------------------------------------------------
for algo in proxy ann; do
    step "ensemble-$algo" 70 "$OUT/ensemble-$algo.json" "$SPIKERL" bench ensemble --env HalfCheetah-v4 \
        --algo "$algo" --neuron lif --device "$DEVICE" --seeds "$SEEDS" --iterations "$ENS_ITERATIONS" \
        ${THREADS:+--threads $THREADS} --json
done

# --- 5. lockstep training end to end (env + learner, evaluation off) ----------------------------------
train_json() { # NAME ENV_STEPS_PER_SEED SEEDS: the summary line of `spikerl train` as JSON
    python3 - "$OUT/$1.txt" "$2" "$3" > "$OUT/$1.json" <<'PY'
import json, re, sys
text, env_steps, seeds = open(sys.argv[1]).read(), int(sys.argv[2]), int(sys.argv[3])
m = re.search(r"finished in ([\d.]+) s: (\d+) training iterations", text)
if not m:
    sys.exit(f"no summary line in {sys.argv[1]}")
secs, it = float(m.group(1)), int(m.group(2))
print(json.dumps({"seeds": seeds, "env_steps_per_seed": env_steps, "iterations_per_seed": it, "seconds": secs,
                  "env_steps_per_s": round(seeds * env_steps / secs, 1),
                  "seed_iterations_per_s": round(seeds * it / secs, 1)}))
PY
}
if step train-1seed 50 "$OUT/train-1seed.txt" "$SPIKERL" train --sync --device "$DEVICE" --env HalfCheetah-v4 \
    --algo proxy --neuron lif --seed 0 --steps "$TRAIN_STEPS" --random-steps "$TRAIN_RANDOM" --eval-every 0 --eval-episodes 1 \
    ${THREADS:+--threads $THREADS} --no-progress --out "$OUT/run-1seed"; then
    train_json train-1seed $((TRAIN_RANDOM + TRAIN_STEPS)) 1
fi
if step train-seeds-stacked 60 "$OUT/train-seeds-stacked.txt" "$SPIKERL" train --sync --device "$DEVICE" \
    --env HalfCheetah-v4 --algo proxy --neuron lif --seeds "$GROUP" --seed-batching stacked --steps "$GROUP_STEPS" \
    --random-steps "$TRAIN_RANDOM" --eval-every 0 --eval-episodes 1 ${THREADS:+--threads $THREADS} --no-progress --out "$OUT/run-seeds"; then
    train_json train-seeds-stacked $((TRAIN_RANDOM + GROUP_STEPS)) $(( $(ls -d "$OUT"/run-seeds/seed* | wc -l) ))
fi
rm -rf "$OUT"/run-1seed/checkpoints "$OUT"/run-seeds/seed*/checkpoints

# --- summary -------------------------------------------------------------------------------------------
python3 - "$OUT" "$((SECONDS - STARTED))" "${FAILED[@]}" <<'PY'
import json, sys
from pathlib import Path
out, secs, failed = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
def load(name):
    try:
        return json.loads((out / name).read_text().strip().splitlines()[-1])
    except Exception:
        return None
s = {"seconds": secs, "failed": failed,
     "gpu": (out / "gpu.txt").read_text().strip() if (out / "gpu.txt").exists() else None,
     "update": {a: load(f"update-{a}.json") for a in ("ann", "vanilla", "proxy")},
     "ensemble": {a: load(f"ensemble-{a}.json") for a in ("proxy", "ann")},
     "train": {n: load(f"{n}.json") for n in ("train-1seed", "train-seeds-stacked")}}
(out / "summary.json").write_text(json.dumps(s, indent=1) + "\n")
print(f"\nGPU: {s['gpu']}")
print(f"{'algo':<8} {'ms/iteration':>13} {'it/s':>8}   (issue 9 aims at >= 1000 PT-TD3 it/s)")
for a, d in s["update"].items():
    if d:
        print(f"{a:<8} {d.get('ms_per_iteration', float('nan')):>13.3f} {d.get('iterations_per_second', 0):>8.0f}")
for a, d in s["ensemble"].items():
    for r in (d or {}).get("rows", []):
        print(f"ensemble {a:<7} S={r['seeds']:<3} {r['seed_iterations_per_second']:>8.1f} seed-it/s stacked, "
              f"{r['separate_seed_iterations_per_second']:>8.1f} separate ({r['speedup']:.2f}x)")
for n, d in s["train"].items():
    if d:
        print(f"{n}: {d['env_steps_per_s']} env steps/s, {d['seed_iterations_per_s']} seed-iterations/s")
print(f"{secs} s; failed: {', '.join(failed) or 'none'}; JSON: {out}")
PY
(( ${#FAILED[@]} == 0 ))
