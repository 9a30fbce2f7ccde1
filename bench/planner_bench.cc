// Planner latency: MakePlan (summary only, as the coordinator's cache fill does) per strategy on
// wikipedia batches of W workers × 32K tokens, max document 128K, one thread, default model
// (Llama-3-8B) and objective (whole step).
//
//   build/bench/planner_bench --benchmark_filter='fcp/' --benchmark_repetitions=5
//   FCP_MAX_DOC_LEN=524288 FCP_SEED=3 build/bench/planner_bench ...   (another batch)
//   FCP_HISTOGRAM=.../magi_histogram.csv build/bench/planner_bench ... (the magi histogram)
//   FCP_OBJECTIVE=attention FCP_MODEL=llama3-70b build/bench/planner_bench ...
//   FCP_GLIBC_DEFAULTS=1 build/bench/planner_bench ...   (glibc's allocator defaults, not the
//                                                     coordinator's: common/malloc_tuning.h)
//
// Each benchmark also reports the plan's quality as counters (imbalances, bytes, predicted ms:
// step_ms the whole layer, fwd + bwd; attention_ms the attention pipeline alone; vs_bound the
// step over the perfect-balance bound), so one run shows what the time buys.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "common/malloc_tuning.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/dcp.h"
#include "service/planner/strategies/plan_memo.h"
#include "workload/workload.h"

