// flashcp: FlashCP's hybrid. Documents above a length threshold are sharded per document (zigzag
// over as few ranks as balance needs); the rest are placed whole (LPT, no traffic). The threshold
// is searched per batch: a few candidates (documents costing more than 1, 1/2, 1/4 of a worker's
// mean load are long, or none), each placed and estimated, the lowest estimated step time wins.
//
//   threshold t:       short (≤ t): whole           long (> t): k = ceil(cost / mean) ranks
//   doc A (long, k=3): chunk 0 1 2 3 4 5 → ranks {0, 2, 5}: 0 2 5 5 2 0
//   doc B, C, D ...:   whole, each onto the least-loaded rank
//
//   rank 0: A0 A5 [c]   rank 2: A1 A4 [b]   rank 5: A2 A3   rank 1: [d] [e] ...
//
// Shard-aware communication comes from the kDirect layout: a rank receives only the KV blocks its
// own q-blocks attend to (causal: only earlier chunks), each once, never a ring's worth.
//
// The paper (seed 003, as the design summarises it): short documents whole, long ones per
// document, a heuristic search over the split, shard-aware KV sends. Decisions here use the cost
// model throughout (issue 26): a document's cost is its attention tiles plus its linear layers
// (whole-step objective), each shard's share is priced by its own tiles, and a candidate's
// estimate is every worker's compute or its receives, whichever is longer, where a receive from
// a member on another node is priced at the inter-node rate and one inside the node at NVLink's
// (CostModel::TransferSeconds, latency included). A long document's k members are taken inside
// one node when k fits a node and that is no slower than the k least-loaded workers anywhere.
// Under a token cap (the whole-step budget), the short documents' tokens that the workers outside
// the groups cannot hold land on the members: each threshold is also tried with groups sized to
// leave room for them (k = ceil(cost / (fill · mean)), Fill below; the idea fcp's "grouped"
// shape had, moved here when fcp became block packing alone), the lower estimate winning.
// Where it differs: the threshold candidates are a fixed few (the paper's search is not
// specified further in the design); the estimate does not schedule rounds (a schedule per
// candidate would cost more than the placement); only the winner is scheduled.
//
// Planning cost (issue 23, the same plans): the candidates share one Placer's buffers
// (flashcp_placer.h); a candidate stops once a load or its traffic reaches the best estimate so
// far (both only grow), or once the documents left must take a load there; under a cap the roomy
// groups are placed first (they win most batches) so that the plain ones stop once past them, ties
// still going to the plain ones. A short document costs a lookup of the least-loaded worker, whose
// tree key is refreshed only when it reaches the front, else one RoomQueue query; within-a-node
// groups skip the nodes that cannot beat the best one found.
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/flashcp_placer.h"
#include "service/planner/strategies/packing.h"
#include "service/planner/strategies/plan_memo.h"

namespace fcp {
namespace {

using flashcp::Placement;
using flashcp::Placer;
using flashcp::Sorted;

// Threshold candidates: a document is long when its cost exceeds this fraction of the mean
// per-worker load (infinity: every document whole).
constexpr double kLongFractions[] = {1.0, 0.5, 0.25, HUGE_VAL};
// The least share of a member's mean load a long document may be given under a cap.
constexpr double kMinFill = 0.25;

class FlashCpPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "flashcp"; }
  absl::string_view description() const override {
    return "FlashCP: short documents whole, long ones zigzag-sharded per document; the length "
           "threshold searched per batch; shard-aware KV sends";
  }

  // auto: after fcp and per_doc (flashcp and flexdeg are the seed systems fcp is compared with).
  int auto_order() const override { return 30; }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    const Batch& batch = ctx.batch;
    const int32_t docs = static_cast<int32_t>(batch.documents.size());
    // The documents' costs in order (under auto, computed once for all its candidates).
    const std::shared_ptr<const DocCosts> costs = SharedDocCosts(ctx);
    const std::vector<double>& seconds = costs->seconds;
    const std::vector<int32_t>& order = costs->by_cost;
    const double mean = costs->total / batch.topology.num_workers;
    // Documents in placement order, side by side: every candidate walks them sequentially.
    std::vector<Sorted> sorted(docs);
    for (int32_t i = 0; i < docs; ++i) {
      sorted[i] = {order[i], batch.documents[order[i]].length, seconds[order[i]]};
    }
    std::vector<double> suffix_tokens(docs + 1, 0), suffix_seconds(docs + 1, 0);
    for (int32_t i = docs; i-- > 0;) {
      suffix_tokens[i] = suffix_tokens[i + 1] + static_cast<double>(sorted[i].length);
      suffix_seconds[i] = suffix_seconds[i + 1] + sorted[i].seconds;
    }

