// dcp's placement of computation apart from data (DCP places tiles separately from blocks; plan.h
// describes how a plan carries it: Q to the computing worker, partial O/LSE back, dO and dQ in
// the backward). See dcp_placement.cc for the algorithm and where it differs from the paper.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_DCP_PLACEMENT_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_DCP_PLACEMENT_H_

#include "absl/status/status.h"
#include "service/planner/layout.h"
#include "service/planner/planner.h"

namespace fcp {

// `layout`: kDirect, blocks final. Sets layout->placed (tiles moved to their KV block's owner) and
// layout->schedule (its schedule, so the planner does not schedule it again) when a placement
// predicts a lower step under ctx's objective than computing every tile on its q block's owner;
// otherwise leaves layout->placed empty and sets layout->schedule to the unplaced schedule it
// priced. Deterministic. Errors: a schedule's (internal).
absl::Status PlaceComputation(const PlanContext& ctx, Layout* layout);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_DCP_PLACEMENT_H_
