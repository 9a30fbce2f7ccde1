#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/call_and_wait.h"
#include "client/channel_credentials.h"
#include "client/job_token.h"
#include "fcp/client.h"
#include "fcp/v1/planner.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "service/plan_convert.h"
#include "service/planner/status_macros.h"

namespace fcp {
namespace {

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

// Coordinator answers after which the client plans locally.
bool ShouldFallBack(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kResourceExhausted;
}

absl::Status CheckOptions(const PlannerClientOptions& o) {
  if (o.max_attempts < 1) return absl::InvalidArgumentError("max_attempts: must be >= 1");
  if (o.deadline <= absl::ZeroDuration())
    return absl::InvalidArgumentError("deadline: must be > 0");
  if (o.initial_backoff < absl::ZeroDuration() || o.max_backoff < o.initial_backoff) {
    return absl::InvalidArgumentError("backoff: need 0 <= initial_backoff <= max_backoff");
  }
  if (o.max_prefetches < 0) return absl::InvalidArgumentError("max_prefetches: must be >= 0");
  absl::Status defaults = ValidateOptions(o.fallback_defaults);
  if (!defaults.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("fallback_defaults: ", defaults.message()));
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> NewChannel(const PlannerClientOptions& o,
                                          std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // a plan of every rank of a big job is large
  args.SetMaxSendMessageSize(-1);
  const int reconnect_ms = static_cast<int>(absl::ToInt64Milliseconds(o.max_reconnect_backoff));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, std::max(reconnect_ms, 100));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::min(reconnect_ms, 100));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::min(reconnect_ms, 100));
  return grpc::CreateCustomChannel(o.target, std::move(credentials), args);
}

class PlannerClientImpl final : public PlannerClient {
 public:
  PlannerClientImpl(PlannerClientOptions options,
                    std::shared_ptr<grpc::ChannelCredentials> credentials)
      : options_(std::move(options)),
        stub_(options_.target.empty()
                  ? nullptr
                  : v1::Planner::NewStub(NewChannel(options_, std::move(credentials)))) {}

  ~PlannerClientImpl() override {
    absl::MutexLock lock(&mu_);
    for (auto& [step, future] : prefetches_) future.wait();
  }

  absl::StatusOr<PlanResult> PlanBatch(const v1::PlanRequest& request) override {
    ++requests_;
    absl::StatusOr<PlanResult> result = Plan(request);
    if (!result.ok()) ++errors_;
    return result;
  }

  absl::Status Prefetch(v1::PlanRequest request) override {
    absl::MutexLock lock(&mu_);
    const int64_t step = request.step();
    if (prefetches_.count(step) > 0) {
      return absl::AlreadyExistsError(absl::StrCat("step ", step, " is already prefetched"));
    }
    if (static_cast<int>(prefetches_.size()) >= options_.max_prefetches) {
      return absl::ResourceExhaustedError(
          absl::StrCat(prefetches_.size(), " prefetches not collected by Get (max_prefetches)"));
    }
    prefetches_.emplace(step, std::async(std::launch::async,
                                         [this, r = std::move(request)] { return PlanBatch(r); }));
    ++prefetches_started_;
    return absl::OkStatus();
  }

  absl::StatusOr<PlanResult> Get(int64_t step) override {
    std::future<absl::StatusOr<PlanResult>> future;
    {
      absl::MutexLock lock(&mu_);
      auto it = prefetches_.find(step);
      if (it == prefetches_.end()) {
        return absl::NotFoundError(absl::StrCat("step ", step, " was not prefetched"));
      }
      future = std::move(it->second);
      prefetches_.erase(it);
    }
    if (future.wait_for(std::chrono::seconds(0)) == std::future_status::ready) ++prefetch_hits_;
    return future.get();
  }

  absl::StatusOr<v1::ListStrategiesResponse> ListStrategies() override {
    if (stub_ == nullptr) return absl::FailedPreconditionError("no coordinator target configured");
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
    AttachJobToken(options_.job_token, &context);
    v1::ListStrategiesResponse response;
    const v1::ListStrategiesRequest request;
    grpc::Status status = CallAndWait([&](auto done) {
      stub_->async()->ListStrategies(&context, &request, &response, std::move(done));
    });
    if (!status.ok()) return WithTlsHint(FromGrpc(status), options_.tls);
    return response;
  }

  PlannerClientStats stats() const override {
    PlannerClientStats s;
    s.requests = requests_.load();
    s.rpcs = rpcs_.load();
    s.retries = retries_.load();
    s.fallbacks = fallbacks_.load();
    s.errors = errors_.load();
    s.prefetches = prefetches_started_.load();
    s.prefetch_hits = prefetch_hits_.load();
    return s;
  }

