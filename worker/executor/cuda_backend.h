// The executor on one GPU (worker/executor/executor_backend.h): the step's tensors in device
// memory, in the backend's dtype (fp32, fp16, bf16; outputs fp32), the CUDA kernels of
// kernels/attention_cuda.h, all on the backend's own stream. With the nccl transport, pass
// stream() as NcclOptions::compute_stream, so each exchange waits for the kernels before it and
// the buffers move GPU to GPU; with a host transport (loopback, gloo) the executor stages them
// through host memory, which lets one GPU emulate many ranks (DESIGN §5).
//
//   CudaBackendOptions options;
//   options.device = local_rank;
//   ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> backend, NewCudaBackend(options));
//   NcclOptions nccl;
//   nccl.compute_stream = backend->stream();  // ... then NewNcclTransport(nccl, store)
//   Executor executor(transport.get(), shape, std::move(backend));
//
// Allocations are stream-ordered (cudaMallocAsync from the device's pool, kept between steps).
// Attention time is measured with CUDA events around each launch. The kernels read fp32, fp16
// and bf16 inputs as they are; dtype is what Executor::Run converts its host inputs to.
#ifndef FCP_WORKER_EXECUTOR_CUDA_BACKEND_H_
#define FCP_WORKER_EXECUTOR_CUDA_BACKEND_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/attention.h"
#include "worker/executor/executor_backend.h"

namespace fcp {

struct CudaBackendOptions {
  int device = -1;  // CUDA device; -1: the calling thread's current device
  kernels::DType dtype = kernels::DType::kBf16;
};

class CudaBackend : public ExecutorBackend {
 public:
  virtual void* stream() const = 0;  // a cudaStream_t
  virtual int device() const = 0;
  virtual const std::string& uuid() const = 0;  // "GPU-...", as nvidia-smi prints it
};

// FailedPrecondition without a device (or below compute capability 8.0).
absl::StatusOr<std::unique_ptr<CudaBackend>> NewCudaBackend(const CudaBackendOptions& options);

// CUDA devices this process sees (0 without any, or in a build without CUDA).
int CudaDeviceCount();

}  // namespace fcp

#endif  // FCP_WORKER_EXECUTOR_CUDA_BACKEND_H_
