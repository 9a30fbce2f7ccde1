// fcp-worker: runs context-parallel attention steps with fcp plans (see WorkerUsage() for flags).
//
//   --transport loopback: every rank is a thread of this process (one metrics endpoint).
//   --transport gloo:     this process is --rank of --world, over TCP; rendezvous in --rendezvous.
//   --transport nccl:     likewise, GPU to GPU over NCCL (--device cuda); the NCCL id goes through
//                         the --rendezvous store.
//   --device cuda:        tensors and attention on a GPU (worker/executor/cuda_backend.h).
// The transport of each rank comes from NewTransport (worker/transport/transport_factory.h).
//
// Exit codes: 0 every step ran (and passed its reference check); 1 a step failed; 2 bad flags.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "fcp/client.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "service/planner/strategies/dcp.h"
#include "worker/executor/cuda_backend.h"
#include "worker/executor/kernel_types.h"
#include "worker/transport/coordinator_store.h"
#include "worker/transport/transport_factory.h"
#include "worker/worker_loop.h"
#include "worker/worker_metrics.h"
#include "worker/worker_options.h"

namespace fcp {
namespace {

constexpr int kExitOk = 0, kExitFailed = 1, kExitBadInput = 2;

// Rank 0's per-step table on stdout and optional JSON lines.
class Reporter {
 public:
  explicit Reporter(const WorkerOptions& options) : options_(options) {
    if (!options.summary_json.empty()) json_.open(options.summary_json, std::ios::app);
  }

  void Header() {
    std::printf("fcp-worker: job %s, %d ranks (%s), strategy %s, %d steps\n",
                options_.loop.training_job.c_str(), options_.world,
                std::string(TransportKindName(options_.transport)).c_str(),
                options_.loop.plan.strategy.c_str(), options_.loop.steps);
    std::printf("%4s %-9s %8s %8s %8s %10s %9s %9s %9s %9s\n", "step", "strategy", "imb_pred",
                "imb_meas", "plan_ms", "sent_MiB", "pred_ms", "step_ms", "wait_ms", "ref_err");
    std::fflush(stdout);
  }

  void Step(const StepReport& r) {
    double wait = 0;
    for (const StepStats& s : r.ranks) wait = std::max(wait, s.comm_wait_seconds);
    const std::string ref =
        r.reference_error < 0 ? "-" : absl::StrFormat("%.1e", r.reference_error);
    std::printf("%4lld %-9s %8.3f %8.3f %8.2f %10.2f %9.3f %9.1f %9.1f %9s%s\n",
                static_cast<long long>(r.step), r.strategy.c_str(), r.predicted_imbalance,
                r.MeasuredImbalance(), r.planning_ms, r.BytesSent() / 1048576.0, r.predicted_ms,
                r.StepSeconds() * 1e3, wait * 1e3, ref.c_str(), r.fallback ? "  (fallback)" : "");
    std::fflush(stdout);
    if (json_.is_open()) {
      json_ << absl::StrFormat(
          "{\"training_job\": \"%s\", \"step\": %d, \"strategy\": \"%s\", \"plan_id\": \"%s\", "
          "\"world\": %d, \"predicted_imbalance\": %.6f, \"measured_imbalance\": %.6f, "
          "\"planning_ms\": %.4f, \"bytes_sent\": %d, \"plan_bytes\": %d, \"predicted_ms\": %.6f, "
          "\"step_ms\": %.4f, \"comm_wait_ms\": %.4f, \"reference_error\": %.3e, "
          "\"fallback\": %s}\n",
          options_.loop.training_job, r.step, r.strategy, r.plan_id, options_.world,
          r.predicted_imbalance, r.MeasuredImbalance(), r.planning_ms, r.BytesSent(), r.plan_bytes,
          r.predicted_ms, r.StepSeconds() * 1e3, wait * 1e3, r.reference_error,
          r.fallback ? "true" : "false");
      json_.flush();
    }
  }

