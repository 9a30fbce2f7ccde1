// Block-level packing, shared by `fcp` and `grouped`: documents cut into packing units (blocks, or
// zigzag pairs of blocks), bin-packed onto the workers by the Packer (fcp_packer.h), refined, cut
// to the token budget, and neighbouring blocks of one document on one worker merged. The unit
// shape decides what the units are:
//  * kFine (fcp): every document in blocks of at most the block size (smaller for a document whose
//    last block alone would outweigh a worker's share).
//  * kGrouped, kGroupedFull (grouped: FlashCP's structure on this packer): a document worth more
//    than a worker gets a node-local group of k = ceil(cost / fill) workers of its own, k zigzag
//    pairs of 2k chunks pinned one pair each; documents worth less than a worker stay whole and
//    are packed around the groups. kGroupedFull: fill = 1 (groups sized for their document
//    alone); kGrouped: under a token budget, the tokens the other workers cannot take land on
//    group members as short documents, so groups are sized to leave room for them (fill < 1).
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_BLOCK_UNITS_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_BLOCK_UNITS_H_

#include <cstdint>
#include <vector>

#include "service/planner/layout.h"
#include "service/planner/planner.h"

namespace fcp {

enum class UnitShape { kFine, kGrouped, kGroupedFull };

// Per-document costs, shared by the shapes: DocumentSeconds, their sum, and the documents by cost
// (largest first); with the batch's tokens and RequestedBlockSize, each a pass over the documents
// that the packings would otherwise repeat.
struct DocCosts {
  std::vector<double> seconds;
  double total = 0;
  std::vector<int32_t> by_cost;
  int64_t tokens = 0;      // batch.TotalTokens()
  int64_t block_size = 0;  // RequestedBlockSize(ctx)

  static DocCosts Of(const PlanContext& ctx);
};

// The kDirect layout of ctx.batch packed in units of `shape` (strategy name left empty), within
// the token budget. With an explicit options.block_size, blocks keep that size (no merging).
Layout PackBlocks(const PlanContext& ctx, UnitShape shape, const DocCosts& costs);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_BLOCK_UNITS_H_
