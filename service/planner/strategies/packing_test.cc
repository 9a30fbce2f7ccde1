// The packers' worker pickers against the scans they replace.
#include "service/planner/strategies/packing.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace fcp {
namespace {

// What whole_doc, flashcp and flexdeg scanned for: in index order, the first worker with the
// least load among those holding at most max_tokens.
int32_t ScanLeastLoadedWithRoom(const std::vector<double>& load, const std::vector<int64_t>& tokens,
                                int64_t max_tokens) {
  int32_t best = -1;
  for (int32_t w = 0; w < static_cast<int32_t>(load.size()); ++w) {
    if (tokens[w] <= max_tokens && (best < 0 || load[w] < load[best])) best = w;
  }
  return best;
}

TEST(RoomTreeTest, FindsWhatAScanFindsUnderRandomUpdates) {
  for (int32_t workers : {1, 3, 8, 37, 256, 1000}) {
    std::mt19937_64 rng(workers);
    RoomTree tree(workers);
    std::vector<double> load(workers, 0);
    std::vector<int64_t> tokens(workers, 0);
    for (int step = 0; step < 4000; ++step) {
      const int32_t w = static_cast<int32_t>(rng() % workers);
      // Loads drawn from a few values, so that ties (broken by the lowest index) are common.
      load[w] += static_cast<double>(rng() % 4);
      tokens[w] += static_cast<int64_t>(rng() % 100);
      tree.Set(w, load[w], tokens[w]);
      const int64_t max_tokens = static_cast<int64_t>(rng() % (step / 2 + 100));
      if (step % 700 == 350) {  // by tokens, as fcp's packer lays them out
        std::vector<int32_t> order(workers);
        for (int32_t v = 0; v < workers; ++v) order[v] = v;
        std::sort(order.begin(), order.end(),
                  [&](int32_t a, int32_t b) { return tokens[a] > tokens[b]; });
        tree.Arrange(order);
      }
      ASSERT_EQ(tree.LeastLoadedWithRoom(max_tokens),
                ScanLeastLoadedWithRoom(load, tokens, max_tokens))
          << "W " << workers << ", step " << step << ", max_tokens " << max_tokens;
    }
  }
}

// fcp's packer: the lowest max(load / mean, tokens / budget) with an item added, among the
// workers with room for it, ties to the lowest index (what its scan of every worker found).
TEST(RoomTreeTest, LeastScoreWithRoomFindsWhatAScanFinds) {
  for (int32_t workers : {1, 2, 7, 64, 300, 1024}) {
    std::mt19937_64 rng(workers + 17);
    RoomTree tree(workers);
    std::vector<double> load(workers, 0);
    std::vector<int64_t> tokens(workers, 0);
    const double inv_mean = 1.0 / 3, inv_budget = 1.0 / 1000;
    auto score = [&](double l, int64_t t) {
      return std::max(l * inv_mean, static_cast<double>(t) * inv_budget);
    };
    for (int step = 0; step < 3000; ++step) {
      const int32_t w = static_cast<int32_t>(rng() % workers);
      load[w] += static_cast<double>(rng() % 3);  // few values: ties are common
      tokens[w] += static_cast<int64_t>(rng() % 50) * 10;
      tree.Set(w, load[w], tokens[w]);
      const double seconds = static_cast<double>(rng() % 4);
      const int64_t item = static_cast<int64_t>(rng() % 40) * 10;
      const int64_t max_tokens = static_cast<int64_t>(rng() % (step + 200)) * 4 - item;
      int32_t scan = -1;
      double scan_score = HUGE_VAL;
      for (int32_t v = 0; v < workers; ++v) {
        if (tokens[v] > max_tokens) continue;
        const double s = score(load[v] + seconds, tokens[v] + item);
        if (s < scan_score) scan = v, scan_score = s;
      }
      if (step % 500 == 250) {  // any layout of the leaves gives the same answers
        std::vector<int32_t> order(workers);
        for (int32_t v = 0; v < workers; ++v) order[v] = v;
        std::shuffle(order.begin(), order.end(), rng);
        tree.Arrange(order);
      }
      ASSERT_EQ(tree.LeastWithRoom(
                    max_tokens, [&](double l, int64_t t) { return score(l + seconds, t + item); }),
                scan)
          << "W " << workers << ", step " << step << ", max_tokens " << max_tokens;
    }
  }
}

// flexdeg's buckets start every worker outside (HUGE_VAL) and Set their members: the same
// tree, and the same ArgMin under updates, as Setting every worker from the all-zero start.
TEST(MinTreeTest, StartingScoreMatchesSettingEveryWorker) {
  for (int32_t workers : {1, 5, 64, 1000}) {
    std::mt19937_64 rng(workers);
    MinTree started(workers, HUGE_VAL), set(workers);
    for (int32_t w = 0; w < workers; ++w) set.Set(w, HUGE_VAL);
    EXPECT_EQ(started.ArgMin(), set.ArgMin()) << "W " << workers;
    for (int step = 0; step < 500; ++step) {
      const int32_t w = static_cast<int32_t>(rng() % workers);
      const double score = step % 3 == 0 ? HUGE_VAL : static_cast<double>(rng() % 8);
      started.Set(w, score);
      set.Set(w, score);
      ASSERT_EQ(started.ArgMin(), set.ArgMin()) << "W " << workers << ", step " << step;
    }
  }
}

TEST(RoomTreeTest, NoWorkerWithRoomIsMinusOne) {
  RoomTree tree(4);
  for (int32_t w = 0; w < 4; ++w) tree.Set(w, 1.0 + w, 100);
  EXPECT_EQ(tree.LeastLoadedWithRoom(99), -1);
  EXPECT_EQ(tree.LeastLoadedWithRoom(100), 0);
}

}  // namespace
}  // namespace fcp
