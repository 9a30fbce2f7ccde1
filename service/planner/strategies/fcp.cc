// fcp: block-level packing, the FCP paper's core idea on its own. Documents are cut into blocks;
// blocks of short and long documents are bin-packed together onto the workers on a combined
// compute + token load, refined by local search, and blocks of one document that end up side by
// side on one worker are merged:
//
//   doc A (long, causal): [a0][a1][a2][a3][a4][a5]   cost grows along the document: a5 > a0
//   packing units:        (a0+a5) (a1+a4) (a2+a3)    zigzag pairs: equal cost, and every holder
//   doc B, C, D (short):  [b] [c] [d] ...            of a late block owns an early one to send
//
//   worker 0: (a0+a5) [c] ...   worker 1: (a1+a4) [b] ...   worker 2: (a2+a3) [d] ...
//
//   1. Units: every document in blocks of at most `block_size` tokens (automatic mode: smaller,
//      down to kMinBlock, for a document whose last block alone would outweigh a worker's share);
//      blocks of causal-like documents pair zigzag (block i with n-1-i).
//   2. LPT: units by cost (forward+backward attention time + linear-layer time), largest first,
//      each onto the worker with the lowest max(compute / mean, tokens / token budget); among
//      workers within a small slack of the best, prefer one that already holds the document, then
//      one on its node (fewer, cheaper KV transfers). LPT spreads a long document over as few
//      workers as balance allows (a holder keeps taking its blocks while under the mean load).
//   3. Local search: move or swap units off the most loaded worker (to one of the few coldest)
//      while that lowers its load.
//   4. Neighbouring blocks of one document on one worker merge (larger tiles, same transfers).
//   5. Communication (Schedule): each remote KV block a worker needs is sent once, directly from
//      its owner; rounds by bipartite edge colouring.
//
// What the FCP paper describes (seeds 000/001, as DESIGN.md records them): blocks of short and
// long documents bin-packed together, arbitrary point-to-point KV sends deduplicated per receiver
// (each block sent once to each worker that needs it, not a ring), communication rounds by
// bipartite edge colouring, local-search refinement of the packing. Where this implementation
// differs or adds:
//  - the objective is the whole layer (linear layers by tokens + attention) under a per-worker
//    token budget (issue 23), not attention time alone; `--objective attention` restores that;
//  - the packer is locality-aware: it prefers a worker that already holds the document, then one
//    on its node, within a small slack of the best score;
//  - blocks of causal-like documents pair zigzag, the block size is chosen per batch (finer for a
//    dominant document), and neighbouring blocks merge after packing.
// Earlier versions also tried a "grouped" shape (each long document zigzag over a node-local group
// of its own, short documents whole around it) and kept the faster plan: that is FlashCP's
// structure, not FCP's. It is now the `grouped` strategy (grouped.cc), one of `auto`'s candidates
// beside `flashcp`: combinations of the seed systems belong to `auto`. The unit builder and the
// packer are shared (block_units.h, fcp_packer.h).
#include "service/planner/planner.h"
#include "service/planner/strategies/block_units.h"
#include "service/planner/strategies/plan_memo.h"

namespace fcp {
namespace {

class FcpPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "fcp"; }
  absl::string_view description() const override {
    return "FCP: block-level bin-packing of short and long documents together (locality-aware "
           "LPT on the whole-layer cost), deduplicated point-to-point KV, edge-coloured rounds, "
           "local-search refinement";
  }

  // auto: after per_doc.
  int auto_order() const override { return 20; }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    Layout layout = PackBlocks(ctx, UnitShape::kFine, *SharedDocCosts(ctx));
    layout.strategy = "fcp";
    return layout;
  }
};

}  // namespace

std::unique_ptr<Planner> NewFcpPlanner() { return std::make_unique<FcpPlanner>(); }

}  // namespace fcp
