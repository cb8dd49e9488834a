#!/usr/bin/env bash
# The README's first command: installs the native dependencies, builds, and trains the proxy-target
# spiking actor on Pendulum-v1 with a local cluster (learner + 2 actor processes) for a few minutes.
# Extra arguments are passed to `spikerl train` (e.g. --env HalfCheetah-v4 --steps 20000).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/setup_native.py
cargo build --release --locked --bin spikerl
exec target/release/spikerl train \
  --env Pendulum-v1 --algo proxy --neuron lif --actors 2 \
  --random-steps 1000 --steps 7000 --eval-every 1000 --eval-episodes 5 \
  --out runs/demo "$@"
