#include "client/cli/remote_plan.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "fcp/client.h"
#include "proto/plan_convert.h"

namespace fcp::cli {

PlanFunction LocalPlanFunction() {
  return [](const Batch& batch, const PlanOptions& options, const OutputSpec& output,
            int64_t /*step*/) { return MakePlan(batch, options, output); };
}

absl::StatusOr<PlanFunction> CoordinatorPlanFunction(const std::string& target,
                                                     const ClientTlsOptions& tls,
                                                     const std::string& job_token) {
  PlannerClientOptions options;
  options.target = target;
  options.tls = tls;
  options.job_token = job_token;
  options.deadline = absl::Seconds(120);  // big plans, slow machines: the CLI can wait
  options.local_fallback = false;
  ASSIGN_OR_RETURN(std::unique_ptr<PlannerClient> created, PlannerClient::Create(options));
  std::shared_ptr<PlannerClient> client = std::move(created);
  return PlanFunction([client, target](const Batch& batch, const PlanOptions& plan_options,
                                       const OutputSpec& output,
                                       int64_t step) -> absl::StatusOr<Plan> {
    v1::PlanRequest request;
    request.set_job_id("fcp-cli");
    request.set_step(step);
    BatchToProto(batch, &request);
    OptionsToProto(plan_options, request.mutable_options());
    if (!output.all_ranks) {
      if (output.ranks.empty()) request.add_ranks(0);  // summary only: the smallest answer
      for (int32_t r : output.ranks) request.add_ranks(r);
    }
    absl::StatusOr<PlanResult> result = client->PlanBatch(request);
    if (!result.ok()) {
      return absl::Status(result.status().code(),
                          absl::StrCat("coordinator ", target, ": ", result.status().message()));
    }
    return PlanFromProto(result->plan);
  });
}

}  // namespace fcp::cli
