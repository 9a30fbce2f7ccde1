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
# default model (llama3-8b) and llama3-70b, strategies auto, fcp, grouped, static_cp, ring, per_doc,
# whole_doc (+ flashcp, flexdeg up to W = 128), BATCHES (3) batches below W = 256 and 1 from
# there (time). Writes docs/results/whole_layer.jsonl (tagged workload, model) and the
# whole_layer section and docs/whole_layer_speedup.png via bench/report.py.
#   WL_WORKERS="8 16 32 64 128 256 512"  WL_MODELS="llama3-8b llama3-70b"
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ "${1:-}" = --whole-layer ]; then
  BATCHES=${BATCHES:-3}
  shared=$(scripts/shared_dir.sh)
  cmake --build "$BUILD_DIR" --target fcp >/dev/null
  mkdir -p docs/results
  out=docs/results/whole_layer.jsonl
  : > "$out"
  for workload in wikipedia magi; do
    if [ "$workload" = wikipedia ]; then src=(--lengths "$shared/workloads/wikipedia.lengths");
    else src=(--histogram "$shared/workloads/magi_histogram.csv"); fi
    for model in ${WL_MODELS:-llama3-8b llama3-70b}; do
      for w in ${WL_WORKERS:-8 16 32 64 128 256 512}; do
        batches=$BATCHES
        strategies="auto fcp grouped static_cp ring per_doc whole_doc"
        if [ "$w" -ge 256 ]; then batches=1; else strategies="$strategies flashcp flexdeg"; fi
        for strategy in $strategies; do
          echo "plan_quality --whole-layer: $workload $model W=$w $strategy" >&2
          "$BUILD_DIR/client/fcp" plan "${src[@]}" --workers "$w" --tokens-per-worker 32768 \
            --workers-per-node 8 --max-doc-len 131072 --model "$model" --batches "$batches" \
            --strategy "$strategy" --json --validate-max-tiles 300000 |
            sed "s/^{/{\"workload\":\"$workload\",/" >> "$out" || true
        done
      done
    done
  done
  echo "plan_quality: wrote $(wc -l < "$out") rows to $out" >&2
  exec /usr/bin/python3 bench/report.py
fi
WORKERS=${WORKERS:-"8 32 128 512"}
MAX_DOCS=${MAX_DOCS:-"131072 524288"}
BATCHES=${BATCHES:-3}
CAP_FACTOR=${CAP_FACTOR:-1.1}
TOKENS=32768
shared=$(scripts/shared_dir.sh)
cmake --build "$BUILD_DIR" --target fcp >/dev/null
mkdir -p docs/results
out=docs/results/plan_quality.jsonl
: > "$out"
caps=(0)
if [ "$CAP_FACTOR" != 0 ]; then
  caps+=("$(/usr/bin/python3 -c "print(int($CAP_FACTOR * $TOKENS))")")
fi
for cap in "${caps[@]}"; do
  for workload in wikipedia magi; do
    if [ "$workload" = wikipedia ]; then src=(--lengths "$shared/workloads/wikipedia.lengths");
    else src=(--histogram "$shared/workloads/magi_histogram.csv"); fi
    for max_doc in $MAX_DOCS; do
      for w in $WORKERS; do
        echo "plan_quality: $workload max_doc=$max_doc W=$w cap=$cap" >&2
        # A plan that breaks the cap is refused (exit 1, its row has nulls): keep going.
        "$BUILD_DIR/client/fcp" plan "${src[@]}" --workers "$w" --tokens-per-worker "$TOKENS" \
          --workers-per-node 8 --max-doc-len "$max_doc" --max-tokens-per-worker "$cap" \
          --objective attention \
          --batches "$BATCHES" --strategy all --json --validate-max-tiles 5000000 |
          sed "s/^{/{\"workload\":\"$workload\",\"max_doc\":$max_doc,\"cap\":$cap,/" >> "$out" ||
          true
      done
    done
  done
done
echo "plan_quality: wrote $(wc -l < "$out") rows to $out" >&2
/usr/bin/python3 bench/report.py
