#include "service/planner/radix_sort.h"

#include <algorithm>
#include <array>
#include <memory>

namespace fcp {
namespace {

// LSD radix sort with kDigitBits-bit digits: every digit's histogram in one pass over the keys,
// then one scatter pass per digit that is not shared by all keys.
template <int kDigitBits>
void LsdSort(std::vector<uint64_t>* keys) {
  constexpr int kDigits = (64 + kDigitBits - 1) / kDigitBits;
  constexpr uint64_t kMask = (uint64_t{1} << kDigitBits) - 1;
  const size_t n = keys->size();
  std::array<std::array<uint32_t, kMask + 1>, kDigits> count{};
  // Digits every key shares (common high bits, for instance) need no pass: find them first.
  uint64_t all_and = ~uint64_t{0}, all_or = 0;
  for (const uint64_t k : *keys) all_and &= k, all_or |= k;
  const uint64_t varying = all_and ^ all_or;
  bool active[kDigits];
  for (int d = 0; d < kDigits; ++d) active[d] = ((varying >> (d * kDigitBits)) & kMask) != 0;
  for (const uint64_t k : *keys) {
    for (int d = 0; d < kDigits; ++d) ++count[d][(k >> (d * kDigitBits)) & kMask];
  }
  std::unique_ptr<uint64_t[]> scratch(new uint64_t[n]);  // uninitialised: fully overwritten
  uint64_t* from = keys->data();
  uint64_t* to = scratch.get();
  for (int d = 0; d < kDigits; ++d) {
    if (!active[d]) continue;
    const int shift = d * kDigitBits;
    std::array<uint32_t, kMask + 1>& c = count[d];
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

}  // namespace

void RadixSort(std::vector<uint64_t>* keys) {
  const size_t n = keys->size();
  if (n < 2) return;
  // Below a hundred keys a comparison sort wins (the keys are distinct: the order is the same).
  if (n < 96) {
    std::sort(keys->begin(), keys->end());
  } else if (n < 4096) {
    LsdSort<8>(keys);  // 256 counters per digit: cheap to clear and scan for small sets
  } else {
    LsdSort<11>(keys);  // 6 passes over 64-bit keys at most; 2048 counters stay in cache
  }
}

}  // namespace fcp
