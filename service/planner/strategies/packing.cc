#include "service/planner/strategies/packing.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "service/planner/mask_math.h"

namespace fcp {

double QueryRangeSeconds(const CostModel& cost, const Document& doc, int64_t q_begin, int64_t q_end,
                         const std::vector<int64_t>& kv_bounds) {
  double seconds = 0;
  for (size_t i = 0; i + 1 < kv_bounds.size(); ++i) {
    const int64_t pairs = AllowedPairs(doc.mask, q_begin, q_end, kv_bounds[i], kv_bounds[i + 1]);
    if (pairs > 0) {
      const double fwd =
          cost.TileForwardSeconds(q_end - q_begin, kv_bounds[i + 1] - kv_bounds[i], pairs);
      seconds += fwd + cost.BackwardFromForward(fwd);
    }
  }
  return seconds;
}

int64_t TokenCap(const Topology& topology) {
  return topology.max_tokens_per_worker > 0 ? topology.max_tokens_per_worker
                                            : std::numeric_limits<int64_t>::max();
}

int64_t RequestedBlockSize(const PlanContext& ctx) {
  return ctx.options.block_size > 0 ? ctx.options.block_size : AutoBlockSize(ctx.batch);
}

MinTree::MinTree(int32_t size) : leaves_(1) {
  while (leaves_ < size) leaves_ *= 2;
  score_.assign(leaves_, std::numeric_limits<double>::infinity());
  for (int32_t i = 0; i < size; ++i) score_[i] = 0;
  node_.assign(2 * leaves_, 0);
  for (int32_t i = 0; i < leaves_; ++i) node_[leaves_ + i] = i;
  for (int32_t n = leaves_ - 1; n >= 1; --n) node_[n] = Better(node_[2 * n], node_[2 * n + 1]);
}

void RadixSort(std::vector<uint64_t>* keys) {
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

void SortByPosition(std::vector<Block>* blocks) {
  std::sort(blocks->begin(), blocks->end(), [](const Block& a, const Block& b) {
    return a.document != b.document ? a.document < b.document : a.begin < b.begin;
  });
}

std::vector<double> DocumentSeconds(const PlanContext& ctx, double* total) {
  const std::vector<Document>& documents = ctx.batch.documents;
  std::vector<double> seconds(documents.size());
  *total = 0;
  for (size_t d = 0; d < documents.size(); ++d) {
    const Document& doc = documents[d];
    seconds[d] = QueryRangeSeconds(ctx.cost, doc, 0, doc.length, {0, doc.length}) +
                 3 * ctx.cost.TokenSeconds(doc.length);  // + linear layers, fwd + bwd
    *total += seconds[d];
  }
  return seconds;
}

std::vector<int32_t> ByCostDescending(const std::vector<double>& seconds) {
  int index_bits = 1;
  while ((size_t{1} << index_bits) < seconds.size()) ++index_bits;
  std::vector<uint64_t> keys(seconds.size());
  for (size_t i = 0; i < seconds.size(); ++i) {
    uint64_t bits;
    std::memcpy(&bits, &seconds[i], sizeof bits);
    keys[i] = (~bits >> index_bits << index_bits) | i;
  }
  if (!keys.empty()) RadixSort(&keys);
  std::vector<int32_t> order(keys.size());
  const uint64_t mask = (uint64_t{1} << index_bits) - 1;
  for (size_t i = 0; i < keys.size(); ++i) order[i] = static_cast<int32_t>(keys[i] & mask);
  return order;
}

}  // namespace fcp
