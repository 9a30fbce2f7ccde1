#!/bin/bash
# Issue 27's GPU check in one command, sized for one call of at most 8 minutes on one H100/H200
# (each part has its own time limit below; a part cut by its limit keeps the JSON lines it wrote).
# Prepared without a GPU: written, shellchecked and its binaries compiled, never run so far.
#
#   1. kernels   kernel_bench v1 and v2, then torch SDPA (flash, cuDNN, varlen) on the same shapes
#                in the same run: square full/causal 2K-16K and the wikipedia varlen batch (32K
#                tokens), bf16, 16 heads, d = 128 and 64; v2 checked against the fp64 reference
#                first (FlashAttention's rule, causal and full); then v2-separate-dq (v2's backward
#                with the dQ pass instead of atomics) at d = 128 -> kernels.jsonl, sdpa.jsonl
#   2. emulation distributed_emulation at W = 32 and 64 for ring, flashcp and fcp on the v2
#                kernels, planned with the v1 calibration of docs/results/gpu/calibration.txt (a v2
#                calibration is the next step; until then the "rank error" column is the v1
#                model's) -> emulation.jsonl
#   3. tests     attention_cuda_test, v2 cases: bf16 every mask and both shapes with dq by atomics,
#                causal with the separate dQ pass, fp16 causal, two repeat-bit-for-bit checks;
#                plus the row ops (18 tests)
#
# Here, once:         BUILD_DIR=build-gpu bench/gpu_bundle.sh
# On the GPU machine: BUNDLE=build-gpu-bundle OUT=/tmp/fcp-v2 bench/gpu_kernels_v2_check.sh
#                     (through the device tool: carry build-gpu-bundle, write under $OUT)
# Then here:          /usr/bin/python3 bench/gpu_report.py "$OUT"      # tables and plots
# Knobs: REPS (kernel repetitions, default 5), KERNELS_TIMEOUT_S (each kernel_bench / SDPA run,
# default 75), EMULATION_TIMEOUT_S (each W, default 75), TESTS_TIMEOUT_S (default 100), STAGES
# (of this script: kernels, emulation, tests; default all three).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export OUT=${OUT:-/tmp/fcp-v2}
export REPS=${REPS:-5}
STAGES=${STAGES:-kernels,emulation,tests}
BUNDLE=${BUNDLE:-build-gpu-bundle}
mkdir -p "$OUT"
rm -f "$OUT/summary.txt"  # every gpu_suite.sh call appends its stages' lines

suite() {  # suite VAR=VALUE...: one gpu_suite.sh call
  env BUNDLE="$BUNDLE" "$@" bench/gpu_suite.sh
  # gpu_suite.sh unpacked the bundle once; the later calls reuse it.
  if [[ -f "$BUNDLE/bundle.tar.gz" ]]; then BUNDLE=${TMPDIR:-/tmp}/fcp-gpu-bundle; fi
}
has() { [[ ",$STAGES," == *",$1,"* ]]; }

if has kernels; then
  # The fp64 check on the CPU costs about as much as the timing: v2 only (v1 was checked on an
  # H100 before; the tests part runs the separate dQ pass).
  suite STAGES=info,kernels,sdpa KERNELS="v1 v2" CHECK_KERNELS=v2 KERNEL_DIMS="128 64" \
    SQUARE=2048,4096,8192,16384 STAGE_TIMEOUT_S="${KERNELS_TIMEOUT_S:-75}"
  suite STAGES=kernels KERNELS=v2-separate-dq CHECK_KERNELS=none KERNEL_DIMS=128 \
    SQUARE=2048,4096,8192,16384 STAGE_TIMEOUT_S="${KERNELS_TIMEOUT_S:-75}"
fi
if has emulation; then
  # fcp and ring first: their ratio is the target; W=64 ring is the slowest run.
  suite STAGES=emulation EMULATION_WORKERS="32 64" EMULATION_STRATEGIES=fcp,ring,flashcp \
    EMULATION_KERNELS=v2 EMULATION_REPS=1 CALIBRATION=docs/results/gpu/calibration.txt \
    EMULATION_TIMEOUT_S="${EMULATION_TIMEOUT_S:-75}"
fi
if has tests; then
  # ~5 s a test on an H100 (the fp64 reference on the CPU dominates): 18 tests.
  suite STAGES=tests TESTS=attention_cuda_test STAGE_TIMEOUT_S="${TESTS_TIMEOUT_S:-100}" \
    TEST_FILTER="$(printf '%s:' '*MatchesReference/v2_bf16_*' \
      '*MatchesReference/v2SeparateDq_bf16_Causal_*' '*MatchesReference/v2_fp16_Causal_Q8*' \
      '*RepeatsBitForBit*/v2_bf16_Causal_Q8*' '*RepeatsBitForBit*/v2SeparateDq_bf16_Causal_Q8*' \
      'CudaAttentionOpsTest.*')"
fi

echo "=== all parts"
cat "$OUT/summary.txt"
