#include "service/planner/strategies/plan_memo.h"

#include "service/planner/plan_size.h"

namespace fcp {

std::shared_ptr<const DocCosts> PlanMemo::Costs(const PlanContext& ctx) {
  if (costs_ == nullptr) costs_ = std::make_shared<const DocCosts>(DocCosts::Of(ctx));
  return costs_;
}

int64_t PlanMemo::BalancedTransfers(const PlanContext& ctx) {
  if (!balanced_transfers_.has_value()) balanced_transfers_ = EstimatedBalancedTransfers(ctx.batch);
  return *balanced_transfers_;
}

std::shared_ptr<const DocCosts> SharedDocCosts(const PlanContext& ctx) {
  if (ctx.memo != nullptr && ctx.memo->Serves(ctx)) return ctx.memo->Costs(ctx);
  return std::make_shared<const DocCosts>(DocCosts::Of(ctx));
}

int64_t SharedBalancedTransfers(const PlanContext& ctx) {
  if (ctx.memo != nullptr && ctx.memo->Serves(ctx)) return ctx.memo->BalancedTransfers(ctx);
  return EstimatedBalancedTransfers(ctx.batch);
}

}  // namespace fcp
