#include "worker/executor/cuda_backend.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/attention_cuda.h"
#include "kernels/cuda_status.h"
#include "worker/executor/executor.h"

namespace fcp {
namespace {

// The backend's stream, shared with its arenas: an arena (a forward's context) may outlive the
// backend, and frees its memory on the stream, so the stream goes when the last of them does.
struct SharedStream {
  int device = 0;
  cudaStream_t stream = nullptr;
  ~SharedStream() {
    if (stream == nullptr) return;
    cudaSetDevice(device);
    cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
  }
};

// Stream-ordered allocations (cudaMallocAsync from the device's pool), freed on destruction.
class CudaArena final : public BackendArena {
 public:
  explicit CudaArena(std::shared_ptr<SharedStream> stream) : stream_(std::move(stream)) {}
  ~CudaArena() override {
    cudaSetDevice(stream_->device);
    for (void* p : allocations_) cudaFreeAsync(p, stream_->stream);
  }
  absl::StatusOr<void*> Allocate(size_t bytes, bool zero) override {
    void* p = nullptr;
    CUDA_RETURN_IF_ERROR(cudaMallocAsync(&p, bytes == 0 ? 1 : bytes, stream_->stream));
    allocations_.push_back(p);
    if (zero) CUDA_RETURN_IF_ERROR(cudaMemsetAsync(p, 0, bytes, stream_->stream));
    return p;
  }

 private:
  std::shared_ptr<SharedStream> stream_;
  std::vector<void*> allocations_;
};

class CudaBackendImpl final : public CudaBackend {
 public:
  CudaBackendImpl(const CudaBackendOptions& options, int device)
      : dtype_(options.dtype), device_(device) {}
  ~CudaBackendImpl() override {
    cudaSetDevice(device_);
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    attention_.reset();
    for (auto& [start, stop] : events_) {
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
    }
    if (ordered_ != nullptr) cudaEventDestroy(ordered_);
  }

