#!/usr/bin/env bash
# Planner latency (Google Benchmark, one thread): every strategy (static_cp, today's practice,
# included), W in {8, 16, 32, 64, 128, 512, 1024} x 32K tokens per worker on wikipedia (max
# document 128K), 5 repetitions; medians go to
# docs/results/planner_bench.json and, through bench/report.py, to docs/benchmarks.md. Run on an
# otherwise idle machine (`uptime` before and after is printed to stderr for the record).
# planner_bench plans with the coordinator's allocator settings (common/malloc_tuning.h);
# FCP_GLIBC_DEFAULTS=1 in the environment measures with glibc's defaults instead.
#   BUILD_DIR=build  FILTER=regex  REPS=5
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake --build "$BUILD_DIR" --target planner_bench >/dev/null
mkdir -p docs/results
uptime >&2
"$BUILD_DIR/bench/planner_bench" \
  --benchmark_filter="${FILTER:-^(ring|per_doc|whole_doc|flexdeg|flashcp|dcp|fcp|static_cp|grouped|auto)/}" \
  --benchmark_repetitions="${REPS:-5}" --benchmark_report_aggregates_only=true \
  --benchmark_out=docs/results/planner_bench.json --benchmark_out_format=json
uptime >&2
/usr/bin/python3 bench/report.py
