#!/usr/bin/env bash
# Planner latency (Google Benchmark, one thread): every strategy, W in {8, 64, 256, 1024} x 32K
# tokens per worker on wikipedia, 5 repetitions; medians go to docs/results/planner_bench.json
# and, through bench/report.py, to docs/benchmarks.md. Run on an otherwise idle machine.
#   BUILD_DIR=build  FILTER=regex  REPS=5
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake --build "$BUILD_DIR" --target planner_bench >/dev/null
mkdir -p docs/results
"$BUILD_DIR/bench/planner_bench" --benchmark_filter="${FILTER:-.}" \
  --benchmark_repetitions="${REPS:-5}" --benchmark_report_aggregates_only=true \
  --benchmark_out=docs/results/planner_bench.json --benchmark_out_format=json
/usr/bin/python3 bench/report.py
