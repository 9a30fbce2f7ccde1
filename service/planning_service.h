// PlanningService: what the coordinator does for a PlanBatch request, free of gRPC (the gRPC
// service class only decodes, calls this and encodes; see planner_service.h).
//
//   request ──limits──▶ convert + validate ──▶ plan id ──▶ cache? ──hit──▶ reply (the rank's slice)
//                                                            │ miss
//                                                            ▼
//                                  single-flight by plan id: first request plans on the thread
//                                  pool (every slice), later identical ones wait for it ──▶ cache
//
// Every rank of a job sends the same batch and options with its own rank: they share one plan id
// (fcp::ComputePlanId), so W concurrent ranks cause one planning and W replies, each with its
// slice. Requests that leave options 0 take the service's defaults (options.defaults), exactly as
// a client's local fallback must (see OptionsFromProto).
//
// The closed loop (DESIGN §4): ReportStep takes one rank's measurement of a step into the job's
// window (service/calibration/job_calibrations.h); PlanBatch of a job with enough reports plans
// with the cost model fitted from them — its rates replace the request's topology rates and its
// CostParams the service's — pinned per (job, step), so every rank of a step, and every replica
// with the same reports, computes the same plan id. Jobs that never report plan as before.
// Both calls, and GetCalibration, pass AdmitJob first: the one check that a call may act for
// its job.
//
// Errors: RESOURCE_EXHAUSTED over a limit or when the planning queue is full; INVALID_ARGUMENT
// naming the field for bad input; FAILED_PRECONDITION when the batch cannot be planned as asked;
// INTERNAL when the planner fails. Failed plannings are not cached.
//
//   fcp::PlanningService service(options, &metrics);
//   service.PlanBatch(request, [](absl::StatusOr<fcp::PlanReply> reply) {
//     if (reply.ok()) Send(reply->Encode());
//   });
//
// Thread-safe. `done` runs exactly once: in the calling thread when the answer is immediate
// (cache hit, bad input), else in a planning thread. The destructor finishes queued plannings
// (running their callbacks) first.
#ifndef FCP_SERVICE_PLANNING_SERVICE_H_
#define FCP_SERVICE_PLANNING_SERVICE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "fcp/v1/calibration.pb.h"
#include "fcp/v1/plan.pb.h"
#include "fcp/v1/planner.pb.h"
#include "proto/report_convert.h"
#include "service/cached_plan.h"
#include "service/calibration/job_calibrations.h"
#include "service/limits.h"
#include "service/metrics.h"
#include "service/plan_cache.h"
#include "service/planner/planner.h"
#include "service/single_flight.h"
#include "service/thread_pool.h"

namespace fcp {

struct PlanningServiceOptions {
  // Used where a request leaves options.strategy empty / time_budget_ms 0 / include_backward
  // unset; `defaults.cost` is the cost-model calibration of every plan.
  PlanOptions defaults;
  RequestLimits limits;
  size_t cache_bytes = size_t{1} << 30;
  int planning_threads = 2;           // plannings running at once
  size_t max_queued_plannings = 256;  // distinct plannings waiting for a thread
  // Per-job calibration from step reports (its `prior` is ignored: defaults.cost is the prior).
  bool calibrate_from_reports = true;
  calibration::JobCalibrationOptions calibration;
  ReportLimits report_limits;
};

// One answer: a cached plan and which of its slices to send.
struct PlanReply {
  std::shared_ptr<const CachedPlan> plan;
  std::vector<int32_t> ranks;  // ascending, unique; empty = every rank
  bool cache_hit = false;      // answered without planning for this request

  EncodedResponse Encode() const { return plan->EncodeResponse(ranks, cache_hit); }
};

class PlanningService {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<PlanReply>) &&>;

  // `metrics` (not null) must outlive the service.
  PlanningService(PlanningServiceOptions options, CoordinatorMetrics* metrics);
  ~PlanningService();

  PlanningService(const PlanningService&) = delete;
  PlanningService& operator=(const PlanningService&) = delete;

  // Answers `request` through `done` (see the file comment). `request` is not used after return.
  void PlanBatch(const v1::PlanRequest& request, Done done);
  // PlanBatch, waiting for the answer.
  absl::StatusOr<PlanReply> PlanBatchAndWait(const v1::PlanRequest& request);

  // One rank's measurement of a step of report.job_id (validated like PlanBatch: INVALID_ARGUMENT
  // naming the field, RESOURCE_EXHAUSTED over a limit or the job's report rate).
  absl::Status ReportStep(const v1::StepReport& report);
  // The fit over `job_id`'s latest reports. NOT_FOUND: the job has not reported; FAILED_
  // PRECONDITION: too few reports to fit.
  absl::StatusOr<v1::JobCalibration> GetCalibration(const v1::GetCalibrationRequest& request);

  // The registered strategies and the defaults requests get.
  v1::ListStrategiesResponse ListStrategies() const;

  const PlanningServiceOptions& options() const { return options_; }
  PlanCache::Stats cache_stats() const { return cache_.stats(); }
  // Plannings made since construction (successful or not).
  int64_t plannings() const;

 private:
  // What a flight ends with: the plan, and whether this flight planned it (else it came from the
  // cache, found by a leader that raced with an earlier flight's end).
  struct FlightResult {
    absl::StatusOr<std::shared_ptr<const CachedPlan>> plan;
    bool planned = false;
  };
  struct Prepared;  // a converted, validated request

  static absl::StatusOr<Prepared> Prepare(const v1::PlanRequest& request,
                                          const PlanningServiceOptions& options);
  // OK when a call may act for `job_id` (today: a valid job id; per-job tokens and quotas plug in
  // here).
  static absl::Status AdmitJob(absl::string_view job_id);
  // Plans `prepared` with the job's fitted calibration for `step`, when it has one.
  void ApplyJobCalibration(int64_t step, Prepared* prepared);
  // Plans on the pool and ends the flight of `plan_id` with the result.
  void StartPlanning(std::string plan_id, std::shared_ptr<const Prepared> prepared);

  const PlanningServiceOptions options_;
  CoordinatorMetrics* const metrics_;
  PlanCache cache_;
  SingleFlight<FlightResult> flights_;
  std::atomic<int64_t> plannings_{0};
  calibration::JobCalibrations calibrations_;
  ThreadPool pool_;  // last: destroyed first, while what its tasks use still exists
};

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNING_SERVICE_H_
