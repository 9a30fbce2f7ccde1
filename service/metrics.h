// CoordinatorMetrics: the coordinator's Prometheus metrics (prometheus-cpp), named by Prometheus
// conventions (base units, `_total` counters) and labelled by `training_job` (never `job` or
// `instance`, which Prometheus itself sets):
//
//   fcp_plan_requests_total{training_job,strategy,code}   PlanBatch requests by requested strategy
//                                                         and gRPC status code ("OK",
//                                                         "InvalidArgument", ... as
//                                                         go-grpc-prometheus)
//   fcp_plan_cache_hits_total{training_job}               answered without planning: from the cache
//                                                         or by waiting for an identical planning
//   fcp_plan_singleflight_waits_total{training_job}       the part of the hits that waited
//   fcp_plan_cache_misses_total{training_job}             requests that planned (= plannings made)
//   fcp_plan_duration_seconds{training_job,strategy}      planning wall time (histogram, from 50
//   µs) fcp_plan_predicted_compute_imbalance{training_job,strategy}   max/mean attention FLOPs
//   fcp_plan_comm_bytes{training_job,strategy}            bytes moved per step (forward + backward)
//   fcp_plan_rounds{training_job,strategy}                communication rounds
//   fcp_plan_cache_bytes, fcp_plan_cache_entries          cache occupancy (gauges)
//   fcp_plan_cache_evictions_total
//   fcp_plannings_in_progress                             plannings queued or running (gauge)
//   fcp_build_info{version,planner_version}               always 1
//   fcp_step_reports_total{training_job,code}             ReportStep calls by gRPC status code
//   fcp_step_seconds{training_job,kind}                   the latest reported step's slowest rank,
//                                                         forward + backward attention: kind =
//                                                         "predicted" (by its plan) or "measured"
//   fcp_plan_prediction_error_ratio{training_job}         |predicted - measured| / measured of it
//   fcp_calibration_value{training_job,parameter}         the job's fitted cost model, by
//                                                         calibration-file key (attention_tflops,
//                                                         transfer_latency_us, ...), as last
//                                                         planned with
//
// The plan-quality histograms are labelled by the strategy that made the plan (what `auto`
// chose), the request counter by the strategy asked for ("unknown" for names the planner does
// not know, so bad input cannot blow up the label set). Job labels are bounded too: the first
// `max_jobs` distinct job ids get their own label value, later ones share "other".
//
// Thread-safe.
#ifndef FCP_SERVICE_METRICS_H_
#define FCP_SERVICE_METRICS_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "service/plan_cache.h"
#include "service/planner/plan.h"

namespace fcp {

namespace calibration {
struct Calibration;
struct StepAccuracy;
}  // namespace calibration

// gRPC status code names as go-grpc-prometheus writes them ("OK", "InvalidArgument", ...).
std::string GrpcCodeName(int code);

// Histogram bucket boundaries of latencies in seconds: 50 µs to 10 s.
const prometheus::Histogram::BucketBoundaries& LatencyBucketsSeconds();

class CoordinatorMetrics {
 public:
  // Adds the metric families to `registry`, which must outlive this object.
  CoordinatorMetrics(prometheus::Registry& registry, int max_jobs);

  CoordinatorMetrics(const CoordinatorMetrics&) = delete;
  CoordinatorMetrics& operator=(const CoordinatorMetrics&) = delete;

  // A finished PlanBatch request.
  void RecordRequest(absl::string_view job_id, absl::string_view requested_strategy,
                     absl::StatusCode code);
  void RecordCacheHit(absl::string_view job_id, bool waited);
  void RecordCacheMiss(absl::string_view job_id);
  // A planning that succeeded, with its wall time.
  void RecordPlan(absl::string_view job_id, const Plan& plan, double seconds);
  void SetCache(const PlanCache::Stats& stats);
  void AddPlanningsInProgress(int delta);
  // A ReportStep call (service/calibration_metrics.cc); `accuracy`: its step's, when accepted.
  void RecordReport(absl::string_view job_id, absl::StatusCode code,
                    const calibration::StepAccuracy* accuracy);
  // The fitted calibration a planning of `job_id` used.
  void RecordCalibration(absl::string_view job_id, const calibration::Calibration& calibration);

 private:
  struct JobSeries {
    std::string label;  // the training_job label value
    prometheus::Counter* hits;
    prometheus::Counter* waits;
    prometheus::Counter* misses;
  };

  JobSeries& Job(absl::string_view job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string JobLabel(absl::string_view job_id);

  const int max_jobs_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& hits_;
  prometheus::Family<prometheus::Counter>& waits_;
  prometheus::Family<prometheus::Counter>& misses_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Histogram>& imbalance_;
  prometheus::Family<prometheus::Histogram>& comm_bytes_;
  prometheus::Family<prometheus::Histogram>& rounds_;
  prometheus::Gauge& cache_bytes_;
  prometheus::Gauge& cache_entries_;
  prometheus::Counter& cache_evictions_;
  prometheus::Gauge& in_progress_;
  prometheus::Family<prometheus::Counter>& reports_;
  prometheus::Family<prometheus::Gauge>& step_seconds_;
  prometheus::Family<prometheus::Gauge>& prediction_error_;
  prometheus::Family<prometheus::Gauge>& calibration_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, JobSeries> jobs_ ABSL_GUARDED_BY(mu_);  // by label
  int64_t evictions_seen_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fcp

#endif  // FCP_SERVICE_METRICS_H_
