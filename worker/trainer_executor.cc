#include "worker/trainer_executor.h"

#include <cmath>
#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "client/job_token.h"
#include "common/status_macros.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "service/planner/token_dispatch.h"
#include "worker/executor/cuda_backend.h"
#include "worker/executor/executor_backend.h"
#include "worker/executor/row_exchange.h"
#include "worker/nvml_gauges.h"
#include "worker/transport/coordinator_store.h"
#include "worker/transport/loopback_transport.h"
#include "worker/transport/transport_factory.h"
#include "worker/worker_metrics.h"

namespace fcp {

struct TrainerExecutor::Parts {
  std::unique_ptr<LoopbackHub> hub;  // transport "loopback"
  std::unique_ptr<Transport> transport;
  std::unique_ptr<Executor> executor;
  std::string gpu_uuid;
  std::shared_ptr<NvmlGauges> gpu_gauges;  // device "cuda" with NVML; the exposer's weak_ptr
  std::unique_ptr<prometheus::Exposer> exposer;
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<WorkerMetrics> metrics;
};

namespace {

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("options.", field, ": ", why));
}

absl::Status CheckOptions(const TrainerExecutorOptions& o) {
  if (o.world_size < 1)
    return Invalid("world_size", absl::StrCat("must be >= 1, got ", o.world_size));
  if (o.rank < 0 || o.rank >= o.world_size) {
    return Invalid("rank", absl::StrCat("must be in [0, ", o.world_size, "), got ", o.rank));
  }
  if (o.device != "cpu" && o.device != "cuda") {
    return Invalid("device", absl::StrCat("expected \"cpu\" or \"cuda\", got \"", o.device, "\""));
  }
  if (o.transport != "gloo" && o.transport != "nccl" && o.transport != "loopback") {
    return Invalid("transport", absl::StrCat("expected \"gloo\", \"nccl\" or \"loopback\", got \"",
                                             o.transport, "\""));
  }
  if (o.transport == "loopback" && o.world_size != 1) {
    return Invalid("transport", "\"loopback\" needs world_size 1 (ranks in other processes)");
  }
  if (o.transport == "nccl" && o.device != "cuda") {
    return Invalid("transport", "\"nccl\" needs device \"cuda\"");
  }
  if (o.transport != "loopback" && o.store == nullptr && o.rendezvous.empty()) {
    return Invalid("rendezvous",
                   "required without options.store (\"file:DIR\" or "
                   "\"coordinator:HOST:PORT\")");
  }
  if (o.job_id.empty()) return Invalid("job_id", "must not be empty");
  if (o.cuda_device < 0) return Invalid("cuda_device", "must be >= 0");
  if (!(o.timeout > absl::ZeroDuration()) || o.timeout == absl::InfiniteDuration()) {
    return Invalid("timeout_seconds", "must be positive and finite");
  }
  if (o.threads < 0) return Invalid("threads", "must be >= 0");
  if (o.metrics_port < 0 || o.metrics_port > 65535) {
    return Invalid("metrics_port", absl::StrCat("must be in [0, 65535], got ", o.metrics_port));
  }
  return CheckJobToken("options.job_token", o.job_token);
}

// "file:DIR" (a directory every rank sees) or "coordinator:HOST:PORT" (its store).
absl::Status ParseRendezvous(const TrainerExecutorOptions& o, TransportOptions* transport) {
  absl::string_view rest = o.rendezvous;
  if (absl::ConsumePrefix(&rest, "file:") && !rest.empty()) {
    transport->rendezvous_dir = std::string(rest);
    return absl::OkStatus();
  }
  rest = o.rendezvous;
  if (absl::ConsumePrefix(&rest, "coordinator:") && !rest.empty()) {
    CoordinatorStoreOptions store;
    store.target = std::string(rest);
    store.job_id = o.job_id;
    store.timeout = o.timeout;
    store.job_token = o.job_token;
    ASSIGN_OR_RETURN(transport->store, NewCoordinatorStore(store));
    return absl::OkStatus();
  }
  return Invalid("rendezvous",
                 absl::StrCat("expected \"file:DIR\" or \"coordinator:HOST:PORT\", got \"",
                              o.rendezvous, "\""));
}

