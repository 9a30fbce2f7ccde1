#include "service/planner/token_dispatch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "service/planner/planner.h"

namespace fcp {
namespace {

// Documents of odd lengths (none a multiple of anything) under every strategy family.
Plan MakeTestPlan(const std::string& strategy, int32_t world, OutputSpec spec) {
  Batch batch;
  batch.model.num_q_heads = 4;
  batch.model.num_kv_heads = 2;
  batch.model.head_dim = 16;
  batch.topology.num_workers = world;
  batch.topology.workers_per_node = 2;
  for (int64_t length : {301, 7, 1, 129, 64, 250}) batch.documents.push_back({length, Mask()});
  PlanOptions options;
  options.strategy = strategy;
  options.block_size = 64;
  absl::StatusOr<Plan> plan = MakePlan(batch, options, spec);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *std::move(plan) : Plan();
}

class TokenDispatchTest : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(TokenDispatchTest, RanksPartitionTheBatchWithoutPadding) {
  const auto& [strategy, world] = GetParam();
  const Plan plan = MakeTestPlan(strategy, world, OutputSpec::AllRanks());
  const int64_t total = TotalTokens(plan);
  EXPECT_EQ(total, 301 + 7 + 1 + 129 + 64 + 250);
  const std::vector<int64_t> offsets = DocumentOffsets(plan);
  std::vector<int> seen(total, 0);
  for (int32_t r = 0; r < world; ++r) {
    absl::StatusOr<RankTokens> mine = RankTokensOf(plan, r);
    ASSERT_TRUE(mine.ok()) << mine.status();
    ASSERT_EQ(mine->global_index.size(), mine->position.size());
    for (size_t i = 0; i < mine->global_index.size(); ++i) {
      const int64_t g = mine->global_index[i];
      ASSERT_GE(g, 0);
      ASSERT_LT(g, total);
      ++seen[g];
      // The position is the token's offset in the document that contains g.
      const auto doc = std::upper_bound(offsets.begin(), offsets.end(), g) - offsets.begin() - 1;
      EXPECT_EQ(mine->position[i], g - offsets[doc]);
    }
    // Canonical order is a permutation of the local rows holding the same tokens.
    absl::StatusOr<std::vector<int64_t>> canon = CanonicalToLocal(plan, r);
    ASSERT_TRUE(canon.ok()) << canon.status();
    const std::vector<int64_t> owned = OwnedTokens(plan, r);
    ASSERT_EQ(owned.size(), canon->size());
    for (size_t c = 0; c < owned.size(); ++c) {
      EXPECT_EQ(mine->global_index[(*canon)[c]], owned[c]);
    }
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), total) << "every token on exactly one rank";

  absl::StatusOr<std::vector<TokenLocation>> where = LocateTokens(plan, world);
  ASSERT_TRUE(where.ok()) << where.status();
  for (int64_t g = 0; g < total; ++g) {
    const TokenLocation& at = (*where)[g];
    absl::StatusOr<RankTokens> owner = RankTokensOf(plan, at.rank);
    ASSERT_TRUE(owner.ok());
    EXPECT_EQ(owner->global_index[at.row], g);
  }
}

INSTANTIATE_TEST_SUITE_P(Strategies, TokenDispatchTest,
                         ::testing::Combine(::testing::Values("ring", "fcp", "auto", "per_doc"),
                                            ::testing::Values(1, 2, 3, 4)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_W" +
                                  std::to_string(std::get<1>(info.param));
                         });

TEST(TokenDispatchTest, ARankWithoutASliceIsNamed) {
  const Plan plan = MakeTestPlan("fcp", 4, OutputSpec::Ranks({1}));
  EXPECT_TRUE(RankTokensOf(plan, 1).ok());
  absl::StatusOr<RankTokens> other = RankTokensOf(plan, 2);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(other.status().message().find("rank: the plan holds no slice for rank 2"),
            std::string::npos)
      << other.status();
  EXPECT_FALSE(LocateTokens(plan, 4).ok());
  // Canonical order needs nothing but the blocks.
  EXPECT_FALSE(OwnedTokens(plan, 2).empty());
}

}  // namespace
}  // namespace fcp
