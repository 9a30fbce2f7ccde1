// What a rank's report says about the plan it ran: its forward tiles grouped by shape (with their
// FLOPs), its transfers and their bytes by link, and the plan's prediction for it. The executor's
// clocks fill in the rest (forward/backward wall time, wait). Used by fcp-worker and by the C
// API's fcp_client_report_step, so both report the same figures for the same plan.
#ifndef FCP_SERVICE_CALIBRATION_PLAN_MEASUREMENT_H_
#define FCP_SERVICE_CALIBRATION_PLAN_MEASUREMENT_H_

#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "service/calibration/cost_fit.h"
#include "service/planner/batch.h"
#include "service/planner/cost_model.h"
#include "service/planner/plan.h"

namespace fcp::calibration {

// `rank`'s measurement skeleton for `step` of `plan` (which must hold the rank's slice and the
// blocks), planned under `cost` (the batch's model and topology, the cost params and objective
// it was planned with); the times are left 0 for the caller. FailedPrecondition when the plan has
// no slice for `rank` or no blocks.
absl::StatusOr<RankStepMeasurement> MeasurementOfPlan(const Plan& plan, const CostModel& cost,
                                                      int32_t rank, int64_t step);

// The attention pipeline's predicted forward and backward seconds of a worker: its
// WorkerCost.attention_*_ms (the linear layers priced at the rate the plan was made with, which a
// job's calibration may have fitted), or, from a coordinator that does not send them, its
// whole-layer times less its linear layers as `cost` prices them.
std::pair<double, double> AttentionSeconds(const WorkerCost& worker, const CostModel& cost);

// The plan's predicted attention step: the slowest worker's forward plus the slowest backward.
double AttentionStepSeconds(const Plan& plan, const CostModel& cost);

}  // namespace fcp::calibration

#endif  // FCP_SERVICE_CALIBRATION_PLAN_MEASUREMENT_H_
