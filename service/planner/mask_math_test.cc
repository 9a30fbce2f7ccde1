#include "service/planner/mask_math.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "service/planner/batch.h"

namespace fcp {
namespace {

// The mask definitions of DESIGN §1, one pair at a time.
bool Allowed(const Mask& mask, int64_t i, int64_t j) {
  switch (mask.kind) {
    case MaskKind::kCausal:
      return j <= i;
    case MaskKind::kFull:
      return true;
    case MaskKind::kSlidingWindow:
      return 0 <= i - j && i - j < mask.window;
    case MaskKind::kPrefixLm:
      return j < mask.prefix || j <= i;
  }
  return false;
}

int64_t BruteAllowedPairs(const Mask& mask, int64_t q_begin, int64_t q_end, int64_t k_begin,
                          int64_t k_end) {
  int64_t pairs = 0;
  for (int64_t i = q_begin; i < q_end; ++i) {
    for (int64_t j = k_begin; j < k_end; ++j) pairs += Allowed(mask, i, j) ? 1 : 0;
  }
  return pairs;
}

int64_t BruteBandPairs(int64_t q_begin, int64_t q_end, int64_t k_begin, int64_t k_end, int64_t lo,
                       int64_t hi) {
  int64_t pairs = 0;
  for (int64_t i = q_begin; i < q_end; ++i) {
    for (int64_t j = k_begin; j < k_end; ++j) pairs += (j >= i + lo && j < i + hi) ? 1 : 0;
  }
  return pairs;
}

// A random mask of `kind`: windows in 1..80, prefixes in 0..80 (so often past the document end).
Mask RandomMask(MaskKind kind, std::mt19937_64& rng) {
  switch (kind) {
    case MaskKind::kSlidingWindow:
      return Mask::SlidingWindow(std::uniform_int_distribution<int64_t>(1, 80)(rng));
    case MaskKind::kPrefixLm:
      return Mask::PrefixLm(std::uniform_int_distribution<int64_t>(0, 80)(rng));
    case MaskKind::kFull:
      return Mask::Full();
    case MaskKind::kCausal:
      break;
  }
  return Mask::Causal();
}

// A range [begin, end) inside [0, length], empty about one time in eight.
std::pair<int64_t, int64_t> RandomRange(int64_t length, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> pos(0, length);
  int64_t a = pos(rng);
  int64_t b = pos(rng);
  if (a > b) std::swap(a, b);
  if (std::uniform_int_distribution<int>(0, 7)(rng) == 0) b = a;
  return {a, b};
}

class AllowedPairsTest : public ::testing::TestWithParam<MaskKind> {};

TEST_P(AllowedPairsTest, MatchesBruteForceOnRandomRectangles) {
  std::mt19937_64 rng(20240611 + static_cast<int>(GetParam()));
  std::uniform_int_distribution<int64_t> length_dist(1, 70);
  int empty = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    const int64_t length = length_dist(rng);
    const Mask mask = RandomMask(GetParam(), rng);
    const auto [q_begin, q_end] = RandomRange(length, rng);
    const auto [k_begin, k_end] = RandomRange(length, rng);
    if (q_begin == q_end || k_begin == k_end) ++empty;
    ASSERT_EQ(AllowedPairs(mask, q_begin, q_end, k_begin, k_end),
              BruteAllowedPairs(mask, q_begin, q_end, k_begin, k_end))
        << MaskToString(mask) << " length " << length << " q [" << q_begin << ", " << q_end
        << ") k [" << k_begin << ", " << k_end << ")";
  }
  EXPECT_GT(empty, 100);  // the empty-range case was exercised
}

TEST_P(AllowedPairsTest, WholeDocumentsMatchBruteForce) {
  std::mt19937_64 rng(7 + static_cast<int>(GetParam()));
  for (int64_t length = 1; length <= 70; ++length) {
    const Mask mask = RandomMask(GetParam(), rng);
    EXPECT_EQ(AllowedPairs(mask, 0, length, 0, length),
              BruteAllowedPairs(mask, 0, length, 0, length))
        << MaskToString(mask) << " length " << length;
  }
}

TEST_P(AllowedPairsTest, BlocksOfADocumentSumToTheWholeDocument) {
  std::mt19937_64 rng(99 + static_cast<int>(GetParam()));
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t length = std::uniform_int_distribution<int64_t>(1, 70)(rng);
    const int64_t block = std::uniform_int_distribution<int64_t>(1, 16)(rng);
    const Mask mask = RandomMask(GetParam(), rng);
    int64_t sum = 0;
    for (int64_t q = 0; q < length; q += block) {
      for (int64_t k = 0; k < length; k += block) {
        sum += AllowedPairs(mask, q, std::min(q + block, length), k, std::min(k + block, length));
      }
    }
    EXPECT_EQ(sum, AllowedPairs(mask, 0, length, 0, length)) << MaskToString(mask);
  }
}

