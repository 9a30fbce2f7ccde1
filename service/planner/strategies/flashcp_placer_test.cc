// flashcp's Placer against its own full placements: a candidate stopped by a bound (its estimate
// infinite) would have reached the bound had it run to the end, and one that stays below the
// bound is placed exactly as without one. Capped batches (the whole-step budget), where the
// documents left can be shown to overflow a bound long before a load reaches it.
#include "service/planner/strategies/flashcp_placer.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "service/planner/strategies/block_units.h"
#include "service/planner/strategies/test_batches.h"

namespace fcp {
namespace {

using flashcp::Placement;
using flashcp::Placer;
using flashcp::Sorted;

struct Request {
  Request(int32_t workers, uint64_t seed)
      : batch(ResolveBatch(SkewedBatch(workers, seed), Objective::kWholeStep)),
        cost(batch.model, batch.topology, options.cost, Objective::kWholeStep),
        ctx{batch, options, cost, absl::InfiniteFuture()} {}
  PlanOptions options;
  Batch batch;
  CostModel cost;
  PlanContext ctx;
};

TEST(FlashCpPlacerTest, AStoppedCandidateWouldHaveReachedItsBound) {
  int stopped = 0, kept = 0;
  for (int32_t workers : {16, 64, 256}) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      const Request r(workers, seed);
      ASSERT_LT(TokenCap(r.batch.topology), TokenCap(Topology{}));  // capped
      // As flashcp's MakeLayout lays them out.
      const DocCosts costs = DocCosts::Of(r.ctx);
      const int32_t docs = static_cast<int32_t>(costs.by_cost.size());
      std::vector<Sorted> sorted(docs);
      for (int32_t i = 0; i < docs; ++i) {
        const int32_t d = costs.by_cost[i];
        sorted[i] = {d, r.batch.documents[d].length, costs.seconds[d]};
      }
      std::vector<double> suffix_seconds(docs + 1, 0);
      for (int32_t i = docs; i-- > 0;) {
        suffix_seconds[i] = suffix_seconds[i + 1] + sorted[i].seconds;
      }
      Placer placer(r.ctx, sorted, suffix_seconds, costs.total / workers);
      for (int32_t num_long : {0, 1, 4}) {
        for (double fill : {1.0, 0.4}) {
          Placement full, bounded;
          placer.Place(num_long, fill, HUGE_VAL, HUGE_VAL, &full);
          ASSERT_LT(full.estimate, HUGE_VAL);
          for (double factor : {0.9, 0.99, 0.999, 1.0, 1.0001, 1.001, 1.01, 1.1}) {
            const double bound = full.estimate * factor;
            placer.Place(num_long, fill, bound, HUGE_VAL, &bounded);
            SCOPED_TRACE(testing::Message() << "W " << workers << " seed " << seed << " long "
                                            << num_long << " fill " << fill << " x" << factor);
            if (full.estimate < bound) {
              ++kept;
              EXPECT_EQ(bounded.estimate, full.estimate);
              EXPECT_EQ(bounded.traffic, full.traffic);
              EXPECT_EQ(bounded.members, full.members);
              EXPECT_EQ(bounded.at, full.at);
              EXPECT_EQ(bounded.degree, full.degree);
            } else {
              ++stopped;
              EXPECT_GE(bounded.estimate, bound);
            }
          }
        }
      }
    }
  }
  EXPECT_GT(stopped, 0);
  EXPECT_GT(kept, 0);
}

}  // namespace
}  // namespace fcp
