// The packers' worker pickers against the scans they replace.
#include "service/planner/strategies/packing.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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

// FitTokenBudget as it was, scanning every worker for the donor and every block per move, then
// sorting all blocks: the indexed version must leave the same blocks in the same order.
absl::Status ScanFitTokenBudget(int32_t workers, int64_t cap, std::vector<Block>* blocks) {
  std::vector<int64_t> tokens(workers, 0);
  for (const Block& b : *blocks) tokens[b.owner] += b.tokens();
  bool changed = false;
  for (int32_t w = 0; w < workers; ++w) {
    while (tokens[w] > cap) {
      // The first worker with the fewest tokens takes the first of w's smallest blocks that
      // clear the target whole, else the tail of w's first largest.
      const int32_t to =
          static_cast<int32_t>(std::min_element(tokens.begin(), tokens.end()) - tokens.begin());
      const int64_t room = cap - tokens[to];
      if (room <= 0) return absl::FailedPreconditionError("no room");
      const int64_t target = std::min(tokens[w] - cap, room);
      std::vector<size_t> mine, clearing;
      for (size_t i = 0; i < blocks->size(); ++i) {
        if ((*blocks)[i].owner != w) continue;
        mine.push_back(i);
        const int64_t t = (*blocks)[i].tokens();
        if (t >= target && t <= room) clearing.push_back(i);
      }
      auto fewer = [&](size_t a, size_t b) {
        return (*blocks)[a].tokens() < (*blocks)[b].tokens();
      };
      Block& b =
          (*blocks)[clearing.empty() ? *std::max_element(mine.begin(), mine.end(), fewer)
                                     : *std::min_element(clearing.begin(), clearing.end(), fewer)];
      const int64_t moved = std::min(b.tokens(), room);
      if (moved == b.tokens()) {
        b.owner = to;
      } else {
        b.end -= moved;
        blocks->push_back({b.document, b.end, b.end + moved, to});
      }
      tokens[w] -= moved;
      tokens[to] += moved;
      changed = true;
    }
  }
  if (changed) SortByPosition(blocks);
  return absl::OkStatus();
}

// Random packings over the cap: blocks in position order (the packers'), shuffled (any caller's),
// and with blocks sharing a position (where only the full sort decides the order).
TEST(FitTokenBudgetTest, LeavesWhatTheScanAndSortLeft) {
  int cut = 0, failed = 0;  // trials that cut a block, that found no room: both must occur
  for (int32_t workers : {1, 2, 5, 64, 300}) {
    std::mt19937_64 rng(workers * 7 + 1);
    for (int trial = 0; trial < 60; ++trial) {
      std::vector<Block> blocks;
      int64_t total = 0;
      for (int32_t d = 0; d < 3 * workers; ++d) {
        const int64_t length = 1 + static_cast<int64_t>(rng() % 400);
        const int64_t cut = 1 + static_cast<int64_t>(rng() % 4);
        for (int64_t c = 0; c < cut; ++c) {
          const int64_t begin = length * c / cut, end = length * (c + 1) / cut;
          if (begin == end) continue;
          // Skewed owners: a few workers take most blocks and go over the cap.
          const int32_t owner =
              static_cast<int32_t>(rng() % 3 == 0 ? rng() % workers : rng() % (workers / 4 + 1));
          blocks.push_back({d, begin, end, owner});
          total += end - begin;
        }
      }
      if (trial % 3 == 1) std::shuffle(blocks.begin(), blocks.end(), rng);
      if (trial % 3 == 2) {  // an empty block at a block's position
        const Block& last = blocks.back();
        blocks.push_back({last.document, last.begin, last.begin, 0});
      }
      const int64_t cap = total / workers + static_cast<int64_t>(rng() % 50) - 10;
      std::vector<Block> indexed = blocks, scanned = blocks;
      const absl::Status got = FitTokenBudget(workers, cap, &indexed);
      const absl::Status want = ScanFitTokenBudget(workers, cap, &scanned);
      ASSERT_EQ(got.ok(), want.ok()) << "W " << workers << ", trial " << trial;
      ASSERT_EQ(indexed, scanned) << "W " << workers << ", trial " << trial;
      cut += indexed.size() > blocks.size();
      failed += !got.ok();
    }
  }
  EXPECT_GT(cut, 0);
  EXPECT_GT(failed, 0);
}

// fcp's run tree: the first slot with the least score in index order, -1 when every score is
// infinite (out), under fills (of more slots and of fewer) and point updates that raise and lower
// scores.
TEST(LeastScoreTreeTest, FindsWhatAScanFinds) {
  LeastScoreTree tree;
  ASSERT_EQ(tree.ArgMin(), -1);
  for (int32_t workers : {1, 2, 7, 64, 300, 1024, 5, 0}) {
    std::mt19937_64 rng(workers + 5);
    std::vector<double> score(workers, HUGE_VAL);
    tree.Fill(workers, [&](int32_t w) { return score[w]; });
    auto scan = [&] {
      int32_t best = -1;
      for (int32_t w = 0; w < workers; ++w) {
        if (score[w] < HUGE_VAL && (best < 0 || score[w] < score[best])) best = w;
      }
      return best;
    };
    auto draw = [&] {  // few values (ties are common), some out, signed zeros
      const uint64_t r = rng() % 10;
      return r == 0 ? HUGE_VAL : r == 1 ? -0.0 : static_cast<double>(r % 5);
    };
    ASSERT_EQ(tree.ArgMin(), -1);
    for (int step = 0; step < 3000; ++step) {
      if (step % 1000 == 500) {
        for (double& s : score) s = draw();
        tree.Fill(workers, [&](int32_t w) { return score[w]; });
      } else if (workers > 0) {
        const int32_t w = static_cast<int32_t>(rng() % workers);
        score[w] = draw();
        tree.Set(w, score[w]);
      }
      ASSERT_EQ(tree.ArgMin(), scan()) << "W " << workers << ", step " << step;
    }
  }
}

