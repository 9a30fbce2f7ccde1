// Batches for the strategy tests, skewed like real data: a few long documents carry most of the
// attention work. Seeded, so every run sees the same batches. And what the tests read off plans.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_TEST_BATCHES_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_TEST_BATCHES_H_

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "service/planner/batch.h"
#include "service/planner/plan.h"

namespace fcp {

struct SkewedShape {
  int64_t tokens_per_worker = 8192;
  int long_one_in = 20;     // one document in this many is long
  int64_t long_min = 4096;  // long documents: [long_min, long_min + long_span)
  int64_t long_span = 28000;
  int64_t short_max = 1500;  // short documents: [1, short_max]
};

// Causal documents filling exactly workers × tokens_per_worker tokens; 8 workers per node.
inline Batch SkewedBatch(int32_t workers, uint64_t seed, const SkewedShape& shape = {}) {
  std::mt19937_64 rng(seed);
  Batch batch;
  batch.topology.num_workers = workers;
  int64_t left = workers * shape.tokens_per_worker;
  while (left > 0) {
    const bool long_doc = rng() % shape.long_one_in == 0;
    int64_t length = long_doc ? shape.long_min + static_cast<int64_t>(rng() % shape.long_span)
                              : 1 + static_cast<int64_t>(rng() % shape.short_max);
    length = std::min(length, left);
    batch.documents.push_back({length, Mask::Causal()});
    left -= length;
  }
  return batch;
}

// The workers holding each document's blocks, by document.
inline std::vector<std::set<int32_t>> OwnersByDocument(const Plan& plan) {
  std::vector<std::set<int32_t>> owners(plan.documents.size());
  for (const Block& b : plan.blocks) owners[b.document].insert(b.owner);
  return owners;
}

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_TEST_BATCHES_H_
