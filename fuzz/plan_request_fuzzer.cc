// Fuzzes what the coordinator does with the bytes of a PlanBatch request: parse, the service's
// limits, conversion and validation (PlanningService::Prepare's steps, in its order), then plans
// each small request that passes with all ranks materialised and checks the plan with the
// validator (DESIGN §3). A plan that fails validation, or an Internal error from a strategy, is a
// finding (abort). Requests over kMaxWorkers / kMaxTokens / kMaxDocuments are converted and
// validated but not planned, so one execution stays in the milliseconds.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fcp/v1/plan.pb.h"
#include "proto/plan_convert.h"
#include "service/limits.h"
#include "service/planner/batch.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/dcp.h"
#include "service/planner/validator.h"
#include "service/planning_service.h"

namespace {

constexpr int32_t kMaxWorkers = 16;
constexpr int64_t kMaxTokens = 1 << 16;
constexpr size_t kMaxDocuments = 64;

void Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "plan_request_fuzzer: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool dcp_registered = (fcp::RegisterDcpPlanner(), true);  // as fcp-coordinator
  (void)dcp_registered;
  fcp::v1::PlanRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  const fcp::PlanningServiceOptions service;  // the coordinator's default limits and options
  if (!fcp::CheckLimits(request, service.limits).ok()) return 0;
  absl::StatusOr<fcp::Batch> batch = fcp::BatchFromProto(request);
  if (!batch.ok()) return 0;
  absl::StatusOr<fcp::PlanOptions> options =
      fcp::OptionsFromProto(request.options(), service.defaults);
  if (!options.ok()) return 0;
  if (!fcp::ValidateBatch(*batch).ok() || !fcp::ValidateOptions(*options).ok()) return 0;
  if (!fcp::CheckPlanSize(*batch, *options, service.limits).ok()) return 0;
  if (!fcp::OutputSpecFromProto(request, batch->topology.num_workers).ok()) return 0;

  if (batch->topology.num_workers > kMaxWorkers || batch->TotalTokens() > kMaxTokens ||
      batch->documents.size() > kMaxDocuments) {
    return 0;
  }
  options->time_budget_ms = 1;  // `auto` tries only the strategies whose plans fit 1 ms
  absl::StatusOr<fcp::Plan> plan = fcp::MakePlan(*batch, *options);
  if (!plan.ok()) {
    if (plan.status().code() == absl::StatusCode::kInternal) Fail("MakePlan", plan.status());
    return 0;  // e.g. the memory cap cannot be met: a clean refusal
  }
  const absl::Status valid = fcp::ValidatePlan(*batch, *options, *plan);
  if (!valid.ok()) Fail("ValidatePlan", valid);
  fcp::v1::Plan proto;
  fcp::PlanToProto(*plan, &proto);
  const absl::StatusOr<fcp::Plan> back = fcp::PlanFromProto(proto);
  if (!back.ok()) Fail("PlanFromProto(PlanToProto(plan))", back.status());
  return 0;
}
