// Internal to fcp_kernels_cuda: the v2 forward kernel (fp16/bf16), FlashAttention-2's dataflow on
// the tile lists and work items of v1 (attention_cuda_tables.h; one work item = 64 query rows of
// one output block, one query head; same masks and (o, lse) merge as attention_cuda_kernels.cuh).
//
// A block is 4 warps; warp w owns query rows [16w, 16w + 16) of the item and keeps everything of
// them in registers (mma.sync m16n8k16 fragments, attention_cuda_mma.cuh):
//
//   Q    D/16 A fragments, loaded once from shared memory by ldmatrix
//   S    64 keys: 8 n-tiles of fp32 accumulators          S = Q·Kᵀ (K rows by plain ldmatrix)
//   P    e^(S·scale − m) in place; rounded to T and reused as the A operand of P·V
//   O    D/8 n-tiles of fp32 accumulators                  O = e^(m−m')·O + P·V (V by .trans)
//   m, l row max and sum of rows g and g+8 of the lane (lane / 4 = g); max over the quad of lanes
//        that share a row by two xor shuffles, l summed per lane and over the quad at the end.
//
// The steps (tile, 64 keys) of an item are walked in list order while K and V of the next step
// stream into the other half of a double buffer (cp.async, one commit group per step). A warp
// skips a step its 16 rows cannot see, and masks elements only when the step's keys are not all
// allowed for all its rows (the diagonal of a causal or window tile, the tail of a tile).
//
// Shared memory (T = bf16, D = 128: 85 KB, two blocks per H100 SM):
//   qs [64][D+8] T     k/v stage 0, 1: [64][D+8] T each
#ifndef FCP_KERNELS_ATTENTION_CUDA_V2_FORWARD_CUH_
#define FCP_KERNELS_ATTENTION_CUDA_V2_FORWARD_CUH_

#include <cmath>
#include <cstdint>

#include "kernels/attention_cuda_v2_common.cuh"

