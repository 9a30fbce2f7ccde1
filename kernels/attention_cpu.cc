// CPU attention over tile lists (kernels/attention.h): which tiles and heads run on which thread.
// The arithmetic of a tile is in tile_kernels.cc.
//
// A work unit is a group of conflicting tiles (tile_scheduler.h) times one head; a unit runs its
// tiles in list order on one thread, so every output sees its additions in list order whatever the
// number of threads.
#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/attention.h"
#include "kernels/tile_kernels.h"
#include "kernels/tile_scheduler.h"

namespace fcp {
namespace kernels {
namespace {

using internal::BackwardTileHead;
using internal::ForwardTileHead;
using internal::GroupByOverlap;
using internal::PackKv;
using internal::RangeOf;
using internal::TileScratch;
using internal::WriteRange;

bool ValidShape(const AttentionShape& s) {
  return s.q_heads > 0 && s.kv_heads > 0 && s.head_dim > 0 && s.q_heads % s.kv_heads == 0;
}

bool Empty(int64_t q_rows, int64_t kv_rows) { return q_rows <= 0 || kv_rows <= 0; }

// Work of a group of tiles, for starting larger groups first (masks ignored).
template <typename Tile>
double GroupCost(const std::vector<Tile>& tiles, const std::vector<int>& group) {
  double cost = 0;
  for (int t : group) cost += static_cast<double>(tiles[t].q_rows) * tiles[t].kv_rows;
  return cost;
}

// Runs body(group, head, scratch) for every group and every head in [0, heads), each pair on one
// thread.
template <typename Tile, typename Body>
void ForGroupsAndHeads(const std::vector<Tile>& tiles, const std::vector<std::vector<int>>& groups,
                       int64_t heads, int threads, Body body) {
  std::vector<double> costs;
  for (const auto& group : groups) costs.insert(costs.end(), heads, GroupCost(tiles, group));
  internal::ParallelFor(costs, threads, [&](size_t unit) {
    thread_local TileScratch scratch;
    body(groups[unit / heads], static_cast<int64_t>(unit % heads), scratch);
  });
}

}  // namespace

float AttentionShape::Scale() const {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

void AttentionForward(const AttentionShape& shape, const std::vector<ForwardTile>& tiles,
                      int threads) {
  if (!ValidShape(shape)) return;
  const int64_t row = static_cast<int64_t>(shape.q_heads) * shape.head_dim;
  std::vector<WriteRange> writes;
  for (int t = 0; t < static_cast<int>(tiles.size()); ++t) {
    const ForwardTile& tile = tiles[t];
    if (Empty(tile.q_rows, tile.kv_rows)) continue;
    writes.push_back(RangeOf(tile.o, tile.q_rows * row, t));
    writes.push_back(RangeOf(tile.lse, tile.q_rows * shape.q_heads, t));
  }
  ForGroupsAndHeads(tiles, GroupByOverlap(writes), shape.q_heads, threads,
                    [&](const std::vector<int>& group, int64_t h, TileScratch& scratch) {
                      for (int t : group) ForwardTileHead(shape, tiles[t], h, scratch);
                    });
}

// Tiles that share a q block (dq) or a kv block (dk, dv) conflict, and one document's tiles usually
// all connect, leaving only its kv heads to spread over threads. When that gives fewer units than
// threads, the backward runs as two passes instead: dk/dv over groups of kv blocks, then dq over
// groups of q blocks, recomputing P and dS (about 40% more arithmetic, but many more units).
void AttentionBackward(const AttentionShape& shape, const std::vector<BackwardTile>& tiles,
                       int threads) {
  if (!ValidShape(shape)) return;
  const int64_t q_row = static_cast<int64_t>(shape.q_heads) * shape.head_dim;
  const int64_t kv_row = static_cast<int64_t>(shape.kv_heads) * shape.head_dim;
  const int64_t group = shape.q_heads / shape.kv_heads;
  std::vector<WriteRange> dq_writes, dkdv_writes;
  for (int t = 0; t < static_cast<int>(tiles.size()); ++t) {
    const BackwardTile& tile = tiles[t];
    if (Empty(tile.q_rows, tile.kv_rows)) continue;
    dq_writes.push_back(RangeOf(tile.dq, tile.q_rows * q_row, t));
    dkdv_writes.push_back(RangeOf(tile.dk, tile.kv_rows * kv_row, t));
    dkdv_writes.push_back(RangeOf(tile.dv, tile.kv_rows * kv_row, t));
  }
  std::vector<WriteRange> all_writes = dq_writes;
  all_writes.insert(all_writes.end(), dkdv_writes.begin(), dkdv_writes.end());
  const std::vector<std::vector<int>> fused = GroupByOverlap(all_writes);

  // The tiles of `group` for kv head g and its q heads.
  auto kv_head_pass = [&](const std::vector<int>& tile_group, int64_t g, unsigned grads,
                          TileScratch& scratch) {
    for (int t : tile_group) {
      PackKv(shape, tiles[t], g, scratch);
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        BackwardTileHead(shape, tiles[t], h, grads, scratch);
      }
    }
  };
  if (static_cast<int64_t>(fused.size()) * shape.kv_heads >= internal::ResolveThreads(threads)) {
    ForGroupsAndHeads(tiles, fused, shape.kv_heads, threads,
                      [&](const std::vector<int>& tile_group, int64_t g, TileScratch& scratch) {
                        kv_head_pass(tile_group, g, internal::kAllGrads, scratch);
                      });
    return;
  }
  ForGroupsAndHeads(tiles, GroupByOverlap(dkdv_writes), shape.kv_heads, threads,
                    [&](const std::vector<int>& tile_group, int64_t g, TileScratch& scratch) {
                      kv_head_pass(tile_group, g, internal::kDkDv, scratch);
                    });
  ForGroupsAndHeads(tiles, GroupByOverlap(dq_writes), shape.q_heads, threads,
                    [&](const std::vector<int>& tile_group, int64_t h, TileScratch& scratch) {
                      for (int t : tile_group) {
                        PackKv(shape, tiles[t], h / group, scratch);
                        BackwardTileHead(shape, tiles[t], h, internal::kDq, scratch);
                      }
                    });
}

void ComputeDelta(const AttentionShape& shape, const float* o, const float* d_o, int64_t rows,
                  float* delta) {
  const int64_t d = shape.head_dim;
  for (int64_t rh = 0; rh < rows * shape.q_heads; ++rh) {
    double sum = 0;
    for (int64_t c = 0; c < d; ++c) sum += static_cast<double>(o[rh * d + c]) * d_o[rh * d + c];
    delta[rh] = static_cast<float>(sum);
  }
}

void MergeLse(const AttentionShape& shape, int64_t rows, float* o_a, float* lse_a, const float* o_b,
              const float* lse_b) {
  const int64_t d = shape.head_dim;
  for (int64_t rh = 0; rh < rows * shape.q_heads; ++rh) {
    internal::MergeRow(d, o_b + rh * d, lse_b[rh], o_a + rh * d, lse_a + rh);
  }
}

}  // namespace kernels
}  // namespace fcp
