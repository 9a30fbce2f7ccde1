// flexdeg's group sizing: the exact solver is optimal for its objective (against brute force on
// small batches) and never worse than the greedy it replaced (on random batches, by the same
// objective), with and without a memory cap.
#include "service/planner/strategies/flexdeg_sizing.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "service/planner/cost_model.h"
#include "service/planner/mask_math.h"
#include "service/planner/strategies/packing.h"
#include "service/planner/strategies/test_batches.h"

namespace fcp {
namespace {

// The sizing of `batch` as flexdeg builds it (whole-document costs, costliest first).
GroupSizing SizingOf(const Batch& batch, const CostModel& cost, int64_t cap) {
  std::vector<SizingDoc> docs;
  for (size_t d = 0; d < batch.documents.size(); ++d) {
    const Document& doc = batch.documents[d];
    const double fwd = cost.TileForwardSeconds(
        doc.length, doc.length, AllowedPairs(doc.mask, 0, doc.length, 0, doc.length));
    const double linear = 3 * cost.TokenSeconds(doc.length);
    docs.push_back({static_cast<int32_t>(d), doc.length,
                    fwd + cost.BackwardFromForward(fwd) + linear, linear});
  }
  std::stable_sort(docs.begin(), docs.end(),
                   [](const SizingDoc& a, const SizingDoc& b) { return a.seconds > b.seconds; });
  return GroupSizing(cost, batch.topology, std::move(docs), cap);
}

// `factor` × the batch's mean tokens per worker (none at 0).
int64_t CapOf(const Batch& batch, double factor) {
  return factor > 0 ? static_cast<int64_t>(factor * static_cast<double>(batch.TotalTokens() /
                                                                        batch.topology.num_workers))
                    : std::numeric_limits<int64_t>::max();
}

std::string Sizes(const GroupSizing& sizing, const std::vector<int32_t>& sizes) {
  std::string out;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] > 1)
      out += std::to_string(sizes[i]) + "(" + std::to_string(sizing.docs()[i].length) + ") ";
  }
  return out;
}

double Relative(double a, double b) { return std::abs(a - b) / std::max(a, b); }

struct Case {
  Objective objective;
  double cap_factor;  // of the mean tokens; 0: none
};

class SizingTest : public ::testing::TestWithParam<Case> {};

TEST_P(SizingTest, ExactMatchesBruteForceOnSmallBatches) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SkewedShape shape;
    shape.tokens_per_worker = 4096;
    shape.long_one_in = 3;
    Batch batch = SkewedBatch(9, seed, shape);
    batch.documents.resize(std::min<size_t>(batch.documents.size(), 4));
    batch.topology.workers_per_node = 4;  // rings of 5 to 9 cross nodes
    const int64_t mean = batch.TotalTokens() / batch.topology.num_workers;
    const int64_t cap = GetParam().cap_factor > 0
                            ? static_cast<int64_t>(GetParam().cap_factor * mean)
                            : std::numeric_limits<int64_t>::max();
    const CostModel cost(batch.model, batch.topology, CostParams{}, GetParam().objective);
    const GroupSizing sizing = SizingOf(batch, cost, cap);
    // Every size in 1..W for every document.
    double best = std::numeric_limits<double>::infinity();
    std::vector<int32_t> sizes(sizing.docs().size(), 1);
    std::function<void(size_t)> all = [&](size_t i) {
      if (i == sizes.size()) {
        best = std::min(best, sizing.Objective(sizes));
        return;
      }
      for (int32_t k = 1; k <= batch.topology.num_workers; ++k) {
        sizes[i] = k;
        all(i + 1);
      }
    };
    all(0);
    const std::optional<GroupSizing::Solution> exact = sizing.Exact();
    ASSERT_EQ(exact.has_value(), std::isfinite(best)) << "seed " << seed;
    if (!exact) continue;
    EXPECT_LT(Relative(exact->objective, best), 1e-9) << "seed " << seed;
    EXPECT_LT(Relative(sizing.Objective(exact->sizes), exact->objective), 1e-9) << "seed " << seed;
  }
}

