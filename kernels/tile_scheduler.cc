#include "kernels/tile_scheduler.h"

#include <algorithm>
#include <atomic>
#include <numeric>
#include <thread>

namespace fcp {
namespace kernels {
namespace internal {
namespace {

// Union-find over tile numbers, path halving.
int Find(std::vector<int>& parent, int x) {
  while (parent[x] != x) x = parent[x] = parent[parent[x]];
  return x;
}

}  // namespace

std::vector<std::vector<int>> GroupByOverlap(std::vector<WriteRange> ranges) {
  ranges.erase(std::remove_if(ranges.begin(), ranges.end(),
                              [](const WriteRange& r) { return r.end <= r.begin; }),
               ranges.end());
  int tiles = 0;
  for (const WriteRange& r : ranges) tiles = std::max(tiles, r.tile + 1);
  std::vector<int> parent(tiles);
  std::iota(parent.begin(), parent.end(), 0);
  // Sweep the ranges by start address: a range that starts before the running end of the current
  // run of overlapping ranges joins that run.
  std::sort(ranges.begin(), ranges.end(),
            [](const WriteRange& a, const WriteRange& b) { return a.begin < b.begin; });
  uintptr_t run_end = 0;
  int run_tile = -1;
  for (const WriteRange& r : ranges) {
    if (run_tile >= 0 && r.begin < run_end) {
      parent[Find(parent, r.tile)] = Find(parent, run_tile);
      run_end = std::max(run_end, r.end);
    } else {
      run_tile = r.tile;
      run_end = r.end;
    }
  }
  std::vector<bool> named(tiles, false);
  for (const WriteRange& r : ranges) named[r.tile] = true;
  std::vector<int> group_of_root(tiles, -1);
  std::vector<std::vector<int>> groups;
  for (int t = 0; t < tiles; ++t) {
    if (!named[t]) continue;
    int& group = group_of_root[Find(parent, t)];
    if (group < 0) {
      group = static_cast<int>(groups.size());
      groups.emplace_back();
    }
    groups[group].push_back(t);
  }
  return groups;
}

int ResolveThreads(int threads) {
  if (threads > 0) return threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

void ParallelFor(const std::vector<double>& costs, int threads,
                 const std::function<void(size_t unit)>& work) {
  std::vector<size_t> order(costs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&costs](size_t a, size_t b) { return costs[a] > costs[b]; });
  const size_t workers = std::min(order.size(), static_cast<size_t>(ResolveThreads(threads)));
  if (workers <= 1) {
    for (size_t unit : order) work(unit);
    return;
  }
  std::atomic<size_t> next{0};
  auto drain = [&] {
    for (size_t i = next++; i < order.size(); i = next++) work(order[i]);
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (size_t w = 1; w < workers; ++w) pool.emplace_back(drain);
  drain();
  for (std::thread& t : pool) t.join();
}

}  // namespace internal
}  // namespace kernels
}  // namespace fcp
