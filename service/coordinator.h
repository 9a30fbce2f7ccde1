// Coordinator: the fcp-coordinator server, assembled and run: the fcp.v1.Planner service on a
// PlanningService (cache, single-flight, planning pool), the fcp.v1.Rendezvous service on a
// RendezvousStore (workers' connection info), gRPC health (grpc.health.v1) and server
// reflection, gRPC and planning metrics on a Prometheus endpoint. `fcp-coordinator` is this class
// plus flags and signals; tests and benchmarks run it in-process on ports picked by the kernel.
//
//   fcp::CoordinatorOptions options;
//   options.port = 0;          // any free port
//   options.metrics_port = 0;
//   ASSIGN_OR_RETURN(std::unique_ptr<fcp::Coordinator> coordinator,
//                    fcp::Coordinator::Start(options));
//   Connect(absl::StrCat("127.0.0.1:", coordinator->port()));
//   ...
//   coordinator->StartDraining();                 // health: NOT_SERVING; RPCs still served
//   coordinator->Shutdown(absl::Seconds(10));     // stop accepting; in-flight RPCs finish
//
// Health: services "", "fcp.v1.Planner" and "fcp.v1.Rendezvous" are NOT_SERVING until Start has
// warmed the planner up, SERVING after, NOT_SERVING again once draining starts.
//
// Thread-safe. The destructor shuts down with no grace period if Shutdown was not called.
#ifndef FCP_SERVICE_COORDINATOR_H_
#define FCP_SERVICE_COORDINATOR_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "service/job_guard.h"
#include "service/metrics.h"
#include "service/planner_service.h"
#include "service/planning_service.h"
#include "service/rendezvous_service.h"
#include "service/rendezvous_store.h"
#include "service/server_credentials.h"

namespace fcp {

struct CoordinatorOptions {
  std::string host = "0.0.0.0";      // address both endpoints listen on
  int port = 50051;                  // gRPC; 0 = any free port
  int metrics_port = 9464;           // Prometheus /metrics; 0 = any free port, -1 = none
  int max_request_bytes = 64 << 20;  // larger requests get RESOURCE_EXHAUSTED from gRPC
  int max_metric_jobs = 256;         // distinct training_job label values before "other"
  // gRPC's resource quota: memory its transports and calls may hold (requests being received,
  // responses being sent), and threads serving RPCs at once; beyond them new calls get
  // RESOURCE_EXHAUSTED from gRPC instead of growing the process. 0 threads = gRPC's default.
  int64_t rpc_memory_bytes = int64_t{1} << 30;
  int rpc_threads = 0;
  // A plaintext port serving grpc.health.v1 only, for probes that cannot speak TLS (Kubernetes'
  // native gRPC probes) when `tls` is on; 0 = any free port, -1 = none.
  int health_port = -1;
  ServerTlsOptions tls;  // gRPC endpoint: plaintext, TLS or mutual TLS (not /metrics)
  PlanningServiceOptions planning;
  RendezvousStoreOptions rendezvous;
  // Job-scoped calls (PlanBatch, Rendezvous Set/Get): credentials (--job-tokens,
  // --job-identities; none = open, as before) and per-job quotas. See job_guard.h.
  JobAuthOptions auth;
  JobQuotaOptions quotas;
};

class Coordinator {
 public:
  // Builds and starts everything, warms the planner up, then reports SERVING. Unavailable if a
  // port cannot be bound, InvalidArgument for bad options (TLS files included).
  static absl::StatusOr<std::unique_ptr<Coordinator>> Start(const CoordinatorOptions& options);
  ~Coordinator();

  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }  // -1 without a metrics endpoint
  int health_port() const { return health_port_; }    // -1 without a health port

  // Reports NOT_SERVING, so load balancers and probes stop sending new work; RPCs are still
  // served until Shutdown.
  void StartDraining();
  // Stops accepting RPCs, lets in-flight ones finish for up to `grace` (then cancels them), waits
  // for their plannings to end, and closes the metrics endpoint. Idempotent.
  void Shutdown(absl::Duration grace);

  // Re-reads the --job-tokens and --job-identities files (SIGHUP); calls in progress are not
  // dropped. On error the old credentials stay and the error names the file and line.
  absl::Status ReloadCredentials() { return guard_->Reload(); }
  JobGuard& guard() { return *guard_; }

  PlanningService& planning() { return *planning_; }
  prometheus::Registry& registry() { return *registry_; }
  RendezvousStore& rendezvous() { return *rendezvous_; }

 private:
  Coordinator() = default;
  absl::Status Init(const CoordinatorOptions& options);
  void SetServing(bool serving);

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<CoordinatorMetrics> metrics_;
  std::unique_ptr<JobGuard> guard_;
  std::unique_ptr<PlanningService> planning_;
  std::unique_ptr<PlannerGrpcService> service_;
  std::unique_ptr<RendezvousStore> rendezvous_;
  std::unique_ptr<RendezvousGrpcService> rendezvous_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;  // --health-port: grpc.health.v1 only, plaintext
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  int metrics_port_ = -1;
  int health_port_ = -1;
  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fcp

#endif  // FCP_SERVICE_COORDINATOR_H_
