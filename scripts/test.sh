#!/usr/bin/env bash
# Sets up the machine, configures, builds and runs every test. Usage: scripts/test.sh [--sanitize=KIND] [ctest args]
#   BUILD_DIR=build  where to build (default: build; build-asan / build-tsan with --sanitize)
#   JOBS=N           parallel build jobs (default: number of cores)
#   --sanitize=address  the whole suite under ASan+UBSan (Debian's gRPC/protobuf stay uninstrumented;
#                       scripts/lsan_suppressions.txt: leaks inside Debian's libraries)
#   --sanitize=thread   TSan over the tests that do not link gRPC (planner, kernels, loopback
#                       transport, executor, thread pool, single-flight, caches), built and run
#                       alone, against an Abseil built with -fsanitize=thread (Debian's is not
#                       instrumented, so TSan cannot see absl::Mutex): from ABSL_SOURCE_DIR, else
#                       cloned at Debian's version (ABSL_TAG, default 20220623.1) into
#                       $BUILD_DIR/abseil-src; built once into $BUILD_DIR/absl (docs/reliability.md)
set -euo pipefail
cd "$(dirname "$0")/.."
SANITIZE=""
if [[ "${1:-}" == --sanitize=* ]]; then SANITIZE=${1#--sanitize=}; shift; fi
scripts/setup.sh
JOBS=${JOBS:-$(nproc)}
TARGETS=()
EXTRA_ARGS=()
case "$SANITIZE" in
  "") BUILD_DIR=${BUILD_DIR:-build}; FLAGS="" ;;
  address)
    BUILD_DIR=${BUILD_DIR:-build-asan}
    FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan_suppressions.txt} ;;
  thread)
    BUILD_DIR=${BUILD_DIR:-build-tsan}
    FLAGS="-fsanitize=thread -fno-omit-frame-pointer"
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan_suppressions.txt}
    ABSL_PREFIX="$PWD/$BUILD_DIR/absl"
    if [ ! -f "$ABSL_PREFIX/lib/cmake/absl/abslConfig.cmake" ]; then
      SRC=${ABSL_SOURCE_DIR:-$BUILD_DIR/abseil-src}
      if [ ! -f "$SRC/CMakeLists.txt" ]; then
        git clone --depth 1 --branch "${ABSL_TAG:-20220623.1}" \
          https://github.com/abseil/abseil-cpp.git "$SRC"
      fi
      cmake -S "$SRC" -B "$BUILD_DIR/absl-build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_STANDARD=17 -DABSL_PROPAGATE_CXX_STD=ON -DBUILD_TESTING=OFF \
        -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_CXX_FLAGS="$FLAGS" \
        -DCMAKE_INSTALL_PREFIX="$ABSL_PREFIX" >/dev/null
      cmake --build "$BUILD_DIR/absl-build" -j "$JOBS"
      cmake --install "$BUILD_DIR/absl-build" >/dev/null
    fi
    EXTRA_ARGS=(-Dabsl_DIR="$ABSL_PREFIX/lib/cmake/absl")
    TARGETS=(batch_test mask_math_test cost_model_test round_scheduler_test validator_test
      planner_test strategies_test topology_test dcp_test reference_test attention_test
      tile_scheduler_test transport_test loopback_transport_test executor_test
      rendezvous_store_test plan_size_test) ;;
  *) echo "test.sh: --sanitize must be address or thread" >&2; exit 2 ;;
esac
SAN_ARGS=(${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"})
if [ -n "$FLAGS" ]; then
  SAN_ARGS+=(-DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="$FLAGS"
    -DCMAKE_SHARED_LINKER_FLAGS="$FLAGS")
fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${SAN_ARGS[@]+"${SAN_ARGS[@]}"}
if [ ${#TARGETS[@]} -eq 0 ]; then
  cmake --build "$BUILD_DIR" -j "$JOBS"
  cd "$BUILD_DIR"
  ctest --output-on-failure -j "$JOBS" "$@"
else
  cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TARGETS[@]}"
  cd "$BUILD_DIR"
  ctest --output-on-failure -j "$JOBS" -E '_NOT_BUILT' "$@"  # targets not built are not run
fi
