#include "worker/transport/coordinator_store.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/channel_credentials.h"
#include "client/job_token.h"
#include "fcp/v1/rendezvous.grpc.pb.h"
#include "gloo/common/error.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace fcp {
namespace {

// Failures that a later attempt may not see: the coordinator starting, restarting or out of reach.
bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

std::string Describe(const grpc::Status& status, const ClientTlsOptions& tls) {
  const absl::Status hinted = WithTlsHint(
      absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message()),
      tls);
  return absl::StrCat(absl::StatusCodeToString(hinted.code()), ": ", hinted.message());
}

class CoordinatorStore final : public gloo::rendezvous::Store {
 public:
  CoordinatorStore(CoordinatorStoreOptions options,
                   std::shared_ptr<grpc::ChannelCredentials> credentials)
      : options_(std::move(options)),
        stub_(v1::Rendezvous::NewStub(NewChannel(options_.target, std::move(credentials)))) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    v1::RendezvousSetRequest request;
    request.set_job_id(options_.job_id);
    request.set_key(options_.prefix + key);
    request.set_value(data.data(), data.size());
    Poll("set of key", request.key(), absl::Now() + options_.timeout,
         [&](grpc::ClientContext* context, bool* done) {
           v1::RendezvousSetResponse response;
           grpc::Status status = stub_->Set(context, request, &response);
           *done = status.ok();
           return status;
         });
  }

  std::vector<char> get(const std::string& key) override {
    const std::string value = Await(key, absl::Now() + options_.timeout);
    return std::vector<char>(value.begin(), value.end());
  }

  void wait(const std::vector<std::string>& keys) override {
    WaitUntil(keys, absl::Now() + options_.timeout);
  }

  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    WaitUntil(keys, timeout == gloo::kNoTimeout ? absl::InfiniteFuture()
                                                : absl::Now() + absl::FromChrono(timeout));
  }

 private:
  static std::shared_ptr<grpc::Channel> NewChannel(
      const std::string& target, std::shared_ptr<grpc::ChannelCredentials> credentials) {
    grpc::ChannelArguments args;
    // Reconnect soon after the coordinator comes (back) up: waiting ranks poll it. Not
    // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC takes it as the minimum time one connection attempt
    // (TCP connect + TLS handshake) may take, and at 100 ms a loaded machine's TLS handshakes were
    // cut off on every attempt ("tcp handshaker shutdown") until the rendezvous timed out.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    return grpc::CreateCustomChannel(target, std::move(credentials), args);
  }

  void WaitUntil(const std::vector<std::string>& keys, absl::Time deadline) {
    for (const std::string& key : keys) Await(key, deadline);
  }

  // The value of prefix + key, once it is set.
  std::string Await(const std::string& key, absl::Time deadline) {
    v1::RendezvousGetRequest request;
    request.set_job_id(options_.job_id);
    request.set_key(options_.prefix + key);
    v1::RendezvousGetResponse response;
    Poll("key", request.key(), deadline, [&](grpc::ClientContext* context, bool* done) {
      grpc::Status status = stub_->Get(context, request, &response);
      *done = status.ok() && response.found();
      return status;
    });
    return std::move(*response.mutable_value());
  }

  // Repeats `attempt` (one RPC in `context`) until it sets *done, sleeping with jittered
  // exponential backoff in between. Retryable failures are retried until `deadline`; anything
  // else, or the deadline, throws. `what` and `key` name the operation in messages.
  void Poll(absl::string_view what, absl::string_view key, absl::Time deadline,
            absl::FunctionRef<grpc::Status(grpc::ClientContext*, bool*)> attempt) {
    const auto fail = [&](absl::string_view why) {
      throw gloo::IoException(absl::StrCat("fcp rendezvous: ", what, " '", key, "' of job '",
                                           options_.job_id, "' on coordinator ", options_.target,
                                           ": ", why));
    };
    const absl::Time start = absl::Now();
    absl::Duration interval = options_.initial_poll_interval;
    absl::BitGen random;
    grpc::Status last;  // the latest answer, or failure, from the coordinator
    while (true) {
      grpc::ClientContext context;
      const absl::Time rpc_deadline = std::min(absl::Now() + options_.rpc_timeout, deadline);
      context.set_deadline(absl::ToChronoTime(rpc_deadline));
      AttachJobToken(options_.job_token, &context);
      bool done = false;
      const grpc::Status status = attempt(&context, &done);
      if (done) return;
      if (!status.ok() && !Retryable(status.error_code())) fail(Describe(status, options_.tls));
      // An RPC cut short by our own deadline says nothing about the coordinator.
      if (status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED || rpc_deadline < deadline) {
        last = status;
      }
      const absl::Time now = absl::Now();
      if (now >= deadline) {
        const std::string waited =
            absl::FormatDuration(absl::Trunc(now - start, absl::Milliseconds(1)));
        fail(last.ok() ? absl::StrCat("not set within ", waited)
                       : absl::StrCat("no answer within ", waited, ", last ",
                                      Describe(last, options_.tls)));
      }
      absl::SleepFor(std::min(interval * absl::Uniform(random, 0.5, 1.0), deadline - now));
      interval = std::min(interval * 2, options_.max_poll_interval);
    }
  }

  const CoordinatorStoreOptions options_;
  const std::unique_ptr<v1::Rendezvous::Stub> stub_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<gloo::rendezvous::Store>> NewCoordinatorStore(
    const CoordinatorStoreOptions& options) {
  auto invalid = [](absl::string_view what) { return absl::InvalidArgumentError(what); };
  if (options.target.empty()) return invalid("target: must not be empty (host:port)");
  if (options.job_id.empty()) return invalid("job_id: must not be empty");
  if (options.timeout <= absl::ZeroDuration()) return invalid("timeout: must be > 0");
  if (options.rpc_timeout <= absl::ZeroDuration()) return invalid("rpc_timeout: must be > 0");
  if (options.initial_poll_interval <= absl::ZeroDuration() ||
      options.max_poll_interval < options.initial_poll_interval) {
    return invalid("poll intervals: need 0 < initial_poll_interval <= max_poll_interval");
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      NewChannelCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  CoordinatorStoreOptions with_token = options;
  with_token.job_token = JobTokenOrEnvironment(options.job_token);
  absl::Status token = CheckJobToken("job_token", with_token.job_token);
  if (!token.ok()) return token;
  return std::make_shared<CoordinatorStore>(with_token, *std::move(credentials));
}

}  // namespace fcp
