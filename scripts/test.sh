#!/usr/bin/env bash
# The README's second command (and CI's): installs the native dependencies, builds everything in
# release mode (physics and spiking inference are 10-50x slower unoptimised) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/setup_native.py
export RUST_BACKTRACE=1
# Each test process gets one libtorch thread: tests run in parallel, and OpenMP threads that spin on a
# shared core slow everything down several-fold.
export OMP_NUM_THREADS=1
cargo test --release --locked --workspace "$@"
