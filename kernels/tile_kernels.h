// Internal to fcp_kernels: the arithmetic of one tile for one head. attention_cpu.cc decides which
// tiles and heads run where; these functions only compute.
//
// Per query row i and head h of a tile, over the keys j the mask allows:
//   S_ij = scale · q_i·k_j                          (scale = 1/√head_dim)
//   forward:  m = max_j S_ij,  l = Σ_j e^(S_ij−m),  o_t = Σ_j e^(S_ij−m)·v_j / l,  lse_t = m + ln l
//             then (o, lse) ← merge((o, lse), (o_t, lse_t))
//   backward: P_ij = e^(S_ij − lse_i),  dP_ij = do_i·v_j,  dS_ij = P_ij·(dP_ij − delta_i)
//             dv_j += P_ij·do_i,  dk_j += scale·dS_ij·q_i,  dq_i += scale·Σ_j dS_ij·k_j
#ifndef FCP_KERNELS_TILE_KERNELS_H_
#define FCP_KERNELS_TILE_KERNELS_H_

#include <cstdint>
#include <vector>

#include "kernels/attention.h"

namespace fcp {
namespace kernels {
namespace internal {

// Buffers that one thread reuses from tile to tile.
struct TileScratch {
  std::vector<float> kt, vt;  // K, V of one kv head, transposed to [head_dim][kv_rows]
  std::vector<float> s, dp;   // per row of a row block and key: S then P; dP then dS
  std::vector<float> q_scaled, acc, zeros;
};

// Forward of query head h over `tile`, merged into the tile's running (o, lse).
void ForwardTileHead(const AttentionShape& shape, const ForwardTile& tile, int64_t h,
                     TileScratch& scratch);

// Which gradients BackwardTileHead accumulates. Every choice computes P and dS the same way, so a
// dk/dv pass followed by a dq pass yields the same bits as one pass with both.
enum Grads : unsigned { kDq = 1, kDkDv = 2, kAllGrads = kDq | kDkDv };

// Copies K and V of kv head g of `tile` into `scratch`, as BackwardTileHead expects them.
void PackKv(const AttentionShape& shape, const BackwardTile& tile, int64_t g, TileScratch& scratch);

// Backward of query head h over `tile`, whose kv head's K and V PackKv put into `scratch`.
void BackwardTileHead(const AttentionShape& shape, const BackwardTile& tile, int64_t h,
                      unsigned grads, TileScratch& scratch);

// (o, lse) ← merge((o, lse), (o_b, lse_b)) for one row of head_dim `d`:
//   lse' = ln(e^lse + e^lse_b),  o' = e^(lse−lse')·o + e^(lse_b−lse')·o_b.
// A side with lse = -inf contributes nothing (its o is not read).
void MergeRow(int64_t d, const float* o_b, float lse_b, float* o, float* lse);

}  // namespace internal
}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_TILE_KERNELS_H_
