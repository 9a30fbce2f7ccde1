// Timing of GPU work for the GPU benchmarks (kernel_bench, distributed_emulation): milliseconds
// between two CUDA events recorded around the work a callback enqueues on one stream, and the
// median of repetitions.
#ifndef FCP_BENCH_STREAM_TIMER_H_
#define FCP_BENCH_STREAM_TIMER_H_

#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/status_macros.h"
#include "kernels/cuda_status.h"

namespace fcp {
namespace bench {

class StreamTimer {
 public:
  static absl::StatusOr<std::unique_ptr<StreamTimer>> Create(cudaStream_t stream) {
    std::unique_ptr<StreamTimer> timer(new StreamTimer(stream));
    CUDA_RETURN_IF_ERROR(cudaEventCreate(&timer->start_));
    CUDA_RETURN_IF_ERROR(cudaEventCreate(&timer->stop_));
    return timer;
  }
  ~StreamTimer() {
    if (start_ != nullptr) cudaEventDestroy(start_);
    if (stop_ != nullptr) cudaEventDestroy(stop_);
  }
  StreamTimer(const StreamTimer&) = delete;
  StreamTimer& operator=(const StreamTimer&) = delete;

  // Milliseconds of what `launch` (returning absl::Status) enqueues on the stream; waits for it.
  template <typename F>
  absl::StatusOr<double> Milliseconds(F launch) {
    CUDA_RETURN_IF_ERROR(cudaEventRecord(start_, stream_));
    RETURN_IF_ERROR(launch());
    CUDA_RETURN_IF_ERROR(cudaEventRecord(stop_, stream_));
    CUDA_RETURN_IF_ERROR(cudaEventSynchronize(stop_));
    float ms = 0;
    CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, start_, stop_));
    return static_cast<double>(ms);
  }

 private:
  explicit StreamTimer(cudaStream_t stream) : stream_(stream) {}

  cudaStream_t stream_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// The upper median (0 for no values).
inline double Median(std::vector<double> x) {
  if (x.empty()) return 0;
  std::nth_element(x.begin(), x.begin() + x.size() / 2, x.end());
  return x[x.size() / 2];
}

}  // namespace bench
}  // namespace fcp

#endif  // FCP_BENCH_STREAM_TIMER_H_
