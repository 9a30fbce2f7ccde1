// How large a plan a request asks for, known from the batch alone (O(documents)), before planning.
// A small request can ask for a huge plan: one 2M-token causal document over W = 4096 ranks is a
// 10-byte message, but a balanced plan of it passes KV between ~W^2 / 2 rank pairs (16M messages,
// ~1.5 GB and ~10 s of planning). The coordinator refuses such requests (service/limits.h) and
// `auto` skips the strategies whose plans would not fit its time budget.
#ifndef FCP_SERVICE_PLANNER_PLAN_SIZE_H_
#define FCP_SERVICE_PLANNER_PLAN_SIZE_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "service/planner/batch.h"

namespace fcp {

// (worker, worker) KV transfers `strategy` is sure to schedule for `batch`: `ring` passes every
// rank's KV around the ring, W x (W - 1); `per_doc` zigzags each document over
// k = clamp(length / PerDocShardTokens(batch, block_size), 1, W) ranks that all exchange KV,
// k x (k - 1) per document; `whole_doc` under a memory cap cuts a document over the cap into
// k = ceil(length / cap) pieces on k ranks, which exchange KV as in EstimatedBalancedTransfers.
// Otherwise 0. Saturates at INT64_MAX.
int64_t MinimumTransfers(absl::string_view strategy, const Batch& batch, int64_t block_size);

// The tokens per rank that set `per_doc`'s degree, k = clamp(length / shard, 1, W): an explicit
// `block_size`, else two automatic blocks (2 x AutoBlockSize), so that each of a rank's two zigzag
// chunks is about one automatic block, the unit the other strategies place. (Shards of one
// automatic block, chunks of half a block, spread short documents over more ranks than their
// balance needs: per_doc's predicted step was 1-37% longer on the seed batches.)
int64_t PerDocShardTokens(const Batch& batch, int64_t block_size);

// About how many KV transfers a plan that balances compute makes (what `fcp`, `flashcp`, `flexdeg`
// and `dcp` aim for): a document with a share s of the batch's attention work (or of its tokens,
// whichever is larger) spreads over k = ceil(s x W) ranks, and those exchange KV: k (k - 1) pairs
// under a full mask, k (k - 1) / 2 when only earlier tokens are seen (causal, prefix LM), and
// k x min(k - 1, ranks within the window) for a sliding window. An estimate, not a bound: the
// strategies' plans of single large documents come within a factor of two of it
// (plan_size_test), a plan that leaves compute imbalanced may make fewer. Saturates.
int64_t EstimatedBalancedTransfers(const Batch& batch);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_PLAN_SIZE_H_
