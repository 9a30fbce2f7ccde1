#!/usr/bin/env bash
# The main job on one machine, CPU only: fcp-coordinator plus 4 fcp-worker processes over Gloo
# (TCP on loopback) run a few training-like attention steps on wikipedia batches, planned by the
# coordinator. Step 1 of every rank is checked against single-process reference attention. Rank 0
# prints a per-step table; the same steps then run with the `ring` baseline and the two are
# compared. Nothing to configure; extra arguments go to every fcp-worker (e.g. --steps 8).
# No cost-model constants are set: the workers report every step to the coordinator, which fits
# each job's cost model from them (the closed loop) and plans the next steps with it; the demo
# prints predicted vs measured step time per step, and the fit (`fcp calibration`).
#   BUILD_DIR=build   where fcp is built (scripts/run.sh builds it)
#   WORLD=4 STEPS=10  ranks and steps
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
WORLD=${WORLD:-4}
STEPS=${STEPS:-10}
shared=$(scripts/shared_dir.sh)
work=$(mktemp -d /tmp/fcp-demo.XXXXXX)
coordinator_pid=""
cleanup() {
  if [ -n "$coordinator_pid" ]; then kill -TERM "$coordinator_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
}
trap cleanup EXIT

# CPU-sized model and batch: 4 q heads over 2 kv heads of 32, 2048 tokens per rank. The cost
# model starts from its defaults (an H100: the first steps' predictions are ~1000x too fast); from
# step 3 on the coordinator plans with the rates it fitted from this machine's reports of the
# earlier steps (attention GFLOP/s, loopback TCP bandwidth, per-transfer latency).
WORKER_FLAGS=(--lengths "$shared/workloads/wikipedia.lengths" --world "$WORLD" --steps "$STEPS"
  --tokens-per-worker 2048 --max-doc-len 4096 --heads 4 --kv-heads 2 --head-dim 32
  --transport gloo --timeout-s 60 --check-steps 1 --seed 1)

"$BUILD_DIR/service/fcp-coordinator" --port 0 --metrics-port 0 >"$work/coordinator.log" 2>&1 &
coordinator_pid=$!
port=$(scripts/coordinator_port.sh "$work/coordinator.log" "$coordinator_pid")
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
print("demo: the closed loop, fcp (auto): predicted vs measured step (slowest rank, attention "
      "forward + backward)")
print("%4s %-9s %12s %12s %8s" % ("step", "strategy", "predicted_ms", "measured_ms", "error"))
for r in auto:
    error = abs(r["predicted_ms"] - r["step_ms"]) / r["step_ms"]
    print("%4d %-9s %12.2f %12.2f %7.0f%%" % (r["step"], r["strategy"], r["predicted_ms"],
                                              r["step_ms"], 100 * error))
print()
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
echo
echo "demo: the cost model the coordinator fitted for demo-auto (fcp calibration):"
"$BUILD_DIR/client/fcp" calibration --coordinator "localhost:$port" --job demo-auto
