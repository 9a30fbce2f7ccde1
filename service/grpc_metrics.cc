#include "service/grpc_metrics.h"

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "service/metrics.h"

namespace fcp {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

const char* TypeName(ServerRpcInfo::Type type) {
  switch (type) {
    case ServerRpcInfo::Type::UNARY:
      return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING:
      return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING:
      return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unknown";
}

// The series of one method (all but the per-code handled counter, added on first use per code).
struct MethodSeries {
  prometheus::Labels labels;
  prometheus::Counter* started;
  prometheus::Histogram* seconds;
  prometheus::Counter* received;
  prometheus::Counter* sent;
};

class GrpcMetrics {
 public:
  explicit GrpcMetrics(prometheus::Registry& registry)
      : started_(prometheus::BuildCounter()
                     .Name("grpc_server_started_total")
                     .Help("RPCs started on the server")
                     .Register(registry)),
        handled_(prometheus::BuildCounter()
                     .Name("grpc_server_handled_total")
                     .Help("RPCs completed on the server, by status code")
                     .Register(registry)),
        seconds_(prometheus::BuildHistogram()
                     .Name("grpc_server_handling_seconds")
                     .Help("Time from the start of an RPC to the server sending its status")
                     .Register(registry)),
        received_(prometheus::BuildCounter()
                      .Name("grpc_server_msg_received_total")
                      .Help("Messages received by the server")
                      .Register(registry)),
        sent_(prometheus::BuildCounter()
                  .Name("grpc_server_msg_sent_total")
                  .Help("Messages sent by the server")
                  .Register(registry)) {}

  MethodSeries* Method(absl::string_view full_method, ServerRpcInfo::Type type) {
    absl::MutexLock lock(&mu_);
    auto it = methods_.find(full_method);
    if (it != methods_.end()) return &it->second;
    // "/package.Service/Method"
    absl::string_view name = full_method;
    if (!name.empty() && name[0] == '/') name.remove_prefix(1);
    const size_t slash = name.find('/');
    const std::string service(name.substr(0, slash));
    const std::string method(slash == absl::string_view::npos ? "" : name.substr(slash + 1));
    prometheus::Labels labels = {
        {"grpc_type", TypeName(type)}, {"grpc_service", service}, {"grpc_method", method}};
    MethodSeries series{labels, &started_.Add(labels),
                        &seconds_.Add(labels, LatencyBucketsSeconds()), &received_.Add(labels),
                        &sent_.Add(labels)};
    return &methods_.emplace(std::string(full_method), std::move(series)).first->second;
  }

  void Handled(const MethodSeries& method, int code) {
    prometheus::Labels labels = method.labels;
    labels.emplace("grpc_code", GrpcCodeName(code));
    handled_.Add(labels).Increment();
  }

 private:
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& seconds_;
  prometheus::Family<prometheus::Counter>& received_;
  prometheus::Family<prometheus::Counter>& sent_;
  absl::Mutex mu_;
  // Node map: series addresses stay valid as methods are added.
  absl::node_hash_map<std::string, MethodSeries> methods_ ABSL_GUARDED_BY(mu_);
};

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(GrpcMetrics* metrics, MethodSeries* method)
      : metrics_(metrics), method_(method), start_(absl::Now()) {
    method_->started->Increment();
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      method_->received->Increment();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      method_->sent->Increment();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      method_->seconds->Observe(absl::ToDoubleSeconds(absl::Now() - start_));
      metrics_->Handled(*method_, methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  GrpcMetrics* const metrics_;
  MethodSeries* const method_;
  const absl::Time start_;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(prometheus::Registry& registry) : metrics_(registry) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(ServerRpcInfo* info) override {
    return new MetricsInterceptor(&metrics_, metrics_.Method(info->method(), info->type()));
  }

 private:
  GrpcMetrics metrics_;
};

}  // namespace

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
NewGrpcMetricsInterceptors(prometheus::Registry& registry) {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<MetricsInterceptorFactory>(registry));
  return out;
}

}  // namespace fcp
