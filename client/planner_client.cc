#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/call_and_wait.h"
#include "client/channel_credentials.h"
#include "client/job_token.h"
#include "common/status_macros.h"
#include "fcp/client.h"
#include "fcp/v1/planner.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "proto/plan_convert.h"
#include "proto/report_convert.h"

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
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS stays at gRPC's default (20 s): gRPC takes it as the time
  // one connection attempt (TCP connect + TLS handshake) may take, and a short one cut off every
  // TLS handshake on a loaded machine. Each RPC's deadline still bounds the wait for a plan.
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
    for (auto& [step, future] : batch_prefetches_) future.wait();
  }

  absl::StatusOr<PlanResult> PlanBatch(const v1::PlanRequest& request) override {
    ++requests_;
    return CountError(PlanMessage(request));
  }

  absl::StatusOr<BatchPlanResult> PlanBatch(const BatchRequest& request) override {
    ++requests_;
    return CountError(PlanCore(request));
  }

  absl::Status Prefetch(v1::PlanRequest request) override {
    const int64_t step = request.step();
    return StartPrefetch(step, &prefetches_,
                         [this, r = std::move(request)] { return PlanBatch(r); });
  }

  absl::Status Prefetch(BatchRequest request) override {
    const int64_t step = request.step;
    return StartPrefetch(step, &batch_prefetches_,
                         [this, r = std::move(request)] { return PlanBatch(r); });
  }

  absl::StatusOr<PlanResult> Get(int64_t step) override { return Collect(step, &prefetches_); }

  absl::StatusOr<BatchPlanResult> GetPlan(int64_t step) override {
    return Collect(step, &batch_prefetches_);
  }

  absl::StatusOr<v1::ListStrategiesResponse> ListStrategies() override {
    const v1::ListStrategiesRequest request;
    return Unary<v1::ListStrategiesResponse>([&](auto* context, auto* response, auto done) {
      stub_->async()->ListStrategies(context, &request, response, std::move(done));
    });
  }

  absl::Status ReportStep(const v1::StepReport& report) override {
    return Unary<v1::ReportStepResponse>([&](auto* context, auto* response, auto done) {
             stub_->async()->ReportStep(context, &report, response, std::move(done));
           })
        .status();
  }

  absl::StatusOr<v1::JobCalibration> GetCalibration(absl::string_view job_id) override {
    v1::GetCalibrationRequest request;
    request.set_job_id(std::string(job_id));
    return Unary<v1::JobCalibration>([&](auto* context, auto* response, auto done) {
      stub_->async()->GetCalibration(context, &request, response, std::move(done));
    });
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
  template <typename Result>
  using Prefetches = std::map<int64_t, std::future<absl::StatusOr<Result>>>;

  // One unary call, no retry, no fallback: `start(context, response, done)` starts it.
  template <typename Response, typename Start>
  absl::StatusOr<Response> Unary(Start start) {
    if (stub_ == nullptr) return absl::FailedPreconditionError("no coordinator target configured");
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
    AttachJobToken(options_.job_token, &context);
    Response response;
    grpc::Status status =
        CallAndWait([&](auto done) { start(&context, &response, std::move(done)); });
    if (!status.ok()) return WithTlsHint(FromGrpc(status), options_.tls);
    return response;
  }

  template <typename Result>
  absl::StatusOr<Result> CountError(absl::StatusOr<Result> result) {
    if (!result.ok()) ++errors_;
    return result;
  }

  // Starts plan() for `step` in the background; `prefetches` is one of the two maps.
  template <typename Result, typename Fn>
  absl::Status StartPrefetch(int64_t step, Prefetches<Result>* prefetches, Fn plan) {
    absl::MutexLock lock(&mu_);
    if (prefetches_.count(step) + batch_prefetches_.count(step) > 0) {
      return absl::AlreadyExistsError(absl::StrCat("step ", step, " is already prefetched"));
    }
    const size_t in_flight = prefetches_.size() + batch_prefetches_.size();
    if (static_cast<int>(in_flight) >= options_.max_prefetches) {
      return absl::ResourceExhaustedError(
          absl::StrCat(in_flight, " prefetches not collected by Get (max_prefetches)"));
    }
    prefetches->emplace(step, std::async(std::launch::async, std::move(plan)));
    ++prefetches_started_;
    return absl::OkStatus();
  }

  template <typename Result>
  absl::StatusOr<Result> Collect(int64_t step, Prefetches<Result>* prefetches) {
    std::future<absl::StatusOr<Result>> future;
    {
      absl::MutexLock lock(&mu_);
      auto it = prefetches->find(step);
      if (it == prefetches->end()) {
        return absl::NotFoundError(absl::StrCat("step ", step, " was not prefetched"));
      }
      future = std::move(it->second);
      prefetches->erase(it);
    }
    if (future.wait_for(std::chrono::seconds(0)) == std::future_status::ready) ++prefetch_hits_;
    return future.get();
  }

  // The coordinator's answer to `wire` through `accept`, or, when it cannot answer and fallback
  // is on, `local(kLocalFallback)`; `local(kLocal)` without a target.
  template <typename Result>
  absl::StatusOr<Result> RemoteOrLocal(
      const v1::PlanRequest& wire,
      absl::FunctionRef<absl::StatusOr<Result>(v1::PlanResponse)> accept,
      absl::FunctionRef<absl::StatusOr<Result>(PlanSource)> local) {
    if (stub_ == nullptr) return local(PlanSource::kLocal);
    absl::StatusOr<v1::PlanResponse> response = CallCoordinator(wire);
    if (response.ok()) return accept(*std::move(response));
    if (!options_.local_fallback || !ShouldFallBack(response.status().code())) {
      return response.status();
    }
    ++fallbacks_;
    return local(PlanSource::kLocalFallback);
  }

  absl::StatusOr<PlanResult> PlanMessage(const v1::PlanRequest& request) {
    return RemoteOrLocal<PlanResult>(
        request,
        [&](v1::PlanResponse response) -> absl::StatusOr<PlanResult> {
          if (options_.verify_plan_id) {
            ASSIGN_OR_RETURN(const std::string expected, ExpectedPlanId(request, response));
            RETURN_IF_ERROR(CheckPlanId(response.plan().plan_id(), expected));
          }
          PlanResult result;
          result.cache_hit = response.cache_hit();
          result.source = PlanSource::kCoordinator;
          result.plan = std::move(*response.mutable_plan());
          return result;
        },
        [&](PlanSource source) { return PlanLocally(request, source); });
  }

  // Core types end to end: protobuf only for the wire, the plan id computed once (by MakePlan
  // locally, for the check against the coordinator's reply otherwise).
  absl::StatusOr<BatchPlanResult> PlanCore(const BatchRequest& request) {
    const PlanOptions options = RequestedOptions(request.options, options_.fallback_defaults);
    v1::PlanRequest wire;
    if (stub_ != nullptr) {
      wire.set_job_id(request.job_id);
      wire.set_step(request.step);
      BatchToProto(request.batch, &wire);
      OptionsToProto(request.options, wire.mutable_options());
      for (int32_t rank : request.ranks) wire.add_ranks(rank);
    }
    return RemoteOrLocal<BatchPlanResult>(
        wire,
        [&](v1::PlanResponse response) -> absl::StatusOr<BatchPlanResult> {
          if (options_.verify_plan_id) {
            ASSIGN_OR_RETURN(const std::string expected,
                             CalibratedPlanId(request.batch, options, response));
            RETURN_IF_ERROR(CheckPlanId(response.plan().plan_id(), expected));
          }
          BatchPlanResult result;
          ASSIGN_OR_RETURN(result.plan, PlanFromProto(response.plan()));
          result.cache_hit = response.cache_hit();
          result.source = PlanSource::kCoordinator;
          return result;
        },
        [&](PlanSource source) -> absl::StatusOr<BatchPlanResult> {
          BatchPlanResult result;
          result.source = source;
          ASSIGN_OR_RETURN(result.plan,
                           MakePlan(request.batch, options,
                                    request.ranks.empty() ? OutputSpec::AllRanks()
                                                          : OutputSpec::Ranks(request.ranks)));
          return result;
        });
  }

  // Attempts until success, an error other than UNAVAILABLE, max_attempts or the deadline.
  absl::StatusOr<v1::PlanResponse> CallCoordinator(const v1::PlanRequest& request) {
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
      if (status.ok()) return response;
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

  static absl::Status CheckPlanId(const std::string& got, const std::string& expected) {
    if (got == expected) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "plan id mismatch: the coordinator sent ", got, ", this client computes ", expected,
        " (different planner version or defaults: local fallback plans would differ)"));
  }

  absl::StatusOr<std::string> ExpectedPlanId(const v1::PlanRequest& request,
                                             const v1::PlanResponse& response) const {
    ASSIGN_OR_RETURN(const Batch batch, BatchFromProto(request));
    ASSIGN_OR_RETURN(const PlanOptions options,
                     OptionsFromProto(request.options(), options_.fallback_defaults));
    return CalibratedPlanId(batch, options, response);
  }

  // The id of `batch` planned with `options`, under the job calibration the coordinator says it
  // planned with (PlanResponse.calibration), if any.
  static absl::StatusOr<std::string> CalibratedPlanId(const Batch& batch,
                                                      const PlanOptions& options,
                                                      const v1::PlanResponse& response) {
    if (!response.has_calibration()) return ComputePlanId(batch, options);
    Batch calibrated = batch;
    PlanOptions calibrated_options = options;
    RETURN_IF_ERROR(ApplyPlanCalibration(response.calibration(), &calibrated, &calibrated_options));
    return ComputePlanId(calibrated, calibrated_options);
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
  Prefetches<PlanResult> prefetches_ ABSL_GUARDED_BY(mu_);             // Prefetch(v1)
  Prefetches<BatchPlanResult> batch_prefetches_ ABSL_GUARDED_BY(mu_);  // Prefetch(BatchRequest)
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
