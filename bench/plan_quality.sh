#!/usr/bin/env bash
# Plan quality over the attention-only comparison grid (--objective attention, as measured before
# issue 23's whole-layer objective): every strategy on wikipedia and the magi histogram,
# W in {8, 32, 128, 512}, 32K tokens per worker, max document 128K and 512K, 8 workers per node,
# 3 batches each. Writes docs/results/plan_quality.jsonl (one JSON object per batch x strategy,
# the CLI's --json, tagged with workload, max_doc and cap), then regenerates the tables and plots
# of docs/benchmarks.md with bench/report.py.
#
# The grid runs twice: as specified (no memory cap: tokens cost nothing in the attention model)
# and with the same memory cap for every strategy, 1.1 x the mean tokens per worker
# (CAP_FACTOR), which is what keeps a real GPU from running out of memory.
#   BUILD_DIR=build  WORKERS="8 32"  MAX_DOCS="131072"  BATCHES=3  CAP_FACTOR=1.1 (0: skip)
#
# bench/plan_quality.sh --whole-layer runs the whole-layer grid instead (issue 23; the default
# objective): wikipedia and magi, W in {8, ..., 512}, 32K tokens/worker, max document 128K, the
# default model (llama3-8b) and llama3-70b, strategies auto, fcp, static_cp, ring, per_doc,
# whole_doc (+ flashcp, flexdeg up to W = 128), BATCHES (3) batches below W = 256 and 1 from
# there (time). Writes docs/results/whole_layer.jsonl (tagged workload, model) and the
# whole_layer section and docs/whole_layer_speedup.png via bench/report.py.
#   WL_WORKERS="8 16 32 64 128 256 512"  WL_MODELS="llama3-8b llama3-70b"
#
# bench/plan_quality.sh --grid runs the seed grid (issue 26): wikipedia and magi, W in {8, ..., 512},
# 32K tokens/worker, max document 128K, llama3-8b, both objectives (whole_step, the default, and
# attention, the papers' metric), four mask mixes (causal; sliding_window, a 4096-token window;
# prefix_lm, the first half of each document bidirectional; mixed, causal 50% / sliding_window 25%
# / prefix_lm 25% of the documents, drawn per seed), every strategy (--strategy all) plus
# Megatron-style dynamic CP (build/bench/dynamic_cp: the best uniform CP degree per batch).
# BATCHES batches below W = 256, LARGE_BATCHES from there. Writes docs/results/seed_grid.jsonl
# (tagged workload, mask, objective) and, through bench/report.py, the mask grid, the headline
# table and plot (docs/seed_headline.png) and auto's check.
#   GRID_WORKERS="8 16 32 64 128 256 512"  GRID_MASKS="causal sliding_window prefix_lm mixed"
#   GRID_OBJECTIVES="whole_step attention"  LARGE_BATCHES=2  WINDOW=4096  PREFIX=0.5
#
# bench/plan_quality.sh --all regenerates every planner number of docs/benchmarks.md: the seed
# grid, the whole-layer grid, the attention-only grid above, then bench/planner_latency.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BATCHES=${BATCHES:-3}
shared=$(scripts/shared_dir.sh)
mkdir -p docs/results

workload_source() {  # the fcp plan flags of workload $1
  if [ "$1" = wikipedia ]; then echo "--lengths $shared/workloads/wikipedia.lengths";
  else echo "--histogram $shared/workloads/magi_histogram.csv"; fi
}

mask_mix() {  # the --mask-mix of grid mask $1
  local window=${WINDOW:-4096} prefix=${PREFIX:-0.5}
  case "$1" in
    causal) echo causal ;;
    sliding_window) echo "sliding_window=$window" ;;
    prefix_lm) echo "prefix_lm=$prefix" ;;
    mixed) echo "causal:0.5,sliding_window=$window:0.25,prefix_lm=$prefix:0.25" ;;
    *) echo "plan_quality: unknown mask $1" >&2; exit 2 ;;
  esac
}

