// JobGuard: the coordinator's gate for calls that act for a training job (issue 28). It joins
// job credentials (job_auth.h: bearer tokens, client-certificate identities) and per-job quotas
// (job_quota.h) to gRPC, and keeps the audit trail:
//
//   * every refused call writes one structured line to stderr,
//       fcp-coordinator: refused method=fcp.v1.Rendezvous/Get job="llama"
//       peer="ipv4:10.0.0.7:41234" reason=other_job code=PERMISSION_DENIED
//     (the job id C-escaped; the token never appears);
//   * fcp_auth_denied_total{reason}    refusals by DenyReasonName (no_credentials, other_job, ...)
//   * fcp_quota_exceeded_total{quota}  refusals by quota (plan_requests_per_second,
//                                      plans_in_flight, reports_per_second,
//                                      rendezvous_keys_per_job, rendezvous_bytes_per_job)
//     Both label sets are closed, and neither carries a job label: made-up job ids cannot grow
//     them.
//
// The check any new job-scoped call needs is AuthorizeCall(context, method, job_id): "this call
// may act for job J". The PyTorch binding (fcp_torch) needs nothing more than the C++ client's
// job token; a ReportStep handler calls AdmitReport, which authorizes and applies the
// reports_per_second quota.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<fcp::JobGuard> guard, fcp::JobGuard::Create(options,
//   registry)); absl::Status allowed = guard->AuthorizeCall(*context, "fcp.v1.Rendezvous/Set",
//   job_id);
//
// Thread-safe.
#ifndef FCP_SERVICE_JOB_GUARD_H_
#define FCP_SERVICE_JOB_GUARD_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"
#include "service/job_auth.h"
#include "service/job_quota.h"

namespace fcp {

struct JobGuardOptions {
  JobAuthOptions auth;
  JobQuotaOptions quotas;
};

// The credentials a gRPC call shows: its `authorization` metadata and, when its peer was
// authenticated by a client certificate, the certificate's URI and DNS SANs.
CallCredentials CredentialsOf(const grpc::ServerContextBase& context);

class JobGuard {
 public:
  // Reads the credential files (INVALID_ARGUMENT naming the file and line) and adds the metric
  // families to `registry`, which must outlive the guard.
  static absl::StatusOr<std::unique_ptr<JobGuard>> Create(const JobGuardOptions& options,
                                                          prometheus::Registry& registry);

  // OK if the call may act for `job_id` (always, without credential files); else the refusal,
  // logged and counted.
  absl::Status AuthorizeCall(const grpc::ServerContextBase& context, absl::string_view method,
                             absl::string_view job_id);
  // AuthorizeCall, then the job's plan_requests_per_second and plans_in_flight quotas; the ticket
  // counts the request in flight until destroyed.
  absl::StatusOr<JobQuotas::Ticket> AdmitPlanBatch(const grpc::ServerContextBase& context,
                                                   absl::string_view job_id);
  // AuthorizeCall, then reports_per_second: the slot a ReportStep handler calls.
  absl::Status AdmitReport(const grpc::ServerContextBase& context, absl::string_view job_id);
  // `status` as is; if it is a quota refusal (QuotaName, e.g. from the rendezvous store), logged
  // and counted first.
  absl::Status Checked(const grpc::ServerContextBase& context, absl::string_view method,
                       absl::string_view job_id, absl::Status status);

  // Re-reads the credential files (SIGHUP); on error the old credentials stay.
  absl::Status Reload() { return authorizer_->Reload(); }
  const JobAuthorizer& authorizer() const { return *authorizer_; }
  JobQuotas& quotas() { return quotas_; }

 private:
  JobGuard(std::unique_ptr<JobAuthorizer> authorizer, const JobQuotaOptions& quotas,
           prometheus::Registry& registry);
  void Refused(const grpc::ServerContextBase& context, absl::string_view method,
               absl::string_view job_id, absl::string_view reason, const absl::Status& status);

  std::unique_ptr<JobAuthorizer> authorizer_;
  JobQuotas quotas_;
  prometheus::Family<prometheus::Counter>& denied_;
  prometheus::Family<prometheus::Counter>& quota_exceeded_;
};

}  // namespace fcp

#endif  // FCP_SERVICE_JOB_GUARD_H_
