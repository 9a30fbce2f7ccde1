#!/usr/bin/env bash
# The closed loop's CPU target (issue 25): fcp-coordinator plus 4 fcp-worker processes over Gloo,
# no cost flags (the coordinator fits the job's cost model from the workers' step reports), 12
# steps of wikipedia batches. Prints rank 0's per-step predicted and measured step (the slowest
# rank's attention forward + backward, `--summary-json`: predicted_ms, step_ms), their relative
# error, the median error over steps 7-12 (the target is <= 0.15) and the job's fit
# (`fcp calibration`). A benchmark, not a test: it exits non-zero only when a process fails, never
# on the target.
#   BUILD_DIR=build  where fcp is built
#   RUNS=1           jobs run one after another (each its own coordinator); one median per run
#   KEEP=DIR         keep the logs and JSON lines in DIR (else a temporary folder, removed)
#   extra arguments go to every fcp-worker
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
RUNS=${RUNS:-1}
WORLD=4
STEPS=12
shared=$(scripts/shared_dir.sh)
if [ -n "${KEEP:-}" ]; then
  mkdir -p "$KEEP"
  work=$(cd "$KEEP" && pwd)
else
  work=$(mktemp -d /tmp/fcp-closed-loop.XXXXXX)
fi
coordinator_pid=""
cleanup() {
  if [ -n "$coordinator_pid" ]; then kill -TERM "$coordinator_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# run N: one coordinator, one job of WORLD worker processes; rank 0's JSON lines in $work/runN.jsonl.
run() {
  local n=$1; shift
  local log="$work/run$n-coordinator.log"
  "$BUILD_DIR/service/fcp-coordinator" --port 0 --metrics-port 0 >"$log" 2>&1 &
  coordinator_pid=$!
  local port
  port=$(scripts/coordinator_port.sh "$log" "$coordinator_pid")
  local job="closed-loop-cpu-$n" pids=() status=0
  for ((r = WORLD - 1; r >= 0; r--)); do
    "$BUILD_DIR/worker/fcp-worker" --rank "$r" --world "$WORLD" --transport gloo \
      --rendezvous coordinator --coordinator "localhost:$port" --training-job "$job" \
      --lengths "$shared/workloads/wikipedia.lengths" --steps "$STEPS" --tokens-per-worker 2048 \
      --max-doc-len 4096 --heads 4 --kv-heads 2 --head-dim 32 --strategy auto --seed 1 \
      --timeout-s 60 --summary-json "$work/run$n.jsonl" "$@" >"$work/run$n-rank$r.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
  if [ "$status" -ne 0 ]; then
    echo "closed_loop_cpu: run $n: a rank failed:" >&2
    grep -h "fcp-worker:" "$work/run$n"-rank*.log >&2 || true
    exit 1
  fi
  /usr/bin/env python3 - "$work/run$n.jsonl" "$n" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print("closed_loop_cpu: run %s: rank 0's step, predicted vs measured" % sys.argv[2])
print("%4s %-9s %12s %12s %9s %8s" % ("step", "strategy", "predicted_ms", "measured_ms",
                                      "wait_ms", "error"))
errors = {}
for r in rows:
    errors[r["step"]] = abs(r["predicted_ms"] - r["step_ms"]) / r["step_ms"]
    print("%4d %-9s %12.2f %12.2f %9.2f %7.1f%%" % (r["step"], r["strategy"], r["predicted_ms"],
                                                   r["step_ms"], r["comm_wait_ms"],
                                                   100 * errors[r["step"]]))
tail = [errors[s] for s in range(7, 13) if s in errors]
print("closed_loop_cpu: run %s: median error, steps 7-12: %.3f (target <= 0.15)" %
      (sys.argv[2], statistics.median(tail) if tail else float("nan")))
PY
  echo "closed_loop_cpu: run $n: the job's fit (fcp calibration):"
  "$BUILD_DIR/client/fcp" calibration --coordinator "localhost:$port" --job "$job" || true
  kill -TERM "$coordinator_pid" 2>/dev/null || true
  wait "$coordinator_pid" 2>/dev/null || true
  coordinator_pid=""
}

for ((n = 1; n <= RUNS; n++)); do
  run "$n" "$@"
  echo
done
