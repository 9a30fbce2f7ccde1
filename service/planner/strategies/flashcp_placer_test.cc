// flashcp's Placer against its own full placements: a candidate stopped by a bound (its estimate
// infinite) would have reached the bound had it run to the end, one that stays below the bound is
// placed exactly as without one, and one started from an earlier candidate's opening exactly as
// from scratch. Capped batches (the whole-step budget), where the
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
        ctx{batch, options, cost, absl::InfiniteFuture()} {
    // As flashcp's MakeLayout lays them out.
    const DocCosts costs = DocCosts::Of(ctx);
    const int32_t docs = static_cast<int32_t>(costs.by_cost.size());
    sorted.resize(docs);
    for (int32_t i = 0; i < docs; ++i) {
      const int32_t d = costs.by_cost[i];
      sorted[i] = {d, batch.documents[d].length, costs.seconds[d]};
    }
    suffix_seconds.assign(docs + 1, 0);
    for (int32_t i = docs; i-- > 0;) suffix_seconds[i] = suffix_seconds[i + 1] + sorted[i].seconds;
    mean = costs.total / workers;
  }
  Placer NewPlacer() const { return Placer(ctx, sorted, suffix_seconds, mean); }

  PlanOptions options;
  Batch batch;
  CostModel cost;
  PlanContext ctx;
  std::vector<Sorted> sorted;
  std::vector<double> suffix_seconds;
  double mean = 0;
};

void ExpectSamePlacement(const Placement& a, const Placement& b) {
  EXPECT_EQ(a.estimate, b.estimate);
  EXPECT_EQ(a.traffic, b.traffic);
  EXPECT_EQ(a.members, b.members);
  EXPECT_EQ(a.at, b.at);
  EXPECT_EQ(a.degree, b.degree);
}

TEST(FlashCpPlacerTest, AStoppedCandidateWouldHaveReachedItsBound) {
  int stopped = 0, kept = 0;
  for (int32_t workers : {16, 64, 256}) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      const Request r(workers, seed);
      ASSERT_LT(TokenCap(r.batch.topology), TokenCap(Topology{}));  // capped
      Placer placer = r.NewPlacer();
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
              ExpectSamePlacement(bounded, full);
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

// Plain candidates (fill 1) in flashcp's order, more long documents each time: each one after the
// first starts from the last one's opening, and places as a Placer's first candidate does.
TEST(FlashCpPlacerTest, APlainCandidateFromAnOpeningPlacesAsFromScratch) {
  for (int32_t workers : {16, 64}) {
    const Request r(workers, 7);
    Placer shared = r.NewPlacer();
    for (int32_t num_long : {1, 2, 5, 9}) {
      Placement opened, fresh, roomy;
      shared.Place(num_long, 0.5, HUGE_VAL, HUGE_VAL, &roomy);  // between them, as in flashcp
      shared.Place(num_long, 1.0, HUGE_VAL, HUGE_VAL, &opened);
      r.NewPlacer().Place(num_long, 1.0, HUGE_VAL, HUGE_VAL, &fresh);
      SCOPED_TRACE(testing::Message() << "W " << workers << " long " << num_long);
      ASSERT_LT(fresh.estimate, HUGE_VAL);
      ExpectSamePlacement(opened, fresh);
    }
  }
}

}  // namespace
}  // namespace fcp
