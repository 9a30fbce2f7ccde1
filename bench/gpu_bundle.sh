#!/bin/bash
# Builds fcp's GPU binaries on this machine and packs them, with the shared libraries they need
# and the workload files, into one folder that a GPU machine without Debian's packages can run
# (bench/gpu_suite.sh runs them there).
#
#   bench/gpu_bundle.sh                 # build-gpu/ (Release, sm_90) -> build-gpu-bundle/
#   BUILD_DIR=build-x BUNDLE=out bench/gpu_bundle.sh
#   TARGETS="fcp_c_shared fcp-coordinator" BUNDLE=out bench/gpu_bundle.sh   # only these
#
# What goes in: bin/ the CUDA tests (kernels, CUDA executor, NCCL transport), kernel_bench,
# distributed_emulation and fcp-worker, stripped (or the TARGETS given; fcp_c_shared is libfcp.so,
# which goes to lib/); lib/ every shared library they load that is not the C library
# or the CUDA driver or NCCL (Abseil, protobuf, gloo, NCCL, libstdc++...); workloads/ the shared
# workload files; bench/kernel_sdpa.py rides with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu}
BUNDLE=${BUNDLE:-build-gpu-bundle}
SHARED_DIR=${SHARED_DIR:-$(cd .. && pwd)/shared}
# shellcheck disable=SC2206
TARGETS=(${TARGETS:-attention_cuda_test cuda_backend_test nccl_transport_test kernel_bench
  distributed_emulation fcp-worker})

if ! command -v nvcc >/dev/null && [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
  echo "gpu_bundle: no nvcc on this machine: the GPU binaries need the CUDA toolkit" >&2
  exit 2
fi
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  echo "gpu_bundle: configuring $BUILD_DIR (Release, CUDA architecture 90)"
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_COMPILER="${CUDACXX:-/usr/local/cuda/bin/nvcc}" -DCMAKE_CUDA_ARCHITECTURES=90
fi
ninja -C "$BUILD_DIR" -j"${JOBS:-2}" "${TARGETS[@]}"

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/bin" "$BUNDLE/lib" "$BUNDLE/workloads"
for t in "${TARGETS[@]}"; do
  if [[ "$t" == fcp_c_shared ]]; then  # the C API's shared library (fcp_torch loads it)
    strip --strip-unneeded -o "$BUNDLE/lib/libfcp.so" "$BUILD_DIR/client/libfcp.so"
    continue
  fi
  path=$(find "$BUILD_DIR" -type f -name "$t" -perm -u+x | head -1)
  [[ -n "$path" ]] || { echo "gpu_bundle: $t was not built" >&2; exit 1; }
  strip -o "$BUNDLE/bin/$t" "$path"
done
# Shared libraries, except those every Linux machine with an NVIDIA driver has (and must use its
# own of): the C library's parts, the dynamic loader and the driver's libcuda.
shopt -s nullglob
objects=("$BUNDLE"/bin/* "$BUNDLE"/lib/*)
ldd "${objects[@]}" | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | ld-linux* | libcuda.so*) ;;
    # NCCL is 200+ MB: the GPU machine's own is used (gpu_suite.sh finds PyTorch's).
    libnccl.so*) ;;
    *) [[ -e "$BUNDLE/lib/$(basename "$lib")" ]] || cp -L "$lib" "$BUNDLE/lib/" ;;
  esac
done
cp "$SHARED_DIR"/workloads/* "$BUNDLE/workloads/"
# One compressed file travels (the device tool carries at most 64 MiB); gpu_suite.sh unpacks it.
tar -C "$BUNDLE" -czf "$BUNDLE.tar.gz" bin lib workloads
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE"
mv "$BUNDLE.tar.gz" "$BUNDLE/bundle.tar.gz"
du -sh "$BUNDLE"
echo "gpu_bundle: $BUNDLE ready; on the GPU machine: BUNDLE=$BUNDLE bench/gpu_suite.sh"
