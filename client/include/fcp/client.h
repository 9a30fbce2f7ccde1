// fcp::PlannerClient: what a trainer rank links to get each step's plan from fcp-coordinator.
//
//   fcp::PlannerClientOptions options;
//   options.target = "fcp-coordinator:50051";
//   ASSIGN_OR_RETURN(std::unique_ptr<fcp::PlannerClient> client,
//                    fcp::PlannerClient::Create(options));
//   client->Prefetch(RequestFor(step + 1, my_rank));  // planned while this step trains
//   ...
//   ASSIGN_OR_RETURN(fcp::PlanResult next, client->Get(step + 1));
//   // next.plan: the plan id, blocks, costs, and my rank's slice (next.plan.workers(0)).
//
// C++ callers that hold the planner's own types (fcp-worker) use the core-typed calls instead:
// PlanBatch(BatchRequest), Prefetch(BatchRequest) and GetPlan(step) take an fcp::Batch and return
// an fcp::Plan. Local and fallback plans are then made without any protobuf, the coordinator's
// reply is converted once, and the plan id is computed once (plan.plan_id).
//
// Behaviour:
//  * Deadline: each PlanBatch gets `deadline` for all its attempts together.
//  * Retries: only UNAVAILABLE (coordinator starting, draining, unreachable) is retried, with
//    jittered exponential backoff, up to `max_attempts`.
//  * Local fallback: when the coordinator stays unavailable, runs past the deadline, or refuses
//    for load (RESOURCE_EXHAUSTED), the client plans the batch itself with the same planning core
//    (fcp::MakePlan) and counts it (stats().fallbacks). Plans are deterministic, so the plan and
//    its id are the ones the coordinator would have sent, provided `fallback_defaults` matches the
//    coordinator's --default-strategy, --time-budget-ms and calibration (the defaults of both
//    match out of the box). Training never waits for a dead coordinator for longer than the
//    deadline, and it returns to the coordinator as soon as it is back.
//  * Other errors (INVALID_ARGUMENT naming the bad field, FAILED_PRECONDITION, INTERNAL) are
//    returned: planning locally would fail the same way.
//  * Plan id check (`verify_plan_id`): the client recomputes the id of what it asked for; a
//    coordinator reply with another id (a different planner version or defaults, which would
//    make fallback plans differ from the coordinator's) is a FAILED_PRECONDITION error.
//  * Prefetch(request) starts planning request.step in the background; Get(step) returns it
//    (waiting if needed). Both follow the rules above.
//  * TLS (`tls`): plaintext unless tls.enabled; the PEM files are read and checked by Create.
//    A connection the coordinator refuses at the handshake (it wants TLS, or a client
//    certificate) is UNAVAILABLE, so it falls back like an unreachable coordinator; the message
//    says what the handshake likely needs.
//
// Thread-safe: one client may serve every thread of a process. The destructor waits for
// prefetches in progress.
#ifndef FCP_CLIENT_INCLUDE_FCP_CLIENT_H_
#define FCP_CLIENT_INCLUDE_FCP_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fcp/v1/calibration.pb.h"
#include "fcp/v1/plan.pb.h"
#include "fcp/v1/planner.pb.h"
#include "service/planner/plan.h"
#include "service/planner/planner.h"