TEST_P(AllowedPairsTest, EmptyAndReversedRangesHaveNoPairs) {
  std::mt19937_64 rng(1);
  const Mask mask = RandomMask(GetParam(), rng);
  EXPECT_EQ(AllowedPairs(mask, 5, 5, 0, 10), 0);
  EXPECT_EQ(AllowedPairs(mask, 0, 10, 7, 7), 0);
  EXPECT_EQ(AllowedPairs(mask, 8, 3, 0, 10), 0);
  EXPECT_EQ(AllowedPairs(mask, 0, 10, 9, 2), 0);
  EXPECT_FALSE(TileRequired(mask, 5, 5, 0, 10));
}

INSTANTIATE_TEST_SUITE_P(AllKinds, AllowedPairsTest,
                         ::testing::Values(MaskKind::kCausal, MaskKind::kFull,
                                           MaskKind::kSlidingWindow, MaskKind::kPrefixLm),
                         [](const ::testing::TestParamInfo<MaskKind>& info) {
                           std::string name(MaskKindName(info.param));
                           name.erase(std::remove(name.begin(), name.end(), '_'), name.end());
                           return name;
                         });

TEST(AllowedPairsTest, ClosedFormsOnLongDocuments) {
  const int64_t n = 1823777;  // the longest wikipedia document
  EXPECT_EQ(AllowedPairs(Mask::Causal(), 0, n, 0, n), n * (n + 1) / 2);
  EXPECT_EQ(AllowedPairs(Mask::Full(), 0, n, 0, n), n * n);
  const int64_t w = 4096;
  EXPECT_EQ(AllowedPairs(Mask::SlidingWindow(w), 0, n, 0, n), w * (w + 1) / 2 + (n - w) * w);
  const int64_t p = 1000;
  EXPECT_EQ(AllowedPairs(Mask::PrefixLm(p), 0, n, 0, n), n * (n + 1) / 2 + p * (p - 1) / 2);
}

TEST(AllowedPairsTest, DegenerateParametersReduceToOtherMasks) {
  const int64_t n = 50;
  const int64_t causal = AllowedPairs(Mask::Causal(), 0, n, 0, n);
  EXPECT_EQ(AllowedPairs(Mask::SlidingWindow(n), 0, n, 0, n), causal);
  EXPECT_EQ(AllowedPairs(Mask::SlidingWindow(10 * n), 0, n, 0, n), causal);
  EXPECT_EQ(AllowedPairs(Mask::SlidingWindow(1), 0, n, 0, n), n);  // only the diagonal
  EXPECT_EQ(AllowedPairs(Mask::PrefixLm(0), 0, n, 0, n), causal);
  EXPECT_EQ(AllowedPairs(Mask::PrefixLm(1), 0, n, 0, n), causal);
  EXPECT_EQ(AllowedPairs(Mask::PrefixLm(n), 0, n, 0, n), n * n);
  EXPECT_EQ(AllowedPairs(Mask::PrefixLm(n + 30), 0, n, 0, n), n * n);
}

TEST(BandPairsTest, MatchesBruteForceOnRandomBands) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> pos(-40, 40);
  std::uniform_int_distribution<int64_t> offset(-60, 60);
  std::uniform_int_distribution<int> unbounded(0, 5);
  for (int trial = 0; trial < 5000; ++trial) {
    int64_t q_begin = pos(rng), q_end = pos(rng), k_begin = pos(rng), k_end = pos(rng);
    if (q_begin > q_end) std::swap(q_begin, q_end);
    if (k_begin > k_end) std::swap(k_begin, k_end);
    int64_t lo = offset(rng), hi = offset(rng);
    if (unbounded(rng) == 0) lo = -kUnbounded;
    if (unbounded(rng) == 0) hi = kUnbounded;
    ASSERT_EQ(BandPairs(q_begin, q_end, k_begin, k_end, lo, hi),
              BruteBandPairs(q_begin, q_end, k_begin, k_end, lo, hi))
        << "q [" << q_begin << ", " << q_end << ") k [" << k_begin << ", " << k_end << ") band ["
        << lo << ", " << hi << ")";
  }
}

