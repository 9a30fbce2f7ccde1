#include "service/metrics.h"

#include <array>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/planner.h"

#ifndef FCP_VERSION
#define FCP_VERSION "dev"
#endif

namespace fcp {
namespace {

constexpr size_t kMaxJobLabelLength = 128;

// The longest prefix of `s` of at most `max_bytes` that does not end inside a UTF-8 character.
std::string TruncateUtf8(absl::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  size_t n = max_bytes;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

// Every registered strategy name, else "unknown".
std::string StrategyLabel(absl::string_view strategy) {
  if (strategy.empty()) return "unknown";
  static const auto* const kKnown = [] {
    auto* names = new std::vector<std::string>;
    for (const StrategyInfo& s : ListStrategies()) names->push_back(s.name);
    return names;
  }();
  for (const std::string& name : *kKnown) {
    if (name == strategy) return name;
  }
  return "unknown";
}

prometheus::Family<prometheus::Counter>& Counter(prometheus::Registry& r, const std::string& name,
                                                 const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

prometheus::Family<prometheus::Histogram>& Histogram(prometheus::Registry& r,
                                                     const std::string& name,
                                                     const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r);
}

prometheus::Family<prometheus::Gauge>& Gauge(prometheus::Registry& r, const std::string& name,
                                             const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}

const prometheus::Histogram::BucketBoundaries& ImbalanceBuckets() {
  static const auto* const kBuckets = new prometheus::Histogram::BucketBoundaries{
      1.001, 1.005, 1.01, 1.02, 1.05, 1.1, 1.2, 1.5, 2, 3, 5, 10};
  return *kBuckets;
}

const prometheus::Histogram::BucketBoundaries& BytesBuckets() {
  static const auto* const kBuckets = [] {
    auto* b = new prometheus::Histogram::BucketBoundaries;
    for (double v = 1 << 20; v <= 1e13; v *= 4) b->push_back(v);  // 1 MiB .. ~4 TiB
    return b;
  }();
  return *kBuckets;
}

const prometheus::Histogram::BucketBoundaries& RoundsBuckets() {
  static const auto* const kBuckets = new prometheus::Histogram::BucketBoundaries{
      0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
  return *kBuckets;
}

}  // namespace

std::string GrpcCodeName(int code) {
  static constexpr std::array<const char*, 17> kNames = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  if (code < 0 || code >= static_cast<int>(kNames.size())) return absl::StrCat("Code(", code, ")");
  return kNames[code];
}

const prometheus::Histogram::BucketBoundaries& LatencyBucketsSeconds() {
  static const auto* const kBuckets = new prometheus::Histogram::BucketBoundaries{
      50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3,
      50e-3, 100e-3, 250e-3, 500e-3, 1,    2.5,  5,    10};
  return *kBuckets;
}

CoordinatorMetrics::CoordinatorMetrics(prometheus::Registry& registry, int max_jobs)
    : max_jobs_(max_jobs),
      requests_(Counter(registry, "fcp_plan_requests_total",
                        "PlanBatch requests, by requested strategy and gRPC status code")),
      hits_(Counter(registry, "fcp_plan_cache_hits_total",
                    "PlanBatch requests answered without planning (cache, or an identical "
                    "planning already in progress)")),
      waits_(Counter(registry, "fcp_plan_singleflight_waits_total",
                     "Cache hits that waited for an identical planning in progress")),
      misses_(Counter(registry, "fcp_plan_cache_misses_total",
                      "PlanBatch requests that planned (one per distinct plan in flight)")),
      duration_(Histogram(registry, "fcp_plan_duration_seconds",
                          "Wall time of one planning, by the strategy that made the plan")),
      imbalance_(Histogram(registry, "fcp_plan_predicted_compute_imbalance",
                           "Predicted max/mean attention FLOPs over workers of each plan made")),
      comm_bytes_(Histogram(registry, "fcp_plan_comm_bytes",
                            "Bytes each plan moves per step (every transfer kind, both passes)")),
      rounds_(Histogram(registry, "fcp_plan_rounds", "Communication rounds of each plan made")),
      cache_bytes_(Gauge(registry, "fcp_plan_cache_bytes", "Bytes held by the plan cache").Add({})),
      cache_entries_(
          Gauge(registry, "fcp_plan_cache_entries", "Plans held by the plan cache").Add({})),
      cache_evictions_(Counter(registry, "fcp_plan_cache_evictions_total",
                               "Plans evicted from the cache to make room")
                           .Add({})),
      in_progress_(
          Gauge(registry, "fcp_plannings_in_progress", "Plannings queued or running").Add({})),
      reports_(Counter(registry, "fcp_step_reports_total",
                       "ReportStep calls (one rank's measurement of a step), by gRPC status code")),
      step_seconds_(Gauge(registry, "fcp_step_seconds",
                          "The latest reported step's slowest rank, forward + backward attention "
                          "seconds: predicted by its plan or measured")),
      prediction_error_(Gauge(registry, "fcp_plan_prediction_error_ratio",
                              "|predicted - measured| / measured step seconds of the slowest rank "
                              "of the latest reported step")),
      calibration_(Gauge(registry, "fcp_calibration_value",
                         "The job's fitted cost model, by calibration-file key (the units are in "
                         "the key: _tflops, _gbps, _us, _tokens)")) {
  Gauge(registry, "fcp_build_info", "Build of this coordinator; always 1")
      .Add({{"version", FCP_VERSION}, {"planner_version", std::string(kPlannerVersion)}})
      .Set(1);
}

CoordinatorMetrics::JobSeries& CoordinatorMetrics::Job(absl::string_view job_id) {
  std::string label = job_id.empty() ? "unknown" : TruncateUtf8(job_id, kMaxJobLabelLength);
  auto it = jobs_.find(label);
  if (it != jobs_.end()) return it->second;
  if (static_cast<int>(jobs_.size()) >= max_jobs_) {
    label = "other";
    it = jobs_.find(label);
    if (it != jobs_.end()) return it->second;
  }
  const prometheus::Labels labels = {{"training_job", label}};
  JobSeries series{label, &hits_.Add(labels), &waits_.Add(labels), &misses_.Add(labels)};
  return jobs_.emplace(label, std::move(series)).first->second;
}

std::string CoordinatorMetrics::JobLabel(absl::string_view job_id) {
  absl::MutexLock lock(&mu_);
  return Job(job_id).label;
}

void CoordinatorMetrics::RecordRequest(absl::string_view job_id,
                                       absl::string_view requested_strategy,
                                       absl::StatusCode code) {
  const std::string job = JobLabel(job_id);
  requests_
      .Add({{"training_job", job},
            {"strategy", StrategyLabel(requested_strategy)},
            {"code", GrpcCodeName(static_cast<int>(code))}})
      .Increment();
}

void CoordinatorMetrics::RecordCacheHit(absl::string_view job_id, bool waited) {
  absl::MutexLock lock(&mu_);
  JobSeries& job = Job(job_id);
  job.hits->Increment();
  if (waited) job.waits->Increment();
}

void CoordinatorMetrics::RecordCacheMiss(absl::string_view job_id) {
  absl::MutexLock lock(&mu_);
  Job(job_id).misses->Increment();
}

void CoordinatorMetrics::RecordPlan(absl::string_view job_id, const Plan& plan, double seconds) {
  const prometheus::Labels labels = {{"training_job", JobLabel(job_id)},
                                     {"strategy", plan.strategy}};
  duration_.Add(labels, LatencyBucketsSeconds()).Observe(seconds);
  imbalance_.Add(labels, ImbalanceBuckets()).Observe(plan.summary.compute_imbalance);
  comm_bytes_.Add(labels, BytesBuckets()).Observe(static_cast<double>(plan.summary.comm_bytes));
  rounds_.Add(labels, RoundsBuckets()).Observe(plan.summary.rounds);
}

void CoordinatorMetrics::SetCache(const PlanCache::Stats& stats) {
  cache_bytes_.Set(static_cast<double>(stats.bytes));
  cache_entries_.Set(static_cast<double>(stats.entries));
  absl::MutexLock lock(&mu_);
  if (stats.evictions > evictions_seen_) {
    cache_evictions_.Increment(static_cast<double>(stats.evictions - evictions_seen_));
    evictions_seen_ = stats.evictions;
  }
}

void CoordinatorMetrics::AddPlanningsInProgress(int delta) { in_progress_.Increment(delta); }

}  // namespace fcp
