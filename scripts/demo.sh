#!/usr/bin/env bash
# The main job on one machine, CPU only: fcp-coordinator plus 4 fcp-worker processes over Gloo
# (TCP on loopback) run a few training-like attention steps on wikipedia batches, planned by the
# coordinator. Step 1 of every rank is checked against single-process reference attention. Rank 0
# prints a per-step table; the same steps then run with the `ring` baseline and the two are
# compared. Nothing to configure; extra arguments go to every fcp-worker (e.g. --steps 8).
#   BUILD_DIR=build   where fcp is built (scripts/run.sh builds it)
#   WORLD=4 STEPS=4   ranks and steps
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
WORLD=${WORLD:-4}
STEPS=${STEPS:-4}
shared=$(scripts/shared_dir.sh)
work=$(mktemp -d /tmp/fcp-demo.XXXXXX)
coordinator_pid=""
cleanup() {
  if [ -n "$coordinator_pid" ]; then kill -TERM "$coordinator_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
}
trap cleanup EXIT

# CPU-sized model and batch: 4 q heads over 2 kv heads of 32, 2048 tokens per rank. The cost
# model's constants describe this machine (attention ~5 GFLOP/s per rank, ~2 GB/s over loopback
# TCP) instead of an H100, so the plans are chosen for what actually runs here.
WORKER_FLAGS=(--lengths "$shared/workloads/wikipedia.lengths" --world "$WORLD" --steps "$STEPS"
  --tokens-per-worker 2048 --max-doc-len 4096 --heads 4 --kv-heads 2 --head-dim 32
  --attention-tflops 0.005 --intra-node-gbps 2 --inter-node-gbps 2
  --transport gloo --timeout-s 60 --check-steps 1 --seed 1)

"$BUILD_DIR/service/fcp-coordinator" --port 0 --metrics-port 0 >"$work/coordinator.log" 2>&1 &
coordinator_pid=$!
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*serving fcp.v1.Planner on port \([0-9]*\).*/\1/p' "$work/coordinator.log")
  [ -n "$port" ] && break
  kill -0 "$coordinator_pid" 2>/dev/null || { cat "$work/coordinator.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "demo: fcp-coordinator did not start" >&2; exit 1; }
echo "demo: fcp-coordinator on localhost:$port; $WORLD fcp-worker processes over Gloo"

# run STRATEGY: one job of WORLD processes; rank 0's table on stdout, the others' logs in $work.
run() {
  local strategy=$1; shift
  local pids=() status=0
  for ((r = WORLD - 1; r >= 0; r--)); do
    local out="$work/$strategy-rank$r.log"
    "$BUILD_DIR/worker/fcp-worker" "${WORKER_FLAGS[@]}" --rank "$r" --strategy "$strategy" \
      --coordinator "localhost:$port" --rendezvous coordinator \
      --training-job "demo-$strategy" --summary-json "$work/$strategy.jsonl" "$@" \
      >"$out" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
  cat "$work/$strategy-rank0.log"
  if [ "$status" -ne 0 ]; then
    echo "demo: $strategy: a rank failed:" >&2
    grep -h "fcp-worker:" "$work/$strategy"-rank*.log >&2 || true
    exit 1
  fi
}

echo; run auto "$@"
echo; run ring "$@"
echo
/usr/bin/env python3 - "$work/auto.jsonl" "$work/ring.jsonl" <<'PY'
import json, statistics, sys
def load(path):
    return [json.loads(line) for line in open(path)]
auto, ring = load(sys.argv[1]), load(sys.argv[2])
def med(rows, key):
    return statistics.median(r[key] for r in rows)
print("demo: fcp (auto) vs ring over the same %d steps (medians; measured on this CPU)" % len(auto))
print("%-28s %12s %12s %8s" % ("", "fcp (auto)", "ring", "ratio"))
for key, label in [("measured_imbalance", "measured imbalance"),
                   ("predicted_imbalance", "predicted imbalance"),
                   ("bytes_sent", "bytes sent per step"),
                   ("step_ms", "measured step ms"),
                   ("comm_wait_ms", "comm wait ms (slowest)"),
                   ("predicted_ms", "predicted step ms")]:
    a, b = med(auto, key), med(ring, key)
    print("%-28s %12.4g %12.4g %8.3f" % (label, a, b, a / b if b else float("nan")))
print("strategies auto chose: %s" % ", ".join(sorted({r["strategy"] for r in auto})))
PY
