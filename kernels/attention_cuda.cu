// The launchers of attention_cuda_launch.h: dispatch on (dtype, head_dim) to the kernel templates
// of attention_cuda_kernels.cuh, set their shared memory, launch, return the launch's error.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>
#include <type_traits>

#include "kernels/attention_cuda_kernels.cuh"
#include "kernels/attention_cuda_launch.h"

namespace fcp {
namespace kernels {
namespace cuda_internal {
namespace {

// ---- dispatch --------------------------------------------------------------------------------

template <typename F>
cudaError_t Dispatch(DType dtype, int head_dim, F f) {
  return DispatchKernel(dtype, head_dim, cudaErrorInvalidValue, f);
}

float ScaleLog2(const AttentionShape& shape) { return shape.Scale() * kLog2e; }

unsigned BlocksFor(int64_t threads_needed, int block) {
  const int64_t blocks = (threads_needed + block - 1) / block;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > (1 << 30) ? (1 << 30) : blocks));
}

}  // namespace

size_t ForwardSharedBytes(DType dtype, int head_dim) {
  return DispatchKernel(dtype, head_dim, size_t{0}, [](auto type, auto dim) {
    return ForwardConfig<decltype(type), decltype(dim)::value>::kBytes;
  });
}

size_t BackwardSharedBytes(DType dtype, int head_dim) {
  return DispatchKernel(dtype, head_dim, size_t{0}, [](auto type, auto dim) {
    return BackwardConfig<decltype(type), decltype(dim)::value>::kBytes;
  });
}

cudaError_t LaunchForward(const AttentionShape& shape, DType dtype,
                          const LaunchTables<ForwardTile>& tables, int32_t items,
                          cudaStream_t stream) {
  return Dispatch(dtype, shape.head_dim, [&](auto type, auto dim) {
    using T = decltype(type);
    constexpr int D = decltype(dim)::value;
    constexpr size_t kBytes = ForwardConfig<T, D>::kBytes;
    cudaError_t e = cudaFuncSetAttribute(ForwardKernel<T, D>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes);
    if (e != cudaSuccess) return e;
    const dim3 grid(static_cast<unsigned>(items), static_cast<unsigned>(shape.q_heads));
    ForwardKernel<T, D><<<grid, kThreads, kBytes, stream>>>(tables, shape, ScaleLog2(shape));
    return cudaGetLastError();
  });
}

cudaError_t LaunchBackward(const AttentionShape& shape, DType dtype,
                           const LaunchTables<BackwardTile>& tables, int32_t items,
                           cudaStream_t stream) {
  return Dispatch(dtype, shape.head_dim, [&](auto type, auto dim) {
    using T = decltype(type);
    constexpr int D = decltype(dim)::value;
    constexpr size_t kBytes = BackwardConfig<T, D>::kBytes;
    cudaError_t e = cudaFuncSetAttribute(BackwardKernel<T, D>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes);
    if (e != cudaSuccess) return e;
    const dim3 grid(static_cast<unsigned>(items), static_cast<unsigned>(shape.kv_heads));
    BackwardKernel<T, D>
        <<<grid, kThreads, kBytes, stream>>>(tables, shape, shape.Scale(), ScaleLog2(shape));
    return cudaGetLastError();
  });
}

cudaError_t LaunchDelta(const AttentionShape& shape, DType dtype, const float* o, const void* d_o,
                        int64_t rows, float* delta, cudaStream_t stream) {
  const int64_t row_heads = rows * shape.q_heads;
  if (row_heads <= 0) return cudaSuccess;
  constexpr int kBlock = 256;
  const unsigned blocks = BlocksFor(row_heads * 32, kBlock);
  switch (dtype) {
    case DType::kFp32:
      DeltaKernel<<<blocks, kBlock, 0, stream>>>(o, static_cast<const float*>(d_o), row_heads,
                                                 shape.head_dim, delta);
      break;
    case DType::kFp16:
      DeltaKernel<<<blocks, kBlock, 0, stream>>>(o, static_cast<const __half*>(d_o), row_heads,
                                                 shape.head_dim, delta);
      break;
    case DType::kBf16:
      DeltaKernel<<<blocks, kBlock, 0, stream>>>(o, static_cast<const __nv_bfloat16*>(d_o),
                                                 row_heads, shape.head_dim, delta);
      break;
  }
  return cudaGetLastError();
}

cudaError_t LaunchMerge(const AttentionShape& shape, int64_t rows, float* o_a, float* lse_a,
                        const float* o_b, const float* lse_b, cudaStream_t stream) {
  const int64_t row_heads = rows * shape.q_heads;
  if (row_heads <= 0) return cudaSuccess;
  constexpr int kBlock = 256;
  MergeKernel<<<BlocksFor(row_heads * 32, kBlock), kBlock, 0, stream>>>(row_heads, shape.head_dim,
                                                                        o_a, lse_a, o_b, lse_b);
  return cudaGetLastError();
}

cudaError_t LaunchAccumulate(float* dst, const float* src, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  constexpr int kBlock = 256;
  const unsigned blocks = BlocksFor(n, kBlock) > 4096 ? 4096 : BlocksFor(n, kBlock);
  AccumulateKernel<<<blocks, kBlock, 0, stream>>>(dst, src, n);
  return cudaGetLastError();
}

cudaError_t LaunchConvert(const float* src, DType dtype, void* dst, int64_t n,
                          cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  constexpr int kBlock = 256;
  const unsigned blocks = BlocksFor(n, kBlock) > 4096 ? 4096 : BlocksFor(n, kBlock);
  switch (dtype) {
    case DType::kFp32:
      return cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, stream);
    case DType::kFp16:
      ConvertKernel<<<blocks, kBlock, 0, stream>>>(src, static_cast<__half*>(dst), n);
      break;
    case DType::kBf16:
      ConvertKernel<<<blocks, kBlock, 0, stream>>>(src, static_cast<__nv_bfloat16*>(dst), n);
      break;
  }
  return cudaGetLastError();
}

}  // namespace cuda_internal
}  // namespace kernels
}  // namespace fcp
