#include "worker/executor/executor_backend.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/dtype_convert.h"

namespace fcp {
namespace {

class CpuArena final : public BackendArena {
 public:
  absl::StatusOr<void*> Allocate(size_t bytes, bool zero) override {
    blocks_.push_back(zero ? std::make_unique<char[]>(bytes)
                           : std::unique_ptr<char[]>(new char[bytes]));
    return blocks_.back().get();
  }

 private:
  std::vector<std::unique_ptr<char[]>> blocks_;
};

class CpuBackend final : public ExecutorBackend {
 public:
  explicit CpuBackend(int threads) : threads_(threads) {}

  absl::string_view name() const override { return "cpu"; }
  kernels::DType dtype() const override { return kernels::DType::kFp32; }
  bool Computes(kernels::DType dtype) const override { return dtype == kernels::DType::kFp32; }
  bool device_memory() const override { return false; }

  std::unique_ptr<BackendArena> NewArena() override { return std::make_unique<CpuArena>(); }
  absl::Status CopyFromHost(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memcpy(dst, src, bytes);  // empty buffers may be null
    return absl::OkStatus();
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status Fill(float* dst, int64_t n, float value) override {
    std::fill(dst, dst + n, value);
    return absl::OkStatus();
  }
  absl::Status ConvertFromFloat(const float* src, kernels::DType dtype, void* dst,
                                int64_t n) override {
    kernels::ConvertFromFloat(src, dtype, dst, n);
    return absl::OkStatus();
  }
  absl::Status ConvertToFloat(const void* src, kernels::DType dtype, float* dst,
                              int64_t n) override {
    kernels::ConvertToFloat(src, dtype, dst, n);
    return absl::OkStatus();
  }

  absl::Status Forward(const kernels::AttentionShape& shape, kernels::DType dtype,
                       const std::vector<kernels::ForwardTile>& tiles) override {
    if (!Computes(dtype)) return NotFp32(dtype);
    const auto start = std::chrono::steady_clock::now();
    kernels::AttentionForward(shape, tiles, threads_);
    attention_seconds_ += Since(start);
    return absl::OkStatus();
  }
  absl::Status Backward(const kernels::AttentionShape& shape, kernels::DType dtype,
                        const std::vector<kernels::BackwardTile>& tiles) override {
    if (!Computes(dtype)) return NotFp32(dtype);
    const auto start = std::chrono::steady_clock::now();
    kernels::AttentionBackward(shape, tiles, threads_);
    attention_seconds_ += Since(start);
    return absl::OkStatus();
  }
  absl::Status ComputeDelta(const kernels::AttentionShape& shape, kernels::DType dtype,
                            const float* o, const void* d_o, int64_t rows, float* delta) override {
    if (!Computes(dtype)) return NotFp32(dtype);
    kernels::ComputeDelta(shape, o, static_cast<const float*>(d_o), rows, delta);
    return absl::OkStatus();
  }
  absl::Status Accumulate(float* dst, const float* src, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
    return absl::OkStatus();
  }
  absl::Status MergeLse(const kernels::AttentionShape& shape, int64_t rows, float* o_a,
                        float* lse_a, const float* o_b, const float* lse_b) override {
    kernels::MergeLse(shape, rows, o_a, lse_a, o_b, lse_b);
    return absl::OkStatus();
  }

  absl::Status OrderAfter(void*) override { return absl::OkStatus(); }
  absl::Status Synchronize() override { return absl::OkStatus(); }
  absl::StatusOr<double> TakeAttentionSeconds() override {
    return std::exchange(attention_seconds_, 0.0);
  }

 private:
  static double Since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  static absl::Status NotFp32(kernels::DType dtype) {
    return absl::InternalError(
        absl::StrCat("cpu backend: kernels take fp32 inputs, got ", kernels::DTypeName(dtype)));
  }

  const int threads_;
  double attention_seconds_ = 0;
};

}  // namespace

std::unique_ptr<ExecutorBackend> NewCpuBackend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace fcp
