// Helpers shared by the packing strategies (whole_doc, per_doc, fcp): the attention cost of a
// query range against its document, and a least-loaded-worker picker with a token cap.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_PACKING_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_PACKING_H_

#include <cstdint>
#include <vector>

#include "service/planner/cost_model.h"
#include "service/planner/planner.h"

namespace fcp {

// Forward + backward seconds of the queries [q_begin, q_end) of `doc` against every key of the
// document, with keys cut at `kv_bounds` (ascending, [0, ..., length]) for the tile shapes.
double QueryRangeSeconds(const CostModel& cost, const Document& doc, int64_t q_begin, int64_t q_end,
                         const std::vector<int64_t>& kv_bounds);

// Token limit per worker: the memory cap if set, else unlimited.
int64_t TokenCap(const Topology& topology);

// The requested block size, or AutoBlockSize(batch) when the options leave it at 0.
int64_t RequestedBlockSize(const PlanContext& ctx);

// The worker with the lowest score, maintained under point updates in O(log W): a tournament
// tree whose internal nodes hold the index of their subtree's minimum (ties: the lower index).
class MinTree {
 public:
  explicit MinTree(int32_t size);  // every score starts at 0
  void Set(int32_t i, double score) {
    score_[i] = score;
    for (int32_t n = (leaves_ + i) / 2; n >= 1; n /= 2) {
      node_[n] = Better(node_[2 * n], node_[2 * n + 1]);
    }
  }
  int32_t ArgMin() const { return node_[1]; }

 private:
  // Left subtree indices are below right ones, so `a < b` here and ties keep `a`.
  int32_t Better(int32_t a, int32_t b) const { return score_[b] < score_[a] ? b : a; }
  int32_t leaves_;
  std::vector<double> score_;
  std::vector<int32_t> node_;
};

// Sorts integer keys ascending (LSD radix sort, 8-bit digits: no data-dependent branches, which
// matters for the large random key sets of packing).
void RadixSort(std::vector<uint64_t>* keys);

// Sorts blocks by (document, begin), the order a kDirect layout needs.
void SortByPosition(std::vector<Block>* blocks);

// Forward + backward seconds of each whole document (attention plus linear layers), and their sum
// in *total.
std::vector<double> DocumentSeconds(const PlanContext& ctx, double* total);

// Indices by value, largest first, ties by index (one radix sort on keys packing the value's top
// bits above the index; non-negative doubles order like their bit patterns).
std::vector<int32_t> ByCostDescending(const std::vector<double>& seconds);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_PACKING_H_
