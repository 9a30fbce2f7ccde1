#include "service/planner/plan_size.h"

#include <string>

#include "gtest/gtest.h"
#include "service/planner/planner.h"

namespace fcp {
namespace {

Batch OneDocument(int32_t workers, int64_t length, Mask mask) {
  Batch batch;
  batch.topology.num_workers = workers;
  batch.topology.workers_per_node = 8;
  batch.model.num_q_heads = 8;
  batch.model.num_kv_heads = 2;
  batch.model.head_dim = 64;
  batch.documents.push_back({length, mask});
  return batch;
}

int64_t KvTransfers(const Plan& plan) {
  int64_t n = 0;
  for (const WorkerPlan& w : plan.workers) {
    for (const Transfer& t : w.sends) n += t.kind == TransferKind::kKv;
  }
  return n;
}

TEST(MinimumTransfersTest, RingPassesEveryRanksKvToEveryOtherRank) {
  EXPECT_EQ(MinimumTransfers("ring", OneDocument(64, 1000, Mask::Causal()), 0), 64 * 63);
}

TEST(MinimumTransfersTest, PerDocExchangesAmongTheRanksOfEachDocument) {
  Batch batch = OneDocument(16, 4 * 512, Mask::Causal());
  batch.documents.push_back({100, Mask::Causal()});
  EXPECT_EQ(MinimumTransfers("per_doc", batch, 512), 4 * 3);
}

TEST(MinimumTransfersTest, WholeDocCutsDocumentsOverTheMemoryCapIntoExchangingPieces) {
  Batch batch = OneDocument(16, 4 * 1000, Mask::Causal());
  EXPECT_EQ(MinimumTransfers("whole_doc", batch, 0), 0);  // no cap: whole, on one rank
  batch.topology.max_tokens_per_worker = 1000;
  EXPECT_EQ(MinimumTransfers("whole_doc", batch, 0), 4 * 3 / 2);
  PlanOptions options;
  options.strategy = "whole_doc";
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(KvTransfers(*plan), 4 * 3 / 2);
}

TEST(MinimumTransfersTest, OtherStrategiesHaveNoKnownMinimum) {
  EXPECT_EQ(MinimumTransfers("fcp", OneDocument(64, 1 << 20, Mask::Causal()), 0), 0);
}

TEST(EstimatedBalancedTransfersTest, OneCausalDocumentOverEveryRankSeesEarlierRanks) {
  EXPECT_EQ(EstimatedBalancedTransfers(OneDocument(16, 16 * 4096, Mask::Causal())), 16 * 15 / 2);
}

TEST(EstimatedBalancedTransfersTest, AFullMaskDocumentExchangesBothWays) {
  EXPECT_EQ(EstimatedBalancedTransfers(OneDocument(16, 16 * 4096, Mask::Full())), 16 * 15);
}

TEST(EstimatedBalancedTransfersTest, ASlidingWindowReachesOnlyTheRanksWithinIt) {
  // 16 ranks of 4096 tokens, a window of 4096 reaches one rank back.
  EXPECT_EQ(EstimatedBalancedTransfers(OneDocument(16, 16 * 4096, Mask::SlidingWindow(4096))),
            16 * 1);
}

TEST(EstimatedBalancedTransfersTest, DocumentsOfAtMostOneRanksShareStayOnOneRank) {
  Batch batch = OneDocument(8, 1000, Mask::Causal());
  for (int i = 0; i < 7; ++i) batch.documents.push_back({1000, Mask::Causal()});
  EXPECT_EQ(EstimatedBalancedTransfers(batch), 0);
}

TEST(EstimatedBalancedTransfersTest, OneWorkerNeverTransfers) {
  EXPECT_EQ(EstimatedBalancedTransfers(OneDocument(1, 1 << 20, Mask::Full())), 0);
}

TEST(EstimatedBalancedTransfersTest, HugeRequestsDoNotOverflow) {
  // 2^34 tokens over 16384 ranks, full mask: L^2 overflows int64, the estimate must not.
  const int64_t estimate =
      EstimatedBalancedTransfers(OneDocument(16384, int64_t{1} << 34, Mask::Full()));
  EXPECT_EQ(estimate, int64_t{16384} * 16383);
}

// The estimate is within a factor of two of what the balancing strategies really schedule for
// single large documents (so a limit on it refuses no plan much smaller than the limit).
class EstimateVsPlanTest
    : public ::testing::TestWithParam<std::tuple<std::string, int32_t, MaskKind>> {};

TEST_P(EstimateVsPlanTest, WithinAFactorOfTwoOfThePlansKvTransfers) {
  const auto& [strategy, workers, kind] = GetParam();
  const Mask mask = kind == MaskKind::kFull ? Mask::Full() : Mask::Causal();
  const Batch batch = OneDocument(workers, int64_t{workers} * 2048, mask);
  PlanOptions options;
  options.strategy = strategy;
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
  ASSERT_TRUE(plan.ok()) << plan.status();
  const double actual = static_cast<double>(KvTransfers(*plan));
  const double estimate = static_cast<double>(EstimatedBalancedTransfers(batch));
  EXPECT_GE(actual, estimate / 2) << strategy;
  EXPECT_LE(actual, estimate * 2) << strategy;
}

INSTANTIATE_TEST_SUITE_P(Strategies, EstimateVsPlanTest,
                         ::testing::Combine(::testing::Values("fcp", "flashcp", "flexdeg"),
                                            ::testing::Values(8, 32),
                                            ::testing::Values(MaskKind::kCausal, MaskKind::kFull)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_W" +
                                  std::to_string(std::get<1>(info.param)) +
                                  (std::get<2>(info.param) == MaskKind::kFull ? "_full"
                                                                              : "_causal");
                         });

TEST(AutoPlanSizeTest, SkipsBalancedPlansTheTimeBudgetCannotAfford) {
  // One 64K-token causal document over 64 ranks: ~2,016 KV transfers balanced.
  const Batch batch = OneDocument(64, 64 * 1024, Mask::Causal());
  PlanOptions options;
  // Attention alone has no token budget, so whole_doc keeps the document on one rank: no transfer.
  options.objective = Objective::kAttention;
  options.time_budget_ms = 1;  // affords ~800 transfers
  absl::StatusOr<Plan> small = MakePlan(batch, options, OutputSpec::SummaryOnly());
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->strategy, "whole_doc");
  options.time_budget_ms = 200;
  absl::StatusOr<Plan> ample = MakePlan(batch, options, OutputSpec::SummaryOnly());
  ASSERT_TRUE(ample.ok()) << ample.status();
  EXPECT_NE(ample->strategy, "whole_doc");
  EXPECT_LT(ample->summary.predicted_fwd_ms, small->summary.predicted_fwd_ms);
}

TEST(AutoPlanSizeTest, OneHugeDocumentOverManyRanksIsRefusedUnderAMemoryCap) {
  // The 10-byte request that used to cost > 2.9 GB and > 20 s inside auto.
  Batch batch = OneDocument(4096, int64_t{2} << 20, Mask::Causal());
  batch.topology.max_tokens_per_worker = 1024;
  PlanOptions options;
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::SummaryOnly());
  ASSERT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted) << plan.status();
  EXPECT_NE(plan.status().message().find("time_budget_ms"), std::string::npos) << plan.status();
}

}  // namespace
}  // namespace fcp
