#include "service/planner/round_scheduler.h"

#include <algorithm>
#include <random>
#include <set>
#include <utility>

#include "gtest/gtest.h"
#include "service/planner/radix_sort.h"

namespace fcp {
namespace {

// Every round is a matching: no worker sends twice or receives twice in one round.
void ExpectMatchings(const std::vector<Edge>& edges, const std::vector<int32_t>& rounds) {
  ASSERT_EQ(rounds.size(), edges.size());
  std::set<std::pair<int32_t, int32_t>> sends, recvs;
  for (size_t i = 0; i < edges.size(); ++i) {
    EXPECT_GE(rounds[i], 1);
    EXPECT_TRUE(sends.insert({edges[i].src, rounds[i]}).second) << "src " << edges[i].src;
    EXPECT_TRUE(recvs.insert({edges[i].dst, rounds[i]}).second) << "dst " << edges[i].dst;
  }
}

int32_t MaxDegree(const std::vector<Edge>& edges, int32_t workers) {
  std::vector<int32_t> out(workers), in(workers);
  int32_t best = 0;
  for (const Edge& e : edges) best = std::max({best, ++out[e.src], ++in[e.dst]});
  return best;
}

TEST(RoundSchedulerTest, EmptyHasNoRounds) { EXPECT_TRUE(ScheduleRounds({}, 4).empty()); }

TEST(RoundSchedulerTest, AllToAllNeedsWMinusOneRounds) {
  const int32_t w = 7;
  std::vector<Edge> edges;
  for (int32_t s = 0; s < w; ++s) {
    for (int32_t d = 0; d < w; ++d) {
      if (s != d) edges.push_back({s, d, 100});
    }
  }
  const std::vector<int32_t> rounds = ScheduleRounds(edges, w);
  ExpectMatchings(edges, rounds);
  EXPECT_EQ(*std::max_element(rounds.begin(), rounds.end()), w - 1);
}

// More than 64 colours: the bitsets of used colours take several words per worker.
TEST(RoundSchedulerTest, AllToAllOfSeventyWorkersNeedsSixtyNineRounds) {
  const int32_t w = 70;
  std::vector<Edge> edges;
  for (int32_t s = 0; s < w; ++s) {
    for (int32_t d = 0; d < w; ++d) {
      if (s != d) edges.push_back({s, d, 100 + (s * 7 + d * 3) % 11});
    }
  }
  const std::vector<int32_t> rounds = ScheduleRounds(edges, w);
  ExpectMatchings(edges, rounds);
  EXPECT_EQ(*std::max_element(rounds.begin(), rounds.end()), w - 1);
}

class RandomGraphTest : public ::testing::TestWithParam<int> {};

TEST_P(RandomGraphTest, UsesExactlyMaxDegreeRounds) {
  std::mt19937_64 rng(GetParam());
  const int32_t workers = 2 + static_cast<int32_t>(rng() % 40);
  std::set<std::pair<int32_t, int32_t>> pairs;
  const int n = static_cast<int>(rng() % (workers * 4));
  for (int i = 0; i < n; ++i) {
    const int32_t s = rng() % workers, d = rng() % workers;
    if (s != d) pairs.insert({s, d});
  }
  std::vector<Edge> edges;
  for (auto [s, d] : pairs) edges.push_back({s, d, static_cast<int64_t>(rng() % 1000)});
  const std::vector<int32_t> rounds = ScheduleRounds(edges, workers);
  ExpectMatchings(edges, rounds);
  if (!edges.empty()) {
    EXPECT_EQ(*std::max_element(rounds.begin(), rounds.end()), MaxDegree(edges, workers));
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, RandomGraphTest, ::testing::Range(0, 40));

TEST(RoundSchedulerTest, HeaviestTransferGoesFirst) {
  const std::vector<Edge> edges = {{0, 1, 10}, {0, 2, 1000}, {0, 3, 50}};
  const std::vector<int32_t> rounds = ScheduleRounds(edges, 4);
  EXPECT_EQ(rounds[1], 1);
}

// RadixSort switches algorithm by size (comparison, 8-bit and 11-bit digits): each must sort.
TEST(RadixSortTest, SortsLikeStdSortAtEverySize) {
  std::mt19937_64 rng(7);
  for (size_t n : {0, 1, 2, 95, 96, 1000, 4095, 4096, 20000}) {
    std::vector<uint64_t> keys(n);
    // Shared high bits (skipped digits) and varying low ones, as in the planner's packed keys.
    for (uint64_t& k : keys) k = (uint64_t{0xC0} << 56) | (rng() >> 20);
    std::vector<uint64_t> expected = keys;
    std::sort(expected.begin(), expected.end());
    RadixSort(&keys);
    EXPECT_EQ(keys, expected) << "n=" << n;
  }
}

}  // namespace
}  // namespace fcp
