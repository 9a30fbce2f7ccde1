// Megatron-style dynamic CP, the comparison point of the seed grid (docs/benchmarks.md, "The
// headline"): for each batch, the best uniform CP degree c dividing W, with sequence packing.
//
// `static_cp` (today's practice) takes the smallest power of two c whose ring member's share of
// the batch's longest document fits the token budget. Dynamic CP (Megatron-LM's per-batch CP
// size) may take any c dividing W, so it can also pick a larger c that spreads the longest
// document's attention over more GPUs at the price of longer rings. Here every c dividing W runs
// as a strategy of this program only, `uniform_cp/<c>`: static_cp's own packing at that c
// (PackStaticCpGroups: W/c data-parallel groups of c consecutive ranks, documents packed into the
// groups by tokens, each document zigzag over its group's c members). Each layout is scheduled and
// costed by the planner's one cost model, and the fastest is reported.
//
//   build/bench/dynamic_cp --lengths wikipedia.lengths --workers 64 --tokens-per-worker 32768
//       --batches 3 --json        (any `fcp plan` flag; --strategy is ignored)
//
// Output: per batch one JSON line as `fcp plan --json` writes them, strategy "dynamic_cp", chosen
// "uniform_cp/<c>" (the degree it picked), planning_ms the time to try every c; without --json a
// line per batch. The strategy files (service/planner/strategies/) are not touched: the candidate
// strategies are registered in this process only.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cli/report.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/static_cp.h"
#include "service/planner/validator.h"
#include "workload/plan_config.h"

namespace fcp {
namespace {

constexpr int kMaxLogDegree = 16;  // c up to 65536 workers

// static_cp's packing (service/planner/strategies/static_cp.h) at a CP size c dividing W.
absl::StatusOr<Layout> UniformLayout(const Batch& batch, int32_t c, absl::string_view name) {
  const int32_t workers = batch.topology.num_workers;
  if (c > workers || workers % c != 0) {
    return absl::FailedPreconditionError(absl::StrCat(name, ": ", c, " does not divide W"));
  }
  return PackStaticCpGroups(batch, c, StaticCpBudget(batch), name);
}

template <int kLogDegree>
class UniformCpPlanner final : public Planner {
 public:
  static constexpr int32_t kDegree = int32_t{1} << kLogDegree;
  static std::unique_ptr<Planner> New() { return std::make_unique<UniformCpPlanner>(); }
  absl::string_view name() const override { return name_; }
  absl::string_view description() const override {
    return "dynamic CP candidate: W/c ring groups of c, documents packed by tokens";
  }
  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    return UniformLayout(ctx.batch, kDegree, name_);
  }

 private:
  const std::string name_ = absl::StrCat("uniform_cp/", kDegree);
};

template <int... kLogs>
void RegisterAll(std::integer_sequence<int, kLogs...>) {
  (RegisterStrategy(&UniformCpPlanner<kLogs>::New), ...);
}

struct Best {
  cli::ResultRow row;
  PlanOptions options;
};

// Tries every uniform_cp/<c> with c dividing W; the fastest (ties: the smaller c) as a row.
Best PlanBatch(const cli::PlanConfig& config, const Batch& batch, const cli::BatchInfo& info) {
  Best best;
  best.row.info = info;
  best.row.strategy = "dynamic_cp";
  best.row.error = "no CP degree dividing W fits the token budget";
  const absl::Time start = absl::Now();
  for (int32_t c = 1; c <= batch.topology.num_workers && c <= (1 << kMaxLogDegree); c *= 2) {
    if (batch.topology.num_workers % c != 0) continue;
    PlanOptions options = config.options;
    options.strategy = absl::StrCat("uniform_cp/", c);
    absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::SummaryOnly());
    if (!plan.ok()) continue;
    const double ms = plan->PredictedStepMs(options.include_backward);
    if (!best.row.ok() || ms < best.row.step_ms) {
      best.row.error.clear();
      best.row.chosen = options.strategy;
      best.row.plan_id = plan->plan_id;
      best.row.block_size = plan->block_size;
      best.row.summary = plan->summary;
      best.row.step_ms = ms;
      best.options = options;
    }
  }
  best.row.summary.planning_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  return best;
}

int Main(int argc, char** argv) {
  RegisterAll(std::make_integer_sequence<int, kMaxLogDegree + 1>());
  std::optional<cli::PlanProgram> program = cli::ParsePlanProgram(
      argc, argv, "dynamic_cp",
      "dynamic_cp --lengths F --workers W --tokens-per-worker T [fcp plan flags]");
  if (!program.has_value()) return 2;
  const cli::PlanConfig& c = program->config;
  int exit_code = 0;
  for (int32_t b = 0; b < c.batches; ++b) {
    const uint64_t seed = c.seed + static_cast<uint64_t>(b);
    absl::StatusOr<std::vector<Document>> documents =
        cli::SampleBatchDocuments(c, program->sampler, seed);
    if (!documents.ok()) {
      std::fprintf(stderr, "dynamic_cp: %s\n", std::string(documents.status().message()).c_str());
      return 2;
    }
    Batch batch{*std::move(documents), c.model, c.topology};
    cli::BatchInfo info{b,
                        seed,
                        c.topology.num_workers,
                        c.tokens_per_worker,
                        batch.TotalTokens(),
                        static_cast<int64_t>(batch.documents.size()),
                        0};
    for (const Document& d : batch.documents) {
      info.longest_document = std::max(info.longest_document, d.length);
    }
    Best best = PlanBatch(c, batch, info);
    if (best.row.ok() && best.row.summary.tiles <= c.validate_max_tiles) {
      absl::StatusOr<Plan> full = MakePlan(batch, best.options, OutputSpec::AllRanks());
      best.row.valid = full.ok() && ValidatePlan(batch, best.options, *full).ok();
    }
    if (!best.row.ok() || best.row.valid == false) exit_code = 1;
    if (c.json) {
      std::cout << cli::JsonLine(best.row) << "\n";
    } else {
      std::cout << "batch " << b << ": dynamic_cp "
                << (best.row.ok() ? absl::StrCat(best.row.chosen, " ", best.row.step_ms, " ms")
                                  : best.row.error)
                << "\n";
    }
  }
  return exit_code;
}

}  // namespace
}  // namespace fcp

int main(int argc, char** argv) { return fcp::Main(argc, argv); }
