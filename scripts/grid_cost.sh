#!/usr/bin/env bash
# What the paper's grid (experiments/paper-table1.toml: 5 environments x 7 methods x 5 seeds x 1M steps)
# costs on this machine's CPU: one training iteration of each environment and method (`spikerl bench
# update`, one libtorch thread, synthetic minibatches, initial weights), the hours of a 1M-step run from
# it, and the grid's machine-hours. A lockstep run adds the environment step, the action and the
# evaluations to the iterations: about 10-15% on top (docs/experiments.md, "Cost"). Prints a Markdown
# table and leaves the JSON figures in target/bench/grid-cost-<time>/. About 3 minutes on 2 idle cores.
#
#   scripts/grid_cost.sh                  (build first: cargo build --release)
#   ITERATIONS=100 scripts/grid_cost.sh   more timed iterations per cell (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."

ITERATIONS=${ITERATIONS:-30}
BIN=${SPIKERL_BIN:-target/release/spikerl}
OUT=target/bench/grid-cost-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
ENVS=(InvertedDoublePendulum-v4 Ant-v4 HalfCheetah-v4 Hopper-v4 Walker2d-v4)
METHODS=("ann lif" "vanilla lif" "vanilla clif" "vanilla dn" "proxy lif" "proxy clif" "proxy dn")

echo "| env | $(for m in "${METHODS[@]}"; do printf '%s | ' "$m"; done)"
echo "|---|$(for _ in "${METHODS[@]}"; do printf -- '---|'; done)"
total_hours=0
for env in "${ENVS[@]}"; do
  row="| $env |"
  for m in "${METHODS[@]}"; do
    set -- $m
    json="$OUT/$env-$1-$2.json"
    OMP_NUM_THREADS=1 "$BIN" bench update --env "$env" --algo "$1" --neuron "$2" --threads 1 \
      --iterations "$ITERATIONS" --json > "$json"
    ms=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['ms_per_iteration'])" "$json")
    hours=$(python3 -c "print(f'{float(\"$ms\") * 1e6 / 1e3 / 3600:.1f}')")
    total_hours=$(python3 -c "print($total_hours + $hours * 5)")
    row="$row $(printf '%.1f ms, %s h' "$ms" "$hours") |"
  done
  echo "$row"
done
echo
echo "grid (5 seeds per cell), training iterations alone: $(printf '%.0f' "$total_hours") machine-hours on one core each"
echo "figures: $OUT"
