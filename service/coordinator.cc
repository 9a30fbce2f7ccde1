#include "service/coordinator.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "service/grpc_metrics.h"

namespace fcp {
namespace {

constexpr char kPlannerServiceName[] = "fcp.v1.Planner";
constexpr char kRendezvousServiceName[] = "fcp.v1.Rendezvous";

// Process-wide gRPC settings every coordinator server relies on; set once.
void InitGrpcOnce() {
  static absl::once_flag once;
  absl::call_once(once, [] {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  });
}

absl::Status CheckOptions(const CoordinatorOptions& o) {
  auto invalid = [](absl::string_view what) { return absl::InvalidArgumentError(what); };
  if (o.port < 0 || o.port > 65535) return invalid("port: must be in [0, 65535]");
  if (o.metrics_port < -1 || o.metrics_port > 65535) {
    return invalid("metrics_port: must be in [0, 65535], or -1 for none");
  }
  if (o.health_port < -1 || o.health_port > 65535) {
    return invalid("health_port: must be in [0, 65535], or -1 for none");
  }
  if (o.max_request_bytes < 1) return invalid("max_request_bytes: must be >= 1");
  if (o.max_metric_jobs < 1) return invalid("max_metric_jobs: must be >= 1");
  // The largest request must fit in the quota with room to spare: at exactly its size gRPC resets
  // the stream (ENHANCE_YOUR_CALM, measured in coordinator_test); at twice it, it is served.
  if (o.rpc_memory_bytes < 2 * int64_t{o.max_request_bytes}) {
    return invalid(absl::StrCat("rpc_memory_bytes: must be >= 2 x max_request_bytes (",
                                2 * int64_t{o.max_request_bytes}, "), got ", o.rpc_memory_bytes));
  }
  if (o.rpc_threads < 0) return invalid("rpc_threads: must be >= 0 (0 = gRPC's default)");
  const PlanningServiceOptions& p = o.planning;
  if (p.planning_threads < 1) return invalid("planning_threads: must be >= 1");
  if (p.max_queued_plannings < 1) return invalid("max_queued_plannings: must be >= 1");
  if (p.cache_bytes < 1) return invalid("cache_bytes: must be >= 1");
  absl::Status defaults = ValidateOptions(p.defaults);
  if (!defaults.ok()) return invalid(absl::StrCat("defaults: ", defaults.message()));
  absl::Status rendezvous = ValidateRendezvousOptions(o.rendezvous);
  if (!rendezvous.ok()) return invalid(absl::StrCat("rendezvous.", rendezvous.message()));
  return absl::OkStatus();
}

// Plans a tiny batch once, so the first request does not pay for first-touch costs.
absl::Status WarmUp(const PlanOptions& defaults) {
  Batch batch;
  batch.topology.num_workers = 2;
  batch.documents = {{4096, Mask::Causal()}, {1024, Mask::Causal()}};
  absl::StatusOr<Plan> plan = MakePlan(batch, defaults, OutputSpec::AllRanks());
  if (!plan.ok())
    return absl::InternalError(absl::StrCat("warm-up plan: ", plan.status().ToString()));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Start(const CoordinatorOptions& options) {
  RETURN_IF_ERROR(CheckOptions(options));
  std::unique_ptr<Coordinator> coordinator(new Coordinator());
  RETURN_IF_ERROR(coordinator->Init(options));
  return coordinator;
}

absl::Status Coordinator::Init(const CoordinatorOptions& options) {
  InitGrpcOnce();
  registry_ = std::make_shared<prometheus::Registry>();
  metrics_ = std::make_unique<CoordinatorMetrics>(*registry_, options.max_metric_jobs);
  ASSIGN_OR_RETURN(guard_, JobGuard::Create({options.auth, options.quotas}, *registry_));
  planning_ = std::make_unique<PlanningService>(options.planning, metrics_.get());
  service_ = std::make_unique<PlannerGrpcService>(planning_.get(), guard_.get());
  rendezvous_ = std::make_unique<RendezvousStore>(options.rendezvous);
  rendezvous_service_ = std::make_unique<RendezvousGrpcService>(rendezvous_.get(), guard_.get());

  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                   NewServerCredentials(options.tls));
  const std::string address = absl::StrCat(options.host, ":", options.port);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, std::move(credentials), &port_);
  builder.RegisterService(service_.get());
  builder.RegisterService(rendezvous_service_.get());
  builder.SetMaxReceiveMessageSize(options.max_request_bytes);
  builder.SetMaxSendMessageSize(-1);
  grpc::ResourceQuota quota("fcp-coordinator");
  quota.Resize(static_cast<size_t>(options.rpc_memory_bytes));
  if (options.rpc_threads > 0) quota.SetMaxThreads(options.rpc_threads);
  builder.SetResourceQuota(quota);
  builder.experimental().SetInterceptorCreators(NewGrpcMetricsInterceptors(*registry_));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  if (options.health_port >= 0) {
    // No service registered: the process-wide default health service is all it serves.
    const std::string health_address = absl::StrCat(options.host, ":", options.health_port);
    grpc::ServerBuilder health;
    health.AddListeningPort(health_address, grpc::InsecureServerCredentials(), &health_port_);
    health_server_ = health.BuildAndStart();
    if (health_server_ == nullptr || health_port_ == 0) {
      return absl::UnavailableError(absl::StrCat("health port: cannot listen on ", health_address));
    }
  }
  SetServing(false);

  if (options.metrics_port >= 0) {
    const std::string metrics_address = absl::StrCat(options.host, ":", options.metrics_port);
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(metrics_address, /*num_threads=*/2);
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrCat("metrics endpoint: cannot listen on ", metrics_address, ": ", e.what()));
    }
    exposer_->RegisterCollectable(registry_);
    const std::vector<int> ports = exposer_->GetListeningPorts();
    metrics_port_ = ports.empty() ? -1 : ports.front();
  }
  RETURN_IF_ERROR(WarmUp(options.planning.defaults));
  SetServing(true);
  return absl::OkStatus();
}

Coordinator::~Coordinator() { Shutdown(absl::ZeroDuration()); }

void Coordinator::SetServing(bool serving) {
  for (grpc::Server* server : {server_.get(), health_server_.get()}) {
    grpc::HealthCheckServiceInterface* health =
        server == nullptr ? nullptr : server->GetHealthCheckService();
    if (health == nullptr) continue;
    health->SetServingStatus("", serving);
    health->SetServingStatus(kPlannerServiceName, serving);
    health->SetServingStatus(kRendezvousServiceName, serving);
  }
}

void Coordinator::StartDraining() {
  absl::MutexLock lock(&mu_);
  if (!shut_down_ && server_ != nullptr) SetServing(false);
}

void Coordinator::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  if (server_ != nullptr) {
    SetServing(false);
    // Waits for in-flight RPCs, whose plannings finish on planning_'s pool, to complete.
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    server_->Wait();
  }
  if (health_server_ != nullptr) {
    health_server_->Shutdown(absl::ToChronoTime(absl::Now()));
    health_server_->Wait();
  }
  exposer_.reset();
}

}  // namespace fcp
