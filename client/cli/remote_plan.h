// `fcp plan --coordinator ADDR`: planning through fcp-coordinator instead of in-process. Same
// inputs, same core, same plan: the CLI's reports, validation and --dump-plan work unchanged on
// what the service returns.
//
//   ASSIGN_OR_RETURN(fcp::cli::PlanFunction plan, fcp::cli::CoordinatorPlanFunction("host:50051"));
//   absl::StatusOr<fcp::Plan> p = plan(batch, options, fcp::OutputSpec::SummaryOnly(), step);
//
// A summary-only request asks for rank 0's slice (the API has no summary-only mode, and one slice
// is small); the CLI's cost calibration cannot be sent (the coordinator plans with its own), so
// --calibration and --coordinator do not combine. No local fallback: if the coordinator cannot
// answer, the error is reported.
#ifndef FCP_CLIENT_CLI_REMOTE_PLAN_H_
#define FCP_CLIENT_CLI_REMOTE_PLAN_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "fcp/client.h"
#include "service/planner/planner.h"

namespace fcp::cli {

// Makes the plan of `batch`; `step` numbers the batch within the run (the request's step).
using PlanFunction = std::function<absl::StatusOr<Plan>(
    const Batch& batch, const PlanOptions& options, const OutputSpec& output, int64_t step)>;

// fcp::MakePlan, in-process.
PlanFunction LocalPlanFunction();

// PlanBatch on the coordinator at `target` (over `tls`), job id "fcp-cli", with `job_token` (a
// token-checking coordinator needs one of job fcp-cli; empty = $FCP_JOB_TOKEN). Thread-compatible.
absl::StatusOr<PlanFunction> CoordinatorPlanFunction(const std::string& target,
                                                     const ClientTlsOptions& tls = {},
                                                     const std::string& job_token = "");

}  // namespace fcp::cli

#endif  // FCP_CLIENT_CLI_REMOTE_PLAN_H_
