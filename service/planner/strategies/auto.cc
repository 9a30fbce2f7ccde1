// auto (the default): tries the strategies and returns the layout with the lowest predicted step
// time (forward + backward, or forward only), so it is never slower than any strategy it ran.
//
// The candidates are the registered strategies with an auto_order(), tried in that order (best
// plans first). auto names none of them: what it knows of each comes from the strategy itself
// (planner.h), all from the inputs alone, never the clock, so every replica picks the same plan:
//   - a strategy is skipped without running when its lower bound on the predicted step time
//     (LowerBoundMs) is already no better than the best plan found: it cannot win, and auto is no
//     slower than it either;
//   - the strategies it runs get the best plan's step as PlanContext::incumbent_ms, and skip what
//     provably cannot beat it (the plan is the same); a layout whose compute alone
//     (LayoutLowerBoundMs) is no faster than the best plan is not scheduled;
//   - a strategy is skipped when its estimated planning cost (EstimatePlanningCost) does not fit
//     options.time_budget_ms: the KV transfers its plan would make (plan_size.h; one 2M-token
//     document over W = 4096 ranks is a 10-byte request whose balanced plans pass KV between ~8M
//     rank pairs, 1.5 GB and ~10 s each), or its own planning work (ring's costing, dcp's METIS).
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/planner/planner.h"
#include "service/planner/schedule.h"
#include "service/planner/strategies/packing.h"
#include "service/planner/strategies/plan_memo.h"

namespace fcp {
namespace {

double StepMs(const PlanSummary& s, bool include_backward) {
  return s.predicted_fwd_ms + (include_backward ? s.predicted_bwd_ms : 0);
}

bool WithinCap(const Topology& t, const std::vector<WorkerCost>& costs) {
  if (t.max_tokens_per_worker <= 0) return true;
  for (const WorkerCost& c : costs) {
    if (c.tokens > t.max_tokens_per_worker) return false;
  }
  return true;
}

// The registered strategies auto may try, in their auto_order() (registry order among equals).
std::vector<std::unique_ptr<Planner>> Candidates() {
  std::vector<std::unique_ptr<Planner>> candidates;
  for (const StrategyInfo& s : ListStrategies()) {
    absl::StatusOr<std::unique_ptr<Planner>> planner = NewPlanner(s.name);
    if (planner.ok() && (*planner)->auto_order() != Planner::kNotAnAutoCandidate) {
      candidates.push_back(*std::move(planner));
    }
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const std::unique_ptr<Planner>& a, const std::unique_ptr<Planner>& b) {
                     return a->auto_order() < b->auto_order();
                   });
  return candidates;
}

class AutoPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "auto"; }
  absl::string_view description() const override {
    return "default: tries the strategies that can still win and returns the plan with the "
           "lowest predicted step time";
  }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    absl::StatusOr<Layout> best = absl::InternalError("auto: no strategy tried");
    double best_ms = 0;
    std::vector<std::string> failures;
    std::vector<std::string> skipped;     // names
    std::vector<std::string> too_costly;  // "name: N KV transfers", for the error
    int tried = 0;
    // What the candidates share is computed once (plan_memo.h).
    PlanMemo memo(ctx);
    PlanContext shared = ctx;
    shared.memo = &memo;
    for (const std::unique_ptr<Planner>& planner : Candidates()) {
      const PlanningCost cost = planner->EstimatePlanningCost(shared);
      if (!cost.Fits(ctx.options.time_budget_ms)) {
        skipped.emplace_back(planner->name());
        too_costly.push_back(
            absl::StrCat(planner->name(), " ", static_cast<int64_t>(cost.kv_transfers)));
        continue;
      }
      // The best plan so far is the incumbent: the strategy may skip what cannot beat it.
      PlanContext bounded = shared;
      if (best.ok()) bounded.incumbent_ms = best_ms;
      if (best.ok() && planner->LowerBoundMs(bounded) >= best_ms) continue;
      ++tried;
      absl::StatusOr<Layout> layout = planner->MakeLayout(bounded);
      if (!layout.ok()) {
        failures.push_back(absl::StrCat(planner->name(), ": ", layout.status().message()));
        continue;
      }
      absl::StatusOr<std::shared_ptr<const Schedule>> schedule = layout->schedule;
      if (*schedule == nullptr) {
        // A layout whose compute alone is no faster than the best plan cannot win (auto keeps a
        // plan only when strictly faster): not scheduled.
        if (best.ok() && LayoutLowerBoundMs(ctx, *layout, best_ms) >= best_ms) continue;
        schedule = NewSchedule(ctx.batch, ctx.cost, *layout);
      }
      if (!schedule.ok()) return schedule.status();
      if (!WithinCap(ctx.batch.topology, (*schedule)->costs())) continue;
      const double ms = StepMs((*schedule)->summary(), ctx.options.include_backward);
      if (!best.ok() || ms < best_ms) {
        best = std::move(layout);
        best->schedule = std::move(*schedule);  // MakePlan reuses it
        best_ms = ms;
      }
    }
    if (best.ok()) return best;
    if (tried == 0) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "auto: every strategy's plan is too large for options.time_budget_ms ",
          ctx.options.time_budget_ms, " (estimated KV transfers: ", absl::StrJoin(too_costly, ", "),
          "); raise the time budget, or name a strategy"));
    }
    const std::string message =
        failures.empty() ? absl::StrCat("auto: no plan within topology.max_tokens_per_worker ",
                                        ctx.batch.topology.max_tokens_per_worker)
                         : absl::StrCat("auto: every strategy failed; first: ", failures.front());
    if (skipped.empty()) return absl::FailedPreconditionError(message);
    // The strategies that might have planned it were skipped: the request asks for more than its
    // time budget affords.
    return absl::ResourceExhaustedError(
        absl::StrCat(message, " (skipped, their plans too large for options.time_budget_ms ",
                     ctx.options.time_budget_ms, ": ", absl::StrJoin(skipped, ", "), ")"));
  }
};

}  // namespace

std::unique_ptr<Planner> NewAutoPlanner() { return std::make_unique<AutoPlanner>(); }

}  // namespace fcp
