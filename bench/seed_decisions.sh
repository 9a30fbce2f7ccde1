#!/usr/bin/env bash
# The seed systems' decisions (issue 26, flashcp and flexdeg): predicted step of fcp, flashcp and
# flexdeg on wikipedia and the magi histogram, W in {16, 64, 128, 512}, 32K tokens/worker, max
# document 128K, 8 workers/node, BATCHES batches each, under two memory regimes:
#   whole_step  the default objective and its token budget (1.05 x the mean tokens)
#   attn_cap    attention alone under an explicit cap of 1.1 x T tokens (the attention-only
#               grid's capped run, where flexdeg's greedy collapsed)
# Appends one JSON object per batch x strategy (the CLI's --json, tagged "workload" and "regime")
# to OUT (default docs/results/seed_decisions.jsonl) and prints medians per cell (step ms; planning
# ms) with bench/seed_decisions.py.
#   BUILD_DIR=build  WORKERS="16 64 128 512"  BATCHES=3  STRATEGIES="fcp flashcp flexdeg"  TAG=
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT:-docs/results/seed_decisions.jsonl}
shared=$(scripts/shared_dir.sh)
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
for workload in wikipedia magi; do
  if [ "$workload" = wikipedia ]; then src=(--lengths "$shared/workloads/wikipedia.lengths");
  else src=(--histogram "$shared/workloads/magi_histogram.csv"); fi
  for regime in whole_step attn_cap; do
    if [ "$regime" = whole_step ]; then flags=(); else
      flags=(--objective attention --max-tokens-per-worker 36044); fi
    for w in ${WORKERS:-16 64 128 512}; do
      for strategy in ${STRATEGIES:-fcp flashcp flexdeg}; do
        "$BUILD_DIR/client/fcp" plan "${src[@]}" --workers "$w" --tokens-per-worker 32768 \
          --workers-per-node 8 --max-doc-len 131072 --batches "${BATCHES:-3}" "${flags[@]}" \
          --strategy "$strategy" --json --validate-max-tiles 0 |
          sed "s/^{/{\"workload\":\"$workload\",\"regime\":\"$regime\",\"tag\":\"${TAG:-}\",/" \
            >> "$OUT" || true
      done
    done
  done
done
/usr/bin/python3 bench/seed_decisions.py "$OUT"
