#include "service/limits.h"

#include <cstdint>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

v1::PlanRequest Request(int documents, int64_t length, int32_t workers) {
  v1::PlanRequest r;
  for (int i = 0; i < documents; ++i) r.add_documents()->set_length(length);
  r.mutable_topology()->set_num_workers(workers);
  return r;
}

TEST(LimitsTest, WithinLimitsIsOk) {
  EXPECT_TRUE(CheckLimits(Request(10, 100, 8), RequestLimits()).ok());
}

TEST(LimitsTest, EachLimitNamesItsFieldAndFlag) {
  RequestLimits limits;
  limits.max_documents = 5;
  limits.max_workers = 4;
  limits.max_total_tokens = 1000;
  limits.max_time_budget_ms = 50;
  struct Case {
    v1::PlanRequest request;
    const char* expected;
  };
  v1::PlanRequest budget = Request(1, 10, 2);
  budget.mutable_options()->set_time_budget_ms(51);
  v1::PlanRequest ranks = Request(1, 10, 2);
  for (int i = 0; i < 5; ++i) ranks.add_ranks(0);
  const Case cases[] = {
      {Request(6, 10, 2),
       "documents: 6 documents, over the coordinator's limit of 5 "
       "(--max-documents)"},
      {Request(1, 10, 5), "topology.num_workers: 5 workers"},
      {ranks, "ranks: 5 ranks"},
      {Request(3, 400, 2), "--max-total-tokens"},
      {Request(1, std::numeric_limits<int64_t>::max(), 2), "--max-total-tokens"},
      {budget, "options.time_budget_ms: 51 ms"},
  };
  for (const Case& c : cases) {
    const absl::Status status = CheckLimits(c.request, limits);
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << c.expected;
    EXPECT_THAT(status.message(), HasSubstr(c.expected));
  }
}

TEST(LimitsTest, NegativeLengthsAreLeftToTheValidator) {
  RequestLimits limits;
  limits.max_total_tokens = 100;
  v1::PlanRequest r = Request(1, 100, 2);
  r.add_documents()->set_length(std::numeric_limits<int64_t>::min());
  EXPECT_TRUE(CheckLimits(r, limits).ok());
}

}  // namespace
}  // namespace fcp