TEST_P(SizingTest, ExactIsNeverWorseThanTheGreedy) {
  int compared = 0;
  for (int32_t workers : {8, 16, 32, 64}) {
    for (uint64_t seed = 1; seed <= 10; ++seed) {
      const Batch batch = SkewedBatch(workers, seed);
      const int64_t mean = batch.TotalTokens() / workers;
      const int64_t cap = GetParam().cap_factor > 0
                              ? static_cast<int64_t>(GetParam().cap_factor * mean)
                              : std::numeric_limits<int64_t>::max();
      const CostModel cost(batch.model, batch.topology, CostParams{}, GetParam().objective);
      const GroupSizing sizing = SizingOf(batch, cost, cap);
      const std::optional<GroupSizing::Solution> exact = sizing.Exact();
      for (double slack : {0.0, 0.25, 0.5, -0.5, -1.0, -2.0}) {
        const double greedy = sizing.Objective(sizing.Greedy(slack));
        if (!std::isfinite(greedy)) continue;
        ASSERT_TRUE(exact.has_value()) << "W=" << workers << " seed " << seed;
        EXPECT_LE(exact->objective, greedy * (1 + 1e-9))
            << "W=" << workers << " seed " << seed << " slack " << slack << " "
            << Sizes(sizing, exact->sizes) << " vs " << Sizes(sizing, sizing.Greedy(slack)) << " F "
            << exact->objective << " vs " << greedy;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 40);  // the greedy plans most of these batches
}

// The greedy as its header describes it, document by document (Greedy skips, under a cap, the
// documents past the first that wants fewer than two workers, but for those longer than the cap).
TEST_P(SizingTest, GreedyIsWhatItDescribes) {
  for (int32_t workers : {8, 64}) {
    for (uint64_t seed = 1; seed <= 5; ++seed) {
      const Batch batch = SkewedBatch(workers, seed);
      const int64_t mean = batch.TotalTokens() / workers;
      const bool capped = GetParam().cap_factor > 0;
      const int64_t cap = capped ? static_cast<int64_t>(GetParam().cap_factor * mean)
                                 : std::numeric_limits<int64_t>::max();
      const CostModel cost(batch.model, batch.topology, CostParams{}, GetParam().objective);
      const GroupSizing sizing = SizingOf(batch, cost, cap);
      double total = 0;
      for (const SizingDoc& d : sizing.docs()) total += d.seconds;
      for (double slack : {0.0, 0.5, -0.5, -2.0, -8.0}) {
        std::vector<int32_t> want(sizing.docs().size(), 1);
        int64_t left = workers;
        for (size_t i = 0; i < want.size(); ++i) {
          const SizingDoc& d = sizing.docs()[i];
          const double wanted = std::ceil(d.seconds / (total / workers) - slack - 1e-9);
          const int64_t k =
              std::min<int64_t>(std::max<int64_t>(static_cast<int64_t>(wanted),
                                                  GroupSizeForCap(d.length, cap, workers)),
                                left);
          if (k >= 2 && MemberTokens(d.length, k) <= cap) {
            want[i] = static_cast<int32_t>(k);
            left -= k;
          }
        }
        EXPECT_EQ(sizing.Greedy(slack), want)
            << "W=" << workers << " seed " << seed << " slack " << slack;
      }
    }
  }
}

// What a sizing keeps across calls (Room's curves and LeastSize's minima per document, for
// Exact()'s bisection) changes no answer: Exact() and Within() on a sizing asked other targets
// first, in another order, answer as on a fresh one, bit for bit; and the rings they and
// GreedyRings give are those of their sizes.
TEST_P(SizingTest, AnswersDoNotDependOnWhatTheSizingWasAskedBefore) {
  int compared = 0;
  for (int32_t workers : {8, 32, 64}) {
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      const Batch batch = SkewedBatch(workers, seed);
      const int64_t cap = CapOf(batch, GetParam().cap_factor);
      const CostModel cost(batch.model, batch.topology, CostParams{}, GetParam().objective);
      const GroupSizing fresh = SizingOf(batch, cost, cap);
      const std::optional<GroupSizing::Solution> exact = fresh.Exact();
      if (!exact) continue;
      EXPECT_EQ(exact->rings, RingsOf(exact->sizes));
      const double f = exact->objective;
      const std::vector<double> targets = {f * 4, f * 1.1, f, f * 1.05, f * 1.5, f * 1.0001};
      const GroupSizing used = SizingOf(batch, cost, cap);
      for (double t : targets) {  // (filling its curves and minima for other targets)
        std::vector<int32_t> sizes;
        used.Within(t, &sizes);
      }
      const std::optional<GroupSizing::Solution> again = used.Exact();
      ASSERT_TRUE(again.has_value());
      EXPECT_EQ(again->sizes, exact->sizes) << "W=" << workers << " seed " << seed;
      EXPECT_EQ(again->objective, exact->objective) << "W=" << workers << " seed " << seed;
      for (size_t i = targets.size(); i-- > 0;) {
        const GroupSizing alone = SizingOf(batch, cost, cap);
        std::vector<int32_t> want, got;
        SizingRings rings;
        const bool within = alone.Within(targets[i], &want);
        EXPECT_EQ(used.Within(targets[i], &got, &rings), within);
        EXPECT_EQ(got, want) << "W=" << workers << " seed " << seed << " target x"
                             << targets[i] / f;
        EXPECT_EQ(rings, RingsOf(got));
        ++compared;
      }
      for (double slack : {0.0, -1.0, -8.0}) {
        EXPECT_EQ(fresh.GreedyRings(slack), RingsOf(fresh.Greedy(slack)));
      }
    }
  }
  EXPECT_GT(compared, 60);
}

INSTANTIATE_TEST_SUITE_P(Objectives, SizingTest,
                         ::testing::Values(Case{Objective::kWholeStep, 0},
                                           Case{Objective::kWholeStep, 1.05},
                                           Case{Objective::kAttention, 0},
                                           Case{Objective::kAttention, 1.1}));

}  // namespace
}  // namespace fcp
