#!/bin/bash
# fcp's GPU checks and measurements, in one command, on a machine with an NVIDIA GPU (H100/H200),
# from the repository root, over the folder bench/gpu_bundle.sh made:
#
#   BUNDLE=build-gpu-bundle OUT=/tmp/fcp-gpu bench/gpu_suite.sh
#   STAGES=tests,kernels bench/gpu_suite.sh        # only some stages
#
# Stages (in this order; each logs to $OUT/suite.log, results as JSON lines in $OUT):
#   info       the GPU, driver and torch
#   tests      the CUDA tests (kernels vs the fp64 reference under FlashAttention's error rule,
#              every strategy's plan executed on the GPU vs single-process attention, NCCL)
#   worker     fcp-worker --device cuda: 8 ranks on the GPU, fcp and ring, step 1 checked
#   kernels    kernel_bench for each of $KERNELS: wikipedia varlen (32K tokens, causal), full and
#              causal squares, bf16, d in $KERNEL_DIMS -> kernels.jsonl
#   sdpa       torch SDPA (flash, cuDNN, varlen) on the same shapes, same run -> sdpa.jsonl
#   calibrate  kernel_bench --calibrate -> calibration.txt (the cost model's tile efficiencies)
#   emulation  distributed_emulation for W in $EMULATION_WORKERS, every strategy, with the
#              calibration -> emulation.jsonl
# Knobs: EMULATION_WORKERS (default "8 32 64"), EMULATION_HEADS (q heads, default 8; kv heads
# are a quarter), REPS (kernel_bench repetitions, default 20), EMULATION_REPS (default 3),
# EMULATION_STRATEGIES (default ring,per_doc,flexdeg,dcp,flashcp,fcp), EMULATION_TIMEOUT_S (600),
# CALIBRATION (default: the calibrate stage's $OUT/calibration.txt), TESTS (the test binaries of the
# tests stage), TEST_FILTER (their gtest filter), KERNELS (kernel versions the kernels stage times,
# default v1; v1, v2, v2-separate-dq), CHECK_KERNELS (those kernel_bench checks first, default all
# of KERNELS), KERNEL_DIMS (default "128 64"), SQUARE (square document lengths, default
# kernel_bench's), EMULATION_KERNELS (the kernels the emulation runs, default v1), STAGE_TIMEOUT_S
# (a limit on each command of the tests, kernels, sdpa and emulation stages; default none).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
BUNDLE=$(realpath "${BUNDLE:-build-gpu-bundle}")
OUT=${OUT:-/tmp/fcp-gpu}
STAGES=${STAGES:-info,tests,worker,kernels,sdpa,calibrate,emulation}
EMULATION_WORKERS=${EMULATION_WORKERS:-8 32 64}
EMULATION_HEADS=${EMULATION_HEADS:-8}
REPS=${REPS:-20}
EMULATION_REPS=${EMULATION_REPS:-3}
EMULATION_STRATEGIES=${EMULATION_STRATEGIES:-ring,per_doc,flexdeg,dcp,flashcp,fcp}
KERNELS=${KERNELS:-v1}
CHECK_KERNELS=${CHECK_KERNELS:-$KERNELS}
KERNEL_DIMS=${KERNEL_DIMS:-128 64}
SQUARE=${SQUARE:-512,1024,2048,4096,8192,16384}
EMULATION_KERNELS=${EMULATION_KERNELS:-v1}
mkdir -p "$OUT"
if [[ -f "$BUNDLE/bundle.tar.gz" ]]; then  # gpu_bundle.sh's compressed form
  unpacked=${TMPDIR:-/tmp}/fcp-gpu-bundle
  rm -rf "$unpacked" && mkdir -p "$unpacked" && tar -C "$unpacked" -xzf "$BUNDLE/bundle.tar.gz"
  BUNDLE=$unpacked
fi
# The bundle's libraries; NCCL from the machine (PyTorch's wheel has one) unless it has its own.
NCCL_DIR=${NCCL_DIR:-$(python3 -c 'import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], "lib"))' 2>/dev/null)}
export LD_LIBRARY_PATH="$BUNDLE/lib${NCCL_DIR:+:$NCCL_DIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
BIN="$BUNDLE/bin"
LENGTHS="$BUNDLE/workloads/wikipedia.lengths"
LOG="$OUT/suite.log"
SUMMARY=()

