// static_cp, today's practice: the CP size, the data-parallel groups, packing by tokens.
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/test_batches.h"
#include "service/planner/validator.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<Plan> PlanStaticCp(const Batch& batch, Objective objective = Objective::kWholeStep) {
  PlanOptions options;
  options.strategy = "static_cp";
  options.objective = objective;
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
  if (plan.ok()) {
    const absl::Status valid = ValidatePlan(batch, options, *plan);
    if (!valid.ok()) return valid;
  }
  return plan;
}

// W = 8, budget 5,000 tokens: the 7,000-token document needs c = 2 (a member holds 3,500 of it;
// c = 1 would hold all 7,000). Every document lands in one of the 4 groups {0,1} {2,3} {4,5} {6,7}.
TEST(StaticCpTest, CpSizeIsTheSmallestPowerOfTwoFittingTheLongestDocument) {
  Batch batch;
  batch.topology.num_workers = 8;
  batch.topology.max_tokens_per_worker = 5000;
  batch.documents = {{7000, Mask::Causal()}};
  for (int i = 0; i < 30; ++i) batch.documents.push_back({700 + 10 * i, Mask::Causal()});
  absl::StatusOr<Plan> plan = PlanStaticCp(batch);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const std::vector<std::set<int32_t>> owners = OwnersByDocument(*plan);
  EXPECT_EQ(owners[0].size(), 2u);
  for (const std::set<int32_t>& o : owners) {
    ASSERT_FALSE(o.empty());
    // Within one aligned pair: (2g, 2g+1).
    EXPECT_EQ(*o.begin() / 2, *o.rbegin() / 2) << ::testing::PrintToString(o);
  }
  EXPECT_EQ(plan->summary.rounds, 1);  // a ring of 2: one KV rotation
}

TEST(StaticCpTest, ShortDocumentsOnlyIsPlainDataParallelism) {
  Batch batch = SkewedBatch(8, 1, {4096, 1000000, 1, 1, 1500});  // no long document
  absl::StatusOr<Plan> plan = PlanStaticCp(batch);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->summary.comm_bytes, 0);  // c = 1: every document whole on one worker
  for (const std::set<int32_t>& owners : OwnersByDocument(*plan)) EXPECT_EQ(owners.size(), 1u);
}

// The data loader balances tokens, not attention: on skewed batches tokens are near-even while
// the group that drew the longest document is the straggler.
TEST(StaticCpTest, PacksTokensEvenlyAndLeavesAttentionUneven) {
  for (uint64_t seed : {1, 2, 3}) {
    const Batch batch = SkewedBatch(16, seed);
    absl::StatusOr<Plan> plan = PlanStaticCp(batch);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_LE(plan->summary.token_imbalance, 1.05 + 1e-3) << seed;
    EXPECT_GT(plan->summary.compute_imbalance, 1.2) << seed;
    // (fcp alone is not enough on seed 3: its fine blocks of the long documents end 1.21x the
    // bound, 2.6% slower than static_cp; grouped gives each long document a group of its own.)
    PlanOptions grouped;
    grouped.strategy = "grouped";
    absl::StatusOr<Plan> balanced = MakePlan(batch, grouped, OutputSpec::SummaryOnly());
    ASSERT_TRUE(balanced.ok());
    EXPECT_LT(balanced->PredictedStepMs(), plan->PredictedStepMs()) << seed;
  }
}

// Without a token budget (attention alone), the trainer's is still its share of the tokens with
// the topology's slack: 1,050 here.
TEST(StaticCpTest, UnderAttentionAloneTheTrainersBudgetStillSizesTheGroups) {
  Batch batch;
  batch.topology.num_workers = 4;
  batch.documents = {{3000, Mask::Causal()}, {500, Mask::Causal()}, {500, Mask::Causal()}};
  absl::StatusOr<Plan> plan = PlanStaticCp(batch, Objective::kAttention);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(OwnersByDocument(*plan)[0].size(), 4u);  // c = 4: 750 of the 3,000 per member
  EXPECT_LE(plan->summary.max_tokens_per_worker, 1050);
}

// When the groups cannot hold the documents, c doubles: W = 4, budget 1,100, two 2,100-token
// documents need c = 2 (1,050 per member), but then the 150-token one fits beside neither
// (documents are never split across groups); one group of 4 holds everything.
TEST(StaticCpTest, TheCpSizeGrowsUntilTheDocumentsFit) {
  Batch batch;
  batch.topology.num_workers = 4;
  batch.topology.max_tokens_per_worker = 1100;
  batch.documents = {
      {2100, Mask::Causal()}, {2100, Mask::Causal()}, {150, Mask::Causal()}, {50, Mask::Causal()}};
  absl::StatusOr<Plan> plan = PlanStaticCp(batch);
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (const std::set<int32_t>& owners : OwnersByDocument(*plan)) EXPECT_EQ(owners.size(), 4u);
  EXPECT_EQ(plan->summary.max_tokens_per_worker, 1100);
}

// Zigzag chunks of a short document land on member 0: with no larger CP size left, a document
// that then fits nowhere is an error naming it and the budget.
TEST(StaticCpTest, ADocumentThatFitsNowhereIsAnErrorNamingItAndTheBudget) {
  Batch batch;
  batch.topology.num_workers = 2;
  batch.topology.max_tokens_per_worker = 6;
  // c = 2: 5 + 5 tokens of the first; each 1-token document is chunk 3 of 4, member 0's.
  batch.documents = {{10, Mask::Causal()}, {1, Mask::Causal()}, {1, Mask::Causal()}};
  absl::StatusOr<Plan> plan = PlanStaticCp(batch);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition) << plan.status();
  EXPECT_THAT(plan.status().message(), HasSubstr("document 2 (1 tokens) fits in no group of 2"));
  EXPECT_THAT(plan.status().message(), HasSubstr("token budget of 6"));
}

}  // namespace
}  // namespace fcp
