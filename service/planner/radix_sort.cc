#include "service/planner/radix_sort.h"

#include <algorithm>
#include <array>
#include <memory>

namespace fcp {
namespace {

constexpr int kMaxPasses = 8;

// The histogram of one digit ((key >> shift) & mask) of the keys. (Restrict: the counters are
// not the keys, so a key is loaded once.)
void Count(const uint64_t* __restrict keys, size_t n, int shift, uint64_t mask,
           uint32_t* __restrict count) {
  for (size_t i = 0; i < n; ++i) ++count[(keys[i] >> shift) & mask];
}

// Moves the keys to their slots by one digit; `next` holds each digit value's next slot.
void Scatter(const uint64_t* __restrict from, size_t n, int shift, uint64_t mask,
             uint32_t* __restrict next, uint64_t* __restrict to) {
  for (size_t i = 0; i < n; ++i) {
    const uint64_t k = from[i];
    to[next[(k >> shift) & mask]++] = k;
  }
}

// LSD radix sort of the bits of the keys above `low` (keys already ascending in those low bits),
// in passes of at most kMaxDigitBits bits: each pass a histogram walk and a scatter walk. Only the
// span of bits that differ between keys is sorted, in passes of equal width (span 20 with 11-bit
// digits: two passes of 10 bits).
template <int kMaxDigitBits>
void LsdSort(std::vector<uint64_t>* keys, int low) {
  constexpr uint32_t kCounters = uint32_t{1} << kMaxDigitBits;
  const size_t n = keys->size();
  if (low >= 64) return;
  // Bits every key shares (common high bits, for instance) need no pass: find them first.
  uint64_t all_and = ~uint64_t{0}, all_or = 0;
  for (const uint64_t k : *keys) all_and &= k, all_or |= k;
  const uint64_t varying = (all_and ^ all_or) >> low << low;
  if (varying == 0) return;
  const int first = __builtin_ctzll(varying), span = 64 - __builtin_clzll(varying) - first;
  const int passes = (span + kMaxDigitBits - 1) / kMaxDigitBits;
  const int bits = (span + passes - 1) / passes;
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  std::array<std::array<uint32_t, kCounters>, kMaxPasses> count;
  for (int p = 0; p < passes; ++p) std::fill_n(count[p].begin(), mask + 1, 0);
  // (A walk per pass's histogram: a loop of one counter update is cheaper than one walk updating
  // every pass's.)
  for (int p = 0; p < passes; ++p) Count(keys->data(), n, first + p * bits, mask, count[p].data());
  std::unique_ptr<uint64_t[]> scratch(new uint64_t[n]);  // uninitialised: fully overwritten
  uint64_t* from = keys->data();
  uint64_t* to = scratch.get();
  for (int p = 0; p < passes; ++p) {
    uint32_t* c = count[p].data();
    uint32_t total = 0;
    for (uint64_t d = 0; d <= mask; ++d) {
      const uint32_t here = c[d];
      c[d] = total;
      total += here;
    }
    Scatter(from, n, first + p * bits, mask, c, to);
    std::swap(from, to);
  }
  if (from != keys->data()) std::copy(from, from + n, keys->data());
}

void Sort(std::vector<uint64_t>* keys, int low) {
  const size_t n = keys->size();
  if (n < 2) return;
  // Below a hundred keys a comparison sort wins (the keys are distinct: the order is the same).
  if (n < 96) {
    std::sort(keys->begin(), keys->end());
  } else if (n < 4096) {
    LsdSort<8>(keys, low);  // 256 counters per pass: cheap to clear and scan for small sets
  } else {
    LsdSort<11>(keys, low);  // 2048 counters stay in cache
  }
}

}  // namespace

void RadixSort(std::vector<uint64_t>* keys) { Sort(keys, 0); }

void RadixSortAbove(std::vector<uint64_t>* keys, int sorted_low_bits) {
  Sort(keys, sorted_low_bits);
}

}  // namespace fcp
