// The whole-layer prediction (DESIGN §1 "step"), checked against sums computed here by brute force
// from the plan's slices and the model's shape: each worker's time is its linear layers (by its
// tokens) plus its attention pipeline; the step is the slowest worker's; the perfect-balance bound
// is the mean worker's compute. And the attention-only objective, reachable by choice.
#include <algorithm>
#include <string>

#include "gtest/gtest.h"
#include "service/planner/mask_math.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/dcp.h"
#include "service/planner/strategies/test_batches.h"
#include "service/planner/validator.h"

namespace fcp {
namespace {

// Llama-3-8B's linear FLOPs per token, forward, written out: q and o 2·4096·4096 each, k and v
// 2·4096·1024 each, the gated MLP 3 · 2·4096·14336.
constexpr double kLlama3_8bLinearFlops =
    2 * (2.0 * 4096 * 4096) + 2 * (2.0 * 4096 * 1024) + 3 * (2.0 * 4096 * 14336);

Batch SmallBatch(int32_t workers, uint64_t seed) {
  SkewedShape shape;
  shape.tokens_per_worker = 2048;
  shape.long_min = 1024;
  shape.long_span = 4096;
  return SkewedBatch(workers, seed, shape);
}

std::vector<std::string> StrategyNames() {
  RegisterDcpPlanner();  // the optional one too
  std::vector<std::string> names;
  for (const StrategyInfo& s : ListStrategies()) names.push_back(s.name);
  return names;
}

class StepPredictionTest : public ::testing::TestWithParam<std::string> {};

TEST_P(StepPredictionTest, EachWorkerIsItsLinearLayersPlusItsAttentionPipeline) {
  const Batch batch = SmallBatch(8, 4);
  PlanOptions options;
  options.strategy = GetParam();
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(ValidatePlan(batch, options, *plan).ok()) << ValidatePlan(batch, options, *plan);
  double max_fwd = 0, max_bwd = 0, max_attention_fwd = 0, max_attention_bwd = 0;
  for (const WorkerPlan& w : plan->workers) {
    int64_t tokens = 0;
    for (int32_t b : w.blocks) tokens += plan->blocks[b].tokens();
    const WorkerCost& c = plan->costs[w.rank];
    ASSERT_EQ(c.tokens, tokens);
    const double linear_ms = tokens * kLlama3_8bLinearFlops / 600e12 * 1e3;  // default GEMM rate
    EXPECT_NEAR(c.fwd_ms, c.attention_fwd_ms + linear_ms, 1e-9 * c.fwd_ms) << w.rank;
    EXPECT_NEAR(c.bwd_ms, c.attention_bwd_ms + 2 * linear_ms, 1e-9 * c.bwd_ms) << w.rank;
    // The pipeline is at least its own compute.
    EXPECT_GE(c.attention_fwd_ms, c.compute_fwd_ms * (1 - 1e-12)) << w.rank;
    max_fwd = std::max(max_fwd, c.fwd_ms);
    max_bwd = std::max(max_bwd, c.bwd_ms);
    max_attention_fwd = std::max(max_attention_fwd, c.attention_fwd_ms);
    max_attention_bwd = std::max(max_attention_bwd, c.attention_bwd_ms);
  }
  EXPECT_EQ(plan->summary.predicted_fwd_ms, max_fwd);
  EXPECT_EQ(plan->summary.predicted_bwd_ms, max_bwd);
  EXPECT_EQ(plan->summary.attention_fwd_ms, max_attention_fwd);
  EXPECT_EQ(plan->summary.attention_bwd_ms, max_attention_bwd);
  EXPECT_EQ(plan->summary.model, "llama3-8b");
  EXPECT_EQ(plan->summary.token_budget, TokenBudget(batch, Objective::kWholeStep));
  // The bound is below the slowest worker, whatever the plan.
  EXPECT_LE(plan->summary.balanced_fwd_ms, plan->summary.predicted_fwd_ms * (1 + 1e-12));
  EXPECT_LE(plan->summary.balanced_bwd_ms, plan->summary.predicted_bwd_ms * (1 + 1e-12));
}

INSTANTIATE_TEST_SUITE_P(Strategies, StepPredictionTest, ::testing::ValuesIn(StrategyNames()),
                         [](const auto& info) { return info.param; });

// Without transfers (whole documents, each on one worker) a worker's time is exactly the sum of
// its tiles' times and its linear layers', and the bound the mean of those.
TEST(StepPredictionBruteForceTest, WithoutTransfersTheStepIsTheSlowestWorkersSum) {
  Batch batch;
  batch.topology.num_workers = 4;
  for (int64_t length : {900, 700, 650, 500, 400, 380, 300, 250, 200, 120}) {
    batch.documents.push_back({length, Mask::Causal()});
  }
  batch.topology.token_slack = 0.5;  // whole documents fit: no cut, no transfer
  PlanOptions options;
  options.strategy = "whole_doc";
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->summary.comm_bytes, 0);
  double slowest_fwd = 0, slowest_bwd = 0, sum_fwd = 0, sum_bwd = 0;
  for (const WorkerPlan& w : plan->workers) {
    double fwd = 0, bwd = 0;
    int64_t tokens = 0;
    for (int32_t b : w.blocks) tokens += plan->blocks[b].tokens();
    for (const Tile& t : w.tiles) {
      const Block& q = plan->blocks[t.q_block];
      const Block& kv = plan->blocks[t.kv_block];
      const int64_t pairs =
          AllowedPairs(batch.documents[q.document].mask, q.begin, q.end, kv.begin, kv.end);
      const double tile =
          4.0 * 128 * 32 * pairs /  // DESIGN §1: 4 · head_dim · q heads · pairs
          (400e12 * (q.tokens() / (q.tokens() + 32.0)) * (kv.tokens() / (kv.tokens() + 32.0)));
      fwd += tile;
      bwd += tile * 2.5 / 0.75;  // backward FLOPs 2.5x, at 0.75 of the forward rate
    }
    fwd += tokens * kLlama3_8bLinearFlops / 600e12;
    bwd += 2 * tokens * kLlama3_8bLinearFlops / 600e12;
    EXPECT_NEAR(plan->costs[w.rank].fwd_ms, fwd * 1e3, 1e-9 * fwd * 1e3) << w.rank;
    EXPECT_NEAR(plan->costs[w.rank].bwd_ms, bwd * 1e3, 1e-9 * bwd * 1e3) << w.rank;
    slowest_fwd = std::max(slowest_fwd, fwd);
    slowest_bwd = std::max(slowest_bwd, bwd);
    sum_fwd += fwd;
    sum_bwd += bwd;
  }
  EXPECT_NEAR(plan->PredictedStepMs(), (slowest_fwd + slowest_bwd) * 1e3, 1e-9);
  EXPECT_NEAR(plan->summary.balanced_fwd_ms, sum_fwd / 4 * 1e3, 1e-9);
  EXPECT_NEAR(plan->summary.balanced_bwd_ms, sum_bwd / 4 * 1e3, 1e-9);
}

// Attention alone, by explicit choice: no linear layers in any worker's time, no token budget
// unless the topology sets one, a different plan id.
TEST(AttentionObjectiveTest, TheOldAttentionOnlyBehaviourIsReachable) {
  const Batch batch = SmallBatch(8, 2);
  PlanOptions whole, attention;
  whole.strategy = attention.strategy = "whole_doc";
  attention.objective = Objective::kAttention;
  absl::StatusOr<Plan> a = MakePlan(batch, attention, OutputSpec::AllRanks());
  absl::StatusOr<Plan> w = MakePlan(batch, whole, OutputSpec::AllRanks());
  ASSERT_TRUE(a.ok() && w.ok());
  EXPECT_TRUE(ValidatePlan(batch, attention, *a).ok()) << ValidatePlan(batch, attention, *a);
  EXPECT_NE(a->plan_id, w->plan_id);
  EXPECT_EQ(a->summary.token_budget, 0);
  for (const WorkerCost& c : a->costs) {
    EXPECT_EQ(c.fwd_ms, c.attention_fwd_ms);
    EXPECT_EQ(c.bwd_ms, c.attention_bwd_ms);
  }
  // whole_doc keeps every document whole without a budget (no transfer), and cuts the ones
  // longer than the budget with one.
  EXPECT_EQ(a->blocks.size(), batch.documents.size());
  EXPECT_EQ(a->summary.comm_bytes, 0);
  EXPECT_GT(w->blocks.size(), batch.documents.size());
  EXPECT_LE(w->summary.token_imbalance, 1.05 + 1e-3);
  // An explicit cap still holds under attention alone.
  Batch capped = batch;
  capped.topology.max_tokens_per_worker = TokenBudget(batch, Objective::kWholeStep);
  absl::StatusOr<Plan> c = MakePlan(capped, attention, OutputSpec::SummaryOnly());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->summary.token_budget, capped.topology.max_tokens_per_worker);
  EXPECT_LE(c->summary.max_tokens_per_worker, capped.topology.max_tokens_per_worker);
}

// auto compares candidates on the objective it was given.
TEST(AttentionObjectiveTest, AutoIsNeverSlowerThanAnyStrategyUnderEitherObjective) {
  for (Objective objective : {Objective::kWholeStep, Objective::kAttention}) {
    const Batch batch = SmallBatch(16, 9);
    PlanOptions options;
    options.objective = objective;
    absl::StatusOr<Plan> chosen = MakePlan(batch, options, OutputSpec::SummaryOnly());
    ASSERT_TRUE(chosen.ok()) << chosen.status();
    for (const std::string& name : StrategyNames()) {
      options.strategy = name;
      absl::StatusOr<Plan> other = MakePlan(batch, options, OutputSpec::SummaryOnly());
      ASSERT_TRUE(other.ok()) << name << ": " << other.status();
      EXPECT_LE(chosen->PredictedStepMs(), other->PredictedStepMs() * (1 + 1e-12))
          << name << " objective " << ObjectiveName(objective);
    }
  }
}

}  // namespace
}  // namespace fcp
