// NewCudaBackend in a build without CUDA (worker/executor/CMakeLists.txt links this instead of
// cuda_backend.cc), so that callers build everywhere and fail at run time, saying why.
#include "absl/status/status.h"
#include "worker/executor/cuda_backend.h"

namespace fcp {

absl::StatusOr<std::unique_ptr<CudaBackend>> NewCudaBackend(const CudaBackendOptions& options) {
  return absl::UnimplementedError(
      "the cuda backend is not in this build (configured without CUDA)");
}

int CudaDeviceCount() { return 0; }

}  // namespace fcp
