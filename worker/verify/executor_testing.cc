#include "worker/verify/executor_testing.h"

#include <algorithm>
#include <random>
#include <string>
#include <thread>
#include <utility>

#include "service/planner/planner.h"
#include "worker/transport/loopback_transport.h"
#include "worker/verify/step_data.h"

namespace fcp {

Batch BackendTestBatch(const Mask& mask, int32_t world, int32_t head_dim, uint64_t seed) {
  Batch batch;
  batch.model.num_q_heads = 4;
  batch.model.num_kv_heads = 2;
  batch.model.head_dim = head_dim;
  batch.topology.num_workers = world;
  batch.topology.workers_per_node = 2;
  std::mt19937_64 rng(seed);
  int64_t left = 96 * world;
  batch.documents.push_back({std::min<int64_t>(left, 64 * world + 5), mask});
  left -= batch.documents.back().length;
  while (left > 0) {
    const int64_t n = std::min<int64_t>(left, 1 + static_cast<int64_t>(rng() % 300));
    batch.documents.push_back({n, mask});
    left -= n;
  }
  return batch;
}

Mask MaskOfKind(int kind) {
  switch (kind) {
    case 1:
      return Mask::Full();
    case 2:
      return Mask::SlidingWindow(37);
    case 3:
      return Mask::PrefixLm(50);
    default:
      return Mask::Causal();
  }
}

Plan BackendTestPlan(const Batch& batch, const std::string& strategy) {
  PlanOptions options;
  options.strategy = strategy;
  options.block_size = 64;
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
  return plan.ok() ? *std::move(plan) : Plan();
}

kernels::AttentionShape ShapeOf(const Batch& batch) {
  return {batch.model.num_q_heads, batch.model.num_kv_heads, batch.model.head_dim};
}

std::vector<RankRun> RunRanks(const Plan& plan, const Batch& batch, const BackendFactory& backend,
                              const TransportWrapper& wrap, absl::Duration timeout) {
  const int32_t world = batch.topology.num_workers;
  LoopbackHub hub(world);
  std::vector<RankRun> runs(world);
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      std::unique_ptr<ExecutorBackend> rank_backend = backend(r);
      std::unique_ptr<Transport> transport = std::make_unique<LoopbackTransport>(&hub, r);
      if (wrap) transport = wrap(std::move(transport));
      transport->set_timeout(timeout);
      Executor executor(transport.get(), ShapeOf(batch), std::move(rank_backend));
      const StepInputs in =
          MakeStepInputs(plan, *plan.FindWorker(r), ShapeOf(batch), kTestSeed, kTestStep);
      absl::StatusOr<StepStats> stats =
          executor.Run(plan, plan.plan_id, kTestStep, in.View(), &runs[r].outputs);
      runs[r].status = stats.status();
      if (stats.ok()) runs[r].stats = *stats;
      if (!stats.ok()) hub.Abort(r);
    });
  }
  for (std::thread& t : threads) t.join();
  return runs;
}

}  // namespace fcp
