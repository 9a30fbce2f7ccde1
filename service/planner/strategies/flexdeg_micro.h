// flexdeg's micro-batched structure (strategies/flexdeg.cc): FlexSP's groups as they differ per
// micro-batch. The long documents get sequence-parallel groups of any size, the short ones
// groups of size 1 on the same GPUs, all in one kDirect layout:
//
//   W = 8; doc A gets 3 workers, B 2, the rest are short (whole):
//   ranks:   0       1       2       3       4    5    6    7
//            A0 A5   A1 A4   A2 A3   B0 B3   B1 B2
//            c  f    d       e  g    h       i    j    k    l m ...
//
// A grouped document of L tokens over k members is cut into 2k zigzag chunks (k for masks other
// than causal and prefix-LM), pinned in pairs (chunk i with 2k − 1 − i) to member i, the members
// node-local where the group fits a node (PlaceGroups), as block_units' kGrouped does; the middle
// pair of a causal document is one block. Every other document stays whole on the least-loaded
// worker with room under the token cap, ring members included: it does not rotate with a ring,
// so a member's room is the cap minus its share of its group's document. A document that fits no
// worker whole (the cap's room fragmented) is spread, in zigzag pairs, over the fewest of the
// roomiest workers whose room holds their shares.
//
// The candidates' sizes (MicroSizes): the documents costing more than kOver × the mean worker,
// costliest first, each ceil(cost / (kFill × mean)) workers (at least enough for the cap) while
// workers remain, for each fill of kFills; and the exact sizing's choice (flexdeg_sizing.h). Each
// is packed, those whose estimate is within a few percent of the least are scheduled, and the
// lowest predicted step wins (against the ring candidates too).
//
// MicroLowerBoundSeconds: the packing is deterministic, so the bound packs each candidate again
// and reads, per worker, the least compute of what it holds: a whole document is one tile (its
// pairs at its own size's efficiency), a group member's chunks at most the whole document's tiles
// (smaller tiles are no more efficient), tile overheads left out, plus the linear layers of its
// tokens. A worker computes the tiles of the q blocks it holds (kDirect, no placement), so its
// forward + backward, and the step, is at least that; the least over the candidates bounds any
// micro-batched plan flexdeg makes. (The relay of flexdeg_bound.h is a ring's: a kDirect member
// receives its peers' KV in parallel within a round.) A packing stops once a worker's least
// compute reaches the least so far (it only grows), or once the documents left cannot all be
// placed without one reaching it (the fluid checks, once the groups are placed, then every
// max(64, W / 2) documents): they hold R seconds of least compute at most ρ per token (ρ: the
// densest of them, each query against its whole document), a worker w with room f_w and least
// compute c_w so far takes at most min(f_w·ρ, level − c_w) of it below the level, so Σ_w that < R
// means some worker ends above; and their T tokens each carry at least λ seconds (its linear
// layers), so w holds at most min(f_w, (level − c_w) / λ) of them below the level, and Σ_w that
// < T means the same (the tokens' check: no documents' costs needed, so they are computed only
// for a packing that passes it). At wikipedia W = 1024 (33.5k documents, six candidates; the
// bound 113.8 ms against the plan's 116.1, auto's incumbent 105.9) the tokens' check stops every
// packing once its groups are placed: the groups' members, loaded with their long documents'
// attention, have time for few more tokens, and the other workers room for no more than the cap.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_FLEXDEG_MICRO_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_FLEXDEG_MICRO_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "service/planner/layout.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/flexdeg_sizing.h"

namespace fcp {

// The group sizes tried (sizes[i]: that of sizing.docs()[i], >= 2 a group), distinct; `exact`:
// sizing.Exact().
std::vector<std::vector<int32_t>> MicroSizes(const PlanContext& ctx, const GroupSizing& sizing,
                                             const std::optional<GroupSizing::Solution>& exact);
// The same candidates, their rings alone (O(rings) each, not O(documents)).
std::vector<SizingRings> MicroRings(const PlanContext& ctx, const GroupSizing& sizing,
                                    const std::optional<GroupSizing::Solution>& exact);

// The kDirect layout of `sizes` as above (strategy "flexdeg"), not scheduled, and its estimate
// (the most loaded worker by the documents' costs, a grouped document's attention priced at its
// chunks' tile size); an error when a document fits no worker under the cap or the groups need
// more workers than there are. With `bound` (and `whole`: MicroWholeSeconds(ctx)), also this
// layout's own lower bound in seconds: the most least compute of a worker, as below.
absl::StatusOr<Layout> MicroBatchedLayout(const PlanContext& ctx, const GroupSizing& sizing,
                                          const std::vector<int32_t>& sizes, double* estimate,
                                          const std::vector<double>* whole = nullptr,
                                          double* bound = nullptr);

// Every document's least compute whole, in seconds (forward + backward per ctx.options): one
// tile of its pairs, and its linear layers.
std::vector<double> MicroWholeSeconds(const PlanContext& ctx);

// The least step in seconds of MicroBatchedLayout(ctx, sizing, sizes) over every `sizes` of
// MicroSizes, as above (forward + backward, or forward per ctx.options.include_backward), or
// `above` when that is lower (the packings stop there: the caller's other bound).
double MicroLowerBoundSeconds(const PlanContext& ctx, const GroupSizing& sizing,
                              const std::optional<GroupSizing::Solution>& exact, double above);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_FLEXDEG_MICRO_H_
