// Internal to fcp_kernels_cuda: what the v2 forward and backward kernels share
// (attention_cuda_v2_forward.cuh, attention_cuda_v2_backward.cuh): asynchronous row copies into
// shared memory, the mask tests of whole sub-blocks, and ldmatrix addressing of 16×16 operands.
//
// Shared tiles are row-major [rows][D + 8] of T: every row starts 16 bytes after the previous
// one's end, so the 8 row addresses of one ldmatrix fall on different banks.
#ifndef FCP_KERNELS_ATTENTION_CUDA_V2_COMMON_CUH_
#define FCP_KERNELS_ATTENTION_CUDA_V2_COMMON_CUH_

#include <cstdint>

#include "kernels/attention_cuda_kernels.cuh"
#include "kernels/attention_cuda_mma.cuh"

namespace fcp {
namespace kernels {
namespace cuda_internal {
namespace {

// Leading dimension (elements) of a shared tile of D columns of T.
template <typename T, int D>
constexpr int kV2Ld = D + kPadOf<T>;

// Issues cp.async copies of `rows` rows of D elements (source rows `stride` elements apart) into
// shared rows [0, rows) of leading dimension `ld`, and zero-fills rows [rows, total). Every thread
// of the block calls it; the caller commits and waits.
template <typename T, int D>
__device__ __forceinline__ void LoadRowsAsync(const T* src, int64_t stride, int rows, int total,
                                              T* dst, int ld) {
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kPerRow = D / kVec;
  for (int idx = threadIdx.x; idx < total * kPerRow; idx += kThreads) {
    const int r = idx / kPerRow, c = (idx % kPerRow) * kVec;
    const bool in = r < rows;
    CpAsync16(dst + r * ld + c, in ? src + r * stride + c : src, in ? 16 : 0);
  }
}

// Whether the mask allows every pair of queries [i_lo, i_hi] × keys [j_lo, j_hi] (then the
// sub-block runs unmasked).
__device__ __forceinline__ bool AllAllowed(const TileMask& m, int64_t i_lo, int64_t i_hi,
                                           int64_t j_lo, int64_t j_hi) {
  switch (m.kind) {
    case MaskKind::kCausal:
      return j_hi <= i_lo;
    case MaskKind::kFull:
      return true;
    case MaskKind::kSlidingWindow:
      return j_hi <= i_lo && i_hi - j_lo < m.window;
    case MaskKind::kPrefixLm:
      return j_hi < m.prefix || j_hi <= i_lo;
  }
  return false;
}

// Whether the mask allows some pair of queries [i_lo, i_hi] × keys [j_lo, j_hi] (else the
// sub-block is skipped).
__device__ __forceinline__ bool AnyAllowed(const TileMask& m, int64_t i_lo, int64_t i_hi,
                                           int64_t j_lo, int64_t j_hi) {
  const PositionRange keys = KeysOf(m, i_lo, i_hi);
  return keys.lo <= j_hi && j_lo < keys.hi;
}

// The row address lane `lane` gives ldmatrix.x4 for the 16×16 block at `tile` (row-major, leading
// dimension ld) so that the four registers are the mma A operand of that block: matrices
// (rows 0-7, cols 0-7), (rows 8-15, cols 0-7), (rows 0-7, cols 8-15), (rows 8-15, cols 8-15).
// The same address with .trans gives the B operands of two n-tiles from a k-major block
// (B(k, n) = tile[k][n]): registers {0, 1} for columns 0-7, {2, 3} for columns 8-15.
template <typename T>
__device__ __forceinline__ const T* FragmentRowA(const T* tile, int ld, int lane) {
  const int m = lane / 8, r = lane % 8;
  return tile + (8 * (m % 2) + r) * ld + 8 * (m / 2);
}

// The row address for B operands of two n-tiles from an n-major block (B(k, n) = tile[n][k], as
// K is for S = Q·Kᵀ), plain ldmatrix: registers {0, 1} for n 0-7, {2, 3} for n 8-15. With .trans
// it gives the A operand of the transposed block (A(r, k) = tile[k][r]).
template <typename T>
__device__ __forceinline__ const T* FragmentRowB(const T* tile, int ld, int lane) {
  const int m = lane / 8, r = lane % 8;
  return tile + (8 * (m / 2) + r) * ld + 8 * (m % 2);
}

// A operand (16 rows × 16 keys) from two 16×8 fp32 accumulators of adjacent n-tiles, rounded to T
// (the C layout of the pair is the A layout of the block).
template <typename T>
__device__ __forceinline__ void AccumulatorsToA(const float (&lo)[4], const float (&hi)[4],
                                                uint32_t (&a)[4]) {
  a[0] = PackPair<T>(lo[0], lo[1]);
  a[1] = PackPair<T>(lo[2], lo[3]);
  a[2] = PackPair<T>(hi[0], hi[1]);
  a[3] = PackPair<T>(hi[2], hi[3]);
}

// acc[2n], acc[2n + 1] += a · B for the two n-tiles whose B registers are b[0..1], b[2..3].
template <typename T>
__device__ __forceinline__ void MmaPair(float (&lo)[4], float (&hi)[4], const uint32_t (&a)[4],
                                        const uint32_t (&b)[4]) {
  const uint32_t b_lo[2] = {b[0], b[1]}, b_hi[2] = {b[2], b[3]};
  Mma<T>(lo, a, b_lo);
  Mma<T>(hi, a, b_hi);
}

}  // namespace
}  // namespace cuda_internal
}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_ATTENTION_CUDA_V2_COMMON_CUH_
