// Where an executor's tensors live and what runs its attention (DESIGN §5): host memory and the CPU
// kernels (NewCpuBackend, the default), or one GPU's memory and the CUDA kernels (NewCudaBackend,
// worker/executor/cuda_backend.h). The executor's logic (rounds, transfers, merges, headers) is the
// same over both: it only ever holds pointers into backend memory and hands them to the backend's
// kernels or to the transport.
//
// Tensors follow kernels/attention.h: q, k, v, d_o in the backend's dtype, everything else fp32.
// A backend runs one step at a time, from one thread:
//
//   ASSIGN_OR_RETURN(StepTensors t, backend->BeginStep(shape, inputs));
//   ... Allocate / Forward / Backward / ComputeDelta / Accumulate / Copy* ...
//   RETURN_IF_ERROR(backend->EndStep(&outputs));  // host copies of o, lse, dq, dk, dv
//
// Work may be asynchronous (GPU): calls enqueue in order; CopyToHost, Synchronize and EndStep
// wait for what was enqueued before them.
#ifndef FCP_WORKER_EXECUTOR_EXECUTOR_BACKEND_H_
#define FCP_WORKER_EXECUTOR_EXECUTOR_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/attention.h"
#include "worker/executor/step_types.h"

namespace fcp {

// A step's local tensors in backend memory, rows in slice order.
struct StepTensors {
  const void* q = nullptr;  // [tokens, q_heads, head_dim], dtype
  const void* k = nullptr;  // [tokens, kv_heads, head_dim], dtype
  const void* v = nullptr;
  const void* d_o = nullptr;  // like q
  float* o = nullptr;         // 0 at BeginStep
  float* lse = nullptr;       // [tokens, q_heads], -inf at BeginStep
  float* dq = nullptr;        // 0 at BeginStep
  float* dk = nullptr;
  float* dv = nullptr;
};

class ExecutorBackend {
 public:
  virtual ~ExecutorBackend() = default;

  virtual absl::string_view name() const = 0;  // "cpu", "cuda"
  virtual kernels::DType dtype() const = 0;    // of q, k, v, d_o in backend memory
  // True for device memory: a transport that moves host memory (loopback, gloo) then goes
  // through host staging copies; one that moves device memory (nccl) gets the pointers.
  virtual bool device_memory() const = 0;

  // Makes `in` resident (converted to dtype) and the outputs initialised, for a step of
  // in.tokens rows. Releases everything of the previous step.
  virtual absl::StatusOr<StepTensors> BeginStep(const kernels::AttentionShape& shape,
                                                const LocalInputs& in) = 0;
  // `bytes` of backend memory, zero-filled when `zero`, valid until the next BeginStep.
  virtual absl::StatusOr<void*> Allocate(size_t bytes, bool zero) = 0;
  virtual absl::Status CopyFromHost(void* dst, const void* src, size_t bytes) = 0;
  virtual absl::Status CopyToHost(void* dst, const void* src, size_t bytes) = 0;

  // attention.h / attention_cuda.h over backend memory.
  virtual absl::Status Forward(const kernels::AttentionShape& shape,
                               const std::vector<kernels::ForwardTile>& tiles) = 0;
  virtual absl::Status Backward(const kernels::AttentionShape& shape,
                                const std::vector<kernels::BackwardTile>& tiles) = 0;
  virtual absl::Status ComputeDelta(const kernels::AttentionShape& shape, const float* o,
                                    const void* d_o, int64_t rows, float* delta) = 0;
  // dst[i] += src[i], i < n.
  virtual absl::Status Accumulate(float* dst, const float* src, int64_t n) = 0;

  // Waits for all work enqueued so far.
  virtual absl::Status Synchronize() = 0;
  // Seconds the step's Forward and Backward calls computed (kernel time, not launch time);
  // complete after Synchronize.
  virtual absl::StatusOr<double> AttentionSeconds() = 0;
  // Host copies of the step's o, lse, dq, dk, dv (fp32), after all its work.
  virtual absl::Status EndStep(LocalOutputs* out) = 0;
};

// Host memory, fp32, the CPU kernels on `threads` threads (<= 0: hardware concurrency). Zero
// copies: BeginStep reads the inputs in place, EndStep moves the outputs out.
std::unique_ptr<ExecutorBackend> NewCpuBackend(int threads);

}  // namespace fcp

#endif  // FCP_WORKER_EXECUTOR_EXECUTOR_BACKEND_H_
