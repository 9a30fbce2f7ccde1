// Internal to fcp_kernels_cuda: the v2 backward kernel (fp16/bf16), FlashAttention-2's dK/dV
// dataflow on the tile lists and work items of v1 (attention_cuda_tables.h; one work item = 64 key
// rows of one kv block, one kv head; the query heads of its group in turn).
//
// A block is 4 warps; warp w owns keys [16w, 16w + 16) of the item and keeps their dK and dV in
// registers (mma.sync fragments, D/8 n-tiles each) for the whole item. It walks steps of 32 query
// rows (tile, query head, rows) with Q, dO, lse and delta of the next step streaming into the other
// half of a double buffer (cp.async for Q and dO), and computes, transposed so that the keys are
// the rows of every accumulator:
//
//   Sᵀ  = K_w·Qᵀ,  dPᵀ = V_w·dOᵀ                       K_w, V_w by ldmatrix; Q, dO plain
//   Pᵀ  = e^(Sᵀ·scale − lse),  dSᵀ = Pᵀ∘(dPᵀ − delta)   masked only off wholly allowed sub-blocks
//   dV += Pᵀ·dO,  dK += dSᵀ·Q                          Pᵀ, dSᵀ reused from registers as A operands
//   dSᵀ → shared memory; then the block computes dQ = dS·K (dS by ldmatrix.trans) and adds
//   scale·dQ to dq by atomics (kAtomicDq), or leaves dq to the separate pass
//   (attention_cuda_v2_dq.cuh, CudaDqMode::kSeparate).
//
// Shared memory (T = bf16, D = 128: 75 KB):
//   ks, vs [64][D+8] T     stage 0, 1: qs, dos [32][D+8] T, lse, delta [32] f32
//   dss [64][32+8] T (dSᵀ)
#ifndef FCP_KERNELS_ATTENTION_CUDA_V2_BACKWARD_CUH_
#define FCP_KERNELS_ATTENTION_CUDA_V2_BACKWARD_CUH_

#include <cmath>
#include <cstdint>

#include "kernels/attention_cuda_v2_common.cuh"

