#include "service/cached_plan.h"

#include <string>
#include <vector>

#include "fcp/v1/planner.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/plan_convert.h"
#include "service/planner/planner.h"
#include "service/test_requests.h"

namespace fcp {
namespace {

// What PlanToProto makes for a plan of `ranks` (empty = all), with planning_ms zeroed.
v1::PlanResponse Expected(const Batch& batch, const PlanOptions& options,
                          const std::vector<int32_t>& ranks, bool cache_hit) {
  const OutputSpec output = ranks.empty() ? OutputSpec::AllRanks() : OutputSpec::Ranks(ranks);
  v1::PlanResponse response;
  PlanToProto(*MakePlan(batch, options, output), response.mutable_plan());
  response.mutable_plan()->mutable_summary()->set_planning_ms(0);
  response.set_cache_hit(cache_hit);
  return response;
}

class CachedPlanTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CachedPlanTest, EncodedResponsesParseAsThePlanOfThoseRanks) {
  const Batch batch = TestBatch(8, /*seed=*/3);
  PlanOptions options;
  options.strategy = GetParam();
  absl::StatusOr<Plan> full = MakePlan(batch, options, OutputSpec::AllRanks());
  ASSERT_TRUE(full.ok()) << full.status();
  full->summary.planning_ms = 0;
  const CachedPlan cached(*std::move(full));

  const std::vector<std::vector<int32_t>> rank_sets = {{3}, {0, 7}, {1, 2, 5}, {}};
  for (const std::vector<int32_t>& ranks : rank_sets) {
    for (bool hit : {false, true}) {
      const EncodedResponse encoded = cached.EncodeResponse(ranks, hit);
      const std::string bytes = encoded.Flatten();
      EXPECT_EQ(bytes.size(), encoded.size());
      v1::PlanResponse parsed;
      ASSERT_TRUE(parsed.ParseFromString(bytes));
      const v1::PlanResponse expected = Expected(batch, options, ranks, hit);
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, expected))
          << "ranks " << ranks.size() << (hit ? " hit" : " miss");
    }
  }
}

TEST_P(CachedPlanTest, PreparedPlansEncodeTheSameResponses) {
  const Batch batch = TestBatch(8, /*seed=*/5);
  PlanOptions options;
  options.strategy = GetParam();
  absl::StatusOr<std::unique_ptr<const PreparedPlan>> prepared = PreparePlan(batch, options);
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  const CachedPlan cached(std::shared_ptr<const PreparedPlan>(*std::move(prepared)));
  EXPECT_EQ(cached.num_workers(), 8);
  for (const std::vector<int32_t>& ranks : {std::vector<int32_t>{6}, std::vector<int32_t>{}}) {
    v1::PlanResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(cached.EncodeResponse(ranks, true).Flatten()));
    parsed.mutable_plan()->mutable_summary()->set_planning_ms(0);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
        parsed, Expected(batch, options, ranks, true)))
        << "ranks " << ranks.size();
  }
}

INSTANTIATE_TEST_SUITE_P(Strategies, CachedPlanTest,
                         ::testing::Values("fcp", "ring", "per_doc", "whole_doc", "auto"));

TEST(CachedPlanChargeTest, GrowsWithThePlan) {
  PlanOptions options;
  options.strategy = "fcp";
  const CachedPlan small(*MakePlan(TestBatch(4, 1), options));
  const CachedPlan large(*MakePlan(TestBatch(16, 1), options));
  EXPECT_GT(small.charge_bytes(), 0u);
  EXPECT_GT(large.charge_bytes(), 2 * small.charge_bytes());
  const CachedPlan prepared_small(
      std::shared_ptr<const PreparedPlan>(*PreparePlan(TestBatch(4, 1), options)));
  const CachedPlan prepared_large(
      std::shared_ptr<const PreparedPlan>(*PreparePlan(TestBatch(16, 1), options)));
  EXPECT_GT(prepared_large.charge_bytes(), 2 * prepared_small.charge_bytes());
}

}  // namespace
}  // namespace fcp
