#!/usr/bin/env bash
# Issue 9's side-by-side benchmark: the reference implementation's micro-benchmarks (re-implemented in eager
# PyTorch, scripts/bench_reference.py) and `spikerl bench` on the same machine, in the same run, so the
# speedups are measured rather than remembered. Prints a table and leaves every figure as JSON in
# target/bench/<time>/. A few minutes on 2 cores (after the first build and the torch install).
#
#   scripts/bench.sh                      2 libtorch threads on both sides (issue 9's setting)
#   THREADS=1 scripts/bench.sh            one thread each: the fair setting on a machine others are loading
#   ROUNDS=5 BENCH_SECONDS=3 scripts/bench.sh   more rounds (default 3; the table gives best rounds and paired ratios)
#   BENCH_SKIP_BUILD=1 scripts/bench.sh   re-run without set-up and build
#   BASES="sac ddpg" scripts/bench.sh     the update figures of some RL algorithms only (default "td3 sac ddpg":
#                                         TD3 proxy/vanilla/ann, SAC proxy/vanilla/ann, DDPG proxy/ann; issue 22);
#                                         the sgemm and inference figures are measured whatever BASES says
#   POLICY=run/checkpoints/policy.safetensors scripts/bench.sh
#                                         spikerl's SNN figures from a trained HalfCheetah-v4 LIF actor (its cost
#                                         follows the spike count; the reference is dense and does not depend on it)
#
# PyTorch: torch 2.13.0 (the version libtorch comes from) in .native/bench-venv. PyPI's torch wheel is the
# CUDA build and would pull several GB of NVIDIA wheels; this script installs the wheel alone (--no-deps,
# the one scripts/setup_native.py pins and checksums, reused from .native/wheels or $SPIKERL_WHEEL_DIR when
# cached), its pure-Python dependencies, the CUDA runtime libraries setup_native.py already extracted, and
# generated no-op stand-ins for the other NVIDIA libraries the wheel links but a CPU run never calls. The CPU
# kernels (MKL, oneDNN, OpenMP) are the wheel's own. Where that cannot be done (no CPython 3.11, no
# network), the spikerl figures are still measured and the reference column says why it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
BENCH_SECONDS=${BENCH_SECONDS:-2}
BASES=${BASES:-td3 sac ddpg}
for base in $BASES; do
    if [[ $base != td3 && $base != sac && $base != ddpg ]]; then
        echo "bench: BASES: unknown base '$base' (td3, sac, ddpg)" >&2
        exit 2
    fi
done
VENV=.native/bench-venv
OUT=target/bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
log() { echo "[bench] $*" >&2; }

if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    python3 scripts/setup_native.py
    cargo build --release --bin spikerl
fi
SPIKERL=target/release/spikerl
[[ -x $SPIKERL ]] || { echo "bench: $SPIKERL missing (run without BENCH_SKIP_BUILD)" >&2; exit 1; }

# ---- torch 2.13.0 (CPU use of the PyPI wheel) in .native/bench-venv --------------------------------------
torch_ok() { [[ -f $VENV/.spikerl-torch-ok ]] && "$VENV/bin/python" -c "import torch" 2>/dev/null; }

