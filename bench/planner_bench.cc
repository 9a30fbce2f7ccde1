// Planner latency: MakePlan (summary only, as the coordinator's cache fill does) per strategy on
// wikipedia batches of W workers × 32K tokens, max document 128K, one thread.
//
//   build/bench/planner_bench --benchmark_filter='fcp/' --benchmark_repetitions=5
//   FCP_MAX_DOC_LEN=524288 FCP_SEED=3 build/bench/planner_bench ...   (another batch)
//
// Each benchmark also reports the plan's quality as counters (imbalance, bytes, predicted ms), so
// one run shows what the time buys.
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "service/planner/planner.h"
#include "workload/workload.h"

namespace fcp {
namespace {

constexpr int64_t kTokensPerWorker = 32768;
constexpr int64_t kMaxDocLen = 131072;

const LengthSampler& Wikipedia() {
  static const LengthSampler* sampler = [] {
    const char* env = std::getenv("FCP_LENGTHS");
    const std::string path =
        env != nullptr ? env : std::string(FCP_SHARED_DIR) + "/workloads/wikipedia.lengths";
    absl::StatusOr<std::vector<int64_t>> lengths = ReadLengthsFile(path);
    if (!lengths.ok()) {
      std::fprintf(stderr, "planner_bench: %s\n", std::string(lengths.status().message()).c_str());
      std::exit(2);
    }
    return new LengthSampler(*LengthSampler::FromLengths(*std::move(lengths)));
  }();
  return *sampler;
}

Batch WikipediaBatch(int32_t workers) {
  Batch batch;
  batch.topology.num_workers = workers;
  const char* max_doc = std::getenv("FCP_MAX_DOC_LEN");
  const char* seed = std::getenv("FCP_SEED");
  batch.documents = *SampleDocuments(Wikipedia(), workers * kTokensPerWorker,
                                     max_doc != nullptr ? std::atoll(max_doc) : kMaxDocLen,
                                     seed != nullptr ? std::atoll(seed) : 1);
  return batch;
}

void BM_Plan(benchmark::State& state, const std::string& strategy) {
  const Batch batch = WikipediaBatch(static_cast<int32_t>(state.range(0)));
  PlanOptions options;
  options.strategy = strategy;
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
}

// The strategy's layout alone (no schedule, no costing): what the strategy itself costs.
void BM_Layout(benchmark::State& state, const std::string& strategy) {
  const Batch batch = WikipediaBatch(static_cast<int32_t>(state.range(0)));
  PlanOptions options;
  options.strategy = strategy;
  const CostModel cost(batch.model, batch.topology, options.cost);
  const PlanContext ctx{batch, options, cost, absl::InfiniteFuture()};
  std::unique_ptr<Planner> planner = *NewPlanner(strategy);
  for (auto _ : state) {
    absl::StatusOr<Layout> layout = planner->MakeLayout(ctx);
    benchmark::DoNotOptimize(layout);
  }
}

void RegisterAll() {
  for (const StrategyInfo& s : ListStrategies()) {
    auto* b = benchmark::RegisterBenchmark(s.name.c_str(), BM_Plan, s.name);
    b->ArgName("W")->Arg(8)->Arg(32)->Arg(64)->Arg(128)->Arg(512)->Arg(1024);
    b->Unit(benchmark::kMillisecond);
    b->MeasureProcessCPUTime()->UseRealTime();
  }
  for (const StrategyInfo& s : ListStrategies()) {
    auto* b = benchmark::RegisterBenchmark(("layout_" + s.name).c_str(), BM_Layout, s.name);
    b->ArgName("W")->Arg(64)->Arg(512)->Unit(benchmark::kMillisecond);
  }
}

}  // namespace
}  // namespace fcp

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  fcp::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
