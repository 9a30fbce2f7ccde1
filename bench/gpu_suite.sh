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
#   kernels    kernel_bench: wikipedia varlen (32K tokens, causal), full and causal squares,
#              bf16, d=128 and d=64 -> kernels.jsonl
#   sdpa       torch SDPA (flash, cuDNN, varlen) on the same shapes, same run -> sdpa.jsonl
#   calibrate  kernel_bench --calibrate -> calibration.txt (the cost model's tile efficiencies)
#   emulation  distributed_emulation for W in $EMULATION_WORKERS, every strategy, with the
#              calibration -> emulation.jsonl
# Knobs: EMULATION_WORKERS (default "8 32 64"), EMULATION_HEADS (q heads, default 8; kv heads
# are a quarter), REPS (kernel_bench repetitions, default 20), EMULATION_REPS (default 3),
# EMULATION_STRATEGIES (default ring,per_doc,flexdeg,dcp,flashcp,fcp), EMULATION_TIMEOUT_S (600),
# CALIBRATION (default: the calibrate stage's $OUT/calibration.txt), TESTS (the test binaries of the
# tests stage), TEST_FILTER (their gtest filter), KERNEL_LABEL (the kernels' name in kernels.jsonl, default v1).
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=$(realpath "${BUNDLE:-build-gpu-bundle}")
OUT=${OUT:-/tmp/fcp-gpu}
STAGES=${STAGES:-info,tests,worker,kernels,sdpa,calibrate,emulation}
EMULATION_WORKERS=${EMULATION_WORKERS:-8 32 64}
EMULATION_HEADS=${EMULATION_HEADS:-8}
REPS=${REPS:-20}
EMULATION_REPS=${EMULATION_REPS:-3}
EMULATION_STRATEGIES=${EMULATION_STRATEGIES:-ring,per_doc,flexdeg,dcp,flashcp,fcp}
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
    stage "test $t" "$BIN/$t" --gtest_brief=1 --gtest_filter="${TEST_FILTER:-*}"
  done
fi

if has worker; then  # the fcp-worker binary on the GPU: 8 ranks as threads, checked vs reference
  for strategy in fcp ring; do
    stage "fcp-worker $strategy" "$BIN/fcp-worker" --lengths "$LENGTHS" --world 8 --device cuda \
      --dtype bf16 --tokens-per-worker 4096 --heads 8 --kv-heads 2 --strategy "$strategy" \
      --steps 3 --check-steps 1 --check-tolerance 5e-2
  done
fi

kernel_case() {  # kernel_case HEADS KV_HEADS HEAD_DIM
  "$BIN/kernel_bench" --lengths="$LENGTHS" --tokens=32768 --max_doc_len=32768 \
    --heads="$1" --kv_heads="$2" --head_dim="$3" --reps="$REPS" --json="$OUT/kernels.jsonl" \
    --label="${KERNEL_LABEL:-v1}" \
    --write_lengths="$OUT/varlen_lengths.txt"
}
sdpa_case() {
  python3 bench/kernel_sdpa.py --lengths-file="$OUT/varlen_lengths.txt" --tokens=32768 \
    --heads="$1" --kv-heads="$2" --head-dim="$3" --reps="$REPS" --json="$OUT/sdpa.jsonl"
}
for shape in "16 16 128" "16 16 64"; do
  # shellcheck disable=SC2086
  has kernels && stage "kernel_bench $shape" kernel_case $shape
  # shellcheck disable=SC2086
  has sdpa && stage "torch sdpa $shape" sdpa_case $shape
done
if has kernels; then
  stage "kernel_bench blocks of 2048" "$BIN/kernel_bench" --lengths="$LENGTHS" --tokens=32768 \
    --max_doc_len=32768 --block_size=2048 --square= --check=false --reps="$REPS" \
    --json="$OUT/kernels.jsonl"
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
    stage "emulation W=$w" timeout "${EMULATION_TIMEOUT_S:-600}" "$BIN/distributed_emulation" --lengths "$LENGTHS" --workers "$w" \
      --tokens-per-worker 32768 --max-doc-len 131072 --strategies "$EMULATION_STRATEGIES" --heads "$EMULATION_HEADS" \
      --kv-heads $((EMULATION_HEADS / 4)) "${calibration[@]}" --reps "$EMULATION_REPS" \
      --results "$OUT/emulation.jsonl"
  done
fi

echo "=== summary ($(date -u +%FT%TZ))" | tee -a "$LOG"
printf '%s\n' "${SUMMARY[@]}" | tee -a "$LOG" "$OUT/summary.txt"
