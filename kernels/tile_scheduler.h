// Internal to fcp_kernels: which tiles may run at the same time, and a small parallel-for.
//
// Two tiles conflict when they write overlapping memory (the same o/lse block in the forward, the
// same dq or dk/dv block in the backward). Conflicting tiles must run one after another in list
// order, so the executors run each group of transitively conflicting tiles as one sequential work
// unit per head and spread the units over threads. The order of additions into every output is
// then fixed by the tile list alone, which makes results independent of the thread count.
#ifndef FCP_KERNELS_TILE_SCHEDULER_H_
#define FCP_KERNELS_TILE_SCHEDULER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace fcp {
namespace kernels {
namespace internal {

// Bytes [begin, end) written by tile number `tile`.
struct WriteRange {
  uintptr_t begin = 0;
  uintptr_t end = 0;
  int tile = 0;
};

// The range of `count` elements starting at `p`.
template <typename T>
WriteRange RangeOf(const T* p, int64_t count, int tile) {
  const auto begin = reinterpret_cast<uintptr_t>(p);
  return {begin, begin + static_cast<uintptr_t>(count) * sizeof(T), tile};
}

// Partitions the tiles named in `ranges` into groups such that tiles of different groups write no
// common byte. Each group lists its tiles in increasing number (list order); groups are ordered by
// their first tile. Empty ranges are ignored.
std::vector<std::vector<int>> GroupByOverlap(std::vector<WriteRange> ranges);

// `threads` <= 0 means the hardware concurrency (at least 1).
int ResolveThreads(int threads);

// Calls work(u) once for every unit u in [0, costs.size()), on up to `threads` threads (see
// ResolveThreads); units with larger cost start first. Returns when all units are done. With one
// thread (or one unit) everything runs on the calling thread.
void ParallelFor(const std::vector<double>& costs, int threads,
                 const std::function<void(size_t unit)>& work);

}  // namespace internal
}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_TILE_SCHEDULER_H_