namespace fcp {
namespace kernels {
namespace cuda_internal {
namespace {

template <typename T, int D>
struct ForwardV2Config {
  static constexpr int kBM = kForwardRows;  // query rows per block, 16 per warp
  static constexpr int kBN = 64;            // keys per step
  static constexpr int kLd = kV2Ld<T, D>;
  static constexpr int kKSteps = D / 16;  // k-steps of Q·Kᵀ
  static constexpr int kKeyTiles = kBN / 8;
  static constexpr int kDimTiles = D / 8;
  static constexpr size_t kKvBytes = AlignUp(sizeof(T) * kBN * kLd);
  static constexpr size_t kQ = 0;
  static constexpr size_t kKv = kQ + AlignUp(sizeof(T) * kBM * kLd);  // K0, V0, K1, V1
  static constexpr size_t kBytes = kKv + 4 * kKvBytes;
  static_assert(kBM == 16 * kWarps, "one 16-row slab per warp");
};

template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    ForwardV2Kernel(LaunchTables<ForwardTile> tables, AttentionShape shape, float scale_log2) {
  using C = ForwardV2Config<T, D>;
  unsigned char* smem = DynamicSharedMemory();
  T* qs = reinterpret_cast<T*>(smem + C::kQ);
  auto k_stage = [&](int stage) {
    return reinterpret_cast<T*>(smem + C::kKv + 2 * stage * C::kKvBytes);
  };
  auto v_stage = [&](int stage) {
    return reinterpret_cast<T*>(smem + C::kKv + (2 * stage + 1) * C::kKvBytes);
  };

  const QueryBlock<ForwardTile, D> b(tables, shape);
  const int g = b.lane / 4, t = b.lane % 4;

  auto issue_kv = [&](const KeyStep& s, int stage) {
    IssueKeyStep<T, D, C::kBN>(tables.tiles[tables.order[s.ti]], s, b.kv_head, b.kv_stride,
                               k_stage(stage), v_stage(stage));
  };

  LoadRowsAsync<T, D>(static_cast<const T*>(b.lead.q) + b.item.row0 * b.q_stride + b.h * D,
                      b.q_stride, b.rows, C::kBM, qs, C::kLd);
  KeyStep step = FirstKeyStep(tables, b.first, b.last, b.i_lo, b.i_hi);
  if (step.ti < b.last) issue_kv(step, 0);
  CpAsyncCommit();

  uint32_t qf[C::kKSteps][4];
  float o[C::kDimTiles][4];
  for (auto& tile : o) tile[0] = tile[1] = tile[2] = tile[3] = 0.0f;
  // Rows g and g+8 of the warp's slab: running max (log2 domain), this lane's part of the sum.
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  bool q_loaded = false;

  for (int stage = 0; step.ti < b.last; stage ^= 1) {
    const KeyStep next = NextKeyStep<C::kBN>(tables, step, b.last, b.i_lo, b.i_hi);
    __syncthreads();  // every warp is done with the other stage (the step before)
    if (next.ti < b.last) issue_kv(next, stage ^ 1);
    CpAsyncCommit();
    CpAsyncWait<1>();  // this step's group (and Q) has landed, for this thread's copies
    __syncthreads();   // and for everyone's
    if (!q_loaded) {   // Q came with the first step's group
      q_loaded = true;
      LoadRowFragments<T, D>(qs + 16 * b.warp * C::kLd, b.lane, qf);
    }
    const ForwardTile& tile = tables.tiles[tables.order[step.ti]];
    const int cols = static_cast<int>(min(static_cast<int64_t>(C::kBN), step.hi - step.j0));
    const int64_t j_hi = step.j0 + cols - 1;
    if (AnyAllowed(tile.mask, b.w_lo, b.w_hi, step.j0, j_hi)) {
      const T* ks = k_stage(stage);
      const T* vs = v_stage(stage);
      // S = Q·Kᵀ
      float s[C::kKeyTiles][4];
      RowsTimesTileT<T, D, C::kKeyTiles>(qf, ks, b.lane, s);
      // Scale, mask (off the fully allowed sub-blocks only), online softmax per row.
      const bool masked = cols < C::kBN || !AllAllowed(tile.mask, b.w_lo, b.w_hi, step.j0, j_hi);
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int64_t i = b.w_lo + g + 8 * half;
        float step_max = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < C::kKeyTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int c = 8 * nt + 2 * t + e;
            float& x = s[nt][2 * half + e];
            x = !masked || (c < cols && MaskAllows(tile.mask, i, step.j0 + c)) ? x * scale_log2
                                                                               : -INFINITY;
            step_max = fmaxf(step_max, x);
          }
        }
        step_max = fmaxf(step_max, __shfl_xor_sync(0xffffffffu, step_max, 1));
        step_max = fmaxf(step_max, __shfl_xor_sync(0xffffffffu, step_max, 2));
        const float m_new = fmaxf(m[half], step_max);
        const float alpha = m_new == -INFINITY ? 1.0f : exp2f(m[half] - m_new);
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < C::kKeyTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float& x = s[nt][2 * half + e];
            x = x == -INFINITY ? 0.0f : exp2f(x - m_new);
            sum += x;
          }
        }
        l[half] = alpha * l[half] + sum;
        m[half] = m_new;
#pragma unroll
        for (int dt = 0; dt < C::kDimTiles; ++dt) {
          o[dt][2 * half] *= alpha;
          o[dt][2 * half + 1] *= alpha;
        }
      }
      // O += P·V, P from registers.
      AccumulatorsTimesTile<T, D, C::kKeyTiles>(s, vs, b.lane, o);
    }
    step = next;
  }
  CpAsyncWait<0>();

  // (o, lse) ← merge((o, lse), (O/l, m·ln2 + ln l)) for rows g and g+8; rows without an allowed
  // key keep theirs. Every lane of the quad reads lse before one writes it.
  float lse_tile[2], lse_old[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    l[half] += __shfl_xor_sync(0xffffffffu, l[half], 1);
    l[half] += __shfl_xor_sync(0xffffffffu, l[half], 2);
    const int r = 16 * b.warp + g + 8 * half;
    lse_old[half] = -INFINITY;
    lse_tile[half] = m[half] == -INFINITY ? -INFINITY : m[half] * kLn2 + logf(l[half]);
    if (r < b.rows && m[half] != -INFINITY) {
      lse_old[half] = b.lead.lse[(b.item.row0 + r) * shape.q_heads + b.h];
      const float inv_l = 1.0f / l[half];
      const bool fresh = lse_old[half] == -INFINITY;  // o holds nothing (poison, never read)
      float w_old = 0.0f, w_tile = inv_l;
      if (!fresh) {
        const float merged = fmaxf(lse_old[half], lse_tile[half]) +
                             log1pf(expf(-fabsf(lse_old[half] - lse_tile[half])));
        w_old = expf(lse_old[half] - merged);
        w_tile = expf(lse_tile[half] - merged) * inv_l;
        lse_tile[half] = merged;
      }
      float* out = b.lead.o + (b.item.row0 + r) * b.q_stride + b.h * D + 2 * t;
#pragma unroll
      for (int dt = 0; dt < C::kDimTiles; ++dt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float& y = out[8 * dt + e];
          y = fresh ? w_tile * o[dt][2 * half + e] : w_old * y + w_tile * o[dt][2 * half + e];
        }
      }
    }
  }
  __syncwarp();
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = 16 * b.warp + g + 8 * half;
    if (t == 0 && r < b.rows && m[half] != -INFINITY) {
      b.lead.lse[(b.item.row0 + r) * shape.q_heads + b.h] = lse_tile[half];
    }
  }
}

}  // namespace
}  // namespace cuda_internal
}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_ATTENTION_CUDA_V2_FORWARD_CUH_
