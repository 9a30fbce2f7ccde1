// PlanMemo: what auto's candidates share is computed once, equals what each would compute, and is
// never served to a context made for another request.
#include "service/planner/strategies/plan_memo.h"

#include "gtest/gtest.h"
#include "service/planner/plan_size.h"
#include "service/planner/strategies/test_batches.h"

namespace fcp {
namespace {

struct Request {
  explicit Request(uint64_t seed)
      : batch(ResolveBatch(SkewedBatch(16, seed), Objective::kWholeStep)),
        cost(batch.model, batch.topology, options.cost, Objective::kWholeStep),
        ctx{batch, options, cost, absl::InfiniteFuture()} {}
  PlanOptions options;
  Batch batch;
  CostModel cost;
  PlanContext ctx;
};

TEST(PlanMemoTest, CandidatesShareOneComputationWithTheValuesOfTheirOwn) {
  const Request r(3);
  PlanMemo memo(r.ctx);
  PlanContext shared = r.ctx;
  shared.memo = &memo;
  PlanContext bounded = shared;  // as auto hands it to a candidate, with an incumbent
  bounded.incumbent_ms = 1.0;

  const std::shared_ptr<const DocCosts> first = SharedDocCosts(shared);
  const std::shared_ptr<const DocCosts> again = SharedDocCosts(bounded);
  EXPECT_EQ(first.get(), again.get());  // computed once
  const DocCosts own = DocCosts::Of(r.ctx);
  EXPECT_EQ(first->seconds, own.seconds);
  EXPECT_EQ(first->total, own.total);
  EXPECT_EQ(first->by_cost, own.by_cost);
  EXPECT_EQ(SharedBalancedTransfers(bounded), EstimatedBalancedTransfers(r.batch));
}

TEST(PlanMemoTest, WithoutAMemoEachCallComputesItsOwn) {
  const Request r(4);
  const std::shared_ptr<const DocCosts> a = SharedDocCosts(r.ctx);
  const std::shared_ptr<const DocCosts> b = SharedDocCosts(r.ctx);
  EXPECT_NE(a.get(), b.get());
  EXPECT_EQ(a->by_cost, b->by_cost);
}

TEST(PlanMemoTest, AContextOfAnotherRequestGetsItsOwnValues) {
  const Request r(5), other(6);
  PlanMemo memo(r.ctx);
  PlanContext shared = r.ctx;
  shared.memo = &memo;
  ASSERT_NE(SharedDocCosts(shared), nullptr);  // fill the memo
  PlanContext foreign = other.ctx;  // a strategy's context of its own making, memo passed on
  foreign.memo = &memo;
  EXPECT_FALSE(memo.Serves(foreign));
  EXPECT_EQ(SharedDocCosts(foreign)->seconds, DocCosts::Of(other.ctx).seconds);
  EXPECT_EQ(SharedBalancedTransfers(foreign), EstimatedBalancedTransfers(other.batch));
  ASSERT_NE(r.batch.documents.size(), 0u);
  EXPECT_NE(DocCosts::Of(r.ctx).seconds, DocCosts::Of(other.ctx).seconds);  // they do differ
}

}  // namespace
}  // namespace fcp
