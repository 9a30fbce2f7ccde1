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

// One step of a query-row work item (forward, separate dQ pass): keys [j0, min(j0 + kBN, hi)) of
// tile order[ti], whose keys the item's rows [i_lo, i_hi] see are [.., hi); ti == last: none.
struct KeyStep {
  int32_t ti = 0;
  int64_t j0 = 0, hi = 0;
};

// The first step of the first tile at or after `ti` with keys that rows [i_lo, i_hi] see.
template <typename Tile>
__device__ __forceinline__ KeyStep FirstKeyStep(const LaunchTables<Tile>& tables, int32_t ti,
                                                int32_t last, int64_t i_lo, int64_t i_hi) {
  for (; ti < last; ++ti) {
    const Tile& tile = tables.tiles[tables.order[ti]];
    const PositionRange keys =
        Intersect(KeysOf(tile.mask, i_lo, i_hi), tile.kv_begin, tile.kv_rows);
    if (keys.lo < keys.hi) return {ti, keys.lo, keys.hi};
  }
  return {last, 0, 0};
}

template <int kBN, typename Tile>
__device__ __forceinline__ KeyStep NextKeyStep(const LaunchTables<Tile>& tables, KeyStep s,
                                               int32_t last, int64_t i_lo, int64_t i_hi) {
  if (s.j0 + kBN < s.hi) return {s.ti, s.j0 + kBN, s.hi};
  return FirstKeyStep(tables, s.ti + 1, last, i_lo, i_hi);
}

// K and V rows of step `s` (zero-filled past the tile's keys) into k_dst and v_dst, cp.async.
template <typename T, int D, int kBN, typename Tile>
__device__ __forceinline__ void IssueKeyStep(const Tile& tile, const KeyStep& s, int kv_head,
                                             int64_t kv_stride, T* k_dst, T* v_dst) {
  const int cols = static_cast<int>(min(static_cast<int64_t>(kBN), s.hi - s.j0));
  const int64_t at = (s.j0 - tile.kv_begin) * kv_stride + kv_head * D;
  LoadRowsAsync<T, D>(static_cast<const T*>(tile.k) + at, kv_stride, cols, kBN, k_dst, kV2Ld<T, D>);
  LoadRowsAsync<T, D>(static_cast<const T*>(tile.v) + at, kv_stride, cols, kBN, v_dst, kV2Ld<T, D>);
}

// The A fragments of 16 shared rows of D columns (Q or dO of a warp), one per 16-column k-step.
template <typename T, int D>
__device__ __forceinline__ void LoadRowFragments(const T* rows, int lane,
                                                 uint32_t (&f)[D / 16][4]) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    LdMatrixX4(f[kk], FragmentRowA(rows + 16 * kk, kV2Ld<T, D>, lane));
  }
}

// s = A·Bᵀ: the warp's 16 rows (A fragments a) against the 8·kTiles shared rows of `tile` (K or
// V, [row][D]): s[n] holds columns 8n..8n+7.
template <typename T, int D, int kTiles>
__device__ __forceinline__ void RowsTimesTileT(const uint32_t (&a)[D / 16][4], const T* tile,
                                               int lane, float (&s)[kTiles][4]) {
  for (auto& n : s) n[0] = n[1] = n[2] = n[3] = 0.0f;
#pragma unroll
  for (int np = 0; np < kTiles / 2; ++np) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t b[4];
      LdMatrixX4(b, FragmentRowB(tile + 16 * np * kV2Ld<T, D> + 16 * kk, kV2Ld<T, D>, lane));
      MmaPair<T>(s[2 * np], s[2 * np + 1], a[kk], b);
    }
  }
}

// acc += P·tile: P the warp's 16 rows × 8·kTiles columns in accumulators (rounded to T), tile
// the 8·kTiles shared rows of D columns they weigh (V for O, K for dQ).
template <typename T, int D, int kTiles>
__device__ __forceinline__ void AccumulatorsTimesTile(const float (&p)[kTiles][4], const T* tile,
                                                      int lane, float (&acc)[D / 8][4]) {
#pragma unroll
  for (int kk = 0; kk < kTiles / 2; ++kk) {
    uint32_t a[4];
    AccumulatorsToA<T>(p[2 * kk], p[2 * kk + 1], a);
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t b[4];
      LdMatrixX4Trans(b, FragmentRowA(tile + 16 * kk * kV2Ld<T, D> + 16 * dp, kV2Ld<T, D>, lane));
      MmaPair<T>(acc[2 * dp], acc[2 * dp + 1], a, b);
    }
  }
}

// Where a block of a query-row kernel (the forward, the dQ pass) stands: its work item (up to 64
// query rows of one block, query head blockIdx.y), its tiles, the warp's 16-row slab.
template <typename Tile, int D>
struct QueryBlock {
  __device__ __forceinline__ QueryBlock(const LaunchTables<Tile>& tables,
                                        const AttentionShape& shape)
      : item(tables.items[blockIdx.x]),
        h(static_cast<int>(blockIdx.y)),
        kv_head(h / (shape.q_heads / shape.kv_heads)),
        warp(static_cast<int>(threadIdx.x / 32)),
        lane(static_cast<int>(threadIdx.x % 32)),
        first(tables.begin[item.group]),
        last(tables.begin[item.group + 1]),
        lead(tables.tiles[tables.order[first]]),
        rows(static_cast<int>(min(static_cast<int64_t>(kForwardRows), lead.q_rows - item.row0))),
        i_lo(lead.q_begin + item.row0),
        i_hi(i_lo + rows - 1),
        w_lo(i_lo + 16 * warp),
        w_hi(w_lo + 15),
        q_stride(static_cast<int64_t>(shape.q_heads) * D),
        kv_stride(static_cast<int64_t>(shape.kv_heads) * D) {}

  WorkItem item;
  int h, kv_head, warp, lane;
  int32_t first, last;  // tiles order[first .. last)
  Tile lead;            // the first: its q, lse (o, dq) are every tile's
  int rows;             // valid rows of the item
  int64_t i_lo, i_hi;   // their positions
  int64_t w_lo, w_hi;   // the warp's slab (rows past i_hi are padding)
  int64_t q_stride, kv_stride;
};

}  // namespace
}  // namespace cuda_internal
}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_ATTENTION_CUDA_V2_COMMON_CUH_
