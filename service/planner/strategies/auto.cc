// auto (the default): tries the strategies and returns the layout with the lowest predicted step
// time (forward + backward, or forward only), so it is never slower than any strategy it ran.
//
// A strategy is skipped, without running it, when a lower bound on its predicted step time is
// already no better than the best plan found: then it cannot win, and auto is no slower than it
// either. The bounds follow from the cost model (efficiency <= 1, the fastest link):
//   whole_doc  the costliest document, computed whole on one worker (without a memory cap)
//   ring       every rank receives the other ranks' KV: (W-1)/W of the batch's KV per rank on
//              average, at the fastest link; the same again for dK/dV
// ring is also skipped when its analytic costing (2W chunks per document) exceeds the time
// budget, and dcp when its METIS partitioning (~1.5 ms per worker) exceeds a quarter of it (W > 33
// at the default 200 ms). A strategy is skipped as well when the KV transfers its plan would make
// (plan_size.h: exactly for ring and per_doc, an estimate for the balancing strategies) could not
// be scheduled within the budget: one 2M-token document over W = 4096 ranks is a 10-byte request
// whose balanced plans pass KV between ~8M rank pairs (1.5 GB, ~10 s each). Every decision depends
// on the inputs only, never the clock, so every replica picks the same plan.
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/planner/mask_math.h"
#include "service/planner/plan_size.h"
#include "service/planner/planner.h"
#include "service/planner/schedule.h"

namespace fcp {
namespace {

// Best plans first, so the lower bounds prune the rest; flashcp and flexdeg are the seed
// systems fcp is compared with.
constexpr const char* kCandidates[] = {"fcp",       "per_doc", "flashcp",   "flexdeg",
                                       "whole_doc", "dcp",     "static_cp", "ring"};
constexpr double kRingChunksPerMs = 10000;  // measured ring costing throughput, rounded down
constexpr double kDcpMsPerWorker = 1.5;     // measured METIS planning cost, rounded up
// Planning throughput in KV transfers per ms, measured on one 2M-token document over W = 4096
// (fcp 8.4M estimated transfers in 10.4 s, flashcp 8.4 s, flexdeg 7.1 s, ring 16.7M in 7.4 s),
// rounded down.
constexpr double kTransfersPerMs = 800;
// dcp gets at most this share of the budget: its partitioning costs 10-100x the packers' and it
// has not won a cell of the comparison grid (docs/benchmarks.md), so it must not slow every plan.
constexpr double kDcpBudgetShare = 0.25;

double StepMs(const PlanSummary& s, bool include_backward) {
  return s.predicted_fwd_ms + (include_backward ? s.predicted_bwd_ms : 0);
}

// A lower bound on `name`'s predicted step time in ms (0 when none is known).
double LowerBoundMs(absl::string_view name, const PlanContext& ctx) {
  const Batch& batch = ctx.batch;
  const CostModel& cost = ctx.cost;
  const double bwd = ctx.options.include_backward ? cost.BackwardFactor() : 0;
  if (name == "whole_doc" && batch.topology.max_tokens_per_worker == 0) {
    double worst = 0;
    for (const Document& d : batch.documents) {
      const int64_t pairs = AllowedPairs(d.mask, 0, d.length, 0, d.length);
      worst = std::max(worst, pairs * cost.SecondsPerPair(d.length, d.length) * (1 + bwd));
    }
    return worst * 1e3;
  }
  if (name == "ring") {
    const Topology& t = batch.topology;
    const double link = std::max(t.intra_node_gbps, t.inter_node_gbps) * 1e9;
    const double others =
        static_cast<double>(batch.TotalTokens()) * (t.num_workers - 1) / t.num_workers;
    const double one_way = others * cost.kv_bytes_per_token() / link;
    return one_way * (ctx.options.include_backward ? 2 : 1) * 1e3;
  }
  return 0;
}

// The KV transfers `name`'s plan of the batch makes: MinimumTransfers for ring, per_doc and
// whole_doc, else estimated (`balanced`: EstimatedBalancedTransfers, computed once by the caller).
double Transfers(absl::string_view name, const PlanContext& ctx, int64_t balanced) {
  if (name == "ring" || name == "per_doc" || name == "whole_doc") {
    return static_cast<double>(MinimumTransfers(name, ctx.batch, ctx.options.block_size));
  }
  return static_cast<double>(balanced);
}

bool Affordable(absl::string_view name, const PlanContext& ctx, int64_t balanced) {
  if (Transfers(name, ctx, balanced) > ctx.options.time_budget_ms * kTransfersPerMs) return false;
  if (name == "dcp") {
    return kDcpMsPerWorker * ctx.batch.topology.num_workers <=
           kDcpBudgetShare * ctx.options.time_budget_ms;
  }
  if (name != "ring") return true;
  const double chunks = 2.0 * ctx.batch.topology.num_workers * ctx.batch.documents.size();
  return chunks <= ctx.options.time_budget_ms * kRingChunksPerMs;
}

bool WithinCap(const Topology& t, const std::vector<WorkerCost>& costs) {
  if (t.max_tokens_per_worker <= 0) return true;
  for (const WorkerCost& c : costs) {
    if (c.tokens > t.max_tokens_per_worker) return false;
  }
  return true;
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
    std::vector<std::string> skipped;
    int tried = 0;
    const int64_t balanced = EstimatedBalancedTransfers(ctx.batch);
    for (const char* name : kCandidates) {
      if (!Affordable(name, ctx, balanced)) {
        skipped.push_back(name);
        continue;
      }
      if (best.ok() && LowerBoundMs(name, ctx) >= best_ms) continue;
      ++tried;
      absl::StatusOr<std::unique_ptr<Planner>> planner = NewPlanner(name);
      if (!planner.ok()) return planner.status();
      absl::StatusOr<Layout> layout = (*planner)->MakeLayout(ctx);
      if (!layout.ok()) {
        failures.push_back(absl::StrCat(name, ": ", layout.status().message()));
        continue;
      }
      absl::StatusOr<std::shared_ptr<const Schedule>> schedule = layout->schedule;
      if (*schedule == nullptr) schedule = NewSchedule(ctx.batch, ctx.cost, *layout);
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
      return absl::ResourceExhaustedError(
          absl::StrCat("auto: every strategy's plan is too large for options.time_budget_ms ",
                       ctx.options.time_budget_ms, " (balanced plans: about ", balanced,
                       " KV transfers; whole_doc under topology.max_tokens_per_worker: ",
                       MinimumTransfers("whole_doc", ctx.batch, 0),
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
