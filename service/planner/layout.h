// A Layout is what a strategy decides: which worker owns which block of tokens, and how KV moves.
// Everything else in a plan (tiles, rounds, costs, slices) follows from it, computed once by a
// Schedule (schedule.h), so every strategy is measured by the same cost model.
//
// Two kinds of layout:
//  * kDirect: explicit blocks; the owner of a q-block computes its tiles (except those `placed`
//    elsewhere); every remote KV (or Q) block a worker needs is sent once, directly from its
//    owner; transfers between a pair of workers are grouped and placed in rounds by bipartite
//    edge colouring (each round a matching).
//  * kZigzagRing: workers split into ring groups; each document belongs to one group of k workers
//    and is cut into 2k chunks, member m holding chunks m and 2k-1-m (zigzag); KV rotates k-1
//    rounds around the group. Blocks are implied (and only materialised when a plan output needs
//    them), so a ring over thousands of workers is costed analytically without 10^8 tiles in
//    memory.
#ifndef FCP_SERVICE_PLANNER_LAYOUT_H_
#define FCP_SERVICE_PLANNER_LAYOUT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "service/planner/batch.h"
#include "service/planner/plan.h"

namespace fcp {

class Schedule;

// A tile computed by `worker`, not by its q block's owner (placed computation, plan.h).
struct PlacedTile {
  int32_t q_block = 0;  // block ids: indices into Layout::blocks
  int32_t kv_block = 0;
  int32_t worker = 0;
};

struct Layout {
  enum class Kind { kDirect, kZigzagRing };

  Kind kind = Kind::kDirect;
  std::string strategy;    // name of the strategy that made it
  int64_t block_size = 0;  // the block size it used (largest block allowed)

  // kDirect: every token of every document in exactly one block; sorted by (document, begin).
  std::vector<Block> blocks;
  // kDirect, optional: required tiles computed by another worker than their q block's owner
  // (DCP's computation placement, schedule: placed_schedule.cc); every other tile is computed by
  // its q block's owner. Each (q_block, kv_block) at most once.
  std::vector<PlacedTile> placed;

  // kZigzagRing: groups[g] lists the workers of ring g in ring order; doc_group[d] is the group
  // that holds document d. Workers in no group hold nothing.
  std::vector<std::vector<int32_t>> groups;
  std::vector<int32_t> doc_group;

  // Optional: this layout already scheduled over the PlanContext's batch and cost (a strategy
  // that compares candidates by predicted time has done it), so MakePlan reuses it instead of
  // scheduling twice. Shared, so layouts stay copyable. A layout with a schedule may have handed
  // its blocks to it (`blocks` then empty: the schedule has them).
  std::shared_ptr<const Schedule> schedule;
};

// Chunk c of a document of length `length` cut into `chunks` pieces: [c·L/chunks, (c+1)·L/chunks).
inline int64_t ChunkBegin(int64_t length, int64_t chunks, int64_t c) {
  // Below 2^31 both, the product fits 64 bits: the same quotient without a 128-bit division.
  constexpr int64_t kSmall = int64_t{1} << 31;
  if (length < kSmall && c < kSmall) return length * c / chunks;
  return static_cast<int64_t>((static_cast<__int128>(length) * c) / chunks);
}

// Cuts `length` tokens into blocks of at most `block_size` tokens of near-equal size.
// Returns the block boundaries [0, b1, ..., length].
std::vector<int64_t> SplitEvenly(int64_t length, int64_t block_size);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_LAYOUT_H_
