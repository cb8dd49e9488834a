#!/usr/bin/env bash
# The README's second command (and CI's): installs the native dependencies, builds everything in
# release mode (physics and spiking inference are 10-50x slower unoptimised) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/setup_native.py

# What the tests look for but never install (Prometheus, kubernetes-validate, ...): installed here, when
# missing. A test that lacks something skips loudly, or fails where SPIKERL_REQUIRE lists it; CI machines
# have all of these (a GPU is never required), so there nothing may be skipped.
bash scripts/setup_test_deps.sh
if [ -n "${CI:-}" ]; then
    export SPIKERL_REQUIRE=${SPIKERL_REQUIRE-docker,swarm,prometheus,root,netns,k8s-validate,nir-python,tensorboard-python,osmesa,ffmpeg,slurm}
fi

export RUST_BACKTRACE=1
# Each test process gets one libtorch thread: tests run in parallel, and OpenMP threads that spin on a
# shared core slow everything down several-fold.
export OMP_NUM_THREADS=1
cargo test --release --locked --workspace "$@"
