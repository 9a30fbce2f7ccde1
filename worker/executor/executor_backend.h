// Where an executor's tensors live and what runs its attention (DESIGN §5): host memory and the CPU
// kernels (NewCpuBackend, the default), or one GPU's memory and the CUDA kernels (NewCudaBackend,
// worker/executor/cuda_backend.h). The executor's logic (rounds, transfers, merges, headers) is the
// same over both: it only ever holds pointers into backend memory and hands them to the backend's
// kernels or to the transport.
//
// Tensors follow kernels/attention.h: q, k, v, d_o in an input dtype, everything else fp32. The
// backend does not own the caller's tensors; the memory the executor needs for itself (received
// K/V, partials, fp32 accumulators) comes from arenas, each freed as a whole when destroyed (a
// forward's context holds one until its backward is done).
//
// Work may be asynchronous (GPU): calls enqueue in order on the backend's stream; CopyToHost and
// Synchronize wait for what was enqueued before them. One thread at a time.
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

namespace fcp {

// Backend memory that lives as long as the arena (stream-ordered frees on a GPU).
class BackendArena {
 public:
  virtual ~BackendArena() = default;
  // `bytes` of backend memory, zero-filled when `zero`.
  virtual absl::StatusOr<void*> Allocate(size_t bytes, bool zero) = 0;
};

class ExecutorBackend {
 public:
  virtual ~ExecutorBackend() = default;

  virtual absl::string_view name() const = 0;  // "cpu", "cuda"
  // The input dtype Executor::Run computes in (it converts its host fp32 inputs to it).
  virtual kernels::DType dtype() const = 0;
  // Whether the kernels take inputs of `dtype` as they are; otherwise the executor widens them to
  // fp32 first (ConvertToFloat) and computes in fp32.
  virtual bool Computes(kernels::DType dtype) const = 0;
  // True for device memory: a transport that moves host memory (loopback, gloo) then goes
  // through host staging copies; one that moves device memory (nccl) gets the pointers.
  virtual bool device_memory() const = 0;

  virtual std::unique_ptr<BackendArena> NewArena() = 0;
  virtual absl::Status CopyFromHost(void* dst, const void* src, size_t bytes) = 0;
  virtual absl::Status CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  // dst[i] = value, i < n (backend memory).
  virtual absl::Status Fill(float* dst, int64_t n, float value) = 0;
  // Between fp32 and an input dtype, elementwise over backend memory (kernels/dtype_convert.h's
  // rounding).
  virtual absl::Status ConvertFromFloat(const float* src, kernels::DType dtype, void* dst,
                                        int64_t n) = 0;
  virtual absl::Status ConvertToFloat(const void* src, kernels::DType dtype, float* dst,
                                      int64_t n) = 0;

  // attention.h / attention_cuda.h over backend memory, inputs of `dtype` (Computes(dtype)).
  virtual absl::Status Forward(const kernels::AttentionShape& shape, kernels::DType dtype,
                               const std::vector<kernels::ForwardTile>& tiles) = 0;
  virtual absl::Status Backward(const kernels::AttentionShape& shape, kernels::DType dtype,
                                const std::vector<kernels::BackwardTile>& tiles) = 0;
  virtual absl::Status ComputeDelta(const kernels::AttentionShape& shape, kernels::DType dtype,
                                    const float* o, const void* d_o, int64_t rows,
                                    float* delta) = 0;
  // dst[i] += src[i], i < n.
  virtual absl::Status Accumulate(float* dst, const float* src, int64_t n) = 0;
  // (o_a, lse_a) <- merge((o_a, lse_a), (o_b, lse_b)) over rows x q_heads (kernels/attention.h's
  // MergeLse): a partial output computed on another worker (placed computation).
  virtual absl::Status MergeLse(const kernels::AttentionShape& shape, int64_t rows, float* o_a,
                                float* lse_a, const float* o_b, const float* lse_b) = 0;

  // Orders the backend's later work after the work enqueued so far on `stream` (a caller's
  // cudaStream_t; null: the default stream). Nothing to order on the CPU.
  virtual absl::Status OrderAfter(void* stream) = 0;
  // Waits for all work enqueued so far.
  virtual absl::Status Synchronize() = 0;
  // Seconds the Forward and Backward calls since the previous call computed (kernel time, not
  // launch time); complete after Synchronize.
  virtual absl::StatusOr<double> TakeAttentionSeconds() = 0;
};

// Host memory, fp32 kernels on `threads` threads (<= 0: hardware concurrency); fp16/bf16 inputs
// are converted on the host.
std::unique_ptr<ExecutorBackend> NewCpuBackend(int threads);

}  // namespace fcp

#endif  // FCP_WORKER_EXECUTOR_EXECUTOR_BACKEND_H_
