// CoordinatorMetrics: the closed loop's series (see metrics.h): step reports, predicted vs
// measured step time and the fitted cost model per job.
#include <string>

#include "service/calibration/cost_fit.h"
#include "service/calibration/job_calibrations.h"
#include "service/metrics.h"

namespace fcp {

void CoordinatorMetrics::RecordReport(absl::string_view job_id, absl::StatusCode code,
                                      const calibration::StepAccuracy* accuracy) {
  const std::string job = JobLabel(job_id);
  reports_.Add({{"training_job", job}, {"code", GrpcCodeName(static_cast<int>(code))}}).Increment();
  if (accuracy == nullptr || accuracy->measured_seconds <= 0) return;
  step_seconds_.Add({{"training_job", job}, {"kind", "measured"}}).Set(accuracy->measured_seconds);
  if (accuracy->predicted_seconds <= 0) return;
  step_seconds_.Add({{"training_job", job}, {"kind", "predicted"}})
      .Set(accuracy->predicted_seconds);
  prediction_error_.Add({{"training_job", job}}).Set(accuracy->ErrorRatio());
}

void CoordinatorMetrics::RecordCalibration(absl::string_view job_id,
                                           const calibration::Calibration& c) {
  const std::string job = JobLabel(job_id);
  for (const auto& [name, value] : calibration::FittedValues(c)) {
    calibration_.Add({{"training_job", job}, {"parameter", name}}).Set(value);
  }
}

}  // namespace fcp