install_torch() {
    local py
    py=$(command -v python3.11 || true)
    if [[ -z $py ]] && python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then py=$(command -v python3); fi
    if [[ -z $py ]]; then
        echo "CPython 3.11 not found (the pinned torch 2.13.0 wheel is cp311)"; return 1
    fi
    rm -rf "$VENV"
    "$py" -m venv "$VENV" || return 1
    log "installing torch's pure-Python dependencies into $VENV"
    "$VENV/bin/pip" install --quiet filelock typing-extensions sympy networkx jinja2 fsspec numpy || return 1
    # The wheel: the one setup_native.py pins (same file name and SHA-256), from a cache or PyPI (no deps).
    local wheel
    wheel=$(python3 - <<'PY'
import os, sys
from pathlib import Path
sys.path.insert(0, "scripts")
import setup_native as sn
_, name, digest = sn.WHEELS["torch"]
for d in filter(None, [os.environ.get("SPIKERL_WHEEL_DIR"), str(sn.NATIVE / "wheels")]):
    p = Path(d) / name
    if p.exists() and sn.sha256(p) == digest:
        print(p)
        sys.exit(0)
(sn.NATIVE / "wheels").mkdir(parents=True, exist_ok=True)
print(sn.fetch("torch", sn.NATIVE / "wheels"))   # pip download --no-deps, then the checksum
PY
    ) || return 1
    wheel=${wheel##*$'\n'}   # the path is the last line: fetch() also reports the download on stdout
    log "installing $(basename "$wheel") (--no-deps)"
    "$VENV/bin/pip" install --quiet --no-deps "$wheel" || return 1
    local site
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    log "CUDA runtime from .native/libtorch/lib; no-op stand-ins for the NVIDIA libraries a CPU run never calls"
    "$VENV/bin/python" - "$site" .native/libtorch/lib <<'PY' || return 1
import glob, os, re, shutil, subprocess, sys

site, native_lib = sys.argv[1], sys.argv[2]
tlib = os.path.join(site, "torch", "lib")
# torch's libraries have $ORIGIN/../../nvidia/cu13/lib in their RPATH: the CUDA 13 wheels' folder.
shim = os.path.join(site, "nvidia", "cu13", "lib")
os.makedirs(shim, exist_ok=True)
for name in ("libcudart.so.13", "libcupti.so.13"):        # real ones, from setup_native.py's install
    shutil.copy2(os.path.join(native_lib, name), os.path.join(shim, name))

def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

system = {}
for line in run("ldconfig", "-p").splitlines()[1:]:
    m = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)", line)
    if m and "x86-64" in m.group(2):
        system.setdefault(m.group(1), m.group(3))
torch_libs = sorted(p for p in glob.glob(os.path.join(tlib, "*.so*")) if os.path.isfile(p))
present = {os.path.basename(p): p for p in torch_libs}
present.update({n: os.path.join(shim, n) for n in os.listdir(shim)})

def needed(path):
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run("readelf", "-d", path))

def verneed(path):
    res, cur = {}, None
    for line in run("readelf", "-V", path).splitlines():
        m = re.search(r"File: (\S+)", line)
        if m:
            cur = m.group(1)
        elif cur and (m := re.search(r"Name: (\S+)", line)):
            res.setdefault(cur, set()).add(m.group(1))
    return res

def symbols(path, defined):
    out = []
    for line in run("nm", "-D", "--defined-only" if defined else "--undefined-only", "--with-symbol-versions",
                    path).splitlines():
        parts = line.split()
        if parts and (defined or parts[-2] == "U"):      # weak undefined symbols may stay unresolved
            out.append(parts[-1])
    return out

# libcuda.so.1 (the driver) is never faked: only libcaffe2_nvrtc.so needs it, and only on a GPU.
missing = {n for p in torch_libs for n in needed(p)
           if n not in present and n not in system and n != "libcuda.so.1"}
versions = {}
for p in torch_libs:
    for f, vs in verneed(p).items():
        versions.setdefault(f, set()).update(vs)
defined = set()
for p in list(present.values()) + sorted({system[n] for p in torch_libs for n in needed(p) if n in system}):
    defined.update(s.split("@")[0] for s in symbols(p, True))
owner = {v: m for m in missing for v in versions.get(m, ())}
by_lib = {m: {v: set() for v in sorted(versions.get(m, ()))} for m in missing}
unversioned = set()
for p in torch_libs:
    for s in symbols(p, False):
        name, _, ver = s.partition("@")
        ver = ver.lstrip("@")
        if ver in owner:
            by_lib[owner[ver]][ver].add(name)
        elif not ver and name not in defined:
            unversioned.add(name)
# Unversioned imports (NCCL, cuFile, cuSPARSELt, cuRAND, ...) resolve against any library in the
# dependency tree: one stand-in carries them all.
first = sorted(missing)[0] if missing else None
work = os.path.join(shim, ".build")
os.makedirs(work, exist_ok=True)
for m in sorted(missing):
    nodes = by_lib[m]
    syms = set().union(set(), *nodes.values()) | (unversioned if m == first else set())
    asm = [".text"]
    for s in sorted(syms):       # every stand-in function returns 1: an error code, never success
        asm += [f".globl {s}", f".type {s}, @function", f"{s}:", "  movl $1, %eax", "  ret"]
    base = os.path.join(work, m)
    with open(base + ".s", "w") as f:
        f.write("\n".join(asm) + "\n")
    cmd = ["cc", "-shared", "-nostdlib", "-Wl,-soname," + m, "-o", os.path.join(shim, m), base + ".s"]
    if nodes:
        with open(base + ".map", "w") as f:
            for i, (v, vs) in enumerate(nodes.items()):
                body = "".join(f" {s};" for s in sorted(vs | (unversioned if m == first and i == 0 else set())))
                f.write(f"{v} {{ global:{body} }};\n" if body else f"{v} {{ }};\n")
        cmd.append("-Wl,--version-script=" + base + ".map")
    run(*cmd)