// Costs largest first, ties (equal in all but the bits the sort key gives to the index) by
// index: with many documents of one cost (the counting sort over distinct values) and with few
// (one radix sort of every key), and below the counting sort's minimum size.
TEST(ByCostDescendingTest, SortsByCostThenIndex) {
  for (const size_t n : {size_t{0}, size_t{1}, size_t{50}, size_t{1500}, size_t{40000}}) {
    for (const uint64_t values : {uint64_t{3}, uint64_t{400}, uint64_t{1} << 40}) {
      std::mt19937_64 rng(n + values);
      std::vector<double> seconds(n);
      for (double& s : seconds) s = static_cast<double>(rng() % values) * 1e-6;
      if (n > 2) seconds[1] = std::nextafter(seconds[0], 1.0);  // a tie within the dropped bits
      const int index_bits = IndexBits(n);
      auto key = [&](int32_t i) {
        uint64_t bits;
        std::memcpy(&bits, &seconds[i], sizeof bits);
        return ~bits >> index_bits;
      };
      std::vector<int32_t> want(n);
      for (size_t i = 0; i < n; ++i) want[i] = static_cast<int32_t>(i);
      std::stable_sort(want.begin(), want.end(),
                       [&](int32_t a, int32_t b) { return key(a) < key(b); });
      ASSERT_EQ(ByCostDescending(seconds), want) << n << " documents, " << values << " values";
    }
  }
}

// By length when the costs grow with it (many documents of one length, as in real batches), and
// when they do not (costs off the lengths' order, or two lengths of one cost in reverse index
// order): always what the sort by cost gives.
TEST(ByCostDescendingTest, ByLengthIsTheOrderByCost) {
  for (const int mode : {0, 1, 2}) {
    std::mt19937_64 rng(mode);
    std::vector<Document> documents(5000);
    std::vector<double> seconds(documents.size());
    for (size_t d = 0; d < documents.size(); ++d) {
      documents[d].length = 1 + static_cast<int64_t>(rng() % 3000);
      const double length = static_cast<double>(documents[d].length);
      seconds[d] = mode == 1 ? std::fmod(length * 7.0, 3001.0) : length * length * 1e-9;
    }
    if (mode == 2) {  // two lengths that cost the same, the longer one at the higher index
      documents[0].length = 10, documents[1].length = 11;
      seconds[0] = seconds[1] = 5e-7;
    }
    ASSERT_EQ(ByCostDescending(seconds, documents), ByCostDescending(seconds)) << "mode " << mode;
  }
}

// Updates that raise and lower scores, by Set and by Raise (which stops where the least above is
// unchanged): the first worker with the least score, as a scan finds it (whole scores: no low
// bits for the index).
TEST(MinTreeTest, ArgMinIsWhatAScanFinds) {
  for (int32_t workers : {1, 3, 4, 5, 64, 1000}) {
    std::mt19937_64 rng(workers * 3);
    MinTree tree(workers);
    std::vector<double> score(workers, 0);
    for (int step = 0; step < 3000; ++step) {
      const int32_t w = static_cast<int32_t>(rng() % workers);
      score[w] = static_cast<double>(rng() % 6);
      if (step % 2 == 0) {
        tree.Set(w, score[w]);
      } else {
        tree.Raise(w, score[w]);
      }
      const int32_t scan =
          static_cast<int32_t>(std::min_element(score.begin(), score.end()) - score.begin());
      ASSERT_EQ(tree.ArgMin(), scan) << "W " << workers << ", step " << step;
    }
  }
}

// The packers raise a worker's key only when it comes out least (ArgMinDeferred): with scores
// that only grow, the least up-to-date key is the least of them all, so it picks the same worker
// as a tree kept up to date on every change.
TEST(MinTreeTest, RaisingOnlyTheLeastFindsWhatRaisingEveryChangeFinds) {
  for (int32_t workers : {1, 3, 4, 5, 64, 1000}) {
    std::mt19937_64 rng(workers * 7);
    MinTree eager(workers), lazy(workers);
    std::vector<double> score(workers, 0);
    int looks = 0;  // one per ArgMinDeferred, plus one per deferred update made
    for (int step = 0; step < 3000; ++step) {
      const int32_t least = lazy.ArgMinDeferred([&](int32_t i) {
        ++looks;
        return score[i];
      });
      ASSERT_EQ(least, eager.ArgMin()) << "W " << workers << ", step " << step;
      // The least or another worker grows (by whole amounts: ties are common).
      const int32_t w = rng() % 2 == 0 ? least : static_cast<int32_t>(rng() % workers);
      score[w] += static_cast<double>(rng() % 3);
      eager.Raise(w, score[w]);
    }
    if (workers > 1) {
      EXPECT_LT(looks - 3000, 3000) << "W " << workers;  // some updates were never needed
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