TEST(BandPairsTest, EdgeCases) {
  // Empty or inverted band.
  EXPECT_EQ(BandPairs(0, 10, 0, 10, 3, 3), 0);
  EXPECT_EQ(BandPairs(0, 10, 0, 10, 4, -4), 0);
  // Empty rectangles.
  EXPECT_EQ(BandPairs(4, 4, 0, 10, -kUnbounded, kUnbounded), 0);
  EXPECT_EQ(BandPairs(0, 10, 6, 6, -kUnbounded, kUnbounded), 0);
  // Unbounded on both sides: the whole rectangle.
  EXPECT_EQ(BandPairs(3, 10, 2, 7, -kUnbounded, kUnbounded), 7 * 5);
  // Main diagonal only: j == i.
  EXPECT_EQ(BandPairs(0, 10, 0, 10, 0, 1), 10);
  EXPECT_EQ(BandPairs(0, 10, 5, 20, 0, 1), 5);
  // A band entirely outside the rectangle.
  EXPECT_EQ(BandPairs(0, 10, 0, 10, 10, kUnbounded), 0);
  EXPECT_EQ(BandPairs(0, 10, 0, 10, -kUnbounded, -9), 0);
  // Just touching the corner: (i=9, j=0) has j - i = -9.
  EXPECT_EQ(BandPairs(0, 10, 0, 10, -kUnbounded, -8), 1);
  // Strictly upper triangle of a 10x10 square.
  EXPECT_EQ(BandPairs(0, 10, 0, 10, 1, kUnbounded), 45);
  // Large coordinates do not overflow.
  const int64_t n = int64_t{1} << 24;
  EXPECT_EQ(BandPairs(0, n, 0, n, -kUnbounded, 1), n * (n + 1) / 2);
  EXPECT_EQ(BandPairs(n, 2 * n, n, 2 * n, -kUnbounded, 1), n * (n + 1) / 2);
}

TEST(TileRequiredTest, FollowsTheMask) {
  // Causal, blocks of 4: a tile above the diagonal is empty, on or below it is required.
  EXPECT_TRUE(TileRequired(Mask::Causal(), 0, 4, 0, 4));
  EXPECT_TRUE(TileRequired(Mask::Causal(), 4, 8, 0, 4));
  EXPECT_FALSE(TileRequired(Mask::Causal(), 0, 4, 4, 8));
  // Query 3 and key 3 touch: one pair.
  EXPECT_TRUE(TileRequired(Mask::Causal(), 3, 4, 3, 8));
  EXPECT_FALSE(TileRequired(Mask::Causal(), 0, 3, 3, 8));
  // Sliding window 4: keys 0..3 are out of reach of queries from 8 on (8 - 3 >= 4).
  EXPECT_FALSE(TileRequired(Mask::SlidingWindow(4), 8, 12, 0, 4));
  EXPECT_TRUE(TileRequired(Mask::SlidingWindow(4), 4, 8, 0, 4));
  EXPECT_FALSE(TileRequired(Mask::SlidingWindow(5), 8, 12, 0, 4));  // 8 - 3 = 5, not < 5
  EXPECT_TRUE(TileRequired(Mask::SlidingWindow(6), 8, 12, 0, 4));   // query 8, key 3
  // Prefix 6: queries 0..3 see keys 4, 5 (in the prefix), not 6, 7.
  EXPECT_TRUE(TileRequired(Mask::PrefixLm(6), 0, 4, 4, 8));
  EXPECT_FALSE(TileRequired(Mask::PrefixLm(6), 0, 4, 6, 8));
  EXPECT_FALSE(TileRequired(Mask::PrefixLm(4), 0, 4, 4, 8));
  // Full: every non-empty tile.
  EXPECT_TRUE(TileRequired(Mask::Full(), 0, 4, 60, 64));
  EXPECT_FALSE(TileRequired(Mask::Full(), 0, 4, 60, 60));
}

TEST(TileRequiredTest, AgreesWithAllowedPairs) {
  std::mt19937_64 rng(5);
  for (MaskKind kind :
       {MaskKind::kCausal, MaskKind::kFull, MaskKind::kSlidingWindow, MaskKind::kPrefixLm}) {
    for (int trial = 0; trial < 1000; ++trial) {
      const int64_t length = std::uniform_int_distribution<int64_t>(1, 70)(rng);
      const Mask mask = RandomMask(kind, rng);
      const auto [q_begin, q_end] = RandomRange(length, rng);
      const auto [k_begin, k_end] = RandomRange(length, rng);
      EXPECT_EQ(TileRequired(mask, q_begin, q_end, k_begin, k_end),
                BruteAllowedPairs(mask, q_begin, q_end, k_begin, k_end) > 0);
    }
  }
}

TEST(ForwardFlopsTest, FollowsTheFieldConvention) {
  ModelShape model;
  model.num_q_heads = 32;
  model.head_dim = 128;
  EXPECT_DOUBLE_EQ(ForwardFlops(model, 1000), 4.0 * 128 * 32 * 1000);
  EXPECT_DOUBLE_EQ(ForwardFlops(model, 0), 0);
  EXPECT_DOUBLE_EQ(kBackwardFlopsRatio, 2.5);
}

}  // namespace
}  // namespace fcp