absl::Status CheckShape(const kernels::AttentionShape& shape) {
  if (shape.q_heads < 1 || shape.kv_heads < 1 || shape.q_heads % shape.kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("shape: num_q_heads (", shape.q_heads,
                                                   ") must be a positive multiple of ",
                                                   "num_kv_heads (", shape.kv_heads, ")"));
  }
  if (shape.head_dim < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape.head_dim: must be >= 1, got ", shape.head_dim));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TrainerExecutor>> TrainerExecutor::Create(
    const TrainerExecutorOptions& o) {
  RETURN_IF_ERROR(CheckOptions(o));
  auto parts = std::make_unique<Parts>();
  std::unique_ptr<ExecutorBackend> backend = NewCpuBackend(o.threads);
  CudaBackend* cuda = nullptr;
  if (o.device == "cuda") {
    CudaBackendOptions options;
    options.device = o.cuda_device;
    ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> gpu, NewCudaBackend(options));
    cuda = gpu.get();
    parts->gpu_uuid = gpu->uuid();
    backend = std::move(gpu);
  }
  TransportOptions transport;
  transport.rank = o.rank;
  transport.world_size = o.world_size;
  transport.timeout = o.timeout;
  transport.key_prefix = absl::StrCat(o.job_id, "/fcp-executor");
  transport.hostname = o.interface_address;
  transport.store = o.store;
  if (cuda != nullptr) {
    transport.device = cuda->device();
    transport.compute_stream = cuda->stream();
  }
  ASSIGN_OR_RETURN(TransportKind kind, ParseTransportKind(o.transport));
  if (kind == TransportKind::kLoopback) {
    parts->hub = std::make_unique<LoopbackHub>(1);
    transport.hub = parts->hub.get();
  } else if (transport.store == nullptr) {
    RETURN_IF_ERROR(ParseRendezvous(o, &transport));
  }
  ASSIGN_OR_RETURN(parts->transport, NewTransport(kind, transport));
  parts->transport->set_timeout(o.timeout);
  parts->executor = std::make_unique<Executor>(
      parts->transport.get(), kernels::AttentionShape{1, 1, 1}, std::move(backend));
  if (o.metrics_port > 0) {
    try {
      parts->exposer =
          std::make_unique<prometheus::Exposer>(absl::StrCat("0.0.0.0:", o.metrics_port));
    } catch (const std::exception& e) {
      return absl::FailedPreconditionError(
          absl::StrCat("options.metrics_port: cannot listen on ", o.metrics_port, ": ", e.what()));
    }
    parts->registry = std::make_shared<prometheus::Registry>();
    parts->exposer->RegisterCollectable(parts->registry);
    const WorkerLabels labels{o.job_id, o.rank, o.node, parts->gpu_uuid};
    parts->metrics = std::make_unique<WorkerMetrics>(*parts->registry, labels);
    if (cuda != nullptr) {  // NVML's gauges when it can be loaded; absent otherwise
      parts->gpu_gauges = NvmlGauges::Open({labels, o.cuda_device});
      if (parts->gpu_gauges != nullptr) parts->exposer->RegisterCollectable(parts->gpu_gauges);
    }
  }
  return std::unique_ptr<TrainerExecutor>(new TrainerExecutor(o, std::move(parts)));
}

TrainerExecutor::TrainerExecutor(const TrainerExecutorOptions& options,
                                 std::unique_ptr<Parts> parts)
    : options_(options), parts_(std::move(parts)) {}

TrainerExecutor::~TrainerExecutor() = default;

bool TrainerExecutor::device_memory() const {
  absl::MutexLock lock(&mu_);
  return parts_->executor->backend().device_memory();
}

