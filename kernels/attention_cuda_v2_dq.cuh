// Internal to fcp_kernels_cuda: the separate dQ pass of the v2 backward (CudaDqMode::kSeparate),
// fp16/bf16. Tiles are grouped by the dq block they write (BackwardDqTables); one work item = 64
// query rows of one dq block, one query head, and it owns those dq rows: no atomics, one
// read-modify-write per element. The dK/dV kernel (attention_cuda_v2_backward.cuh) then runs
// without its dQ part.
//
// The forward's shape (attention_cuda_v2_forward.cuh): warp w owns query rows [16w, 16w + 16),
// Q and dO as A fragments in registers, lse and delta of the lane's rows g and g+8 in registers;
// per step of 64 keys (K, V double-buffered by cp.async):
//
//   S = Q·Kᵀ, dP = dO·Vᵀ;  P = e^(S·scale − lse);  dS = P∘(dP − delta)   (masked off wholly
//   allowed sub-blocks only);  dQ += dS·K, dS rounded to T and reused from registers.
//
// Shared memory (T = bf16, D = 128: 102 KB): qs, dos [64][D+8] T; k/v stage 0, 1 [64][D+8] T.
#ifndef FCP_KERNELS_ATTENTION_CUDA_V2_DQ_CUH_
#define FCP_KERNELS_ATTENTION_CUDA_V2_DQ_CUH_

#include <cmath>
#include <cstdint>

#include "kernels/attention_cuda_v2_common.cuh"

