#include "service/limits.h"

#include <cstdint>
#include <limits>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/planner/strategies/dcp.h"
#include "service/test_requests.h"

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

TEST(LimitsTest, AJobIdLongerThanAMetricLabelShouldBeIsInvalid) {
  v1::PlanRequest r = Request(10, 100, 8);
  r.set_job_id(std::string(kMaxJobIdBytes, 'j'));
  EXPECT_TRUE(CheckLimits(r, RequestLimits()).ok());
  r.set_job_id(std::string(kMaxJobIdBytes + 1, 'j'));
  const absl::Status status = CheckLimits(r, RequestLimits());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("job_id: 257 bytes, more than 256"));
}

TEST(LimitsTest, NegativeLengthsAreLeftToTheValidator) {
  RequestLimits limits;
  limits.max_total_tokens = 100;
  v1::PlanRequest r = Request(1, 100, 2);
  r.add_documents()->set_length(std::numeric_limits<int64_t>::min());
  EXPECT_TRUE(CheckLimits(r, limits).ok());
}

// MinimumBlocks is exact for ring, a lower bound for fcp and dcp with a block size (and auto's
// fcp plan), else 0.
TEST(LimitsTest, MinimumBlocksIsALowerBoundOfEveryStrategysBlocks) {
  for (int32_t workers : {1, 3, 8}) {
    for (int64_t block_size : {0, 64, 1024}) {
      const Batch batch = TestBatch(workers, /*seed=*/workers, /*tokens_per_worker=*/2048);
      RegisterDcpPlanner();
      for (const StrategyInfo& s : ListStrategies()) {
        PlanOptions options;
        options.strategy = s.name;
        options.block_size = block_size;
        absl::StatusOr<std::unique_ptr<const PreparedPlan>> plan = PreparePlan(batch, options);
        ASSERT_TRUE(plan.ok()) << s.name << ": " << plan.status();
        const int64_t blocks = static_cast<int64_t>((*plan)->plan().blocks.size());
        const int64_t minimum = MinimumBlocks(batch, options);
        const std::string where = absl::StrCat(s.name, " W=", workers, " block_size=", block_size);
        if (s.name == "auto") {  // the bound is the work of the fcp plan it makes
          PlanOptions fcp = options;
          fcp.strategy = "fcp";
          EXPECT_EQ(minimum, MinimumBlocks(batch, fcp)) << where;
          continue;
        }
        EXPECT_GE(blocks, minimum) << where;
        if (s.name == "ring") EXPECT_EQ(blocks, minimum) << where;
        if ((s.name == "fcp" || s.name == "dcp") && block_size > 0) EXPECT_GT(minimum, 0) << where;
      }
    }
  }
}

TEST(LimitsTest, PlansOverMaxBlocksAreRefusedNamingStrategyAndFlag) {
  Batch batch;
  batch.topology.num_workers = 2048;
  batch.documents.assign(2000, {100000, Mask::Causal()});  // a 6 KB request
  PlanOptions ring;
  ring.strategy = "ring";
  const absl::Status status = CheckPlanSize(batch, ring, RequestLimits());
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("ring: at least 8192000 blocks (2W = 4096 chunks per "
                                          "document), over the coordinator's limit of 4194304 "
                                          "(--max-blocks)"));
  PlanOptions fcp;
  fcp.strategy = "fcp";
  EXPECT_TRUE(CheckPlanSize(batch, fcp, RequestLimits()).ok());
  fcp.block_size = 64;
  RequestLimits small;
  small.max_blocks = 1000000;
  EXPECT_THAT(CheckPlanSize(batch, fcp, small).message(),
              HasSubstr("fcp: at least 3126000 blocks (options.block_size 64)"));
}