 private:
  absl::StatusOr<PlanResult> Plan(const v1::PlanRequest& request) {
    if (stub_ == nullptr) return PlanLocally(request, PlanSource::kLocal);
    absl::StatusOr<PlanResult> remote = CallCoordinator(request);
    if (remote.ok() || !options_.local_fallback || !ShouldFallBack(remote.status().code())) {
      return remote;
    }
    ++fallbacks_;
    return PlanLocally(request, PlanSource::kLocalFallback);
  }

  // Attempts until success, an error other than UNAVAILABLE, max_attempts or the deadline.
  absl::StatusOr<PlanResult> CallCoordinator(const v1::PlanRequest& request) {
    const absl::Time deadline = absl::Now() + options_.deadline;
    absl::Duration backoff = options_.initial_backoff;
    absl::BitGen jitter;
    for (int attempt = 1;; ++attempt) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(deadline));
      AttachJobToken(options_.job_token, &context);
      v1::PlanResponse response;
      ++rpcs_;
      const grpc::Status status = CallAndWait([&](auto done) {
        stub_->async()->PlanBatch(&context, &request, &response, std::move(done));
      });
      if (status.ok()) return Accept(request, std::move(response));
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE ||
          attempt >= options_.max_attempts) {
        return WithTlsHint(FromGrpc(status), options_.tls);
      }
      const absl::Duration sleep = backoff * absl::Uniform(jitter, 0.5, 1.0);
      if (absl::Now() + sleep >= deadline) return WithTlsHint(FromGrpc(status), options_.tls);
      absl::SleepFor(sleep);
      backoff = std::min(backoff * 2, options_.max_backoff);
      ++retries_;
    }
  }

  absl::StatusOr<PlanResult> Accept(const v1::PlanRequest& request, v1::PlanResponse response) {
    if (options_.verify_plan_id) {
      ASSIGN_OR_RETURN(const std::string expected, ExpectedPlanId(request));
      if (response.plan().plan_id() != expected) {
        return absl::FailedPreconditionError(absl::StrCat(
            "plan id mismatch: the coordinator sent ", response.plan().plan_id(),
            ", this client computes ", expected,
            " (different planner version or defaults: local fallback plans would differ)"));
      }
    }
    PlanResult result;
    result.cache_hit = response.cache_hit();
    result.source = PlanSource::kCoordinator;
    result.plan = std::move(*response.mutable_plan());
    return result;
  }

  absl::StatusOr<std::string> ExpectedPlanId(const v1::PlanRequest& request) const {
    ASSIGN_OR_RETURN(const Batch batch, BatchFromProto(request));
    ASSIGN_OR_RETURN(const PlanOptions options,
                     OptionsFromProto(request.options(), options_.fallback_defaults));
    return ComputePlanId(batch, options);
  }

  absl::StatusOr<PlanResult> PlanLocally(const v1::PlanRequest& request, PlanSource source) const {
    ASSIGN_OR_RETURN(const Batch batch, BatchFromProto(request));
    ASSIGN_OR_RETURN(const PlanOptions options,
                     OptionsFromProto(request.options(), options_.fallback_defaults));
    ASSIGN_OR_RETURN(const OutputSpec output,
                     OutputSpecFromProto(request, batch.topology.num_workers));
    ASSIGN_OR_RETURN(const fcp::Plan plan, MakePlan(batch, options, output));
    PlanResult result;
    result.source = source;
    PlanToProto(plan, &result.plan);
    return result;
  }

  const PlannerClientOptions options_;
  const std::unique_ptr<v1::Planner::Stub> stub_;  // null: local only
  std::atomic<int64_t> requests_{0}, rpcs_{0}, retries_{0}, fallbacks_{0}, errors_{0};
  std::atomic<int64_t> prefetches_started_{0}, prefetch_hits_{0};
  absl::Mutex mu_;
  std::map<int64_t, std::future<absl::StatusOr<PlanResult>>> prefetches_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<PlannerClient>> PlannerClient::Create(PlannerClientOptions options) {
  RETURN_IF_ERROR(CheckOptions(options));
  options.job_token = JobTokenOrEnvironment(options.job_token);
  RETURN_IF_ERROR(CheckJobToken("job_token", options.job_token));
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                   NewChannelCredentials(options.tls));
  return std::unique_ptr<PlannerClient>(
      new PlannerClientImpl(std::move(options), std::move(credentials)));
}

}  // namespace fcp
