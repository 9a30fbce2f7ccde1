#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: installs what fcp needs, builds it, and plans a real
# batch (wikipedia document lengths, 64 workers x 32K tokens) with every strategy, printing the
# comparison against the ring baseline. Extra arguments go to `fcp plan` (e.g. --workers 128).
#   BUILD_DIR=build  where to build (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target fcp
shared=$(scripts/shared_dir.sh)
"$BUILD_DIR/client/fcp" plan --lengths "$shared/workloads/wikipedia.lengths" \
  --workers 64 --tokens-per-worker 32768 --strategy all "$@"