namespace fcp {

// TLS towards fcp-coordinator (the `fcp` CLI's and fcp-worker's --tls-ca, --tls-cert, --tls-key).
struct ClientTlsOptions {
  bool enabled = false;   // false: plaintext
  std::string ca_file;    // PEM roots the coordinator's certificate must chain to; empty = system's
  std::string cert_file;  // mutual TLS: PEM certificate chain of this client (with key_file)
  std::string key_file;   // mutual TLS: its PEM private key
};

struct PlannerClientOptions {
  // fcp-coordinator address, "host:port" (any gRPC target); empty = always plan locally.
  std::string target;
  absl::Duration deadline = absl::Seconds(5);  // per PlanBatch, all attempts together
  int max_attempts = 3;                        // attempts on UNAVAILABLE, >= 1
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(1);
  // How long a lost connection waits, at most, before trying to reconnect.
  absl::Duration max_reconnect_backoff = absl::Seconds(2);
  bool local_fallback = true;
  // The coordinator's defaults for requests that leave options 0 (strategy, time budget,
  // cost calibration); used by the fallback planner and the plan id check.
  PlanOptions fallback_defaults;
  bool verify_plan_id = true;
  int max_prefetches = 8;  // prefetches in progress or not yet collected by Get
  ClientTlsOptions tls;
  // Sent as `authorization: Bearer TOKEN` with every call, for a coordinator started with
  // --job-tokens; empty = $FCP_JOB_TOKEN, if set, else none (client/job_token.h).
  std::string job_token;
};

enum class PlanSource {
  kCoordinator,    // from fcp-coordinator
  kLocalFallback,  // planned locally because the coordinator could not answer
  kLocal,          // planned locally: no target configured
};

struct PlanResult {
  v1::Plan plan;           // workers: the requested ranks' slices (every rank if none asked)
  bool cache_hit = false;  // the coordinator answered from its cache / an identical planning
  PlanSource source = PlanSource::kCoordinator;
};

// A plan request in core types (the core-typed calls).
struct BatchRequest {
  std::string job_id;
  int64_t step = 0;
  Batch batch;
  // Sent as fcp.v1.PlanOptions: strategy, block_size, include_backward and time_budget_ms (empty
  // or 0 = the defaults'). Cost calibration and balance_tolerance are not part of a request: the
  // coordinator's apply, and fallback_defaults' locally (fcp::RequestedOptions).
  PlanOptions options;
  std::vector<int32_t> ranks;  // the slices wanted; empty = every rank
};

struct BatchPlanResult {
  Plan plan;  // plan.plan_id: its id; workers: the requested ranks' slices
  bool cache_hit = false;
  PlanSource source = PlanSource::kCoordinator;
};

// Counters since the client was created.
struct PlannerClientStats {
  int64_t requests = 0;       // PlanBatch calls, prefetches included
  int64_t rpcs = 0;           // attempts sent to the coordinator
  int64_t retries = 0;        // attempts after an UNAVAILABLE
  int64_t fallbacks = 0;      // plans made locally because the coordinator could not answer
  int64_t errors = 0;         // requests that returned an error
  int64_t prefetches = 0;     // Prefetch calls accepted
  int64_t prefetch_hits = 0;  // Get calls whose plan was ready without waiting
};

class PlannerClient {
 public:
  // InvalidArgument for bad options. Connecting is lazy: Create succeeds with the coordinator down.
  static absl::StatusOr<std::unique_ptr<PlannerClient>> Create(PlannerClientOptions options);
  virtual ~PlannerClient() = default;

  // The plan of `request` (see the class comment for retries and fallback).
  virtual absl::StatusOr<PlanResult> PlanBatch(const v1::PlanRequest& request) = 0;

  // Starts PlanBatch(request) in the background, to be collected by Get(request.step()).
  // AlreadyExists if that step is already prefetched and not collected; ResourceExhausted beyond
  // max_prefetches.
  virtual absl::Status Prefetch(v1::PlanRequest request) = 0;
  // The prefetched plan of `step`, waiting for it if needed; NotFound if it was not prefetched.
  virtual absl::StatusOr<PlanResult> Get(int64_t step) = 0;

  // The core-typed calls: as PlanBatch, Prefetch and Get above (same deadline, retries, fallback,
  // plan id check and max_prefetches). A step is prefetched once, in either form; GetPlan collects
  // only what Prefetch(BatchRequest) started and Get only what Prefetch(v1::PlanRequest) started
  // (NotFound otherwise).
  virtual absl::StatusOr<BatchPlanResult> PlanBatch(const BatchRequest& request) = 0;
  virtual absl::Status Prefetch(BatchRequest request) = 0;
  virtual absl::StatusOr<BatchPlanResult> GetPlan(int64_t step) = 0;

  // The coordinator's strategies and defaults (no fallback: Unavailable if it is down).
  virtual absl::StatusOr<v1::ListStrategiesResponse> ListStrategies() = 0;

  // The closed loop (fcp/v1/calibration.proto). ReportStep sends one rank's measurement of a step
  // (fcp::calibration::MeasurementOfPlan fills most of it from the plan it ran); the coordinator
  // refits the job's cost model from them. One attempt, no fallback: a lost report only delays
  // the fit. GetCalibration: the job's current fit (NotFound before any report).
  virtual absl::Status ReportStep(const v1::StepReport& report) = 0;
  virtual absl::StatusOr<v1::JobCalibration> GetCalibration(absl::string_view job_id) = 0;

  virtual PlannerClientStats stats() const = 0;
};

}  // namespace fcp

#endif  // FCP_CLIENT_INCLUDE_FCP_CLIENT_H_
