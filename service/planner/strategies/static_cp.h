// static_cp's packing for a CP size c, shared with bench/dynamic_cp (Megatron-style dynamic CP:
// the same packing at every c dividing W). The strategy itself is registered from static_cp.cc.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_STATIC_CP_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_STATIC_CP_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/planner/batch.h"
#include "service/planner/layout.h"
#include "service/planner/planner.h"

namespace fcp {

// The tokens per worker a trainer's data loader packs to: the topology's budget, else (attention
// objective: none) the whole-step budget, its share of the tokens with the topology's slack.
int64_t StaticCpBudget(const Batch& batch);

// W/c ring groups of c consecutive ranks; documents by length, largest first, each onto the group
// holding the fewest tokens whose members all have room for their zigzag shares under `budget`
// (else the first group that has room), zigzag over its group's c members. `strategy` names the
// layout and the error: FailedPrecondition naming the first document that fits no group.
absl::StatusOr<Layout> PackStaticCpGroups(const Batch& batch, int32_t c, int64_t budget,
                                          absl::string_view strategy);

// Whether PackStaticCpGroups(batch, c, budget) surely packs (a sufficient condition, O(documents)
// and a sort of the longest few). It fails only if, for some document d (length L, placed after
// the documents no shorter than it, P tokens in all), every group has a member with no room for its
// share of d: held + share > budget. A member holds at most its group's tokens / c plus, per
// document it holds, 2·ceil(L'/2c) − L'/c < (2c − 1)/c tokens (a share is at most two chunks of
// ceil(L'/2c)), and the groups hold P tokens of n < documents documents, so failing needs
//   P + (documents − 1)·(2c − 1) > G·c·(budget − 2·ceil(L/2c))   (G = W / c groups).
// P is at most the tokens of the other documents no shorter than d: all of them for the short ones
// (the condition holds for every d below some length), the longest few summed in order.
bool StaticCpSurelyPacks(const Batch& batch, int32_t c, int64_t budget);

// static_cp's cheap bound in ms (its LowerBoundMs tries it first): the member of the group holding
// the longest document that computes the most of it (QueryRangeLowerBoundSeconds of its two zigzag
// chunks) at the CP size of static_cp's layout. The layout tries the longest document's size, then
// twice it, ... and keeps the first that packs: where one of them StaticCpSurelyPacks, the least
// of that member's bounds up to it; else unknown (0), and 0 too once it is below ctx's incumbent
// (its caller's question). At most LayoutLowerBoundMs of the layout (that member's sum holds both
// chunks' terms); O(documents) per size tried.
double StaticCpLongestDocumentBoundMs(const PlanContext& ctx);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_STATIC_CP_H_
