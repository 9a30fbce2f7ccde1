// Checks a worker's plan slice before any data moves: the plan is the one this rank expects, and
// every id, rank and size in the slice is in range and consistent, so a corrupted or mismatched
// slice is refused before it can deadlock an exchange or index out of bounds.
#ifndef FCP_WORKER_EXECUTOR_SLICE_CHECK_H_
#define FCP_WORKER_EXECUTOR_SLICE_CHECK_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "service/planner/plan.h"

namespace fcp {

// FailedPrecondition naming the first problem, e.g.
//   "plan id mismatch: the slice is of plan 9c1e..., this rank expects plan 77ab..."
//   "worker 2: tile 5 (q_block 7, kv_block 3): kv_block 3 is neither local nor received by round 1"
// `expected_plan_id` empty: any id. `local_tokens`: the rows of the rank's input buffers.
absl::Status CheckSlice(const Plan& plan, int32_t rank, int32_t world_size,
                        absl::string_view expected_plan_id, int64_t local_tokens);

}  // namespace fcp

#endif  // FCP_WORKER_EXECUTOR_SLICE_CHECK_H_
