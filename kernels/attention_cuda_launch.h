// Internal to fcp_kernels_cuda: what the host side (attention_cuda.cc: checks, grouping, staging)
// and the kernels (attention_cuda.cu) share. Launchers take device tables, enqueue one kernel and
// return the launch's error; callers never write <<<>>>.
#ifndef FCP_KERNELS_ATTENTION_CUDA_LAUNCH_H_
#define FCP_KERNELS_ATTENTION_CUDA_LAUNCH_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/attention.h"

#ifdef __CUDACC__
#define FCP_HOST_DEVICE __host__ __device__
#else
#define FCP_HOST_DEVICE
#endif

namespace fcp {
namespace kernels {
namespace cuda_internal {

// Rows of output one work item owns: query rows (forward), key rows (backward).
constexpr int kForwardRows = 64;
inline int BackwardRows(DType dtype) { return dtype == DType::kFp32 ? 32 : 64; }

// One block of the grid (its y index is the head): rows [row0, row0 + rows) of `group`'s block.
struct WorkItem {
  int32_t group = 0;
  int32_t row0 = 0;
};

// Device tables of one launch. Tiles of group g are tiles[order[begin[g]] .. order[begin[g+1]-1]]
// in list order; all of them write the same output block.
template <typename Tile>
struct LaunchTables {
  const Tile* tiles = nullptr;
  const int32_t* order = nullptr;
  const int32_t* begin = nullptr;
  const WorkItem* items = nullptr;
};

// Positions [lo, hi); empty when lo >= hi.
struct PositionRange {
  int64_t lo = 0, hi = 0;
};

constexpr int64_t kFarPosition = int64_t{1} << 60;

FCP_HOST_DEVICE inline bool MaskAllows(const TileMask& m, int64_t i, int64_t j) {
  switch (m.kind) {
    case MaskKind::kCausal:
      return j <= i;
    case MaskKind::kFull:
      return true;
    case MaskKind::kSlidingWindow:
      return j <= i && i - j < m.window;
    case MaskKind::kPrefixLm:
      return j < m.prefix || j <= i;
  }
  return false;
}

// Keys that some query in [i_lo, i_hi] may attend (each mask allows a key interval per query whose
// ends do not decrease with the query, so the union is one interval).
FCP_HOST_DEVICE inline PositionRange KeysOf(const TileMask& m, int64_t i_lo, int64_t i_hi) {
  switch (m.kind) {
    case MaskKind::kCausal:
      return {-kFarPosition, i_hi + 1};
    case MaskKind::kFull:
      return {-kFarPosition, kFarPosition};
    case MaskKind::kSlidingWindow:
      return {i_lo - m.window + 1, i_hi + 1};
    case MaskKind::kPrefixLm:
      return {-kFarPosition, m.prefix > i_hi + 1 ? m.prefix : i_hi + 1};
  }
  return {0, 0};
}

// Queries that attend some key in [j_lo, j_hi].
FCP_HOST_DEVICE inline PositionRange QueriesOf(const TileMask& m, int64_t j_lo, int64_t j_hi) {
  switch (m.kind) {
    case MaskKind::kCausal:
      return {j_lo, kFarPosition};
    case MaskKind::kFull:
      return {-kFarPosition, kFarPosition};
    case MaskKind::kSlidingWindow:
      return {j_lo, j_hi + m.window};
    case MaskKind::kPrefixLm:
      return j_lo < m.prefix ? PositionRange{-kFarPosition, kFarPosition}
                             : PositionRange{j_lo, kFarPosition};
  }
  return {0, 0};
}

FCP_HOST_DEVICE inline PositionRange Intersect(PositionRange a, int64_t begin, int64_t rows) {
  const int64_t lo = a.lo > begin ? a.lo : begin;
  const int64_t hi = a.hi < begin + rows ? a.hi : begin + rows;
  return {lo, hi};
}

// Dynamic shared memory of the kernel for (dtype, head_dim), bytes.
size_t ForwardSharedBytes(DType dtype, int head_dim);
size_t BackwardSharedBytes(DType dtype, int head_dim);

cudaError_t LaunchForward(const AttentionShape& shape, DType dtype,
                          const LaunchTables<ForwardTile>& tables, int32_t items,
                          cudaStream_t stream);
cudaError_t LaunchBackward(const AttentionShape& shape, DType dtype,
                           const LaunchTables<BackwardTile>& tables, int32_t items,
                           cudaStream_t stream);
// The v2 kernels (attention_cuda_v2.cu), fp16/bf16 only (fp32: cudaErrorInvalidValue), on the
// same tables as v1.
size_t ForwardV2SharedBytes(DType dtype, int head_dim);
cudaError_t LaunchForwardV2(const AttentionShape& shape, DType dtype,
                            const LaunchTables<ForwardTile>& tables, int32_t items,
                            cudaStream_t stream);

// atomic_dq: the kernel adds dQ to dq by atomics; else it leaves dq alone (the separate pass).
size_t BackwardV2SharedBytes(DType dtype, int head_dim);
cudaError_t LaunchBackwardV2(const AttentionShape& shape, DType dtype,
                             const LaunchTables<BackwardTile>& tables, int32_t items,
                             bool atomic_dq, cudaStream_t stream);

// The separate dQ pass over BackwardDqTables' tables.
size_t DqV2SharedBytes(DType dtype, int head_dim);
cudaError_t LaunchDqV2(const AttentionShape& shape, DType dtype,
                       const LaunchTables<BackwardTile>& tables, int32_t items,
                       cudaStream_t stream);

cudaError_t LaunchDelta(const AttentionShape& shape, DType dtype, const float* o, const void* d_o,
                        int64_t rows, float* delta, cudaStream_t stream);
cudaError_t LaunchMerge(const AttentionShape& shape, int64_t rows, float* o_a, float* lse_a,
                        const float* o_b, const float* lse_b, cudaStream_t stream);
cudaError_t LaunchAccumulate(float* dst, const float* src, int64_t n, cudaStream_t stream);
cudaError_t LaunchConvert(const float* src, DType dtype, void* dst, int64_t n, cudaStream_t stream);

}  // namespace cuda_internal
}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_ATTENTION_CUDA_LAUNCH_H_
