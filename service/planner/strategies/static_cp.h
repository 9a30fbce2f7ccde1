// static_cp's packing for a CP size c, shared with bench/dynamic_cp (Megatron-style dynamic CP:
// the same packing at every c dividing W). The strategy itself is registered from static_cp.cc.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_STATIC_CP_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_STATIC_CP_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/planner/batch.h"
#include "service/planner/layout.h"

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

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_STATIC_CP_H_