namespace fcp {
namespace {

constexpr int64_t kTokensPerWorker = 32768;
constexpr int64_t kMaxDocLen = 131072;

const LengthSampler& Wikipedia() {
  static const LengthSampler* sampler = [] {
    absl::StatusOr<LengthSampler> loaded;
    if (const char* histogram = std::getenv("FCP_HISTOGRAM"); histogram != nullptr) {
      absl::StatusOr<std::vector<HistogramBin>> bins = ReadHistogramFile(histogram);
      loaded = bins.ok() ? LengthSampler::FromHistogram(*std::move(bins)) : bins.status();
    } else {
      const char* env = std::getenv("FCP_LENGTHS");
      const std::string path =
          env != nullptr ? env : std::string(FCP_SHARED_DIR) + "/workloads/wikipedia.lengths";
      absl::StatusOr<std::vector<int64_t>> lengths = ReadLengthsFile(path);
      loaded = lengths.ok() ? LengthSampler::FromLengths(*std::move(lengths)) : lengths.status();
    }
    if (!loaded.ok()) {
      std::fprintf(stderr, "planner_bench: %s\n", std::string(loaded.status().message()).c_str());
      std::exit(2);
    }
    return new LengthSampler(*std::move(loaded));
  }();
  return *sampler;
}

PlanOptions Options(const std::string& strategy) {
  PlanOptions options;
  options.strategy = strategy;
  if (const char* objective = std::getenv("FCP_OBJECTIVE"); objective != nullptr) {
    absl::StatusOr<Objective> parsed = ParseObjective(objective, "FCP_OBJECTIVE");
    if (!parsed.ok()) {
      std::fprintf(stderr, "planner_bench: %s\n", std::string(parsed.status().message()).c_str());
      std::exit(2);
    }
    options.objective = *parsed;
  }
  return options;
}

Batch WikipediaBatch(int32_t workers) {
  Batch batch;
  batch.topology.num_workers = workers;
  if (const char* model = std::getenv("FCP_MODEL"); model != nullptr) {
    absl::StatusOr<ModelShape> preset = ModelPreset(model);
    if (!preset.ok()) {
      std::fprintf(stderr, "planner_bench: %s\n", std::string(preset.status().message()).c_str());
      std::exit(2);
    }
    batch.model = *std::move(preset);
  }
  const char* max_doc = std::getenv("FCP_MAX_DOC_LEN");
  const char* seed = std::getenv("FCP_SEED");
  batch.documents = *SampleDocuments(Wikipedia(), workers * kTokensPerWorker,
                                     max_doc != nullptr ? std::atoll(max_doc) : kMaxDocLen,
                                     seed != nullptr ? std::atoll(seed) : 1);
  return batch;
}

void BM_Plan(benchmark::State& state, const std::string& strategy) {
  const Batch batch = WikipediaBatch(static_cast<int32_t>(state.range(0)));
  const PlanOptions options = Options(strategy);
  PlanSummary summary;
  for (auto _ : state) {
    absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::SummaryOnly());
    if (!plan.ok()) {
      state.SkipWithError(std::string(plan.status().message()).c_str());
      return;
    }
    summary = plan->summary;
    benchmark::DoNotOptimize(plan);
  }
  state.counters["documents"] = static_cast<double>(batch.documents.size());
  state.counters["compute_imbalance"] = summary.compute_imbalance;
  state.counters["token_imbalance"] = summary.token_imbalance;
  state.counters["comm_GB"] = static_cast<double>(summary.comm_bytes) / 1e9;
  state.counters["rounds"] = summary.rounds;
  state.counters["fwd_ms"] = summary.predicted_fwd_ms;
  state.counters["bwd_ms"] = summary.predicted_bwd_ms;
  const double step = summary.predicted_fwd_ms + summary.predicted_bwd_ms;
  state.counters["step_ms"] = step;
  state.counters["attention_ms"] = summary.attention_fwd_ms + summary.attention_bwd_ms;
  state.counters["vs_bound"] = step / (summary.balanced_fwd_ms + summary.balanced_bwd_ms);
  state.counters["max_tokens"] = static_cast<double>(summary.max_tokens_per_worker);
}

// The strategy's layout alone (no schedule, no costing): what the strategy itself costs.
void BM_Layout(benchmark::State& state, const std::string& strategy) {
  const PlanOptions options = Options(strategy);
  const Batch batch =
      ResolveBatch(WikipediaBatch(static_cast<int32_t>(state.range(0))), options.objective);
  const CostModel cost(batch.model, batch.topology, options.cost, options.objective);
  const PlanContext ctx{batch, options, cost, absl::InfiniteFuture()};
  std::unique_ptr<Planner> planner = *NewPlanner(strategy);
  for (auto _ : state) {
    absl::StatusOr<Layout> layout = planner->MakeLayout(ctx);
    benchmark::DoNotOptimize(layout);
  }
}

// The strategy's LowerBoundMs as auto asks it: the incumbent is the least step of the auto
// candidates before it (auto_order), each run fully.
void BM_Bound(benchmark::State& state, const std::string& strategy) {
  const PlanOptions options = Options(strategy);
  const Batch raw = WikipediaBatch(static_cast<int32_t>(state.range(0)));
  const Batch batch = ResolveBatch(raw, options.objective);
  const CostModel cost(batch.model, batch.topology, options.cost, options.objective);
  PlanContext ctx{batch, options, cost, absl::InfiniteFuture()};
  std::unique_ptr<Planner> planner = *NewPlanner(strategy);
  for (const StrategyInfo& s : ListStrategies()) {
    std::unique_ptr<Planner> other = *NewPlanner(s.name);
    if (other->auto_order() == Planner::kNotAnAutoCandidate ||
        other->auto_order() >= planner->auto_order()) {
      continue;
    }
    PlanOptions o = options;
    o.strategy = s.name;
    absl::StatusOr<Plan> plan = MakePlan(raw, o, OutputSpec::SummaryOnly());
    if (plan.ok()) {
      ctx.incumbent_ms = std::min(ctx.incumbent_ms,
                                  plan->summary.predicted_fwd_ms + plan->summary.predicted_bwd_ms);
    }
  }
  // (auto's candidates share the documents' costs through its memo, made by the first of them)
  PlanMemo memo(ctx);
  ctx.memo = &memo;
  SharedDocCosts(ctx);
  double bound = 0;
  for (auto _ : state) {
    bound = planner->LowerBoundMs(ctx);
    benchmark::DoNotOptimize(bound);
  }
  state.counters["bound_ms"] = bound;
  state.counters["incumbent_ms"] = ctx.incumbent_ms;
}

void RegisterAll() {
  for (const StrategyInfo& s : ListStrategies()) {
    auto* b = benchmark::RegisterBenchmark(s.name.c_str(), BM_Plan, s.name);
    b->ArgName("W")->Arg(8)->Arg(16)->Arg(32)->Arg(64)->Arg(128)->Arg(512)->Arg(1024);
    b->Unit(benchmark::kMillisecond);
    b->MeasureProcessCPUTime()->UseRealTime();
  }
  for (const StrategyInfo& s : ListStrategies()) {
    auto* b = benchmark::RegisterBenchmark(("layout_" + s.name).c_str(), BM_Layout, s.name);
    b->ArgName("W")->Arg(64)->Arg(512)->Unit(benchmark::kMillisecond);
  }
  for (const StrategyInfo& s : ListStrategies()) {
    auto* b = benchmark::RegisterBenchmark(("bound_" + s.name).c_str(), BM_Bound, s.name);
    b->ArgName("W")->Arg(8)->Arg(16)->Arg(32)->Arg(64)->Arg(1024)->Unit(benchmark::kMillisecond);
  }
}

}  // namespace
}  // namespace fcp

int main(int argc, char** argv) {
  // The coordinator's allocator settings (common/malloc_tuning.h), unless FCP_GLIBC_DEFAULTS=1
  // asks for glibc's own (page faults of freed plan memory included in the times).
  const char* defaults = std::getenv("FCP_GLIBC_DEFAULTS");
  if (defaults == nullptr || std::string(defaults) != "1") fcp::RetainFreedMemoryForReplanning();
  benchmark::Initialize(&argc, argv);
  fcp::RegisterDcpPlanner();
  fcp::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