seed_grid() {
  cmake --build "$BUILD_DIR" --target fcp dynamic_cp >/dev/null
  local out=docs/results/seed_grid.jsonl log=${TMPDIR:-/tmp}/seed_grid.stderr
  : > "$out"
  : > "$log"
  for objective in ${GRID_OBJECTIVES:-whole_step attention}; do
    for workload in wikipedia magi; do
      for mask in ${GRID_MASKS:-causal sliding_window prefix_lm mixed}; do
        for w in ${GRID_WORKERS:-8 16 32 64 128 256 512}; do
          batches=$BATCHES
          if [ "$w" -ge 256 ]; then batches=${LARGE_BATCHES:-2}; fi
          echo "plan_quality --grid: $objective $workload $mask W=$w" >&2
          # shellcheck disable=SC2207  # workload_source is two words
          flags=($(workload_source "$workload") --workers "$w" --tokens-per-worker 32768
                 --workers-per-node 8 --max-doc-len 131072 --batches "$batches"
                 --objective "$objective" --mask-mix "$(mask_mix "$mask")" --json
                 --validate-max-tiles 300000)
          tag="{\"workload\":\"$workload\",\"mask\":\"$mask\",\"objective\":\"$objective\","
          # A strategy that cannot plan a batch (exit 1, its row has nulls) does not stop the grid.
          { "$BUILD_DIR/client/fcp" plan "${flags[@]}" --strategy all || true
            "$BUILD_DIR/bench/dynamic_cp" "${flags[@]}" || true; } 2>>"$log" |
            sed "s/^{/$tag/" >> "$out"
        done
      done
    done
  done
  echo "plan_quality: wrote $(wc -l < "$out") rows to $out (notes and failures: $log)" >&2
}

whole_layer_grid() {
  cmake --build "$BUILD_DIR" --target fcp >/dev/null
  local out=docs/results/whole_layer.jsonl
  : > "$out"
  for workload in wikipedia magi; do
    for model in ${WL_MODELS:-llama3-8b llama3-70b}; do
      for w in ${WL_WORKERS:-8 16 32 64 128 256 512}; do
        batches=$BATCHES
        strategies="auto fcp static_cp ring per_doc whole_doc"
        if [ "$w" -ge 256 ]; then batches=1; else strategies="$strategies flashcp flexdeg"; fi
        for strategy in $strategies; do
          echo "plan_quality --whole-layer: $workload $model W=$w $strategy" >&2
          # shellcheck disable=SC2046
          "$BUILD_DIR/client/fcp" plan $(workload_source "$workload") --workers "$w" \
            --tokens-per-worker 32768 --workers-per-node 8 --max-doc-len 131072 \
            --model "$model" --batches "$batches" --strategy "$strategy" --json \
            --validate-max-tiles 300000 |
            sed "s/^{/{\"workload\":\"$workload\",/" >> "$out" || true
        done
      done
    done
  done
  echo "plan_quality: wrote $(wc -l < "$out") rows to $out" >&2
}

attention_grid() {
  local tokens=32768 cap_factor=${CAP_FACTOR:-1.1}
  cmake --build "$BUILD_DIR" --target fcp >/dev/null
  local out=docs/results/plan_quality.jsonl
  : > "$out"
  local caps=(0)
  if [ "$cap_factor" != 0 ]; then
    caps+=("$(/usr/bin/python3 -c "print(int($cap_factor * $tokens))")")
  fi
  for cap in "${caps[@]}"; do
    for workload in wikipedia magi; do
      for max_doc in ${MAX_DOCS:-131072 524288}; do
        for w in ${WORKERS:-8 32 128 512}; do
          echo "plan_quality: $workload max_doc=$max_doc W=$w cap=$cap" >&2
          # A plan that breaks the cap is refused (exit 1, its row has nulls): keep going.
          # shellcheck disable=SC2046
          "$BUILD_DIR/client/fcp" plan $(workload_source "$workload") --workers "$w" \
            --tokens-per-worker "$tokens" --workers-per-node 8 --max-doc-len "$max_doc" \
            --max-tokens-per-worker "$cap" --objective attention \
            --batches "$BATCHES" --strategy all --json --validate-max-tiles 5000000 |
            sed "s/^{/{\"workload\":\"$workload\",\"max_doc\":$max_doc,\"cap\":$cap,/" >> "$out" ||
            true
        done
      done
    done
  done
  echo "plan_quality: wrote $(wc -l < "$out") rows to $out" >&2
}

case "${1:-}" in
  --grid) seed_grid ;;
  --whole-layer) whole_layer_grid ;;
  --all)
    seed_grid
    whole_layer_grid
    attention_grid
    exec bench/planner_latency.sh  # ends with bench/report.py
    ;;
  "") attention_grid ;;
  *) echo "usage: bench/plan_quality.sh [--grid | --whole-layer | --all]" >&2; exit 2 ;;
esac
exec /usr/bin/python3 bench/report.py