    // Thresholds are tried from the highest down while the estimate improves, then "all whole"
    // unless its costliest document alone already exceeds the best estimate. Each candidate is
    // placed and estimated (a schedule per candidate would cost more than the placement); only
    // the best becomes a layout.
    Placer placer(ctx, sorted, suffix_seconds, mean);
    Placement best, placement, roomy;
    bool have_best = false;
    int32_t last_long = -1;
    bool improving = true;
    for (double fraction : kLongFractions) {
      const bool all_whole = fraction == HUGE_VAL;
      if (all_whole ? have_best && docs > 0 && sorted[0].seconds >= best.estimate : !improving) {
        continue;
      }
      int32_t num_long = 0;
      while (num_long < docs && sorted[num_long].seconds > fraction * mean) ++num_long;
      if (num_long == last_long) continue;
      last_long = num_long;
      // A candidate whose estimate reaches the best one's cannot win: placing it stops there.
      const double bound = have_best ? best.estimate : HUGE_VAL;
      // Under a token cap the short documents' tokens may not fit beside the long ones' shares:
      // then also groups sized to leave room for them (fcp's grouped shape had this; issue 26);
      // the plain groups win ties. The roomy groups are placed first (they win most batches
      // under a cap), so that the plain ones stop as soon as they exceed them.
      if (const double fill = Fill(batch, sorted, suffix_tokens, suffix_seconds, mean, num_long);
          fill < 1) {
        placer.Place(num_long, fill, bound, HUGE_VAL, &roomy);
        placer.Place(num_long, 1.0, bound, roomy.estimate, &placement);
        if (roomy.estimate < placement.estimate) std::swap(placement, roomy);
      } else {
        placer.Place(num_long, 1.0, bound, HUGE_VAL, &placement);
      }
      improving = !have_best || placement.estimate < best.estimate;
      // A lower threshold shards the same documents first, identically, then more: its traffic
      // is no lower, and no worker is below the mean. At that bound, stop searching.
      if (placement.estimate <= std::max(mean, placement.traffic)) improving = false;
      if (!have_best || placement.estimate < best.estimate) {
        std::swap(best, placement);
        have_best = true;
      }
    }
    if (!have_best) return absl::FailedPreconditionError("flashcp: no layout");
    Layout layout = Emit(batch, best);
    // Zigzag shares need k workers with room each; near the end there may be fewer: cut what
    // is over the budget.
    if (absl::Status s =
            FitTokenBudget(batch.topology.num_workers, TokenCap(batch.topology), &layout.blocks);
        !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("flashcp: ", s.message()));
    }
    return layout;
  }

 private:
  // The share of a worker's mean load a long document's group member may take so that the short
  // documents (sorted[num_long..]) fit: the workers outside groups hold at most `cap` tokens
  // each, the rest of the short tokens land on the members, at the short documents' seconds per
  // token. 1 when they fit (or without a cap); fixed-point iterated, as the groups grow with it.
  static double Fill(const Batch& batch, const std::vector<Sorted>& sorted,
                     const std::vector<double>& suffix_tokens,
                     const std::vector<double>& suffix_seconds, double mean, int32_t num_long) {
    const int64_t cap = TokenCap(batch.topology);
    const double short_tokens = suffix_tokens[num_long];
    if (num_long == 0 || cap == TokenCap(Topology{}) || short_tokens <= 0 || mean <= 0) return 1;
    const double density = suffix_seconds[num_long] / short_tokens;
    double fill = 1;
    for (int iteration = 0; iteration < 3; ++iteration) {
      double members = 0;
      for (int32_t i = 0; i < num_long; ++i)
        members += std::ceil(sorted[i].seconds / (fill * mean));
      const double others = batch.topology.num_workers - members;
      if (others <= 0) break;
      const double excess = short_tokens - others * static_cast<double>(cap);
      if (excess <= 0) break;
      fill = std::clamp(1 - density * excess / (members * mean), kMinFill, 1.0);
    }
    return fill;
  }

  // Blocks in (document, begin) order, as they are emitted.
  static Layout Emit(const Batch& batch, const Placement& p) {
    Layout layout;
    layout.kind = Layout::Kind::kDirect;
    layout.strategy = "flashcp";
    const int32_t docs = static_cast<int32_t>(batch.documents.size());
    layout.blocks.reserve(p.members.size() * 2);
    for (int32_t d = 0; d < docs; ++d) {
      const int64_t length = batch.documents[d].length, k = p.degree[d];
      if (k == 1) {
        layout.blocks.push_back({d, 0, length, p.members[p.at[d]]});
        layout.block_size = std::max(layout.block_size, length);
        continue;
      }
      for (int64_t c = 0; c < 2 * k; ++c) {
        const int64_t begin = ChunkBegin(length, 2 * k, c), end = ChunkBegin(length, 2 * k, c + 1);
        if (begin == end) continue;
        layout.blocks.push_back({d, begin, end, p.members[p.at[d] + (c < k ? c : 2 * k - 1 - c)]});
        layout.block_size = std::max(layout.block_size, end - begin);
      }
    }
    return layout;
  }
};

}  // namespace

std::unique_ptr<Planner> NewFlashCpPlanner() { return std::make_unique<FlashCpPlanner>(); }

}  // namespace fcp
