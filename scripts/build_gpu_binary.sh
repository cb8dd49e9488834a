#!/usr/bin/env bash
# A spikerl for a GPU host that has its own PyTorch but no Rust toolchain, network or registry (the lent
# device machines: PyTorch 2.11 with CUDA 13, at most 64 MiB of files per call). See docs/performance.md,
# "Running on a GPU host".
#
#   scripts/build_gpu_binary.sh                 TORCH=2.11.0: build and pack dist-gpu/torch2.11.0/
#   TORCH=2.13.0 scripts/build_gpu_binary.sh    against the CUDA libtorch 2.13.0 (what tch 0.26 is written for)
#   NO_TEST=1 ...                               skip the CUDA-vs-CPU unit test binary
#   NO_CUDA_RUNTIME=1 ...                       no NVIDIA runtime wheels (2.6 GB): links, but check_gpu_binary.sh cannot run
#
# What it does:
#  1. `setup_native.py --torch $TORCH --cuda --dest .native-torch$TORCH`: that wheel's whole torch/lib
#     (libtorch_cuda.so included) and headers, plus its NVIDIA runtime wheels in site-packages layout (only
#     for running the CPU check here: scripts/check_gpu_binary.sh; the link does not need them).
#  2. cargo build --release of `spikerl` (and the spikerl-algo unit tests, for the CUDA-vs-CPU test) in
#     target-gpu/, its own target dir, so target/ is never rebuilt. RUSTFLAGS replaces the rpath of
#     .cargo/config.toml with RUNPATH $ORIGIN (libmujoco sits next to the binary; libtorch comes from
#     LD_LIBRARY_PATH=<site-packages>/torch/lib, nothing points at this machine), forces a DT_NEEDED on
#     libtorch_cuda.so (rustc links with --as-needed and nothing references it by symbol, yet its static
#     initialisers are what registers CUDA with libtorch: without it `--device cuda` finds no GPU), and
#     allows the NVIDIA libraries that libtorch_cuda.so needs to be absent at link time.
#  3. strips them into dist-gpu/torch$TORCH/ with libmujoco.so.3.17.0 and checks the folder is under 64 MiB.
#
# Headers: torch-sys compiles tch's C wrapper against $TORCH's own headers. tch 0.26's generated wrapper
# (torch_api_generated.cpp) is written for 2.13.0's operator set and names 15 operators that 2.11.0 lacks
# or declares differently (docs/performance.md); scripts/gpu/tch_compat_torch2.11.h, force-included
# through CXXFLAGS_x86_64_unknown_linux_gnu (the cc crate reads it; only torch-sys compiles C++ here),
# declares throwing stand-ins for them (nothing in spikerl calls them; tch's sources are untouched).
# Compiling against 2.13's headers and linking 2.11's libraries instead links but is not ABI-compatible:
# the learner's unit tests fail on it ("incoherent element sizes in bytes", "tensor does not have a
# device"). scripts/check_gpu_binary.sh runs those tests against the $TORCH libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

TORCH=${TORCH:-2.11.0}
TRIPLE=x86_64-unknown-linux-gnu
NATIVE=$ROOT/.native-torch$TORCH
TARGET=$ROOT/target-gpu
DIST=${DIST:-$ROOT/dist-gpu/torch$TORCH}
LIMIT=$((64 * 1024 * 1024))
log() { echo "[build-gpu] $*" >&2; }

nice -n 19 python3 scripts/setup_native.py --torch "$TORCH" --cuda --dest "$NATIVE" ${NO_CUDA_RUNTIME:+--no-cuda-runtime}
[[ -f $NATIVE/libtorch/lib/libtorch_cuda.so ]] || { log "no libtorch_cuda.so in $NATIVE/libtorch/lib"; exit 1; }

