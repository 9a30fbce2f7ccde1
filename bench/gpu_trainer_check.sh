#!/bin/bash
# Issue 24's GPU check: fcp inside a trainer on one NVIDIA GPU, in <= 8 minutes.
#
#   bench/gpu_trainer_check.sh bundle             # here (CUDA toolkit + Debian's gRPC): builds only
#                                                 # libfcp.so and fcp-coordinator (build-gpu, sm_90)
#                                                 # -> build-gpu-trainer/bundle.tar.gz
#   BUNDLE=build-gpu-trainer bench/gpu_trainer_check.sh [OUT_DIR]   # on the GPU machine
#   DEVICE=cpu bench/gpu_trainer_check.sh /tmp/dry                  # dry run, this tree's build/
#
# The GPU machine has CUDA and torch 2.x but no gRPC packages, so, as bench/gpu_bundle.sh and
# bench/gpu_suite.sh do, the binaries are built here and travel with the shared libraries they load
# (bench/gpu_bundle.sh with TARGETS); NCCL is the machine's own (PyTorch's). Without a bundle,
# FCP_LIBRARY / FCP_COORDINATOR (default: build/client/libfcp.so, build/service/fcp-coordinator)
# are used as they are.
#
# Stages (each under a timeout; results as JSON lines in OUT_DIR, default $OUT or
# /tmp/fcp-gpu-trainer; the log in OUT_DIR/check.log):
#   info     the GPU, driver and torch
#   binding  bench/trainer_cuda_check.py: ContextParallel.attention (bf16) at W=2 as two processes
#            on the one GPU over gloo (host staging) vs torch SDPA per document: errors (both vs
#            fp32 SDPA) and forward+backward ms -> binding.jsonl
#   gpt      client/python/examples/train_gpt.py, 3 steps with --device cuda: the single-process
#            reference, W=1 and W=2 -> gpt_{reference,w1,w2}.jsonl, and per run the seconds per
#            step and their ratio to the reference's -> gpt.jsonl
# Knobs: STAGES (default info,binding,gpt), DEVICE (cuda; cpu = dry run with small sizes),
# STEPS (3), BINDING_TIMEOUT_S (180), GPT_TIMEOUT_S (90 per run), PYTHON (python3: the one with
# torch; here Debian's /usr/bin/python3).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
BUNDLE=${BUNDLE:-build-gpu-trainer}

if [[ "${1:-}" == bundle ]]; then
  exec env TARGETS="fcp_c_shared fcp-coordinator" BUNDLE="$BUNDLE" bench/gpu_bundle.sh
fi

OUT=${1:-${OUT:-/tmp/fcp-gpu-trainer}}
DEVICE=${DEVICE:-cuda}
STAGES=${STAGES:-info,binding,gpt}
STEPS=${STEPS:-3}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
LOG="$OUT/check.log"
SUMMARY=()

if [[ -f "$BUNDLE/bundle.tar.gz" ]]; then  # gpu_bundle.sh's compressed form
  unpacked=${TMPDIR:-/tmp}/fcp-gpu-trainer-bundle
  rm -rf "$unpacked" && mkdir -p "$unpacked" && tar -C "$unpacked" -xzf "$BUNDLE/bundle.tar.gz"
  NCCL_DIR=${NCCL_DIR:-$("$PYTHON" -c 'import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], "lib"))' 2>/dev/null)}
  export LD_LIBRARY_PATH="$unpacked/lib${NCCL_DIR:+:$NCCL_DIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export FCP_LIBRARY="$unpacked/lib/libfcp.so" FCP_COORDINATOR="$unpacked/bin/fcp-coordinator"
fi
export FCP_LIBRARY=${FCP_LIBRARY:-$ROOT/build/client/libfcp.so}
export FCP_COORDINATOR=${FCP_COORDINATOR:-$ROOT/build/service/fcp-coordinator}
export PYTHONPATH="$ROOT/client/python${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
if [[ ! -f "$FCP_LIBRARY" ]]; then
  echo "gpu_trainer_check: no libfcp.so at $FCP_LIBRARY (bench/gpu_trainer_check.sh bundle," \
    "then BUNDLE=...)" >&2
  exit 2
fi
coordinator=()  # train_gpt starts $FCP_COORDINATOR itself; without one, plans are made locally
[[ -x "$FCP_COORDINATOR" ]] || coordinator=(--coordinator local)

has() { [[ ",$STAGES," == *",$1,"* ]]; }
stage() {  # stage NAME TIMEOUT_S COMMAND...: runs, logs, records pass/fail and seconds
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  echo "=== $name: $*" | tee -a "$LOG"
  timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  SUMMARY+=("$(printf '%-24s rc=%-3d %4ds' "$name" "$rc" $(($(date +%s) - start)))")
  return "$rc"
}

if [[ "$DEVICE" == cpu ]]; then  # dry run: the same commands, sizes a CPU does in seconds
  binding_size=(--dtype FP32 --lengths "100,37,250,64" --heads 4 --kv-heads 2 --head-dim 16
    --reps 2 --warmup 1 --threads 1)
  gpt_size=(--tokens-per-step 512 --threads 1)
  export OMP_NUM_THREADS=1
else
  binding_size=(--dtype BF16)
  gpt_size=(--tokens-per-step 8192 --max-doc-len 4096 --layers 4 --dim 256 --heads 4
    --kv-heads 2)
fi

if has info; then
  if [[ "$DEVICE" == cuda ]]; then
    stage nvidia-smi 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm \
      --format=csv
  fi
  stage torch 60 "$PYTHON" -c 'import torch; print("torch", torch.__version__, torch.version.cuda,
"gpus", torch.cuda.device_count())'
fi

if has binding; then
  rm -f "$OUT/binding.jsonl"
  stage "binding W=2 vs SDPA" "${BINDING_TIMEOUT_S:-180}" "$PYTHON" bench/trainer_cuda_check.py \
    --world 2 --device "$DEVICE" "${binding_size[@]}" --timeout-s 120 --json "$OUT/binding.jsonl"
fi

if has gpt; then
  rm -f "$OUT"/gpt*.jsonl
  data=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
  gpt=("$PYTHON" client/python/examples/train_gpt.py --steps "$STEPS" --device "$DEVICE"
    --data-dir "$data" --timeout-s 60 "${gpt_size[@]}")
  stage "gpt reference" "${GPT_TIMEOUT_S:-90}" "${gpt[@]}" --reference \
    --json-log "$OUT/gpt_reference.jsonl"
  for w in 1 2; do
    stage "gpt W=$w" "${GPT_TIMEOUT_S:-90}" "${gpt[@]}" --world "$w" "${coordinator[@]}" \
      --json-log "$OUT/gpt_w$w.jsonl"
  done
  stage "gpt per step" 30 "$PYTHON" bench/gpt_step_times.py "$OUT" reference w1 w2
fi

echo "=== summary ($(date -u +%FT%TZ), device $DEVICE)" | tee -a "$LOG"
printf '%s\n' "${SUMMARY[@]}" | tee -a "$LOG" >"$OUT/summary.txt"
cat "$OUT/summary.txt"
! grep -q 'rc=[1-9]' "$OUT/summary.txt"
