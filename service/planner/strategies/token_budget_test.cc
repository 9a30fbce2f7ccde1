// The token budget (batch.h TokenBudget) as a property: every strategy, under every mask kind and
// worker count, on batches skewed like real data, either plans within the budget or fails with an
// error naming the document and the budget; under the default 5% slack none may fail.
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/dcp.h"
#include "service/planner/strategies/test_batches.h"
#include "service/planner/validator.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

Batch MaskedBatch(int32_t workers, const Mask& mask, uint64_t seed) {
  SkewedShape shape;
  shape.tokens_per_worker = 4096;
  shape.long_min = 2048;
  shape.long_span = 12000;  // long documents up to ~3.4x a worker's share
  Batch batch = SkewedBatch(workers, seed, shape);
  for (Document& d : batch.documents) d.mask = mask;
  return batch;
}

using Param = std::tuple<std::string, int32_t, Mask>;

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  std::string mask = MaskToString(std::get<2>(info.param));
  for (char& c : mask) {
    if (c == '(' || c == ')') c = '_';
  }
  return absl::StrCat(std::get<0>(info.param), "_W", std::get<1>(info.param), "_", mask);
}

class TokenBudgetTest : public ::testing::TestWithParam<Param> {};

TEST_P(TokenBudgetTest, EveryWorkerHoldsAtMostTheBudget) {
  const auto& [strategy, workers, mask] = GetParam();
  PlanOptions options;
  options.strategy = strategy;
  for (uint64_t seed = 1; seed <= 2; ++seed) {
    const Batch batch = MaskedBatch(workers, mask, seed);
    const int64_t budget = TokenBudget(batch, Objective::kWholeStep);
    ASSERT_GT(budget, 0);
    absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::SummaryOnly());
    ASSERT_TRUE(plan.ok()) << "seed " << seed << ": " << plan.status();
    EXPECT_EQ(plan->summary.token_budget, budget);
    ASSERT_EQ(plan->costs.size(), static_cast<size_t>(workers));
    int64_t max_tokens = 0;
    for (const WorkerCost& c : plan->costs) max_tokens = std::max(max_tokens, c.tokens);
    EXPECT_LE(max_tokens, budget) << "seed " << seed;
    EXPECT_EQ(plan->summary.max_tokens_per_worker, max_tokens);
    EXPECT_LE(plan->summary.token_imbalance, 1.05 + 1e-3) << "seed " << seed;
  }
}

// The validator checks the budget too (invariant 5), on fully materialised plans (small W: a
// W=64 ring materialises millions of tiles).
class SmallTokenBudgetTest : public TokenBudgetTest {};

TEST_P(SmallTokenBudgetTest, PlansPassTheValidator) {
  const auto& [strategy, workers, mask] = GetParam();
  PlanOptions options;
  options.strategy = strategy;
  const Batch batch = MaskedBatch(workers, mask, 3);
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(ValidatePlan(batch, options, *plan).ok()) << ValidatePlan(batch, options, *plan);
}

std::vector<std::string> StrategyNames() {
  RegisterDcpPlanner();  // the optional one too
  std::vector<std::string> names;
  for (const StrategyInfo& s : ListStrategies()) names.push_back(s.name);
  return names;
}

const std::vector<Mask> kMasks = {Mask::Causal(), Mask::Full(), Mask::SlidingWindow(1024),
                                  Mask::PrefixLm(512)};

INSTANTIATE_TEST_SUITE_P(Grid, TokenBudgetTest,
                         ::testing::Combine(::testing::ValuesIn(StrategyNames()),
                                            ::testing::Values(4, 16, 64),
                                            ::testing::ValuesIn(kMasks)),
                         ParamName);
INSTANTIATE_TEST_SUITE_P(Grid, SmallTokenBudgetTest,
                         ::testing::Combine(::testing::ValuesIn(StrategyNames()),
                                            ::testing::Values(4, 16), ::testing::ValuesIn(kMasks)),
                         ParamName);

// An activation-memory budget in bytes becomes tokens by the model's activation bytes per token,
// for every strategy; one that cannot hold the batch is refused naming the field.
TEST(ActivationMemoryBudgetTest, BytesBecomeTokensByTheModelsActivationBytes) {
  Batch batch = MaskedBatch(8, Mask::Causal(), 5);
  const int64_t tokens = batch.TotalTokens() / 8 + 700;  // looser than the default 5%
  batch.topology.activation_memory_bytes = tokens * ActivationBytesPerToken(batch.model) + 1;
  for (const std::string& strategy : StrategyNames()) {
    PlanOptions options;
    options.strategy = strategy;
    absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::SummaryOnly());
    ASSERT_TRUE(plan.ok()) << strategy << ": " << plan.status();
    EXPECT_EQ(plan->summary.token_budget, tokens) << strategy;
    EXPECT_LE(plan->summary.max_tokens_per_worker, tokens) << strategy;
  }
  batch.topology.activation_memory_bytes =
      batch.TotalTokens() / 9 * ActivationBytesPerToken(batch.model);
  PlanOptions options;
  const absl::Status status = MakePlan(batch, options, OutputSpec::SummaryOnly()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("topology.activation_memory_bytes"));
}

}  // namespace
}  // namespace fcp
