// TrainerExecutor: the executor as a trainer holds it (what the C API's fcp_executor wraps): one
// rank's transport (chosen once: loopback for a single rank, gloo, or nccl on a GPU), its backend
// (host memory and the CPU kernels, or one GPU), optionally a Prometheus endpoint with the
// fcp_worker_* metrics (worker/worker_metrics.h; on a GPU with NVML also its utilization, memory
// and SM clock, worker/nvml_gauges.h), and per-call statistics. Calls are serialized.
//
//   TrainerExecutorOptions options;
//   options.rank = rank; options.world_size = world; options.rendezvous = "file:/shared/run3";
//   ASSIGN_OR_RETURN(std::unique_ptr<TrainerExecutor> ex, TrainerExecutor::Create(options));
//   ASSIGN_OR_RETURN(auto context, ex->Forward(plan, step, shape, tensors, stream));
//   RETURN_IF_ERROR(ex->Backward(*context, grads, stream));
//
// Every rank must make the same sequence of collective calls (Forward, GatherRows,
// ScatterAddRows; Backward follows its forward's numbering).
#ifndef FCP_WORKER_TRAINER_EXECUTOR_H_
#define FCP_WORKER_TRAINER_EXECUTOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gloo/rendezvous/store.h"
#include "kernels/attention.h"
#include "service/planner/plan.h"
#include "worker/executor/executor.h"

namespace fcp {

struct TrainerExecutorOptions {
  int32_t rank = 0;
  int32_t world_size = 1;
  std::string transport = "gloo";  // "gloo", "nccl" (device "cuda"), "loopback" (world_size 1)
  std::shared_ptr<gloo::rendezvous::Store> store;  // the trainer's; or null and rendezvous:
  std::string rendezvous;                          // "file:DIR" or "coordinator:HOST:PORT"
  std::string job_id = "fcp";                      // store key prefix, metrics label training_job
  std::string device = "cpu";                      // or "cuda"
  int32_t cuda_device = 0;
  std::string interface_address = "127.0.0.1";
  absl::Duration timeout = absl::Seconds(300);
  int32_t threads = 0;       // CPU kernels (0: hardware concurrency)
  int32_t metrics_port = 0;  // > 0: Prometheus endpoint on 0.0.0.0:port
  int32_t node = 0;          // metrics label
  // rendezvous "coordinator:...": the job token its calls carry (issue 28); empty =
  // $FCP_JOB_TOKEN if set, else none (client/job_token.h).
  std::string job_token;
};

class TrainerExecutor {
 public:
  // Checks the options (InvalidArgument naming "options.<field>"), then meets the peers.
  static absl::StatusOr<std::unique_ptr<TrainerExecutor>> Create(
      const TrainerExecutorOptions& options);
  ~TrainerExecutor();

  int32_t rank() const { return options_.rank; }
  int32_t world_size() const { return options_.world_size; }
  bool device_memory() const;

  // Executor::Forward / Backward on the caller's tensors (InvalidArgument naming the argument:
  // shape, tokens, a null tensor). Metrics are recorded after each backward.
  absl::StatusOr<std::unique_ptr<ForwardContext>> Forward(const Plan& plan, int64_t step,
                                                          const kernels::AttentionShape& shape,
                                                          const ForwardTensors& tensors,
                                                          void* stream);
  absl::Status Backward(ForwardContext& context, const BackwardTensors& tensors, void* stream);

  // worker/executor/row_exchange.h over this rank's transport; buffers in the executor's memory
  // (device buffers are staged through the host).
  absl::Status GatherRows(const Plan& plan, int64_t step, int64_t row_bytes, const void* local,
                          void* global);
  absl::Status ScatterAddRows(const Plan& plan, int64_t step, kernels::DType dtype,
                              int64_t row_elements, const void* global, void* local);

  // The last Forward's figures, with its Backward's once that ran (tiles: one slice's).
  StepStats last_stats() const;

  struct Parts;

 private:
  TrainerExecutor(const TrainerExecutorOptions& options, std::unique_ptr<Parts> parts);
  // Runs `exchange` on host buffers (local, global) under the next call's tag: the caller's own
  // on the CPU; on a GPU, host copies (the input copied in, the output copied back: local to
  // global for a gather, global to local for a scatter).
  using RowExchange =
      std::function<absl::Status(Transport& transport, uint64_t tag, void* local, void* global)>;
  absl::Status ExchangeRows(const Plan& plan, int64_t step, size_t row_bytes, void* local,
                            void* global, bool gather, const RowExchange& exchange);

  const TrainerExecutorOptions options_;
  mutable absl::Mutex mu_;
  std::unique_ptr<Parts> parts_ ABSL_GUARDED_BY(mu_);
  StepStats last_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fcp

#endif  // FCP_WORKER_TRAINER_EXECUTOR_H_
