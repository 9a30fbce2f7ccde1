// JobCalibrations: the coordinator's per-job memory of measured steps and the cost model fitted
// from them (the closed loop of DESIGN §4). Free of gRPC; the coordinator's ReportStep feeds it
// validated measurements, PlanBatch asks it for the calibration of the step it plans.
//
//   reports of job J ──▶ window of the last `window_steps` steps ──▶ FitCalibration ──▶ plans of J
//
// Determinism: the plan of step t uses the reports of steps (t - lag - window, t - lag] only. A
// worker reports step s before it joins step s's end-of-step exchange, and asks for the plan of
// step s + 2 only after it: with lag = 2 every report the fit of step t may use has arrived before
// any rank asks for step t (fcp-worker prefetches one step ahead). The calibration of (job, t)
// is computed once and pinned: every rank of step t plans with the same one even if a late report
// lands between their requests, and two replicas holding the same reports pin the same values,
// which the plan id hashes (topology rates and CostParams) — same reports, same plan id.
//
// Bounded: at most `max_jobs` jobs (the least recently reported is forgotten), reports of the last
// window + lag steps per job, `max_ranks_per_step` ranks per step (the lowest ranks). The rate of
// reports is the coordinator's per-job reports_per_second quota (job_quota.h,
// --job-reports-per-second), applied before a report gets here. A job's reports only ever change
// that job's calibration.
//
// Thread-safe.
#ifndef FCP_SERVICE_CALIBRATION_JOB_CALIBRATIONS_H_
#define FCP_SERVICE_CALIBRATION_JOB_CALIBRATIONS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/calibration/cost_fit.h"
#include "service/planner/cost_model.h"

namespace fcp::calibration {

struct JobCalibrationOptions {
  CostParams prior;          // what parameters no report informs keep (--cost-params)
  int32_t window_steps = 8;  // steps of reports one fit uses
  int32_t lag_steps = 2;     // the plan of step t uses reports of steps <= t - lag
  int32_t max_jobs = 1024;   // jobs remembered
  // Reports kept per step (the lowest ranks): bounds a fit's observations (and its time, ~ms).
  int32_t max_ranks_per_step = 64;
  FitOptions fit;
};

// How well the plans of one step predicted it: the slowest rank's predicted and measured
// forward + backward seconds over the ranks reported so far.
struct StepAccuracy {
  int64_t step = 0;
  int32_t ranks = 0;
  double predicted_seconds = 0;
  double measured_seconds = 0;
  // |predicted - measured| / measured; 0 while nothing was predicted.
  double ErrorRatio() const;
};

class JobCalibrations {
 public:
  explicit JobCalibrations(JobCalibrationOptions options);

  // Records one rank's measurement of a step of `job`; a second report of the same (step, rank)
  // replaces nothing (retries are harmless). Returns the step's accuracy so far.
  StepAccuracy Report(absl::string_view job, RankStepMeasurement measurement);

  // The calibration to plan `step` of `job` with (pinned, see above); null while the job has too
  // few reports, or none.
  std::shared_ptr<const Calibration> ForStep(absl::string_view job, int64_t step);

  // The fit over the job's latest window of reports, lag ignored (for `fcp calibration`).
  // NotFound for a job without reports, FailedPrecondition with too few.
  absl::StatusOr<Calibration> Latest(absl::string_view job);

  const JobCalibrationOptions& options() const { return options_; }

 private:
  struct Job {
    std::map<std::pair<int64_t, int32_t>, RankStepMeasurement> reports;  // by (step, rank)
    std::map<int64_t, std::shared_ptr<const Calibration>> pinned;        // by planned step
    uint64_t last_used = 0;
  };

  Job& JobFor(absl::string_view job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The reports of steps (last - window, last], by (step, rank).
  std::vector<RankStepMeasurement> Window(const Job& job, int64_t last) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The fit of `window`; null if it is empty or too small.
  std::shared_ptr<const Calibration> Fit(const std::vector<RankStepMeasurement>& window) const;

  const JobCalibrationOptions options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fcp::calibration

#endif  // FCP_SERVICE_CALIBRATION_JOB_CALIBRATIONS_H_