 private:
  const WorkerOptions& options_;
  std::ofstream json_;
};

absl::StatusOr<std::unique_ptr<PlannerClient>> MakeClient(const WorkerOptions& o) {
  if (o.loop.plan.coordinator.empty()) return std::unique_ptr<PlannerClient>();
  PlannerClientOptions options;
  options.target = o.loop.plan.coordinator;
  options.deadline = o.loop.plan_deadline;
  options.fallback_defaults = o.loop.plan.options;
  options.tls = o.loop.plan.tls;
  options.job_token = o.loop.plan.job_token;
  return PlannerClient::Create(options);
}

// The rank's GPU backend with --device cuda (null with cpu).
absl::StatusOr<std::unique_ptr<CudaBackend>> MakeBackend(const WorkerOptions& o, int32_t rank) {
  if (o.device != "cuda") return std::unique_ptr<CudaBackend>();
  CudaBackendOptions options;
  options.device = o.cuda_device;
  if (options.device < 0) {
    const int count = CudaDeviceCount();
    if (count == 0) return absl::FailedPreconditionError("--device cuda: no CUDA device visible");
    options.device = rank % count;
  }
  options.dtype = ToKernelDType(o.loop.plan.model.dtype);
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = NewCudaBackend(options);
  if (!backend.ok()) {
    return absl::Status(
        backend.status().code(),
        absl::StrCat("worker ", rank, ": --device cuda: ", backend.status().message()));
  }
  return backend;
}

// Runs one rank; the error, if any, prefixed by nothing (messages name the rank themselves).
absl::Status RunRank(const WorkerOptions& o, const LengthSampler& sampler, Transport* transport,
                     prometheus::Registry* registry, Reporter* reporter,
                     std::unique_ptr<ExecutorBackend> backend) {
  ASSIGN_OR_RETURN(std::unique_ptr<PlannerClient> client, MakeClient(o));
  std::unique_ptr<WorkerMetrics> metrics;
  if (registry != nullptr) {
    const int32_t rank = transport->rank();
    metrics = std::make_unique<WorkerMetrics>(
        *registry,
        WorkerLabels{o.loop.training_job, rank, o.loop.plan.topology.NodeOf(rank), o.gpu_uuid});
  }
  return RunWorkerLoop(
      o.loop, sampler, transport, client.get(), metrics.get(),
      [reporter](const StepReport& r) { reporter->Step(r); }, std::move(backend));
}

// This rank's gloo or nccl transport (on `backend`'s GPU for nccl: its stream orders the transfers
// after the kernels), meeting its peers through the coordinator or a directory.
absl::StatusOr<std::unique_ptr<Transport>> Connect(const WorkerOptions& o,
                                                   const CudaBackend* backend) {
  TransportOptions options;
  options.rank = o.rank;
  options.world_size = o.world;
  options.timeout = o.timeout;
  options.key_prefix = absl::StrCat(o.loop.training_job, "/attempt-", o.attempt);
  options.hostname = o.listen_address;
  options.interface = o.interface;
  if (backend != nullptr) {
    options.device = backend->device();
    options.compute_stream = backend->stream();
  }
  if (o.rendezvous_target.empty()) {
    options.rendezvous_dir = o.rendezvous;
  } else {
    CoordinatorStoreOptions store;
    store.target = o.rendezvous_target;
    store.job_id = o.loop.training_job;
    store.timeout = o.timeout;
    store.tls = o.loop.plan.tls;
    store.job_token = o.loop.plan.job_token;
    ASSIGN_OR_RETURN(options.store, NewCoordinatorStore(store));
  }
  return NewTransport(o.transport, options);
}

int Main(const std::vector<std::string>& args) {
  bool help = false;
  absl::StatusOr<WorkerOptions> parsed = ParseWorkerOptions(args, &help);
  if (help) {
    std::cout << WorkerUsage();
    return kExitOk;
  }
  if (!parsed.ok()) {
    std::cerr << "fcp-worker: " << parsed.status().message() << "\n";
    return kExitBadInput;
  }
  const WorkerOptions& o = *parsed;
  absl::StatusOr<LengthSampler> sampler = cli::LoadSampler(o.loop.plan);
  if (!sampler.ok()) {
    std::cerr << "fcp-worker: " << sampler.status().message() << "\n";
    return kExitBadInput;
  }

  // Without a GPU every rank would fail alike: say it once, before anything starts.
  if (o.device == "cuda" && o.cuda_device < 0 && CudaDeviceCount() == 0) {
    std::cerr << "fcp-worker: --device cuda: no CUDA device visible\n";
    return kExitFailed;
  }

  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<prometheus::Exposer> exposer;
  if (o.metrics_port > 0) {
    const int port = o.metrics_port;
    try {
      exposer = std::make_unique<prometheus::Exposer>(absl::StrCat("0.0.0.0:", port));
    } catch (const std::exception& e) {
      std::cerr << "fcp-worker: --metrics-port: cannot listen on " << port << ": " << e.what()
                << "\n";
      return kExitBadInput;
    }
    registry = std::make_shared<prometheus::Registry>();
    exposer->RegisterCollectable(registry);
    std::printf("fcp-worker: metrics on port %d\n", port);
  }

  Reporter reporter(o);
  const bool reports = o.rank <= 0;
  if (reports) reporter.Header();
  std::vector<absl::Status> results;
  if (o.transport == TransportKind::kLoopback) {
    LoopbackHub hub(o.world);
    results.assign(o.world, absl::OkStatus());
    std::vector<std::thread> threads;
    for (int32_t r = 0; r < o.world; ++r) {
      threads.emplace_back([&, r] {
        results[r] = [&]() -> absl::Status {
          TransportOptions options;
          options.rank = r;
          options.world_size = o.world;
          options.timeout = o.timeout;
          options.hub = &hub;
          ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport,
                           NewTransport(TransportKind::kLoopback, options));
          ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> backend, MakeBackend(o, r));
          return RunRank(o, *sampler, transport.get(), registry.get(), &reporter,
                         std::move(backend));
        }();
        if (!results[r].ok()) hub.Abort(r);  // peers fail fast instead of waiting out the timeout
      });
    }
    for (std::thread& t : threads) t.join();
  } else {
    results.push_back([&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> backend, MakeBackend(o, o.rank));
      ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport, Connect(o, backend.get()));
      return RunRank(o, *sampler, transport.get(), registry.get(), &reporter, std::move(backend));
    }());
  }
  int exit_code = kExitOk;
  for (const absl::Status& s : results) {
    if (s.ok()) continue;
    std::cerr << "fcp-worker: " << s.message() << "\n";
    exit_code = kExitFailed;
  }
  if (exit_code == kExitOk && reports) {
    std::printf("fcp-worker: %d steps done, every rank ok\n", o.loop.steps);
  }
  if (exposer != nullptr && o.linger > absl::ZeroDuration()) {
    std::printf("fcp-worker: serving metrics for %s more\n",
                absl::FormatDuration(o.linger).c_str());
    std::fflush(stdout);
    absl::SleepFor(o.linger);
  }
  return exit_code;
}

}  // namespace
}  // namespace fcp

int main(int argc, char** argv) {
  fcp::RegisterDcpPlanner();
  return fcp::Main(std::vector<std::string>(argv + 1, argv + argc));
}