absl::StatusOr<std::unique_ptr<ForwardContext>> TrainerExecutor::Forward(
    const Plan& plan, int64_t step, const kernels::AttentionShape& shape,
    const ForwardTensors& tensors, void* stream) {
  RETURN_IF_ERROR(CheckShape(shape));
  absl::MutexLock lock(&mu_);
  Executor& executor = *parts_->executor;
  executor.set_shape(shape);
  absl::StatusOr<std::unique_ptr<ForwardContext>> context =
      executor.Forward(plan, "", step, tensors, stream);
  if (!context.ok()) {
    if (parts_->metrics != nullptr) parts_->metrics->RecordError();
    return context.status();
  }
  last_ = (*context)->stats();
  return context;
}

absl::Status TrainerExecutor::Backward(ForwardContext& context, const BackwardTensors& tensors,
                                       void* stream) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<StepStats> backward = parts_->executor->Backward(context, tensors, stream);
  if (!backward.ok()) {
    if (parts_->metrics != nullptr && context.executor() == parts_->executor.get()) {
      parts_->metrics->RecordError();
    }
    return backward.status();
  }
  last_ = CombineStats(context.stats(), *backward);
  if (parts_->metrics != nullptr) {
    parts_->metrics->RecordStep(last_, context.tokens(), context.predicted_seconds());
  }
  return absl::OkStatus();
}

absl::Status TrainerExecutor::ExchangeRows(const Plan& plan, int64_t step, size_t row_bytes,
                                           void* local, void* global, bool gather,
                                           const RowExchange& exchange) {
  ASSIGN_OR_RETURN(RankTokens mine, RankTokensOf(plan, options_.rank));
  const size_t local_bytes = mine.global_index.size() * row_bytes;
  const size_t global_bytes = static_cast<size_t>(TotalTokens(plan)) * row_bytes;
  if ((local == nullptr && local_bytes > 0) || (global == nullptr && global_bytes > 0)) {
    return absl::InvalidArgumentError(local == nullptr ? "local: NULL" : "global: NULL");
  }
  absl::MutexLock lock(&mu_);
  Executor& executor = *parts_->executor;
  ExecutorBackend& backend = executor.backend();
  const uint64_t tag = RowsTag(step, executor.NextCall());
  Transport& transport = *parts_->transport;
  if (!backend.device_memory()) return exchange(transport, tag, local, global);
  // Device buffers: the input comes to the host, the output goes back.
  std::vector<char> host_local(local_bytes), host_global(global_bytes);
  const void* in = gather ? local : global;
  void* in_host = gather ? host_local.data() : host_global.data();
  RETURN_IF_ERROR(backend.CopyToHost(in_host, in, gather ? local_bytes : global_bytes));
  RETURN_IF_ERROR(exchange(transport, tag, host_local.data(), host_global.data()));
  if (gather) {
    RETURN_IF_ERROR(backend.CopyFromHost(global, host_global.data(), global_bytes));
  } else {
    RETURN_IF_ERROR(backend.CopyFromHost(local, host_local.data(), local_bytes));
  }
  return backend.Synchronize();
}

absl::Status TrainerExecutor::GatherRows(const Plan& plan, int64_t step, int64_t row_bytes,
                                         const void* local, void* global) {
  if (row_bytes < 1) {
    return absl::InvalidArgumentError(absl::StrCat("row_bytes: must be >= 1, got ", row_bytes));
  }
  return ExchangeRows(plan, step, row_bytes, const_cast<void*>(local), global, /*gather=*/true,
                      [&](Transport& transport, uint64_t tag, void* l, void* g) {
                        return fcp::GatherRows(transport, plan, tag, row_bytes, l, g);
                      });
}

absl::Status TrainerExecutor::ScatterAddRows(const Plan& plan, int64_t step, kernels::DType dtype,
                                             int64_t row_elements, const void* global,
                                             void* local) {
  if (row_elements < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("row_elements: must be >= 1, got ", row_elements));
  }
  return ExchangeRows(plan, step, row_elements * kernels::DTypeBytes(dtype), local,
                      const_cast<void*>(global), /*gather=*/false,
                      [&](Transport& transport, uint64_t tag, void* l, void* g) {
                        return fcp::ScatterAddRows(transport, plan, tag, dtype, row_elements, g, l);
                      });
}

StepStats TrainerExecutor::last_stats() const {
  absl::MutexLock lock(&mu_);
  return last_;
}

}  // namespace fcp
