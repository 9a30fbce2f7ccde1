// Internal to fcp_kernels_cuda: the warp-level tensor-core primitives of the v2 kernels
// (attention_cuda_v2_*.cuh), one inline-asm wrapper per PTX instruction. Under the CPU emulation
// (FCP_CUDA_EMULATION, kernels/cuda_emulation.h) the same functions come from
// kernels/cuda_emulation_mma.h, which implements PTX's per-lane fragment layouts.
//
//   Mma<T>(c, a, b)           mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}: c += a·b for a
//                             16×16 A (4 regs of 2 elements), 16×8 B (2 regs), 16×8 fp32 C (4).
//                             groupID g = lane / 4, t = lane % 4 (PTX "Matrix Fragments for
//                             mma.m16n8k16 with floating point type"):
//                               a[0] = A(g, 2t..2t+1)    a[1] = A(g+8, 2t..)
//                               a[2] = A(g, 2t+8..)      a[3] = A(g+8, 2t+8..)
//                               b[0] = B(2t..2t+1, g)    b[1] = B(2t+8.., g)
//                               c[0..1] = C(g, 2t..2t+1) c[2..3] = C(g+8, 2t..2t+1)
//                             (the lower-indexed element in the low 16 bits of a register).
//   LdMatrixX4(r, row)        ldmatrix.sync.aligned.m8n8.x4.shared.b16: lanes 8j..8j+7 give the
//                             shared addresses of the 8 rows (16 bytes each) of matrix j; lane i
//                             receives in r[j] row i/4, columns 2(i%4), 2(i%4)+1 of matrix j.
//   LdMatrixX4Trans(r, row)   the .trans variant: r[j] = matrix j's (2(i%4), i/4), (2(i%4)+1, i/4).
//   CpAsync16(dst, src, n)    cp.async.cg.shared.global, 16 bytes: copies n (16 or 0) bytes of
//                             src and zero-fills the rest of dst; visible to the issuing thread
//                             after CpAsyncWait (to the block after that and a __syncthreads).
//   CpAsyncCommit()           closes the thread's open group of copies.
//   CpAsyncWait<N>()          waits until at most N of the thread's committed groups are pending.
#ifndef FCP_KERNELS_ATTENTION_CUDA_MMA_CUH_
#define FCP_KERNELS_ATTENTION_CUDA_MMA_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#ifdef FCP_CUDA_EMULATION
#include "kernels/cuda_emulation_mma.h"
#endif

namespace fcp {
namespace kernels {
namespace cuda_internal {

// Two elements of T in one 32-bit register, `lo` in the low half.
template <typename T>
__device__ __forceinline__ uint32_t PackPair(float lo, float hi) {
  T pair[2];
  if constexpr (std::is_same<T, __half>::value) {
    pair[0] = __float2half_rn(lo);
    pair[1] = __float2half_rn(hi);
  } else {
    pair[0] = __float2bfloat16_rn(lo);
    pair[1] = __float2bfloat16_rn(hi);
  }
  uint32_t r;
  memcpy(&r, pair, sizeof r);
  return r;
}

#ifdef FCP_CUDA_EMULATION
using cuda_emulation::CpAsync16;
using cuda_emulation::CpAsyncCommit;
using cuda_emulation::CpAsyncWait;
using cuda_emulation::LdMatrixX4;
using cuda_emulation::LdMatrixX4Trans;
using cuda_emulation::Mma;
#else

__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

template <typename T>
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same<T, __half>::value) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#endif
}

__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], const void* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(row)));
#endif
}

__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4], const void* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(row)));
#endif
}

__device__ __forceinline__ void CpAsync16(void* dst, const void* src, int src_bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SharedAddress(dst)),
               "l"(src), "r"(src_bytes));
#endif
}

__device__ __forceinline__ void CpAsyncCommit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

template <int N>
__device__ __forceinline__ void CpAsyncWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

#endif  // FCP_CUDA_EMULATION

}  // namespace cuda_internal
}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_ATTENTION_CUDA_MMA_CUH_