shutil.rmtree(work)
print(f"[bench] {len(missing)} stand-in libraries: {', '.join(sorted(missing))}", file=sys.stderr)
PY
    "$VENV/bin/python" -c '
import torch
assert not torch.cuda.is_available()
x = torch.randn(64, 64)
assert torch.allclose(x @ torch.eye(64), x)
print(f"[bench] torch {torch.__version__} imports and computes on CPU")' >&2 || return 1
    touch "$VENV/.spikerl-torch-ok"
}

REF_SKIP=""
if ! torch_ok; then
    if ! why=$(install_torch 2>&1 | tee /dev/stderr | tail -1) || ! torch_ok; then
        REF_SKIP="PyTorch not installable here: ${why:-unknown reason}"
        log "$REF_SKIP (spikerl figures only)"
    fi
fi

# ---- measurements ------------------------------------------------------------------------------------------
# One thread pool size for both sides; the OpenMP variable too, so that no library sizes its own pool.
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
uptime | tee "$OUT/load-before.txt" >&2
if (( THREADS > 1 )) && python3 -c "import os, sys; sys.exit(os.getloadavg()[0] <= os.cpu_count() - 1)"; then
    log "warning: the machine is already loaded; with $THREADS OpenMP threads each parallel op can wait a whole"
    log "scheduler time slice (~10 ms) for a worker, on both sides. THREADS=1 gives comparable figures here."
fi
# Each figure is measured on both sides back to back, so that a pair sees the same machine: on a shared VM
# the sgemm rate alone moved between 78 and 147 GFLOP/s within minutes. The table gives each side's best
# round and the median of the per-round (paired) ratios.
reference() {
    [[ -n $REF_SKIP ]] && return 0
    "$VENV/bin/python" scripts/bench_reference.py --threads "$THREADS" --seconds "$BENCH_SECONDS" --json "$@" \
        | sed "s/^{/{\"round\": $round, /" >> "$OUT/reference.jsonl"
}
for round in $(seq 1 "$ROUNDS"); do
    log "round $round/$ROUNDS"
    reference --only matmul
    for base in $BASES; do
        # TD3 runs exactly as before issue 22 (no --base on either side); SAC and DDPG name their base.
        case $base in
            td3) specs=("proxy 60" "vanilla 100" "ann 300"); base_args=() ;;
            sac) specs=("proxy 60" "vanilla 100" "ann 300"); base_args=(--base sac) ;;
            ddpg) specs=("proxy 60" "ann 300"); base_args=(--base ddpg) ;;
        esac
        for spec in "${specs[@]}"; do
            set -- $spec
            reference --only update "${base_args[@]}" --algo "$1"
            policy=()
            [[ -n ${POLICY:-} && $1 != ann ]] && policy=(--policy "$POLICY")
            "$SPIKERL" bench update "${base_args[@]}" --env HalfCheetah-v4 --algo "$1" --neuron lif \
                --threads "$THREADS" --iterations "$2" "${policy[@]}" --json \
                | sed "s/^{/{\"round\": $round, \"figure\": \"update\", /" >> "$OUT/spikerl.jsonl"
        done
    done
    reference --only inference
    for algo in proxy ann; do
        policy=()
        [[ -n ${POLICY:-} && $algo != ann ]] && policy=(--policy "$POLICY")
        "$SPIKERL" bench inference --env HalfCheetah-v4 --neuron lif --algo "$algo" --actions 50000 "${policy[@]}" --json \
            | sed "s/^{/{\"round\": $round, \"figure\": \"inference\", /" >> "$OUT/spikerl.jsonl"
    done
done
uptime | tee "$OUT/load-after.txt" >&2

# ---- the table ----------------------------------------------------------------------------------------------
python3 - "$OUT" "$THREADS" "$ROUNDS" "$REF_SKIP" "$BASES" <<'PY' | tee "$OUT/table.txt"
import json, os, sys
out, threads, rounds, ref_skip, bases = sys.argv[1:6]
bases = bases.split()

def load(name):
    p = os.path.join(out, name)
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []

