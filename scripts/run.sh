#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: installs what fcp needs, builds it, starts
# fcp-coordinator and 4 fcp-worker processes over Gloo (CPU, loopback TCP), runs a few attention
# steps on wikipedia batches with plans from the coordinator, checks step 1 against reference
# attention, and compares with the ring baseline (scripts/demo.sh). Extra arguments go to every
# fcp-worker (e.g. --steps 8).
#   BUILD_DIR=build  where to build (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target fcp fcp-coordinator fcp-worker
scripts/demo.sh "$@"