namespace fcp {
namespace kernels {
namespace cuda_internal {
namespace {

template <typename T, int D>
struct DqV2Config {
  static constexpr int kBM = kForwardRows;  // query rows per block, 16 per warp
  static constexpr int kBN = 64;            // keys per step
  static constexpr int kLd = kV2Ld<T, D>;
  static constexpr int kKeyTiles = kBN / 8;
  static constexpr int kDimTiles = D / 8;
  static constexpr size_t kRowsBytes = AlignUp(sizeof(T) * kBM * kLd);
  static constexpr size_t kKvBytes = AlignUp(sizeof(T) * kBN * kLd);
  static constexpr size_t kQ = 0;
  static constexpr size_t kDo = kQ + kRowsBytes;
  static constexpr size_t kKv = kDo + kRowsBytes;  // K0, V0, K1, V1
  static constexpr size_t kBytes = kKv + 4 * kKvBytes;
  static_assert(kBM == 16 * kWarps, "one 16-row slab per warp");
};

template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    DqV2Kernel(LaunchTables<BackwardTile> tables, AttentionShape shape, float scale,
               float scale_log2) {
  using C = DqV2Config<T, D>;
  unsigned char* smem = DynamicSharedMemory();
  T* qs = reinterpret_cast<T*>(smem + C::kQ);
  T* dos = reinterpret_cast<T*>(smem + C::kDo);
  auto kv_stage = [&](int stage, int which) {  // which: 0 K, 1 V
    return reinterpret_cast<T*>(smem + C::kKv + (2 * stage + which) * C::kKvBytes);
  };

  const QueryBlock<BackwardTile, D> b(tables, shape);
  const int g = b.lane / 4, t = b.lane % 4;
  const bool warp_tail = 16 * b.warp + 15 >= b.rows;  // some of the warp's rows are padding

  const int64_t q_at = b.item.row0 * b.q_stride + b.h * D;
  LoadRowsAsync<T, D>(static_cast<const T*>(b.lead.q) + q_at, b.q_stride, b.rows, C::kBM, qs,
                      C::kLd);
  LoadRowsAsync<T, D>(static_cast<const T*>(b.lead.d_o) + q_at, b.q_stride, b.rows, C::kBM, dos,
                      C::kLd);
  KeyStep step = FirstKeyStep(tables, b.first, b.last, b.i_lo, b.i_hi);
  if (step.ti < b.last) {
    IssueKeyStep<T, D, C::kBN>(tables.tiles[tables.order[step.ti]], step, b.kv_head, b.kv_stride,
                               kv_stage(0, 0), kv_stage(0, 1));
  }
  CpAsyncCommit();

  // lse (log2 domain) and delta of rows g, g+8; padding rows: -inf (P = 0).
  float lse2[2], delta[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = 16 * b.warp + g + 8 * half;
    const int64_t at = (b.item.row0 + r) * shape.q_heads + b.h;
    lse2[half] = r < b.rows ? b.lead.lse[at] * kLog2e : -INFINITY;
    delta[half] = r < b.rows ? b.lead.delta[at] : 0.0f;
  }
  uint32_t qf[D / 16][4], dof[D / 16][4];
  float dq[C::kDimTiles][4];
  for (auto& tile : dq) tile[0] = tile[1] = tile[2] = tile[3] = 0.0f;
  bool rows_loaded = false;

  for (int stage = 0; step.ti < b.last; stage ^= 1) {
    const KeyStep next = NextKeyStep<C::kBN>(tables, step, b.last, b.i_lo, b.i_hi);
    __syncthreads();  // every warp is done with the other stage (the step before)
    if (next.ti < b.last) {
      IssueKeyStep<T, D, C::kBN>(tables.tiles[tables.order[next.ti]], next, b.kv_head, b.kv_stride,
                                 kv_stage(stage ^ 1, 0), kv_stage(stage ^ 1, 1));
    }
    CpAsyncCommit();
    CpAsyncWait<1>();
    __syncthreads();
    if (!rows_loaded) {  // Q and dO came with the first step's group
      rows_loaded = true;
      LoadRowFragments<T, D>(qs + 16 * b.warp * C::kLd, b.lane, qf);
      LoadRowFragments<T, D>(dos + 16 * b.warp * C::kLd, b.lane, dof);
    }
    const BackwardTile& tile = tables.tiles[tables.order[step.ti]];
    const int cols = static_cast<int>(min(static_cast<int64_t>(C::kBN), step.hi - step.j0));
    const int64_t j_hi = step.j0 + cols - 1;
    if (16 * b.warp < b.rows && AnyAllowed(tile.mask, b.w_lo, b.w_hi, step.j0, j_hi)) {
      const T* ks = kv_stage(stage, 0);
      float s[C::kKeyTiles][4], dp[C::kKeyTiles][4];
      RowsTimesTileT<T, D, C::kKeyTiles>(qf, ks, b.lane, s);
      RowsTimesTileT<T, D, C::kKeyTiles>(dof, kv_stage(stage, 1), b.lane, dp);
      const bool masked =
          warp_tail || cols < C::kBN || !AllAllowed(tile.mask, b.w_lo, b.w_hi, step.j0, j_hi);
#pragma unroll
      for (int nt = 0; nt < C::kKeyTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int half = e / 2, c = 8 * nt + 2 * t + e % 2;
          const bool allowed =
              !masked || (c < cols && lse2[half] != -INFINITY &&
                          MaskAllows(tile.mask, b.w_lo + g + 8 * half, step.j0 + c));
          const float p = allowed ? exp2f(s[nt][e] * scale_log2 - lse2[half]) : 0.0f;
          dp[nt][e] = p * (dp[nt][e] - delta[half]);  // dS
        }
      }
      AccumulatorsTimesTile<T, D, C::kKeyTiles>(dp, ks, b.lane, dq);
    }
    step = next;
  }
  CpAsyncWait<0>();

#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = 16 * b.warp + g + 8 * half;
    if (r >= b.rows) continue;
    float* out = b.lead.dq + (b.item.row0 + r) * b.q_stride + b.h * D + 2 * t;
#pragma unroll
    for (int dt = 0; dt < C::kDimTiles; ++dt) {
      out[8 * dt] += scale * dq[dt][2 * half];
      out[8 * dt + 1] += scale * dq[dt][2 * half + 1];
    }
  }
}

}  // namespace
}  // namespace cuda_internal
}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_ATTENTION_CUDA_V2_DQ_CUH_