has() { [[ ",$STAGES," == *",$1,"* ]]; }
run() { timeout "${STAGE_TIMEOUT_S:-0}" "$@"; }  # 0: no limit
checked() { [[ " $CHECK_KERNELS " == *" $1 "* ]] && echo true || echo false; }
stage() {  # stage NAME COMMAND...: runs, logs, records pass/fail and seconds
  local name=$1 start rc
  shift
  start=$(date +%s)
  echo "=== $name: $*" | tee -a "$LOG"
  "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  SUMMARY+=("$(printf '%-34s rc=%-3d %4ds' "$name" "$rc" $(($(date +%s) - start)))")
  return "$rc"
}

if has info; then
  stage info nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm \
    --format=csv
  stage torch python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'
fi

if has tests; then
  for t in ${TESTS:-attention_cuda_test cuda_backend_test nccl_transport_test}; do
    stage "test $t" run "$BIN/$t" --gtest_brief=1 --gtest_filter="${TEST_FILTER:-*}"
  done
fi

if has worker; then  # the fcp-worker binary on the GPU: 8 ranks as threads, checked vs reference
  for strategy in fcp ring; do
    stage "fcp-worker $strategy" "$BIN/fcp-worker" --lengths "$LENGTHS" --world 8 --device cuda \
      --dtype bf16 --tokens-per-worker 4096 --heads 8 --kv-heads 2 --strategy "$strategy" \
      --steps 3 --check-steps 1 --check-tolerance 5e-2
  done
fi

kernel_case() {  # kernel_case KERNELS HEADS KV_HEADS HEAD_DIM
  run "$BIN/kernel_bench" --kernels="$1" --check="$(checked "$1")" --lengths="$LENGTHS" \
    --tokens=32768 --max_doc_len=32768 --heads="$2" --kv_heads="$3" --head_dim="$4" \
    --square="$SQUARE" --reps="$REPS" --json="$OUT/kernels.jsonl" \
    --write_lengths="$OUT/varlen_lengths.txt"
}
sdpa_case() {
  run python3 bench/kernel_sdpa.py --lengths-file="$OUT/varlen_lengths.txt" --tokens=32768 \
    --heads="$1" --kv-heads="$2" --head-dim="$3" --square="$SQUARE" --reps="$REPS" \
    --json="$OUT/sdpa.jsonl"
}
for dim in $KERNEL_DIMS; do
  for k in $KERNELS; do
    has kernels && stage "kernel_bench $k 16 16 $dim" kernel_case "$k" 16 16 "$dim"
  done
  has sdpa && stage "torch sdpa 16 16 $dim" sdpa_case 16 16 "$dim"
done
if has kernels; then
  for k in $KERNELS; do
    stage "kernel_bench $k blocks of 2048" run "$BIN/kernel_bench" --kernels="$k" \
      --lengths="$LENGTHS" --tokens=32768 --max_doc_len=32768 --block_size=2048 --square= \
      --check=false --reps="$REPS" --json="$OUT/kernels.jsonl"
  done
fi

if has calibrate; then
  stage calibrate "$BIN/kernel_bench" --calibrate --check=false --heads="$EMULATION_HEADS" \
    --kv_heads=$((EMULATION_HEADS / 4)) --head_dim=128 --reps="${CALIBRATION_REPS:-10}" \
    --calibration_out="$OUT/calibration.txt" --json="$OUT/calibration.jsonl"
fi

if has emulation; then
  calibration=()
  CALIBRATION=${CALIBRATION:-$OUT/calibration.txt}
  [[ -f "$CALIBRATION" ]] && calibration=(--calibration "$CALIBRATION")
  rate=$(grep -o -- '--attention-tflops [0-9.]*' "$CALIBRATION" 2>/dev/null | cut -d' ' -f2)
  [[ -n "$rate" ]] && calibration+=(--attention-tflops "$rate")
  for w in $EMULATION_WORKERS; do
    stage "emulation W=$w $EMULATION_KERNELS" timeout "${EMULATION_TIMEOUT_S:-600}" \
      "$BIN/distributed_emulation" --lengths "$LENGTHS" --workers "$w" \
      --tokens-per-worker 32768 --max-doc-len 131072 --strategies "$EMULATION_STRATEGIES" \
      --heads "$EMULATION_HEADS" --kv-heads $((EMULATION_HEADS / 4)) "${calibration[@]}" \
      --reps "$EMULATION_REPS" --kernels "$EMULATION_KERNELS" --results "$OUT/emulation.jsonl"
  done
fi

echo "=== summary ($(date -u +%FT%TZ))" | tee -a "$LOG"
printf '%s\n' "${SUMMARY[@]}" | tee -a "$LOG" "$OUT/summary.txt"