compat=$ROOT/scripts/gpu/tch_compat_torch${TORCH%.*}.h
[[ -d $ROOT/.native/mujoco ]] || nice -n 19 python3 scripts/setup_native.py
log "libtorch $TORCH (libraries and headers) from $NATIVE/libtorch$([[ -f $compat ]] && echo ", with ${compat#$ROOT/}")"

export CARGO_TARGET_DIR=$TARGET
export LIBTORCH=$NATIVE/libtorch
unset LIBTORCH_INCLUDE LIBTORCH_LIB LIBTORCH_USE_PYTORCH LIBTORCH_STATIC
if [[ -f $compat ]]; then export CXXFLAGS_x86_64_unknown_linux_gnu="-include $compat"; else unset CXXFLAGS_x86_64_unknown_linux_gnu; fi
export LIBTORCH_BYPASS_VERSION_CHECK=1 LIBTORCH_CXX11_ABI=1
export MUJOCO_DYNAMIC_LINK_DIR=$ROOT/.native/mujoco
# Replaces the config's rustflags (its rpath into .native/). With --target these apply to the target
# artifacts only, not to build scripts (which must not depend on libtorch_cuda).
export RUSTFLAGS='-C link-arg=-Wl,--push-state,--no-as-needed,-ltorch_cuda,--pop-state -C link-arg=-Wl,--allow-shlib-undefined -C link-arg=-Wl,--enable-new-dtags,-rpath,$ORIGIN'
OUTDIR=$TARGET/$TRIPLE/release

log "cargo build --release --bin spikerl (target-gpu/)"
nice -n 19 cargo build --release --locked --target "$TRIPLE" --bin spikerl
test_bin=
if [[ -z ${NO_TEST:-} ]]; then
    log "cargo test --no-run -p spikerl-algo --lib (the CUDA-vs-CPU update test)"
    test_bin=$(nice -n 19 cargo test --release --locked --target "$TRIPLE" -p spikerl-algo --lib --no-run \
        --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "spikerl_algo":
        print(m["executable"])')
    [[ -x $test_bin ]] || { log "no spikerl-algo test binary"; exit 1; }
fi

rm -rf "$DIST"
mkdir -p "$DIST"
strip -o "$DIST/spikerl" "$OUTDIR/spikerl"
[[ -n $test_bin ]] && strip -o "$DIST/algo-tests" "$test_bin"
cp -L "$ROOT/.native/mujoco/libmujoco.so.3.17.0" "$DIST/"
strip --strip-unneeded "$DIST/libmujoco.so.3.17.0"
cat > "$DIST/BUILD-INFO" <<EOF
spikerl $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')
built $(date -u +%Y-%m-%dT%H:%M:%SZ) against libtorch $TORCH (its headers$([[ -f $compat ]] && echo " + ${compat#$ROOT/}")), libtorch_cuda.so linked
run: LD_LIBRARY_PATH=<site-packages>/torch/lib ./spikerl ...   (libmujoco is found next to the binary)
EOF

# The binary must need libtorch_cuda.so and find nothing of this machine through its RUNPATH.
for f in "$DIST/spikerl" ${test_bin:+"$DIST/algo-tests"}; do
    dyn=$(readelf -d "$f")
    grep -q 'Shared library: \[libtorch_cuda.so\]' <<<"$dyn" || { log "$f does not need libtorch_cuda.so"; exit 1; }
    runpath=$(grep -E 'RUNPATH|RPATH' <<<"$dyn" | sed 's/.*\[\(.*\)\]/\1/')
    [[ $runpath == '$ORIGIN' ]] || { log "$f has rpath '$runpath', expected \$ORIGIN"; exit 1; }
done

total=$(du -cb "$DIST"/* | tail -1 | cut -f1)
echo "packed $DIST:"
ls -l "$DIST" | tail -n +2 | awk '{printf "  %10.1f MiB  %s\n", $5 / 1048576, $9}'
printf '  %10.1f MiB  total (limit 64 MiB); unstripped spikerl: %.1f MiB\n' "$(echo "$total / 1048576" | bc -l)" \
    "$(echo "$(stat -c %s "$OUTDIR/spikerl") / 1048576" | bc -l)"
readelf -d "$DIST/spikerl" | grep -E 'NEEDED|RUNPATH' | sed 's/^ */  /'
if (( total > LIMIT )); then
    log "the folder is over 64 MiB"
    exit 1
fi