  absl::Status Init() {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    shared_ = std::make_shared<SharedStream>();
    shared_->device = device_;
    CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&shared_->stream, cudaStreamNonBlocking));
    stream_ = shared_->stream;
    CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&ordered_, cudaEventDisableTiming));
    ASSIGN_OR_RETURN(attention_, kernels::CudaAttention::Create(stream_));
    // Keep freed memory in the pool between steps instead of returning it at every sync.
    cudaMemPool_t pool;
    CUDA_RETURN_IF_ERROR(cudaDeviceGetDefaultMemPool(&pool, device_));
    uint64_t keep = std::numeric_limits<uint64_t>::max();
    CUDA_RETURN_IF_ERROR(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    cudaDeviceProp prop;
    CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, device_));
    uuid_ = FormatUuid(prop.uuid);
    return absl::OkStatus();
  }

  absl::string_view name() const override { return "cuda"; }
  kernels::DType dtype() const override { return dtype_; }
  bool Computes(kernels::DType) const override { return true; }
  bool device_memory() const override { return true; }
  void* stream() const override { return stream_; }
  int device() const override { return device_; }
  const std::string& uuid() const override { return uuid_; }

  std::unique_ptr<BackendArena> NewArena() override {
    cudaSetDevice(device_);
    return std::make_unique<CudaArena>(shared_);
  }
  // From pageable host memory: the source is copied out before this returns.
  absl::Status CopyFromHost(void* dst, const void* src, size_t bytes) override {
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    return absl::OkStatus();
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return absl::OkStatus();
  }
  absl::Status Fill(float* dst, int64_t n, float value) override {
    if (value == 0.0f) {
      CUDA_RETURN_IF_ERROR(cudaMemsetAsync(dst, 0, n * sizeof(float), stream_));
      return absl::OkStatus();
    }
    const std::vector<float> host(n, value);  // pageable: copied out before the call returns
    return CopyFromHost(dst, host.data(), n * sizeof(float));
  }
  absl::Status ConvertFromFloat(const float* src, kernels::DType dtype, void* dst,
                                int64_t n) override {
    if (dtype == kernels::DType::kFp32) {
      CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
      return absl::OkStatus();
    }
    return attention_->ConvertFromFloat(src, dtype, dst, n);
  }
  // Never needed (the kernels read every dtype); there is no widening kernel.
  absl::Status ConvertToFloat(const void*, kernels::DType dtype, float*, int64_t) override {
    return absl::UnimplementedError(
        absl::StrCat("cuda backend: no conversion from ", kernels::DTypeName(dtype)));
  }

  absl::Status Forward(const kernels::AttentionShape& shape, kernels::DType dtype,
                       const std::vector<kernels::ForwardTile>& tiles) override {
    ASSIGN_OR_RETURN(auto events, NextEvents());
    CUDA_RETURN_IF_ERROR(cudaEventRecord(events.first, stream_));
    RETURN_IF_ERROR(attention_->Forward(shape, dtype, tiles));
    CUDA_RETURN_IF_ERROR(cudaEventRecord(events.second, stream_));
    return absl::OkStatus();
  }
  absl::Status Backward(const kernels::AttentionShape& shape, kernels::DType dtype,
                        const std::vector<kernels::BackwardTile>& tiles) override {
    ASSIGN_OR_RETURN(auto events, NextEvents());
    CUDA_RETURN_IF_ERROR(cudaEventRecord(events.first, stream_));
    RETURN_IF_ERROR(attention_->Backward(shape, dtype, tiles));
    CUDA_RETURN_IF_ERROR(cudaEventRecord(events.second, stream_));
    return absl::OkStatus();
  }
  absl::Status ComputeDelta(const kernels::AttentionShape& shape, kernels::DType dtype,
                            const float* o, const void* d_o, int64_t rows, float* delta) override {
    return attention_->ComputeDelta(shape, dtype, o, d_o, rows, delta);
  }
  absl::Status Accumulate(float* dst, const float* src, int64_t n) override {
    return attention_->Accumulate(dst, src, n);
  }
  absl::Status MergeLse(const kernels::AttentionShape& shape, int64_t rows, float* o_a,
                        float* lse_a, const float* o_b, const float* lse_b) override {
    return attention_->MergeLse(shape, rows, o_a, lse_a, o_b, lse_b);
  }

  absl::Status OrderAfter(void* stream) override {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    CUDA_RETURN_IF_ERROR(cudaEventRecord(ordered_, static_cast<cudaStream_t>(stream)));
    CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(stream_, ordered_, 0));
    return absl::OkStatus();
  }
  absl::Status Synchronize() override {
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return absl::OkStatus();
  }

  absl::StatusOr<double> TakeAttentionSeconds() override {
    RETURN_IF_ERROR(Synchronize());
    double seconds = 0;
    for (size_t i = 0; i < used_events_; ++i) {
      float ms = 0;
      CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, events_[i].first, events_[i].second));
      seconds += ms / 1e3;
    }
    used_events_ = 0;
    return seconds;
  }

 private:
  // "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as nvidia-smi prints it.
  static std::string FormatUuid(const cudaUUID_t& uuid) {
    std::string out = "GPU-";
    for (int i = 0; i < 16; ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
      absl::StrAppend(&out, absl::Hex(static_cast<unsigned char>(uuid.bytes[i]), absl::kZeroPad2));
    }
    return out;
  }

  absl::StatusOr<std::pair<cudaEvent_t, cudaEvent_t>> NextEvents() {
    if (used_events_ == events_.size()) {
      std::pair<cudaEvent_t, cudaEvent_t> pair;
      CUDA_RETURN_IF_ERROR(cudaEventCreate(&pair.first));
      CUDA_RETURN_IF_ERROR(cudaEventCreate(&pair.second));
      events_.push_back(pair);
    }
    return events_[used_events_++];
  }

  const kernels::DType dtype_;
  const int device_;
  std::shared_ptr<SharedStream> shared_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ordered_ = nullptr;  // OrderAfter's marker on the caller's stream
  std::unique_ptr<kernels::CudaAttention> attention_;
  std::vector<std::pair<cudaEvent_t, cudaEvent_t>> events_;
  size_t used_events_ = 0;
  std::string uuid_;
};

}  // namespace

int CudaDeviceCount() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

absl::StatusOr<std::unique_ptr<CudaBackend>> NewCudaBackend(const CudaBackendOptions& options) {
  if (absl::Status s = kernels::CudaDeviceStatus(); !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  int device = options.device;
  if (device < 0) CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  auto backend = std::make_unique<CudaBackendImpl>(options, device);
  RETURN_IF_ERROR(backend->Init());
  return std::unique_ptr<CudaBackend>(std::move(backend));
}

}  // namespace fcp
