// RadixSort against std::sort on key sets of each size class (comparison sort, 8-bit and 11-bit
// digits), and RadixSortAbove on keys with an index below the sort value.
#include "service/planner/radix_sort.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace fcp {
namespace {

std::vector<uint64_t> RandomKeys(size_t n, uint64_t value_mask, int shift, std::mt19937_64& rng) {
  std::vector<uint64_t> keys(n);
  for (uint64_t& k : keys) k = (rng() & value_mask) << shift;
  return keys;
}

TEST(RadixSortTest, SortsLikeStdSort) {
  std::mt19937_64 rng(7);
  for (const size_t n : {0, 1, 50, 1000, 20000}) {
    // Full 64-bit keys, keys with a narrow span of varying bits high up, and keys with varying
    // bits far apart (common bits between them).
    for (const auto& [mask, shift] :
         std::vector<std::pair<uint64_t, int>>{{~uint64_t{0}, 0}, {0xfffff, 30}, {0x8000f, 12}}) {
      std::vector<uint64_t> keys = RandomKeys(n, mask, shift, rng);
      for (uint64_t& k : keys) k |= uint64_t{1} << 63;  // a bit every key shares
      std::vector<uint64_t> expected = keys;
      std::sort(expected.begin(), expected.end());
      RadixSort(&keys);
      EXPECT_EQ(keys, expected) << n << " keys, mask " << mask << " << " << shift;
    }
  }
}

// Values with many ties (a few distinct byte counts) above the index: the index bits are not
// sorted over, and ties keep the index order.
TEST(RadixSortTest, AboveSortedIndexBitsGivesTheFullOrder) {
  std::mt19937_64 rng(11);
  for (const size_t n : {60, 3000, 17000}) {
    const int index_bits = IndexBits(n);
    for (const uint64_t distinct : {uint64_t{3}, uint64_t{1} << 20}) {
      std::vector<uint64_t> keys(n);
      for (size_t i = 0; i < n; ++i) keys[i] = (rng() % distinct) << index_bits | i;
      std::vector<uint64_t> expected = keys;
      std::sort(expected.begin(), expected.end());
      RadixSortAbove(&keys, index_bits);
      EXPECT_EQ(keys, expected) << n << " keys, " << distinct << " values";
    }
  }
}

}  // namespace
}  // namespace fcp
