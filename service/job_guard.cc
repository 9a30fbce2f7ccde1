#include "service/job_guard.h"

#include <cstdio>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "grpc/grpc_security_constants.h"
#include "prometheus/counter.h"

namespace fcp {
namespace {

constexpr size_t kMaxLoggedJobBytes = 256;

}  // namespace

CallCredentials CredentialsOf(const grpc::ServerContextBase& context) {
  CallCredentials call;
  const auto& metadata = context.client_metadata();
  auto authorization = metadata.find("authorization");
  if (authorization != metadata.end()) {
    call.authorization.assign(authorization->second.data(), authorization->second.size());
  }
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const char* property :
         {GRPC_X509_SAN_PROPERTY_NAME, GRPC_PEER_URI_PROPERTY_NAME, GRPC_PEER_DNS_PROPERTY_NAME}) {
      for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
        call.peer_identities.emplace_back(value.data(), value.size());
      }
    }
  }
  return call;
}

absl::StatusOr<std::unique_ptr<JobGuard>> JobGuard::Create(const JobGuardOptions& options,
                                                           prometheus::Registry& registry) {
  RETURN_IF_ERROR(ValidateJobQuotaOptions(options.quotas));
  ASSIGN_OR_RETURN(std::unique_ptr<JobAuthorizer> authorizer, JobAuthorizer::Create(options.auth));
  return std::unique_ptr<JobGuard>(new JobGuard(std::move(authorizer), options.quotas, registry));
}

JobGuard::JobGuard(std::unique_ptr<JobAuthorizer> authorizer, const JobQuotaOptions& quotas,
                   prometheus::Registry& registry)
    : authorizer_(std::move(authorizer)),
      quotas_(quotas),
      denied_(prometheus::BuildCounter()
                  .Name("fcp_auth_denied_total")
                  .Help("Calls refused for their job credentials, by reason (no job label)")
                  .Register(registry)),
      quota_exceeded_(prometheus::BuildCounter()
                          .Name("fcp_quota_exceeded_total")
                          .Help("Calls refused over a per-job quota, by quota (no job label)")
                          .Register(registry)) {}

void JobGuard::Refused(const grpc::ServerContextBase& context, absl::string_view method,
                       absl::string_view job_id, absl::string_view reason,
                       const absl::Status& status) {
  const std::string job = absl::CHexEscape(job_id.substr(0, kMaxLoggedJobBytes));
  const std::string peer = absl::CHexEscape(context.peer());
  std::fprintf(stderr,
               "fcp-coordinator: refused method=%.*s job=\"%s\" peer=\"%s\" reason=%.*s code=%s\n",
               static_cast<int>(method.size()), method.data(), job.c_str(), peer.c_str(),
               static_cast<int>(reason.size()), reason.data(),
               absl::StatusCodeToString(status.code()).c_str());
}

absl::Status JobGuard::AuthorizeCall(const grpc::ServerContextBase& context,
                                     absl::string_view method, absl::string_view job_id) {
  if (!authorizer_->enabled()) return absl::OkStatus();
  AuthDecision decision = authorizer_->Check(job_id, CredentialsOf(context));
  if (decision.status.ok()) return absl::OkStatus();
  const char* reason = DenyReasonName(decision.reason);
  denied_.Add({{"reason", reason}}).Increment();
  Refused(context, method, job_id, reason, decision.status);
  return decision.status;
}

absl::Status JobGuard::Checked(const grpc::ServerContextBase& context, absl::string_view method,
                               absl::string_view job_id, absl::Status status) {
  const std::optional<std::string> quota = QuotaName(status);
  if (quota.has_value()) {
    quota_exceeded_.Add({{"quota", *quota}}).Increment();
    Refused(context, method, job_id, absl::StrCat("quota:", *quota), status);
  }
  return status;
}

absl::StatusOr<JobQuotas::Ticket> JobGuard::AdmitPlanBatch(const grpc::ServerContextBase& context,
                                                           absl::string_view job_id) {
  constexpr absl::string_view kMethod = "fcp.v1.Planner/PlanBatch";
  RETURN_IF_ERROR(AuthorizeCall(context, kMethod, job_id));
  absl::StatusOr<JobQuotas::Ticket> ticket = quotas_.AdmitPlanRequest(job_id);
  if (!ticket.ok()) return Checked(context, kMethod, job_id, ticket.status());
  return ticket;
}

absl::Status JobGuard::AdmitReport(const grpc::ServerContextBase& context,
                                   absl::string_view job_id) {
  constexpr absl::string_view kMethod = "fcp.v1.Planner/ReportStep";
  RETURN_IF_ERROR(AuthorizeCall(context, kMethod, job_id));
  return Checked(context, kMethod, job_id, quotas_.AdmitReport(job_id));
}

}  // namespace fcp