namespace fcp {
namespace kernels {
namespace cuda_internal {
namespace {

template <typename T, int D>
struct BackwardV2Config {
  static constexpr int kBN = 64;  // key rows per block, 16 per warp
  static constexpr int kBM = 32;  // query rows per step
  static constexpr int kLd = kV2Ld<T, D>;
  static constexpr int kLdS = kBM + kPadOf<T>;  // dss
  static constexpr int kQueryTiles = kBM / 8;
  static constexpr int kDimTiles = D / 8;
  static constexpr size_t kKvBytes = AlignUp(sizeof(T) * kBN * kLd);
  static constexpr size_t kRowsBytes = AlignUp(sizeof(T) * kBM * kLd);
  static constexpr size_t kStatsBytes = AlignUp(sizeof(float) * 2 * kBM);  // lse, delta
  static constexpr size_t kStageBytes = 2 * kRowsBytes + kStatsBytes;      // qs, dos, stats
  static constexpr size_t kK = 0;
  static constexpr size_t kV = kK + kKvBytes;
  static constexpr size_t kStages = kV + kKvBytes;
  static constexpr size_t kDs = kStages + 2 * kStageBytes;
  static constexpr size_t kBytes = kDs + AlignUp(sizeof(T) * kBN * kLdS);
  static_assert(kBN == 16 * kWarps, "one 16-key slab per warp");
};

// One step of a work item: query rows [i0, min(i0 + kBM, hi)) of tile order[ti] (whose queries
// that see the item's keys are [lo, hi)), query head h; ti == last: none.
struct BackwardStep {
  int32_t ti = 0;
  int h = 0;
  int64_t i0 = 0, lo = 0, hi = 0;
};

// The first step of the first tile at or after `ti` whose queries see some key of [j_lo, j_hi].
__device__ __forceinline__ BackwardStep FirstBackwardStep(const LaunchTables<BackwardTile>& tables,
                                                          int32_t ti, int32_t last, int h,
                                                          int64_t j_lo, int64_t j_hi) {
  for (; ti < last; ++ti) {
    const BackwardTile& tile = tables.tiles[tables.order[ti]];
    const PositionRange q = Intersect(QueriesOf(tile.mask, j_lo, j_hi), tile.q_begin, tile.q_rows);
    if (q.lo < q.hi) return {ti, h, q.lo, q.lo, q.hi};
  }
  return {last, h, 0, 0, 0};
}

// Rows first, then the group's query heads, then the tiles.
template <int kBM>
__device__ __forceinline__ BackwardStep NextBackwardStep(const LaunchTables<BackwardTile>& tables,
                                                         BackwardStep s, int32_t last, int h_begin,
                                                         int h_end, int64_t j_lo, int64_t j_hi) {
  if (s.i0 + kBM < s.hi) return {s.ti, s.h, s.i0 + kBM, s.lo, s.hi};
  if (s.h + 1 < h_end) return {s.ti, s.h + 1, s.lo, s.lo, s.hi};
  return FirstBackwardStep(tables, s.ti + 1, last, h_begin, j_lo, j_hi);
}

template <typename T, int D, bool kAtomicDq>
__global__ void __launch_bounds__(kThreads)
    BackwardV2Kernel(LaunchTables<BackwardTile> tables, AttentionShape shape, float scale,
                     float scale_log2) {
  using C = BackwardV2Config<T, D>;
  unsigned char* smem = DynamicSharedMemory();
  T* ks = reinterpret_cast<T*>(smem + C::kK);
  T* vs = reinterpret_cast<T*>(smem + C::kV);
  T* dss = reinterpret_cast<T*>(smem + C::kDs);
  auto q_stage = [&](int stage) {
    return reinterpret_cast<T*>(smem + C::kStages + stage * C::kStageBytes);
  };
  auto do_stage = [&](int stage) {
    return reinterpret_cast<T*>(smem + C::kStages + stage * C::kStageBytes + C::kRowsBytes);
  };
  auto stats_stage = [&](int stage) {  // lse [kBM], then delta [kBM]
    return reinterpret_cast<float*>(smem + C::kStages + stage * C::kStageBytes + 2 * C::kRowsBytes);
  };

  const WorkItem item = tables.items[blockIdx.x];
  const int g_head = blockIdx.y;
  const int group = shape.q_heads / shape.kv_heads;
  const int h_begin = g_head * group, h_end = h_begin + group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int32_t first = tables.begin[item.group], last = tables.begin[item.group + 1];
  const BackwardTile lead = tables.tiles[tables.order[first]];
  const int cols = static_cast<int>(min(static_cast<int64_t>(C::kBN), lead.kv_rows - item.row0));
  const int64_t j_lo = lead.kv_begin + item.row0, j_hi = j_lo + cols - 1;
  const int64_t w_lo = j_lo + 16 * warp, w_hi = w_lo + 15;  // the warp's keys
  const bool warp_tail = 16 * warp + 15 >= cols;            // some of the warp's keys are padding
  const int64_t q_stride = static_cast<int64_t>(shape.q_heads) * D;
  const int64_t kv_stride = static_cast<int64_t>(shape.kv_heads) * D;

  // Q, dO rows of step s into `stage` (cp.async), lse and delta by plain loads (strided by heads).
  auto issue = [&](const BackwardStep& s, int stage) {
    const BackwardTile& tile = tables.tiles[tables.order[s.ti]];
    const int rows = static_cast<int>(min(static_cast<int64_t>(C::kBM), s.hi - s.i0));
    const int64_t local = s.i0 - tile.q_begin;
    const int64_t at = local * q_stride + s.h * D;
    LoadRowsAsync<T, D>(static_cast<const T*>(tile.q) + at, q_stride, rows, C::kBM, q_stage(stage),
                        C::kLd);
    LoadRowsAsync<T, D>(static_cast<const T*>(tile.d_o) + at, q_stride, rows, C::kBM,
                        do_stage(stage), C::kLd);
    float* stats = stats_stage(stage);
    for (int r = threadIdx.x; r < C::kBM; r += kThreads) {
      const int64_t row = (local + r) * shape.q_heads + s.h;
      stats[r] = r < rows ? tile.lse[row] : -INFINITY;
      stats[C::kBM + r] = r < rows ? tile.delta[row] : 0.0f;
    }
  };

  const int64_t k_at = item.row0 * kv_stride + g_head * D;
  LoadRowsAsync<T, D>(static_cast<const T*>(lead.k) + k_at, kv_stride, cols, C::kBN, ks, C::kLd);
  LoadRowsAsync<T, D>(static_cast<const T*>(lead.v) + k_at, kv_stride, cols, C::kBN, vs, C::kLd);
  BackwardStep step = FirstBackwardStep(tables, first, last, h_begin, j_lo, j_hi);
  if (step.ti < last) issue(step, 0);
  CpAsyncCommit();

  float dk[C::kDimTiles][4], dv[C::kDimTiles][4];
  for (int dt = 0; dt < C::kDimTiles; ++dt) {
    for (int e = 0; e < 4; ++e) dk[dt][e] = dv[dt][e] = 0.0f;
  }

  for (int stage = 0; step.ti < last; stage ^= 1) {
    const BackwardStep next =
        NextBackwardStep<C::kBM>(tables, step, last, h_begin, h_end, j_lo, j_hi);
    __syncthreads();  // every warp is done with the other stage and with dss (the step before)
    if (next.ti < last) issue(next, stage ^ 1);
    CpAsyncCommit();
    CpAsyncWait<1>();
    __syncthreads();
    const BackwardTile& tile = tables.tiles[tables.order[step.ti]];
    const int rows = static_cast<int>(min(static_cast<int64_t>(C::kBM), step.hi - step.i0));
    const int64_t i_hi = step.i0 + rows - 1;
    const T* qs = q_stage(stage);
    const T* dos = do_stage(stage);
    const float* lse = stats_stage(stage);
    const float* delta = lse + C::kBM;
    // Sᵀ and dPᵀ for the warp's 16 keys × kBM queries: keys g, g+8 (half 0, 1) of the lane,
    // queries 8·qt + 2t + e.
    float st[C::kQueryTiles][4], dpt[C::kQueryTiles][4];
    for (int qt = 0; qt < C::kQueryTiles; ++qt) {
      for (int e = 0; e < 4; ++e) st[qt][e] = dpt[qt][e] = 0.0f;
    }
    const bool any = AnyAllowed(tile.mask, step.i0, i_hi, w_lo, w_hi) && 16 * warp < cols;
    if (any) {
      uint32_t rows_a[D / 16][4];  // K_w, then V_w
      LoadRowFragments<T, D>(ks + 16 * warp * C::kLd, lane, rows_a);
      RowsTimesTileT<T, D, C::kQueryTiles>(rows_a, qs, lane, st);
      LoadRowFragments<T, D>(vs + 16 * warp * C::kLd, lane, rows_a);
      RowsTimesTileT<T, D, C::kQueryTiles>(rows_a, dos, lane, dpt);
      // Pᵀ into st, dSᵀ into dpt.
      const bool masked =
          warp_tail || rows < C::kBM || !AllAllowed(tile.mask, step.i0, i_hi, w_lo, w_hi);
#pragma unroll
      for (int qt = 0; qt < C::kQueryTiles; ++qt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = 16 * warp + g + 8 * (e / 2), query = 8 * qt + 2 * t + e % 2;
          const bool allowed = !masked || (key < cols && query < rows && lse[query] != -INFINITY &&
                                           MaskAllows(tile.mask, step.i0 + query, j_lo + key));
          const float p = allowed ? exp2f(st[qt][e] * scale_log2 - lse[query] * kLog2e) : 0.0f;
          st[qt][e] = p;
          dpt[qt][e] = p * (dpt[qt][e] - delta[query]);
        }
      }
      // dV += Pᵀ·dO, dK += dSᵀ·Q, Pᵀ and dSᵀ from registers.
      AccumulatorsTimesTile<T, D, C::kQueryTiles>(st, dos, lane, dv);
      AccumulatorsTimesTile<T, D, C::kQueryTiles>(dpt, qs, lane, dk);
    }
    if constexpr (kAtomicDq) {
      // dSᵀ (zeros where the warp skipped) → dss, rounded to T as it enters dQ = dS·K.
#pragma unroll
      for (int qt = 0; qt < C::kQueryTiles; ++qt) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const uint32_t pair = PackPair<T>(dpt[qt][2 * half], dpt[qt][2 * half + 1]);
          const int key = 16 * warp + g + 8 * half;
          *reinterpret_cast<uint32_t*>(dss + key * C::kLdS + 8 * qt + 2 * t) = pair;
        }
      }
      __syncthreads();
      // Warp w: query rows [16(w%2), +16) × dims [(D/2)(w/2), +D/2) of dQ, over the 64 keys.
      const int mq = warp % 2, d0 = (D / 2) * (warp / 2);
      float dq[D / 16][4];
      for (auto& tile_dq : dq) tile_dq[0] = tile_dq[1] = tile_dq[2] = tile_dq[3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < C::kBN / 16; ++kk) {
        uint32_t dsa[4];
        LdMatrixX4Trans(dsa, FragmentRowB(dss + 16 * kk * C::kLdS + 16 * mq, C::kLdS, lane));
#pragma unroll
        for (int dp = 0; dp < D / 32; ++dp) {
          uint32_t kb[4];
          LdMatrixX4Trans(kb, FragmentRowA(ks + 16 * kk * C::kLd + d0 + 16 * dp, C::kLd, lane));
          MmaPair<T>(dq[2 * dp], dq[2 * dp + 1], dsa, kb);
        }
      }
      float* dq_rows = tile.dq + (step.i0 - tile.q_begin) * q_stride + step.h * D + d0 + 2 * t;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int r = 16 * mq + g + 8 * half;
        if (r >= rows) continue;
#pragma unroll
        for (int dt = 0; dt < D / 16; ++dt) {
          atomicAdd(dq_rows + r * q_stride + 8 * dt, scale * dq[dt][2 * half]);
          atomicAdd(dq_rows + r * q_stride + 8 * dt + 1, scale * dq[dt][2 * half + 1]);
        }
      }
    }
    step = next;
  }
  CpAsyncWait<0>();

  // One writer per element: dk += scale·dK, dv += dV for the warp's keys below cols.
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int key = 16 * warp + g + 8 * half;
    if (key >= cols) continue;
    const int64_t at = (item.row0 + key) * kv_stride + g_head * D + 2 * t;
#pragma unroll
    for (int dt = 0; dt < C::kDimTiles; ++dt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        lead.dk[at + 8 * dt + e] += scale * dk[dt][2 * half + e];
        lead.dv[at + 8 * dt + e] += dv[dt][2 * half + e];
      }
    }
  }
}

}  // namespace
}  // namespace cuda_internal
}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_ATTENTION_CUDA_V2_BACKWARD_CUH_
