#include "service/job_quota.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace fcp {
namespace {

// Refills `bucket` (rate per second, holding up to `size`) to `now` and takes one token if it can.
bool Take(double rate, double size, absl::Time now, double& tokens, absl::Time& refilled) {
  if (rate <= 0) return true;
  const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - refilled));
  tokens = std::min(size, tokens + elapsed * rate);
  refilled = now;
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

double PlanBucketSize(const JobQuotaOptions& o) {
  return o.plan_request_burst > 0 ? static_cast<double>(o.plan_request_burst)
                                  : std::max(1.0, o.plan_requests_per_second);
}

double ReportBucketSize(const JobQuotaOptions& o) { return std::max(1.0, o.reports_per_second); }

}  // namespace

absl::Status QuotaExceededError(absl::string_view quota, absl::string_view message) {
  absl::Status status = absl::ResourceExhaustedError(message);
  status.SetPayload(kQuotaPayloadUrl, absl::Cord(quota));
  return status;
}

std::optional<std::string> QuotaName(const absl::Status& status) {
  absl::optional<absl::Cord> quota = status.GetPayload(kQuotaPayloadUrl);
  if (!quota.has_value()) return std::nullopt;
  return std::string(*quota);
}

absl::Status ValidateJobQuotaOptions(const JobQuotaOptions& o) {
  auto check = [](absl::string_view field, double value) {
    return std::isfinite(value) && value >= 0
               ? absl::OkStatus()
               : absl::InvalidArgumentError(absl::StrCat(field, ": must be >= 0 (0 = unlimited)"));
  };
  for (const absl::Status& s :
       {check("plan_requests_per_second", o.plan_requests_per_second),
        check("plan_request_burst", static_cast<double>(o.plan_request_burst)),
        check("plans_in_flight", static_cast<double>(o.plans_in_flight)),
        check("reports_per_second", o.reports_per_second)}) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

JobQuotas::Ticket& JobQuotas::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    Release();
    quotas_ = std::exchange(other.quotas_, nullptr);
    job_ = std::move(other.job_);
  }
  return *this;
}

void JobQuotas::Ticket::Release() {
  if (quotas_ != nullptr) std::exchange(quotas_, nullptr)->Release(job_);
}

JobQuotas::JobQuotas(const JobQuotaOptions& options, std::function<absl::Time()> now)
    : options_(options), now_(std::move(now)) {}

JobQuotas::Job& JobQuotas::FindOrAdd(absl::string_view job_id, absl::Time now) {
  auto it = jobs_.find(job_id);
  if (it != jobs_.end()) return it->second;
  if (jobs_.size() >= kMaxIdleJobs) {
    // Forget jobs whose state equals a new job's: nothing in flight, buckets full by now.
    const auto forgotten = [&](const std::pair<const std::string, Job>& entry) {
      const Job& job = entry.second;
      const auto full = [&](const Bucket& b, double rate, double size) {
        return rate <= 0 || b.tokens + absl::ToDoubleSeconds(now - b.refilled) * rate >= size;
      };
      return job.in_flight == 0 &&
             full(job.plans, options_.plan_requests_per_second, PlanBucketSize(options_)) &&
             full(job.reports, options_.reports_per_second, ReportBucketSize(options_));
    };
    absl::erase_if(jobs_, forgotten);
  }
  Job& job = jobs_[std::string(job_id)];
  job.plans = {PlanBucketSize(options_), now};
  job.reports = {ReportBucketSize(options_), now};
  return job;
}

absl::StatusOr<JobQuotas::Ticket> JobQuotas::AdmitPlanRequest(absl::string_view job_id) {
  const absl::Time now = now_();
  absl::MutexLock lock(&mu_);
  Job& job = FindOrAdd(job_id, now);
  if (options_.plans_in_flight > 0 && job.in_flight >= options_.plans_in_flight) {
    return QuotaExceededError(
        "plans_in_flight",
        absl::StrCat("quota plans_in_flight: job '", job_id, "' has ", job.in_flight,
                     " PlanBatch requests in flight, its limit (--job-max-plans-in-flight)"));
  }
  if (!Take(options_.plan_requests_per_second, PlanBucketSize(options_), now, job.plans.tokens,
            job.plans.refilled)) {
    return QuotaExceededError(
        "plan_requests_per_second",
        absl::StrCat("quota plan_requests_per_second: job '", job_id, "' is over ",
                     options_.plan_requests_per_second,
                     " PlanBatch requests per second (--job-plan-requests-per-second)"));
  }
  ++job.in_flight;
  return Ticket(this, std::string(job_id));
}

absl::Status JobQuotas::AdmitReport(absl::string_view job_id) {
  const absl::Time now = now_();
  absl::MutexLock lock(&mu_);
  Job& job = FindOrAdd(job_id, now);
  if (Take(options_.reports_per_second, ReportBucketSize(options_), now, job.reports.tokens,
           job.reports.refilled)) {
    return absl::OkStatus();
  }
  return QuotaExceededError("reports_per_second",
                            absl::StrCat("quota reports_per_second: job '", job_id, "' is over ",
                                         options_.reports_per_second,
                                         " step reports per second (--job-reports-per-second)"));
}

void JobQuotas::Release(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it != jobs_.end() && it->second.in_flight > 0) --it->second.in_flight;
}

int64_t JobQuotas::in_flight(absl::string_view job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? 0 : it->second.in_flight;
}

size_t JobQuotas::tracked_jobs() const {
  absl::MutexLock lock(&mu_);
  return jobs_.size();
}

}  // namespace fcp
