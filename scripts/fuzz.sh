#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang under ASan+UBSan in build-fuzz/ and runs one.
# Usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags]
#   scripts/fuzz.sh plan_request_fuzzer 600
#   scripts/fuzz.sh lengths_fuzzer 0 -runs=10000000   # SECONDS 0: no time limit (stop on -runs)
# Targets: plan_request_fuzzer lengths_fuzzer histogram_fuzzer c_api_fuzzer cost_params_fuzzer
# plan_json_fuzzer. New interesting inputs go to the work corpus build-fuzz/corpus/TARGET (seeded
# from fuzz/corpus/TARGET, which stays untouched); a crash leaves build-fuzz/crash-* (or the
# -artifact_prefix you pass): fix it, then add the input to fuzz/corpus/TARGET as a regression.
#   BUILD_DIR=build-fuzz  JOBS=N (build jobs; default: number of cores). Asserts stay on (-O2, no NDEBUG).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  sed -n 2,11p "$0" >&2
  exit 2
fi
TARGET=$1 SECONDS_=$2
shift 2
BUILD_DIR=${BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
[ -d "fuzz/corpus/$TARGET" ] || { echo "fuzz.sh: no fuzz/corpus/$TARGET" >&2; exit 2; }
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ missing (scripts/setup.sh)" >&2; exit 2; }

FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -gline-tables-only"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS_RELEASE=-O2 -DCMAKE_C_FLAGS_RELEASE=-O2 \
  -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_C_FLAGS="$FLAGS" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DFCP_FUZZ=ON -DFCP_BUILD_TESTS=OFF \
  -DFCP_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS" --target "$TARGET"

WORK="$BUILD_DIR/corpus/$TARGET"
mkdir -p "$WORK"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# malloc_context_size=0: no allocation stacks in a report (replay the crash input with
# ASAN_OPTIONS=detect_leaks=1 to get them); recording them was ~15% of c_api_fuzzer's time.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:malloc_context_size=0}
exec "$BUILD_DIR/fuzz/$TARGET" -max_total_time="$SECONDS_" -artifact_prefix="$BUILD_DIR/" \
  -print_final_stats=1 "$@" "$WORK" "fuzz/corpus/$TARGET"
