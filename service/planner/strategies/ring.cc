// ring: the industry baseline (Megatron-LM / TransformerEngine context parallelism, p2p ring with
// zigzag load balancing). Every document is cut into 2W chunks; rank r holds chunks r and 2W-1-r;
// KV rotates W-1 rounds around the ring of all workers:
//
//   W = 4, one document:  chunk 0 1 2 3 4 5 6 7       round 1: 0→1→2→3→0 (each sends what it
//                         rank  0 1 2 3 3 2 1 0       holds); round 2: relays; round 3: relays.
//
// Short documents are over-sharded (a 300-token document over W=128 is 256 pieces of 1-2 tokens)
// and every rank's KV travels W-1 times: that is what fcp improves on.
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/plan_size.h"
#include "service/planner/planner.h"

namespace fcp {
namespace {

constexpr double kChunksPerMs = 10000;  // measured costing throughput, rounded down

class RingPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "ring"; }
  absl::string_view description() const override {
    return "Megatron/TransformerEngine ring CP: every document zigzag over all W ranks, KV "
           "rotates W-1 rounds (baseline)";
  }
  // auto: tried last (every rank's KV travels W-1 times).
  int auto_order() const override { return 70; }
  // Every rank receives the other ranks' KV: (W-1)/W of the batch's KV per rank on average, at
  // the fastest link (the same again for dK/dV with the backward pass).
  double LowerBoundMs(const PlanContext& ctx) const override {
    const Batch& batch = ctx.batch;
    const Topology& t = batch.topology;
    const double link = std::max(t.intra_node_gbps, t.inter_node_gbps) * 1e9;
    const double others =
        static_cast<double>(batch.TotalTokens()) * (t.num_workers - 1) / t.num_workers;
    const double one_way = others * ctx.cost.kv_bytes_per_token() / link;
    return one_way * (ctx.options.include_backward ? 2 : 1) * 1e3;
  }
  // Its transfers, W (W - 1), and its analytic costing of 2W chunks per document.
  PlanningCost EstimatePlanningCost(const PlanContext& ctx) const override {
    const double chunks = 2.0 * ctx.batch.topology.num_workers * ctx.batch.documents.size();
    return {static_cast<double>(MinimumTransfers(name(), ctx.batch, ctx.options.block_size)),
            chunks / kChunksPerMs};
  }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    Layout layout;
    layout.kind = Layout::Kind::kZigzagRing;
    layout.strategy = "ring";
    const int32_t workers = ctx.batch.topology.num_workers;
    layout.groups.assign(1, std::vector<int32_t>(workers));
    for (int32_t w = 0; w < workers; ++w) layout.groups[0][w] = w;
    layout.doc_group.assign(ctx.batch.documents.size(), 0);
    int64_t longest = 0;
    for (const Document& d : ctx.batch.documents) longest = std::max(longest, d.length);
    layout.block_size = (longest + 2 * workers - 1) / (2 * workers);
    if (const int64_t cap = ctx.batch.topology.max_tokens_per_worker; cap > 0) {
      std::vector<int64_t> tokens(workers, 0);
      for (const Document& d : ctx.batch.documents) {
        for (int64_t c = 0; c < 2 * workers; ++c) {
          const int64_t rank = c < workers ? c : 2 * workers - 1 - c;
          tokens[rank] +=
              ChunkBegin(d.length, 2 * workers, c + 1) - ChunkBegin(d.length, 2 * workers, c);
        }
      }
      for (int32_t w = 0; w < workers; ++w) {
        if (tokens[w] > cap) {
          return absl::FailedPreconditionError(
              absl::StrCat("ring: rank ", w, " would hold ", tokens[w],
                           " tokens, over the token budget of ", cap, " per worker"));
        }
      }
    }
    return layout;
  }
};

}  // namespace

std::unique_ptr<Planner> NewRingPlanner() { return std::make_unique<RingPlanner>(); }

}  // namespace fcp
