// SinglesByRoom (flexdeg_singles.h) against its definition, computed by brute force after every
// update: the least-loaded worker of the buckets above the need's (each bucket's least), or of
// the kPops least loaded of its own bucket the first with room, stopping at one no lighter than
// the best found. Random updates as flexdeg's packing makes them (loads up, room down, workers
// leaving buckets and their tree), with tied loads, at several worker counts.
#include "service/planner/strategies/flexdeg_singles.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "service/planner/radix_sort.h"

namespace fcp {
namespace {

int BucketOf(int64_t free) {
  return free > 0 ? 63 - __builtin_clzll(static_cast<uint64_t>(free)) : -1;
}

// The trees' order: the load's bits with the lowest IndexBits(W) bits replaced by the index.
uint64_t TreeKey(int32_t w, double load, int32_t workers) {
  const uint64_t mask = (uint64_t{1} << IndexBits(static_cast<size_t>(workers))) - 1;
  uint64_t bits;
  std::memcpy(&bits, &load, sizeof bits);
  return (bits & ~mask) | static_cast<uint64_t>(w);
}

int32_t BruteForce(int64_t need, const std::vector<int64_t>& free, const std::vector<double>& load,
                   const std::vector<bool>& single) {
  const int32_t workers = static_cast<int32_t>(free.size());
  const int own = BucketOf(std::max<int64_t>(need, 1));
  std::vector<std::vector<int32_t>> by_bucket(64);
  for (int32_t w = 0; w < workers; ++w) {
    if (single[w] && BucketOf(free[w]) >= 0) by_bucket[BucketOf(free[w])].push_back(w);
  }
  for (std::vector<int32_t>& members : by_bucket) {
    std::sort(members.begin(), members.end(), [&](int32_t a, int32_t b) {
      return TreeKey(a, load[a], workers) < TreeKey(b, load[b], workers);
    });
  }
  int32_t best = -1;
  auto consider = [&](int32_t w) {
    if (best < 0 || load[w] < load[best]) best = w;
  };
  for (int b = own + 1; b < 64; ++b) {
    if (!by_bucket[b].empty()) consider(by_bucket[b][0]);
  }
  const std::vector<int32_t>& mine = by_bucket[own];
  for (size_t i = 0; i < mine.size() && i < SinglesByRoom::kPops; ++i) {
    if (best >= 0 && load[mine[i]] >= load[best]) break;
    if (free[mine[i]] >= need) {
      consider(mine[i]);
      break;
    }
  }
  return best;
}

TEST(SinglesByRoomTest, FindsWhatTheSearchItDescribesFinds) {
  std::mt19937_64 rng(1024);
  for (int32_t workers : {1, 3, 9, 40, 300}) {
    const int64_t cap = 64 + static_cast<int64_t>(rng() % 5000);
    std::vector<int64_t> free(workers, cap);
    std::vector<double> load(workers, 0);
    std::vector<bool> single(workers, false);
    SinglesByRoom singles(workers);
    for (int32_t w = 0; w < workers; ++w) {  // some workers are rings: never in a bucket
      if (rng() % 5 == 0) continue;
      single[w] = true;
      singles.Set(w, free[w], 0);
    }
    int found = 0;
    for (int step = 0; step < 20 * workers + 200; ++step) {
      const int64_t need = 1 + static_cast<int64_t>(rng() % (cap / 2 + 1));
      const int32_t got = singles.LeastWithRoom(need, free, load);
      ASSERT_EQ(got, BruteForce(need, free, load, single))
          << "W " << workers << ", step " << step << ", need " << need;
      found += got >= 0;
      // A document placed on what was found (or on a random single): load up, room down.
      int32_t w = got;
      if (w < 0 || rng() % 4 == 0) w = static_cast<int32_t>(rng() % workers);
      if (!single[w]) continue;
      load[w] += 0.5 * static_cast<double>(1 + rng() % 8);  // (ties among loads)
      free[w] -= std::min<int64_t>(free[w], static_cast<int64_t>(rng() % (need + 1)));
      singles.Set(w, free[w], load[w]);
    }
    EXPECT_GT(found, 0) << "W " << workers;
  }
}

// More members in a bucket than it keeps known (kKept), all at one load: the ones known are the
// least by index; raising the first kPops and leaving the next ones without room makes the
// search reach the last of the known, which must be the next by index, not a later arrival.
TEST(SinglesByRoomTest, KnowsTheLeastLoadedOfABucketLargerThanItKeeps) {
  const int32_t workers = 3 * SinglesByRoom::kKept;
  std::vector<int64_t> free(workers, 1000);
  std::vector<double> load(workers, 0);
  const std::vector<bool> single(workers, true);
  SinglesByRoom singles(workers);
  for (int32_t w = 0; w < workers; ++w) singles.Set(w, free[w], load[w]);
  for (int32_t w = 0; w < SinglesByRoom::kPops; ++w) {
    load[w] = 1;
    singles.Set(w, free[w], load[w]);
  }
  for (int32_t w = SinglesByRoom::kPops; w < SinglesByRoom::kKept - 1; ++w) {
    free[w] = 600;  // (same bucket, 512 to 1023)
    singles.Set(w, free[w], load[w]);
  }
  EXPECT_EQ(singles.LeastWithRoom(900, free, load), SinglesByRoom::kKept - 1);
  EXPECT_EQ(singles.LeastWithRoom(900, free, load), BruteForce(900, free, load, single));
}

}  // namespace
}  // namespace fcp