TEST(LimitsTest, TransfersOfRingAndPerDocAreBoundedBeforePlanning) {
  Batch one_doc;
  one_doc.topology.num_workers = 4096;
  one_doc.documents = {{8192, Mask::Causal()}};  // a 10-byte request
  PlanOptions ring;
  ring.strategy = "ring";
  EXPECT_EQ(MinimumTransfers(one_doc, ring), 4096 * 4095);
  EXPECT_THAT(CheckPlanSize(one_doc, ring, RequestLimits()).message(),
              HasSubstr("ring: at least 16773120 KV transfers (W x (W - 1)), over the "
                        "coordinator's limit of 4194304 (--max-transfers)"));
  one_doc.topology.num_workers = 2048;
  EXPECT_TRUE(CheckPlanSize(one_doc, ring, RequestLimits()).ok());

  one_doc.topology.num_workers = 4096;
  // k = 4096 ranks of 1024 tokens (per_doc's automatic shard: two 512-token blocks)
  one_doc.documents = {{int64_t{1} << 22, Mask::Causal()}};
  PlanOptions per_doc;
  per_doc.strategy = "per_doc";
  EXPECT_EQ(MinimumTransfers(one_doc, per_doc), 4096 * 4095);
  EXPECT_THAT(CheckPlanSize(one_doc, per_doc, RequestLimits()).message(),
              HasSubstr("per_doc: at least 16773120 KV transfers (k x (k - 1) for a document "
                        "over k ranks)"));
  PlanOptions fcp;
  fcp.strategy = "fcp";
  EXPECT_EQ(MinimumTransfers(one_doc, fcp), 0);

  // Ordinary batches are far below the limit.
  for (int32_t workers : {64, 256}) {
    const Batch batch = TestBatch(workers, /*seed=*/1, /*tokens_per_worker=*/32768);
    EXPECT_TRUE(CheckPlanSize(batch, ring, RequestLimits()).ok()) << workers;
    EXPECT_TRUE(CheckPlanSize(batch, per_doc, RequestLimits()).ok()) << workers;
  }
}

TEST(LimitsTest, BalancingStrategiesAreRefusedWhenTheirEstimatedTransfersAreOverTheLimit) {
  Batch one_doc;
  one_doc.topology.num_workers = 4096;
  one_doc.documents = {{int64_t{1} << 21, Mask::Causal()}};  // ~4096 x 4095 / 2 balanced
  RegisterDcpPlanner();
  for (const char* strategy : {"fcp", "grouped", "flashcp", "flexdeg", "dcp"}) {
    PlanOptions options;
    options.strategy = strategy;
    const absl::Status status = CheckPlanSize(one_doc, options, RequestLimits());
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << strategy;
    EXPECT_THAT(status.message(),
                HasSubstr(absl::StrCat(strategy, ": about 8386560 KV transfers")));
    EXPECT_THAT(status.message(), HasSubstr("(--max-transfers)"));
  }
  // whole_doc makes none without a cap; under one it cuts the document into exchanging pieces.
  PlanOptions whole;
  whole.strategy = "whole_doc";
  EXPECT_TRUE(CheckPlanSize(one_doc, whole, RequestLimits()).ok());
  one_doc.topology.max_tokens_per_worker = 512;
  EXPECT_THAT(CheckPlanSize(one_doc, whole, RequestLimits()).message(),
              HasSubstr("whole_doc: at least 8386560 KV transfers"));
  // Ordinary batches pass.
  for (int32_t workers : {64, 512}) {
    const Batch batch = TestBatch(workers, /*seed=*/1, /*tokens_per_worker=*/32768);
    PlanOptions fcp;
    fcp.strategy = "fcp";
    EXPECT_TRUE(CheckPlanSize(batch, fcp, RequestLimits()).ok()) << workers;
  }
}

// MinimumTransfers' k is per_doc's: each document spans exactly that many ranks.
TEST(LimitsTest, PerDocSpreadsEachDocumentOverTheRanksMinimumTransfersCounts) {
  const Batch batch = TestBatch(8, /*seed=*/5, /*tokens_per_worker=*/4096);
  PlanOptions options;
  options.strategy = "per_doc";
  absl::StatusOr<std::unique_ptr<const PreparedPlan>> plan = PreparePlan(batch, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<std::set<int32_t>> owners(batch.documents.size());
  for (const Block& b : (*plan)->plan().blocks) owners[b.document].insert(b.owner);
  int64_t transfers = 0, spread = 0;
  for (const std::set<int32_t>& o : owners) {
    const int64_t k = static_cast<int64_t>(o.size());
    transfers += k * (k - 1);
    spread += k > 1 ? 1 : 0;
  }
  EXPECT_GT(spread, 0);  // the batch has documents over several ranks
  EXPECT_EQ(MinimumTransfers(batch, options), transfers);
}

}  // namespace
}  // namespace fcp
