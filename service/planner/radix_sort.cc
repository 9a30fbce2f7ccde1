#include "service/planner/radix_sort.h"

#include <algorithm>
#include <array>
#include <memory>

namespace fcp {

void RadixSort(std::vector<uint64_t>* keys) {
  const size_t n = keys->size();
  if (n < 2) return;
  // Below a few thousand keys the passes over 2048 counters cost more than a comparison sort
  // (the keys are distinct, so the order is the same).
  if (n < 4096) {
    std::sort(keys->begin(), keys->end());
    return;
  }
  constexpr int kDigitBits = 11;  // 6 passes over 64-bit keys; 2048 counters stay in cache
  constexpr int kDigits = (64 + kDigitBits - 1) / kDigitBits;
  constexpr uint64_t kMask = (uint64_t{1} << kDigitBits) - 1;
  // Every digit's histogram in one pass over the keys.
  std::array<std::array<uint32_t, kMask + 1>, kDigits> count{};
  for (const uint64_t k : *keys) {
    for (int d = 0; d < kDigits; ++d) ++count[d][(k >> (d * kDigitBits)) & kMask];
  }
  std::unique_ptr<uint64_t[]> scratch(new uint64_t[n]);  // uninitialised: fully overwritten
  uint64_t* from = keys->data();
  uint64_t* to = scratch.get();
  for (int d = 0; d < kDigits; ++d) {
    const int shift = d * kDigitBits;
    std::array<uint32_t, kMask + 1>& c = count[d];
    if (c[(from[0] >> shift) & kMask] == n) continue;  // every key has this digit
    uint32_t total = 0;
    for (uint32_t& x : c) {
      const uint32_t here = x;
      x = total;
      total += here;
    }
    for (size_t i = 0; i < n; ++i) to[c[(from[i] >> shift) & kMask]++] = from[i];
    std::swap(from, to);
  }
  if (from != keys->data()) std::copy(from, from + n, keys->data());
}

}  // namespace fcp
