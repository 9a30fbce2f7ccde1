// What several strategies derive from the same request, computed once when `auto` runs them one
// after another: the documents' whole-layer costs in order (DocCosts: fcp, grouped, flashcp,
// per_doc and flexdeg each used to compute them, ~1.5 ms each at W = 1024) and the balanced-plan
// transfer estimate of EstimatePlanningCost (asked of every candidate).
//
// auto owns one PlanMemo per call and hands it to its candidates in PlanContext::memo; every other
// caller leaves memo null and each strategy computes for itself. A memo answers only for the
// request it was made for (the same batch, options and cost model objects): a strategy that plans a
// context of its own making gets fresh values. Values are bit-identical either way, so plans do
// not depend on whether a memo was there. Not thread-safe: one planning call at a time.
//
//   PlanMemo memo(ctx);
//   PlanContext shared = ctx;
//   shared.memo = &memo;
//   std::shared_ptr<const DocCosts> costs = SharedDocCosts(shared);  // computed once
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_PLAN_MEMO_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_PLAN_MEMO_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "service/planner/planner.h"
#include "service/planner/strategies/block_units.h"

namespace fcp {

class PlanMemo {
 public:
  explicit PlanMemo(const PlanContext& ctx)
      : batch_(&ctx.batch), options_(&ctx.options), cost_(&ctx.cost) {}
  PlanMemo(const PlanMemo&) = delete;
  PlanMemo& operator=(const PlanMemo&) = delete;

  // Whether this memo's values hold for ctx (made for the same request).
  bool Serves(const PlanContext& ctx) const {
    return &ctx.batch == batch_ && &ctx.options == options_ && &ctx.cost == cost_;
  }
  // DocCosts::Of(ctx) and EstimatedBalancedTransfers(ctx.batch), each computed on first use.
  // Requires Serves(ctx).
  std::shared_ptr<const DocCosts> Costs(const PlanContext& ctx);
  int64_t BalancedTransfers(const PlanContext& ctx);

 private:
  const Batch* batch_;
  const PlanOptions* options_;
  const CostModel* cost_;
  std::shared_ptr<const DocCosts> costs_;
  std::optional<int64_t> balanced_transfers_;
};

// DocCosts::Of(ctx), from ctx.memo when it serves ctx.
std::shared_ptr<const DocCosts> SharedDocCosts(const PlanContext& ctx);
// EstimatedBalancedTransfers(ctx.batch), from ctx.memo when it serves ctx.
int64_t SharedBalancedTransfers(const PlanContext& ctx);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_PLAN_MEMO_H_
