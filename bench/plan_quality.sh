#!/usr/bin/env bash
# Plan quality over the benchmark grid: every strategy on wikipedia and the magi histogram,
# W in {8, 32, 64, 128, 256, 1024}, 32K tokens per worker, max document 128K, 3 batches each.
# Writes docs/results/plan_quality.jsonl (one JSON object per batch x strategy, the CLI's --json),
# then regenerates the tables and plots of docs/benchmarks.md with bench/report.py.
#   BUILD_DIR=build  WORKERS="8 32 64"  BATCHES=3
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
WORKERS=${WORKERS:-"8 32 64 128 256 1024"}
BATCHES=${BATCHES:-3}
shared=$(scripts/shared_dir.sh)
cmake --build "$BUILD_DIR" --target fcp planner_bench >/dev/null
mkdir -p docs/results
out=docs/results/plan_quality.jsonl
: > "$out"
for workload in wikipedia magi; do
  if [ "$workload" = wikipedia ]; then src=(--lengths "$shared/workloads/wikipedia.lengths");
  else src=(--histogram "$shared/workloads/magi_histogram.csv"); fi
  for w in $WORKERS; do
    echo "plan_quality: $workload W=$w" >&2
    "$BUILD_DIR/client/fcp" plan "${src[@]}" --workers "$w" --tokens-per-worker 32768 \
      --max-doc-len 131072 --batches "$BATCHES" --strategy all --json --validate-max-tiles 5000000 |
      sed "s/^{/{\"workload\":\"$workload\",/" >> "$out"
  done
done
echo "plan_quality: wrote $(wc -l < "$out") rows to $out" >&2
/usr/bin/python3 bench/report.py
