// Per-job quotas: what one training job may ask of the coordinator, so that a job at its quota
// never slows another (issue 28). Each job has its own:
//
//   plan_requests_per_second  PlanBatch requests admitted per second (a token bucket holding up
//                             to plan_request_burst; --job-plan-requests-per-second)
//   plans_in_flight           PlanBatch requests admitted and not yet answered
//                             (--job-max-plans-in-flight)
//   reports_per_second        ReportStep calls admitted per second, bursts up to one second's
//                             worth (--job-reports-per-second, 2048 in fcp-coordinator): the
//                             only rate limit of step reports; AdmitReport is its slot
// and the rendezvous store keeps its per-job keys and bytes (RendezvousStoreOptions
// max_keys_per_job, max_bytes_per_job). A call over a quota gets RESOURCE_EXHAUSTED naming it:
//   "quota plan_requests_per_second: job 'llama' is over 20 PlanBatch requests per second
//   (--job-plan-requests-per-second)"
// and the status carries the quota's name as payload kQuotaPayloadUrl (QuotaName reads it), which
// the coordinator counts in fcp_quota_exceeded_total{quota}. 0 = unlimited, the default.
//
//   fcp::JobQuotas quotas(options);
//   ASSIGN_OR_RETURN(fcp::JobQuotas::Ticket ticket, quotas.AdmitPlanRequest(job_id));
//   ... plan ...   // the ticket counts the request in flight until it is destroyed
//
// Thread-safe. Jobs with nothing in flight and full buckets are forgotten when more than
// kMaxIdleJobs are tracked, so made-up job ids cannot grow the table without bound.
#ifndef FCP_SERVICE_JOB_QUOTA_H_
#define FCP_SERVICE_JOB_QUOTA_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fcp {

// The payload type URL of a quota error; its value is the quota's name.
inline constexpr char kQuotaPayloadUrl[] = "type.fcp.dev/quota";

// RESOURCE_EXHAUSTED with `message`, tagged with `quota`.
absl::Status QuotaExceededError(absl::string_view quota, absl::string_view message);
// The quota a status was tagged with by QuotaExceededError, if any.
std::optional<std::string> QuotaName(const absl::Status& status);

struct JobQuotaOptions {
  double plan_requests_per_second = 0;  // 0 = unlimited
  int64_t plan_request_burst = 0;       // bucket size; 0 = max(1, plan_requests_per_second)
  int64_t plans_in_flight = 0;          // 0 = unlimited
  double reports_per_second = 0;        // 0 = unlimited
};

// INVALID_ARGUMENT naming the first negative or non-finite field.
absl::Status ValidateJobQuotaOptions(const JobQuotaOptions& options);

class JobQuotas {
 public:
  static constexpr size_t kMaxIdleJobs = 4096;

  // Counts one request of a job in flight while alive. Movable; empty when default-constructed.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept { *this = std::move(other); }
    Ticket& operator=(Ticket&& other) noexcept;
    ~Ticket() { Release(); }

   private:
    friend class JobQuotas;
    Ticket(JobQuotas* quotas, std::string job) : quotas_(quotas), job_(std::move(job)) {}
    void Release();
    JobQuotas* quotas_ = nullptr;
    std::string job_;
  };

  // `options` must be valid. `now` is the clock the rates follow; tests pass a fake one.
  explicit JobQuotas(const JobQuotaOptions& options, std::function<absl::Time()> now = &absl::Now);

  // Admits one PlanBatch request of `job_id` (rate, then in flight), or RESOURCE_EXHAUSTED naming
  // the quota; a refused request takes nothing from the job's rate.
  absl::StatusOr<Ticket> AdmitPlanRequest(absl::string_view job_id);
  // Admits one step report of `job_id`, or RESOURCE_EXHAUSTED naming reports_per_second.
  absl::Status AdmitReport(absl::string_view job_id);

  int64_t in_flight(absl::string_view job_id) const;
  size_t tracked_jobs() const;

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time refilled;
  };
  struct Job {
    Bucket plans;
    Bucket reports;
    int64_t in_flight = 0;
  };
  Job& FindOrAdd(absl::string_view job_id, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Release(const std::string& job_id);

  const JobQuotaOptions options_;
  const std::function<absl::Time()> now_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fcp

#endif  // FCP_SERVICE_JOB_QUOTA_H_
