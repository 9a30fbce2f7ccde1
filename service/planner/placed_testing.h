// For tests: a strategy whose plans compute many tiles away from their q block's owner (placed
// computation, plan.h), so that the validator, the cost model and the executors meet every
// transfer kind on every mask without depending on when dcp's placement pays.
//
// "placed_test" takes fcp's layout and moves, deterministically by block ids, tiles to the KV
// owner (no KV moves for them, Q does), to a third worker (both KV and Q move), or leaves them
// with their q block's owner; tiles on local KV move to the next worker now and then.
#ifndef FCP_SERVICE_PLANNER_PLACED_TESTING_H_
#define FCP_SERVICE_PLANNER_PLACED_TESTING_H_

#include "absl/status/statusor.h"
#include "service/planner/layout.h"
#include "service/planner/planner.h"

namespace fcp {

inline constexpr char kPlacedTestStrategy[] = "placed_test";

// Registers "placed_test" (RegisterStrategy; a no-op after the first call).
void RegisterPlacedTestStrategy();

// Moves tiles of the kDirect `layout` as "placed_test" does (layout.placed replaced; its schedule,
// if any, dropped). `layout.blocks` must be filled.
absl::Status PlaceTilesForTest(const PlanContext& ctx, Layout* layout);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_PLACED_TESTING_H_
