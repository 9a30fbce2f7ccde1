#include "worker/executor/executor_backend.h"

#include <chrono>
#include <cstring>
#include <limits>
#include <utility>

namespace fcp {
namespace {

class CpuBackend final : public ExecutorBackend {
 public:
  explicit CpuBackend(int threads) : threads_(threads) {}

  absl::string_view name() const override { return "cpu"; }
  kernels::DType dtype() const override { return kernels::DType::kFp32; }
  bool device_memory() const override { return false; }

  absl::StatusOr<StepTensors> BeginStep(const kernels::AttentionShape& shape,
                                        const LocalInputs& in) override {
    arena_.clear();
    attention_seconds_ = 0;
    const int64_t q_elems = in.tokens * shape.q_heads * shape.head_dim;
    const int64_t kv_elems = in.tokens * shape.kv_heads * shape.head_dim;
    out_.o.assign(q_elems, 0.0f);
    out_.lse.assign(in.tokens * shape.q_heads, -std::numeric_limits<float>::infinity());
    out_.dq.assign(q_elems, 0.0f);
    out_.dk.assign(kv_elems, 0.0f);
    out_.dv.assign(kv_elems, 0.0f);
    return StepTensors{in.q,           in.k,           in.v,
                       in.d_o,         out_.o.data(),  out_.lse.data(),
                       out_.dq.data(), out_.dk.data(), out_.dv.data()};
  }

  absl::StatusOr<void*> Allocate(size_t bytes, bool zero) override {
    arena_.push_back(zero ? std::make_unique<char[]>(bytes)
                          : std::unique_ptr<char[]>(new char[bytes]));
    return arena_.back().get();
  }
  absl::Status CopyFromHost(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memcpy(dst, src, bytes);  // empty buffers may be null
    return absl::OkStatus();
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }

  absl::Status Forward(const kernels::AttentionShape& shape,
                       const std::vector<kernels::ForwardTile>& tiles) override {
    const auto start = std::chrono::steady_clock::now();
    kernels::AttentionForward(shape, tiles, threads_);
    attention_seconds_ += Since(start);
    return absl::OkStatus();
  }
  absl::Status Backward(const kernels::AttentionShape& shape,
                        const std::vector<kernels::BackwardTile>& tiles) override {
    const auto start = std::chrono::steady_clock::now();
    kernels::AttentionBackward(shape, tiles, threads_);
    attention_seconds_ += Since(start);
    return absl::OkStatus();
  }
  absl::Status ComputeDelta(const kernels::AttentionShape& shape, const float* o, const void* d_o,
                            int64_t rows, float* delta) override {
    kernels::ComputeDelta(shape, o, static_cast<const float*>(d_o), rows, delta);
    return absl::OkStatus();
  }
  absl::Status Accumulate(float* dst, const float* src, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
    return absl::OkStatus();
  }

  absl::Status Synchronize() override { return absl::OkStatus(); }
  absl::StatusOr<double> AttentionSeconds() override { return attention_seconds_; }
  absl::Status EndStep(LocalOutputs* out) override {
    *out = std::move(out_);
    out_ = LocalOutputs();
    arena_.clear();
    return absl::OkStatus();
  }

 private:
  static double Since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  const int threads_;
  LocalOutputs out_;
  std::vector<std::unique_ptr<char[]>> arena_;
  double attention_seconds_ = 0;
};

}  // namespace

std::unique_ptr<ExecutorBackend> NewCpuBackend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace fcp
