#!/usr/bin/env bash
# Sets up the machine, configures, builds and runs every test. Usage: scripts/test.sh [ctest args]
#   BUILD_DIR=build  where to build (default: build)
#   JOBS=N           parallel build jobs (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD_DIR" -j "$JOBS"
cd "$BUILD_DIR"
ctest --output-on-failure -j "$JOBS" "$@"
