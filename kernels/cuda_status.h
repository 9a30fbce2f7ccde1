// CUDA runtime errors as absl::Status at the call site, with file:line (STYLE 4). For .cc/.cu
// files built with CUDA only.
//
//   CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream));
#ifndef FCP_KERNELS_CUDA_STATUS_H_
#define FCP_KERNELS_CUDA_STATUS_H_

#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fcp {

// Internal("file:line: what: cudaErrorX: text") for an error, Ok for cudaSuccess.
inline absl::Status CudaStatus(cudaError_t error, absl::string_view what, const char* file,
                               int line) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(
      file, ":", line, ": ", what, ": ", cudaGetErrorName(error), ": ", cudaGetErrorString(error)));
}

}  // namespace fcp

#define CUDA_RETURN_IF_ERROR(expr)                                                                \
  do {                                                                                            \
    const ::absl::Status fcp_cuda_status_ = ::fcp::CudaStatus((expr), #expr, __FILE__, __LINE__); \
    if (!fcp_cuda_status_.ok()) return fcp_cuda_status_;                                          \
  } while (false)

#endif  // FCP_KERNELS_CUDA_STATUS_H_
