// grouped: FlashCP's structure on fcp's packer, an `auto` candidate. Every document worth more
// than a worker gets a node-local group of its own (k workers, k zigzag pairs of 2k chunks, one
// pair each: few, large tiles, and a worker talks to one group only); documents worth less stay
// whole and fcp's packer (locality-aware LPT on the whole-layer cost under the token budget, then
// local search) places them around the groups:
//
//   doc A (3.0 workers' worth):  A0 A5 | A1 A4 | A2 A3   on ranks 0, 1, 2 (one node)
//   short documents b, c, d ...: whole, packed onto ranks 0..W-1 around A's pairs
//
// Two group sizings are tried under a token budget and the lower predicted step wins
// (block_units.h: fill = 1, or groups sized to leave room for the short documents the other workers
// cannot hold).
//
// Where it comes from: fcp used to try this shape beside its block packing; it is FlashCP's
// (long documents sharded per document, short ones whole), so it left `fcp` (issue 26: fcp is the
// FCP paper's block packing alone). It differs from `flashcp` in three ways that win cells of the
// whole-layer grid (a step up to 20% below flashcp's, wikipedia W = 64): groups sit inside nodes,
// the short documents are packed by fcp's packer (compute and tokens, with local search) rather
// than plain LPT, and the group sizing accounts for the token budget. Until `flashcp` absorbs
// those, this keeps the combination reachable through `auto`.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "service/planner/planner.h"
#include "service/planner/schedule.h"
#include "service/planner/strategies/block_units.h"
#include "service/planner/strategies/packing.h"
#include "service/planner/strategies/plan_memo.h"

namespace fcp {
namespace {

class GroupedPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "grouped"; }
  absl::string_view description() const override {
    return "FlashCP's structure on fcp's packer: long documents zigzag over node-local groups of "
           "their own, short ones whole and bin-packed around them (an auto candidate)";
  }

  // auto: after fcp and per_doc.
  int auto_order() const override { return 25; }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    // Under auto, the documents' costs computed once for every candidate (plan_memo.h).
    const std::shared_ptr<const DocCosts> shared_costs = SharedDocCosts(ctx);
    const DocCosts& costs = *shared_costs;
    Layout best = PackBlocks(ctx, UnitShape::kGrouped, costs);
    best.strategy = "grouped";
    // Without a token budget both sizings are the same (nothing pushes tokens onto groups); with
    // an explicit block size there are no groups.
    if (ctx.batch.topology.max_tokens_per_worker <= 0 || ctx.options.block_size > 0) return best;
    Layout full = PackBlocks(ctx, UnitShape::kGroupedFull, costs);
    if (full.blocks == best.blocks) return best;
    full.strategy = "grouped";
    // The lower predicted step time wins (ties: kGrouped). A sizing whose compute alone
    // (LayoutLowerBoundMs) is no faster than the other's whole step cannot win: not scheduled;
    // nor one no faster than auto's incumbent. When that is kGrouped's, kGroupedFull is the only
    // one that might beat the incumbent, and it does exactly when it is also faster than
    // kGrouped: returned unscheduled, auto bounds or schedules it (planner.h).
    if (LayoutLowerBoundMs(ctx, best, ctx.incumbent_ms) >= ctx.incumbent_ms) return full;
    absl::StatusOr<double> best_ms = Evaluate(ctx, &best);
    if (!best_ms.ok()) return best_ms.status();
    const double beat = std::min(*best_ms, ctx.incumbent_ms);
    if (LayoutLowerBoundMs(ctx, full, beat) >= beat) return best;
    absl::StatusOr<double> full_ms = Evaluate(ctx, &full);
    if (!full_ms.ok()) return full_ms.status();
    return *full_ms < *best_ms ? std::move(full) : std::move(best);
  }

 private:
  // Schedules the layout (its blocks move into the schedule, which MakePlan then uses) and returns
  // its predicted step time, infinite if it breaks the token budget.
  static absl::StatusOr<double> Evaluate(const PlanContext& ctx, Layout* layout) {
    Layout blocks_only;
    blocks_only.kind = layout->kind;
    blocks_only.blocks = std::move(layout->blocks);
    absl::StatusOr<std::unique_ptr<Schedule>> schedule =
        NewSchedule(ctx.batch, ctx.cost, std::move(blocks_only));
    if (!schedule.ok()) return schedule.status();
    layout->schedule = std::move(*schedule);
    const int64_t cap = TokenCap(ctx.batch.topology);
    for (const WorkerCost& c : layout->schedule->costs()) {
      if (c.tokens > cap) return HUGE_VAL;
    }
    const PlanSummary& s = layout->schedule->summary();
    return s.predicted_fwd_ms + (ctx.options.include_backward ? s.predicted_bwd_ms : 0);
  }
};

}  // namespace

std::unique_ptr<Planner> NewGroupedPlanner() { return std::make_unique<GroupedPlanner>(); }

}  // namespace fcp
