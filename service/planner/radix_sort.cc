#include "service/planner/radix_sort.h"

#include <algorithm>

namespace fcp {

void RadixSort(std::vector<uint64_t>* keys) {
  if (keys->empty()) return;
  constexpr int kDigitBits = 8;
  constexpr size_t kBuckets = size_t{1} << kDigitBits;
  std::vector<uint64_t> scratch(keys->size());
  std::vector<uint32_t> count(kBuckets);
  for (int shift = 0; shift < 64; shift += kDigitBits) {
    std::fill(count.begin(), count.end(), 0);
    for (uint64_t k : *keys) ++count[(k >> shift) & (kBuckets - 1)];
    if (count[((*keys)[0] >> shift) & (kBuckets - 1)] == keys->size()) continue;  // one digit
    uint32_t total = 0;
    for (uint32_t& c : count) {
      const uint32_t n = c;
      c = total;
      total += n;
    }
    for (uint64_t k : *keys) scratch[count[(k >> shift) & (kBuckets - 1)]++] = k;
    keys->swap(scratch);
  }
}

}  // namespace fcp