ref, ours = load("reference.jsonl"), load("spikerl.jsonl")

def field(r, k):
    # An update figure without "base" (spikerl and the reference before issue 22) is TD3's.
    return r.get(k, "td3" if k == "base" and r.get("figure") == "update" else None)

def matches(r, match):
    return all(field(r, k) == v for k, v in match.items())

def best(rows, key, **match):
    vals = [r[key] for r in rows if matches(r, match) and r.get(key) is not None]
    return min(vals) if vals else None

def by_round(rows, key, **match):
    return {r["round"]: r[key] for r in rows if matches(r, match) and r.get(key) is not None}

def paired(key, ref_match, ours_match):
    """Median and range of reference/spikerl over the rounds measured back to back."""
    r, o = by_round(ref, key, **ref_match), by_round(ours, key, **ours_match)
    ratios = sorted(r[k] / o[k] for k in r if k in o and o[k])
    if not ratios:
        return "-"
    n = len(ratios)
    med = ratios[n // 2] if n % 2 else (ratios[n // 2 - 1] + ratios[n // 2]) / 2
    return f"{med:.1f}x" + (f" ({ratios[0]:.1f}-{ratios[-1]:.1f})" if n > 1 else "")

def update_rows(base, rows):
    """(label, issue-9 figure, algo, reference variant, target) -> the table's rows for one base."""
    return [(label, "ms", issue, "ms_per_iteration", dict(figure="update", base=base, algo=algo, variant=variant),
             dict(figure="update", base=base, algo=algo), target) for label, issue, algo, variant, target in rows]

figures = []  # label, unit, issue-9 figure (remembered), key, reference match, spikerl match, target speedup
if "td3" in bases:
    figures += update_rows("td3", [
        ("PT-TD3 LIF iteration (proxy K=3, 512-512)", "68.8", "proxy", "reference", ">= 3x"),
        ("  same, PyTorch with the SNN under no_grad", "", "proxy", "snn_no_grad", ""),
        ("vanilla SNN-TD3 LIF iteration", "18.7", "vanilla", "reference", ">= 2x"),
        ("ANN TD3 iteration (CleanRL style)", "6.1-6.8", "ann", "reference", ">= 2x")])
if "sac" in bases:   # issue 22: SAC written as CleanRL's sac_continuous_action.py, 64-64 log-std MLPs
    figures += update_rows("sac", [
        ("PT-SAC LIF iteration (proxy K=3, 512-512)", "", "proxy", "reference", ">= 2x"),
        ("  same, PyTorch with the SNN under no_grad", "", "proxy", "snn_no_grad", ""),
        ("vanilla SNN-SAC LIF iteration", "", "vanilla", "reference", ""),
        ("ANN SAC iteration (CleanRL style)", "", "ann", "reference", "")])
if "ddpg" in bases:  # issue 22: DDPG written as Fujimoto's OurDDPG.py; informational
    figures += update_rows("ddpg", [
        ("PT-DDPG LIF iteration (proxy K=3, 512-512)", "", "proxy", "reference", ""),
        ("  same, PyTorch with the SNN under no_grad", "", "proxy", "snn_no_grad", ""),
        ("ANN DDPG iteration (OurDDPG style)", "", "ann", "reference", "")])
figures += [
    ("SNN LIF actor inference, 1 obs (T=5)", "us", "823", "us_per_action",
     dict(figure="inference", network="snn-lif", variant="reference"), dict(figure="inference", network="snn-lif"), ">= 40x"),
    ("  same, PyTorch under no_grad", "us", "", "us_per_action",
     dict(figure="inference", network="snn-lif", variant="no_grad"), dict(figure="inference", network="snn-lif"), ""),
    ("ANN actor inference, 1 obs", "us", "38-45", "us_per_action",
     dict(figure="inference", network="ann", variant="reference"), dict(figure="inference", network="ann"), ""),
]
rows = [(label, unit, issue, best(ref, key, **rm), best(ours, key, **om), paired(key, rm, om), target)
        for label, unit, issue, key, rm, om, target in figures]
fmt = lambda x: "-" if x is None else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")
print(f"\nHalfCheetah-v4 shapes, CPU, batch 256, {threads} libtorch thread(s), best of {rounds} round(s)")
trained = sorted({r["policy"] for r in ours if r.get("policy")})
firing = [r["actor_firing_rate"] for r in ours if r.get("actor_firing_rate") is not None and r.get("algo") == "proxy"]
print(f"spikerl's SNN actor: {'trained weights from ' + trained[0] if trained else 'initial weights'}"
      + (f", firing {100 * min(firing):.0f}% to {100 * max(firing):.0f}% on the benchmark's observations" if firing else ""))
print(f"load before: {open(os.path.join(out, 'load-before.txt')).read().strip()}")
print(f"load after:  {open(os.path.join(out, 'load-after.txt')).read().strip()}")
if ref_skip:
    print(f"reference column missing: {ref_skip}")
hdr = (f"{'figure':<44} {'unit':<4} {'issue 9':>8} {'PyTorch':>9} {'spikerl':>9} {'speedup':>8} "
       f"{'paired':>16}  target")
print(hdr)
print("-" * len(hdr))
for label, unit, issue, r, o, pair, target in rows:
    speed = f"{r / o:.1f}x" if r and o else "-"
    print(f"{label:<44} {unit:<4} {issue:>8} {fmt(r):>9} {fmt(o):>9} {speed:>8} {pair:>16}  {target}")
print("speedup: best round against best round; paired: median (range) of the per-round ratios, each pair of")
print("measurements taken back to back")
print("\nphases (ms, best round)            PyTorch   spikerl")
if "td3" in bases:
    for label, key, algo in [("PT proxy step", "ms_proxy_step", "proxy"),
                             ("SNN forward, no grad, batch 256", "ms_snn_forward_no_grad", "proxy"),
                             ("replay sample to tensors", "ms_sample_to_tensors", "proxy")]:
        r = best(ref, key, figure="update", base="td3", algo=algo, variant="reference")
        o = best(ours, key, figure="update", base="td3", algo=algo)
        print(f"  {label:<32} {fmt(r):>9} {fmt(o):>9}")
    for label, key in [("PT critic step", "ms_critic_step"), ("PT actor step (+Polyak)", "ms_actor_step")]:
        r = best(ref, key, figure="update", base="td3", algo="proxy", variant="reference")
        print(f"  {label:<32} {fmt(r):>9} {'-':>9}")
for base, actor_step in [("sac", "PT-SAC actor step (2 + alpha)"), ("ddpg", "PT-DDPG actor step (+Polyak)")]:
    if base not in bases:
        continue
    name = base.upper()
    r = best(ref, "ms_proxy_step", figure="update", base=base, algo="proxy", variant="reference")
    o = best(ours, "ms_proxy_step", figure="update", base=base, algo="proxy")
    print(f"  {'PT-' + name + ' proxy step':<32} {fmt(r):>9} {fmt(o):>9}")
    for label, key in [("PT-" + name + " critic step" + (" (+Polyak)" if base == "sac" else ""), "ms_critic_step"),
                       (actor_step, "ms_actor_step")]:
        r = best(ref, key, figure="update", base=base, algo="proxy", variant="reference")
        print(f"  {label:<32} {fmt(r):>9} {'-':>9}")
gflops = best([{"g": -r["gflops"]} for r in ref if r.get("figure") == "matmul"], "g")
if gflops is not None:
    gflops = -gflops
    print(f"\nsgemm [256 x 512] x [512 x 512] in this run (best round): {gflops:.1f} GFLOP/s on {threads} thread(s)")
    print("matrix-product work per iteration (dense, fwd+bwd = 3x fwd) and its time at that rate:")
    work = [("td3", "PT-TD3 LIF, reference", "proxy", "reference"),
            ("td3", "PT-TD3 LIF, SNN under no_grad", "proxy", "snn_no_grad"),
            ("td3", "vanilla SNN-TD3 LIF", "vanilla", "reference"), ("td3", "ANN TD3", "ann", "reference"),
            ("sac", "PT-SAC LIF, reference", "proxy", "reference"),
            ("sac", "vanilla SNN-SAC LIF", "vanilla", "reference"), ("sac", "ANN SAC", "ann", "reference"),
            ("ddpg", "PT-DDPG LIF, reference", "proxy", "reference"), ("ddpg", "ANN DDPG", "ann", "reference")]
    for base, label, algo, variant in work:
        g = best(ref, "dense_gflop_per_iteration", figure="update", base=base, algo=algo, variant=variant)
        if g is not None:
            print(f"  {label:<32} {g:5.2f} GFLOP  {1e3 * g / gflops:7.1f} ms")
print(f"\nJSON: {out}/reference.jsonl, {out}/spikerl.jsonl")
PY
