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
#include "fcp/v1/plan.pb.h"
#include "fcp/v1/planner.pb.h"
#include "service/cached_plan.h"
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
  // Plans on the pool and ends the flight of `plan_id` with the result.
  void StartPlanning(std::string plan_id, std::shared_ptr<const Prepared> prepared);

  const PlanningServiceOptions options_;
  CoordinatorMetrics* const metrics_;
  PlanCache cache_;
  SingleFlight<FlightResult> flights_;
  std::atomic<int64_t> plannings_{0};
  ThreadPool pool_;  // last: destroyed first, while what its tasks use still exists
};

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNING_SERVICE_H_
