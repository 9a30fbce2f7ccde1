// Sorting of integer keys for the planner's hot paths (packing order, transfer order).
#ifndef FCP_SERVICE_PLANNER_RADIX_SORT_H_
#define FCP_SERVICE_PLANNER_RADIX_SORT_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fcp {

// Sorts integer keys ascending: LSD radix sort (digits of at most 8 bits below 4096 keys, 11
// above) over the span of bits that differ between keys; no data-dependent branches, which
// matters for random key sets; tiny sets use std::sort. Callers pack a sort value above an index in
// one key, so ties break by index and the order is deterministic.
void RadixSort(std::vector<uint64_t>* keys);

// The same order for keys whose low `sorted_low_bits` bits already ascend in their given order
// (an index packed below the sort value, keys listed by index), sorting only the bits above (a
// stable sort keeps the index order among equal values): 14 fewer bits to pass over for 10^4
// keys.
void RadixSortAbove(std::vector<uint64_t>* keys, int sorted_low_bits);

// Bits needed for indices below `n` (at least 1).
inline int IndexBits(size_t n) {
  int bits = 1;
  while ((size_t{1} << bits) < n) ++bits;
  return bits;
}

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_RADIX_SORT_H_
