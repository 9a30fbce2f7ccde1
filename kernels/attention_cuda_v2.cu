// The launchers of the v2 kernels (attention_cuda_launch.h): dispatch on (dtype, head_dim) to the
// templates of attention_cuda_v2_forward.cuh and attention_cuda_v2_backward.cuh, fp16/bf16 only.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>
#include <type_traits>

#include "kernels/attention_cuda_launch.h"
#include "kernels/attention_cuda_v2_backward.cuh"
#include "kernels/attention_cuda_v2_dq.cuh"
#include "kernels/attention_cuda_v2_forward.cuh"

namespace fcp {
namespace kernels {
namespace cuda_internal {
namespace {

// f(T{}, std::integral_constant<int, D>{}) for fp16/bf16 × (64, 128); `unsupported` otherwise.
template <typename R, typename F>
R DispatchHalf(DType dtype, int head_dim, R unsupported, F f) {
  return DispatchKernel(dtype, head_dim, unsupported, [&](auto type, auto dim) -> R {
    if constexpr (std::is_same<decltype(type), float>::value) {
      return unsupported;
    } else {
      return f(type, dim);
    }
  });
}

// Config<T, D>::kBytes for the run-time (dtype, head_dim); 0 where there is no kernel.
template <template <typename, int> class Config>
size_t SharedBytesOf(DType dtype, int head_dim) {
  return DispatchHalf(dtype, head_dim, size_t{0}, [](auto type, auto dim) {
    return Config<decltype(type), decltype(dim)::value>::kBytes;
  });
}

// Sets the kernel's dynamic shared memory and launches it over (items, heads) blocks.
template <typename Kernel, typename... Args>
cudaError_t Launch(Kernel kernel, size_t bytes, int32_t items, int heads, cudaStream_t stream,
                   Args... args) {
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>(items), static_cast<unsigned>(heads));
  kernel<<<grid, kThreads, bytes, stream>>>(args...);
  return cudaGetLastError();
}

}  // namespace

size_t ForwardV2SharedBytes(DType dtype, int head_dim) {
  return SharedBytesOf<ForwardV2Config>(dtype, head_dim);
}

cudaError_t LaunchForwardV2(const AttentionShape& shape, DType dtype,
                            const LaunchTables<ForwardTile>& tables, int32_t items,
                            cudaStream_t stream) {
  return DispatchHalf(dtype, shape.head_dim, cudaErrorInvalidValue, [&](auto type, auto dim) {
    using T = decltype(type);
    constexpr int D = decltype(dim)::value;
    return Launch(ForwardV2Kernel<T, D>, ForwardV2Config<T, D>::kBytes, items, shape.q_heads,
                  stream, tables, shape, shape.Scale() * kLog2e);
  });
}

size_t BackwardV2SharedBytes(DType dtype, int head_dim) {
  return SharedBytesOf<BackwardV2Config>(dtype, head_dim);
}

cudaError_t LaunchBackwardV2(const AttentionShape& shape, DType dtype,
                             const LaunchTables<BackwardTile>& tables, int32_t items,
                             bool atomic_dq, cudaStream_t stream) {
  return DispatchHalf(dtype, shape.head_dim, cudaErrorInvalidValue, [&](auto type, auto dim) {
    using T = decltype(type);
    constexpr int D = decltype(dim)::value;
    constexpr size_t kBytes = BackwardV2Config<T, D>::kBytes;
    const float scale = shape.Scale(), scale_log2 = scale * kLog2e;
    return atomic_dq ? Launch(BackwardV2Kernel<T, D, true>, kBytes, items, shape.kv_heads, stream,
                              tables, shape, scale, scale_log2)
                     : Launch(BackwardV2Kernel<T, D, false>, kBytes, items, shape.kv_heads, stream,
                              tables, shape, scale, scale_log2);
  });
}

size_t DqV2SharedBytes(DType dtype, int head_dim) {
  return SharedBytesOf<DqV2Config>(dtype, head_dim);
}

cudaError_t LaunchDqV2(const AttentionShape& shape, DType dtype,
                       const LaunchTables<BackwardTile>& tables, int32_t items,
                       cudaStream_t stream) {
  return DispatchHalf(dtype, shape.head_dim, cudaErrorInvalidValue, [&](auto type, auto dim) {
    using T = decltype(type);
    constexpr int D = decltype(dim)::value;
    const float scale = shape.Scale();
    return Launch(DqV2Kernel<T, D>, DqV2Config<T, D>::kBytes, items, shape.q_heads, stream, tables,
                  shape, scale, scale * kLog2e);
  });
}

}  // namespace cuda_internal
}  // namespace kernels
}  // namespace fcp
