// NewNcclTransport in a build without CUDA or NCCL (worker/transport/CMakeLists.txt links this
// instead of nccl_transport.cc and nccl_connect.cc), so that callers build everywhere and fail at
// run time, saying why.
#include "absl/status/status.h"
#include "worker/transport/nccl_transport.h"

namespace fcp {

absl::StatusOr<std::unique_ptr<Transport>> NewNcclTransport(const NcclOptions& options,
                                                            gloo::rendezvous::Store& store) {
  return absl::UnimplementedError(
      "the nccl transport is not in this build (configured without CUDA or without NCCL)");
}

}  // namespace fcp
