#include "service/planner/strategies/packing.h"

#include <algorithm>
#include <limits>

#include "service/planner/mask_math.h"

namespace fcp {

double QueryRangeSeconds(const CostModel& cost, const Document& doc, int64_t q_begin, int64_t q_end,
                         const std::vector<int64_t>& kv_bounds) {
  double seconds = 0;
  for (size_t i = 0; i + 1 < kv_bounds.size(); ++i) {
    const int64_t pairs = AllowedPairs(doc.mask, q_begin, q_end, kv_bounds[i], kv_bounds[i + 1]);
    if (pairs > 0) {
      const double fwd =
          cost.TileForwardSeconds(q_end - q_begin, kv_bounds[i + 1] - kv_bounds[i], pairs);
      seconds += fwd + cost.BackwardFromForward(fwd);
    }
  }
  return seconds;
}

int64_t TokenCap(const Topology& topology) {
  return topology.max_tokens_per_worker > 0 ? topology.max_tokens_per_worker
                                            : std::numeric_limits<int64_t>::max();
}

int64_t RequestedBlockSize(const PlanContext& ctx) {
  return ctx.options.block_size > 0 ? ctx.options.block_size : AutoBlockSize(ctx.batch);
}

void SortByPosition(std::vector<Block>* blocks) {
  std::sort(blocks->begin(), blocks->end(), [](const Block& a, const Block& b) {
    return a.document != b.document ? a.document < b.document : a.begin < b.begin;
  });
}

}  // namespace fcp
