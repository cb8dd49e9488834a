#!/usr/bin/env bash
# The README's first command: installs the native dependencies, builds, and trains the proxy-target
# spiking actor on Pendulum-v1 with a local cluster (learner + 2 actor processes) for a few minutes.
# Extra arguments are passed to `spikerl train` (e.g. --env HalfCheetah-v4 --steps 20000).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/setup_native.py
cargo build --release --locked --bin spikerl
# The paper's faster proxy variant (K = 1 imitation step, lr 3e-3; method.md) keeps this to a few
# minutes on 2 cores; the actors are nearly idle on Pendulum, so the learner takes both cores.
exec target/release/spikerl train \
  --env Pendulum-v1 --algo proxy --neuron lif --proxy-steps 1 --proxy-lr 3e-3 --actors 2 --threads 2 \
  --random-steps 1000 --steps 5000 --eval-every 1000 --eval-episodes 5 \
  --out runs/demo "$@"
