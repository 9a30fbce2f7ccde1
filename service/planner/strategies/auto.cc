// auto (the default): runs the applicable strategies and returns the layout with the lowest
// predicted step time (forward + backward, or forward only), so it is never slower than any
// strategy it ran. Which strategies run is decided from the inputs alone (never the clock), so
// every replica picks the same plan: the packing strategies always run; `ring` runs when its
// analytic costing (one step per document chunk, 2W chunks per document) fits the time budget.
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/planner.h"
#include "service/planner/schedule.h"

namespace fcp {
namespace {

constexpr const char* kCandidates[] = {"fcp", "whole_doc", "per_doc", "ring"};
constexpr double kRingChunksPerMs = 20000;  // measured costing throughput, conservatively rounded

class AutoPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "auto"; }
  absl::string_view description() const override {
    return "default: runs the strategies that fit the time budget and returns the plan with the "
           "lowest predicted step time";
  }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    absl::StatusOr<Layout> best = absl::InternalError("auto: no strategy produced a plan");
    double best_ms = 0;
    std::vector<std::string> failures;
    for (const char* name : kCandidates) {
      if (!Affordable(name, ctx)) continue;
      absl::StatusOr<std::unique_ptr<Planner>> planner = NewPlanner(name);
      if (!planner.ok()) return planner.status();
      absl::StatusOr<Layout> layout = (*planner)->MakeLayout(ctx);
      if (!layout.ok()) {
        failures.push_back(absl::StrCat(name, ": ", layout.status().message()));
        continue;
      }
      absl::StatusOr<std::unique_ptr<Schedule>> schedule =
          NewSchedule(ctx.batch, ctx.cost, *layout);
      if (!schedule.ok()) return schedule.status();
      const PlanSummary& s = (*schedule)->summary();
      if (!WithinCap(ctx.batch.topology, (*schedule)->costs())) continue;
      const double ms =
          s.predicted_fwd_ms + (ctx.options.include_backward ? s.predicted_bwd_ms : 0);
      if (!best.ok() || ms < best_ms) {
        best = std::move(layout);
        best_ms = ms;
      }
    }
    if (!best.ok() && !failures.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("auto: every strategy failed; first: ", failures.front()));
    }
    return best;
  }

 private:
  static bool Affordable(absl::string_view name, const PlanContext& ctx) {
    if (name != "ring") return true;
    const double chunks = 2.0 * ctx.batch.topology.num_workers * ctx.batch.documents.size();
    return chunks <= ctx.options.time_budget_ms * kRingChunksPerMs;
  }
  static bool WithinCap(const Topology& t, const std::vector<WorkerCost>& costs) {
    if (t.max_tokens_per_worker <= 0) return true;
    for (const WorkerCost& c : costs) {
      if (c.tokens > t.max_tokens_per_worker) return false;
    }
    return true;
  }
};

}  // namespace

std::unique_ptr<Planner> NewAutoPlanner() { return std::make_unique<AutoPlanner>(); }

}  // namespace fcp
