// Step reports and fitted calibrations (proto/fcp/v1/calibration.proto) <-> the closed loop's
// core structs (service/calibration/). Like plan_convert.h, the one conversion, at the edge.
//
// MeasurementFromProto validates as PlanBatch does: a value no step can have is INVALID_ARGUMENT
// naming the field ("tile_shapes[3].q_len: 0: must be >= 1", "forward_seconds: nan: must be
// finite and in [0, 86400]"); a report over `limits` (more tile shapes than a report may carry)
// is RESOURCE_EXHAUSTED. The job id is the caller's to check (the coordinator checks it as it
// checks PlanBatch's).
#ifndef FCP_PROTO_REPORT_CONVERT_H_
#define FCP_PROTO_REPORT_CONVERT_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fcp/v1/calibration.pb.h"
#include "service/calibration/cost_fit.h"
#include "service/planner/batch.h"
#include "service/planner/planner.h"

namespace fcp {

struct ReportLimits {
  int32_t max_workers = 16384;     // as RequestLimits::max_workers
  int32_t max_tile_shapes = 4096;  // distinct tile shapes per report
};

absl::StatusOr<calibration::RankStepMeasurement> MeasurementFromProto(
    const v1::StepReport& report, const ReportLimits& limits = ReportLimits());
void MeasurementToProto(const calibration::RankStepMeasurement& measurement,
                        v1::StepReport* report);

void CalibrationToProto(absl::string_view job_id, const calibration::Calibration& calibration,
                        v1::JobCalibration* proto);

// The calibration a plan is made with, for PlanResponse.calibration.
void PlanCalibrationToProto(const calibration::Calibration& calibration,
                            v1::PlanCalibration* proto);
// Plans `batch` with `options` as the coordinator did under `proto`: nonzero rates replace the
// topology's, the rest replaces options->cost (gemm_tflops when nonzero, transfer_overlap when
// set: a coordinator from before those fields leaves the caller's). InvalidArgument (naming the
// field) for values the planner would reject.
absl::Status ApplyPlanCalibration(const v1::PlanCalibration& proto, Batch* batch,
                                  PlanOptions* options);

}  // namespace fcp

#endif  // FCP_PROTO_REPORT_CONVERT_H_
