#include "worker/executor/cuda_backend.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "common/status_macros.h"
#include "kernels/attention_cuda.h"
#include "kernels/cuda_status.h"
#include "worker/executor/executor.h"

namespace fcp {
namespace {

class CudaBackendImpl final : public CudaBackend {
 public:
  CudaBackendImpl(const CudaBackendOptions& options, int device)
      : dtype_(options.dtype), device_(device) {}
  ~CudaBackendImpl() override {
    cudaSetDevice(device_);
    if (stream_ != nullptr) {
      FreeStep().IgnoreError();
      cudaStreamSynchronize(stream_);
    }
    attention_.reset();
    for (auto& [start, stop] : events_) {
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
    }
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  absl::Status Init() {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ASSIGN_OR_RETURN(attention_, kernels::CudaAttention::Create(stream_));
    // Keep freed memory in the pool between steps instead of returning it at every sync.
    cudaMemPool_t pool;
    CUDA_RETURN_IF_ERROR(cudaDeviceGetDefaultMemPool(&pool, device_));
    uint64_t keep = std::numeric_limits<uint64_t>::max();
    CUDA_RETURN_IF_ERROR(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    return absl::OkStatus();
  }

  absl::string_view name() const override { return "cuda"; }
  kernels::DType dtype() const override { return dtype_; }
  bool device_memory() const override { return true; }
  void* stream() const override { return stream_; }
  int device() const override { return device_; }

  absl::StatusOr<StepTensors> BeginStep(const kernels::AttentionShape& shape,
                                        const LocalInputs& in) override {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    RETURN_IF_ERROR(FreeStep());
    shape_ = shape;
    tokens_ = in.tokens;
    used_events_ = 0;
    const int64_t q_elems = in.tokens * shape.q_heads * shape.head_dim;
    const int64_t kv_elems = in.tokens * shape.kv_heads * shape.head_dim;
    StepTensors t;
    ASSIGN_OR_RETURN(t.q, Upload(in.q, q_elems));
    ASSIGN_OR_RETURN(t.k, Upload(in.k, kv_elems));
    ASSIGN_OR_RETURN(t.v, Upload(in.v, kv_elems));
    ASSIGN_OR_RETURN(t.d_o, Upload(in.d_o, q_elems));
    ASSIGN_OR_RETURN(void* o, Allocate(q_elems * sizeof(float), true));
    ASSIGN_OR_RETURN(void* lse, Allocate(in.tokens * shape.q_heads * sizeof(float), false));
    ASSIGN_OR_RETURN(void* dq, Allocate(q_elems * sizeof(float), true));
    ASSIGN_OR_RETURN(void* dk, Allocate(kv_elems * sizeof(float), true));
    ASSIGN_OR_RETURN(void* dv, Allocate(kv_elems * sizeof(float), true));
    const std::vector<float> no_keys(in.tokens * shape.q_heads,
                                     -std::numeric_limits<float>::infinity());
    RETURN_IF_ERROR(CopyFromHost(lse, no_keys.data(), no_keys.size() * sizeof(float)));
    t.o = static_cast<float*>(o);
    t.lse = static_cast<float*>(lse);
    t.dq = static_cast<float*>(dq);
    t.dk = static_cast<float*>(dk);
    t.dv = static_cast<float*>(dv);
    tensors_ = t;
    return t;
  }

  absl::StatusOr<void*> Allocate(size_t bytes, bool zero) override {
    void* p = nullptr;
    CUDA_RETURN_IF_ERROR(cudaMallocAsync(&p, bytes == 0 ? 1 : bytes, stream_));
    allocations_.push_back(p);
    if (zero) CUDA_RETURN_IF_ERROR(cudaMemsetAsync(p, 0, bytes, stream_));
    return p;
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

  absl::Status Forward(const kernels::AttentionShape& shape,
                       const std::vector<kernels::ForwardTile>& tiles) override {
    ASSIGN_OR_RETURN(auto events, NextEvents());
    CUDA_RETURN_IF_ERROR(cudaEventRecord(events.first, stream_));
    RETURN_IF_ERROR(attention_->Forward(shape, dtype_, tiles));
    CUDA_RETURN_IF_ERROR(cudaEventRecord(events.second, stream_));
    return absl::OkStatus();
  }
  absl::Status Backward(const kernels::AttentionShape& shape,
                        const std::vector<kernels::BackwardTile>& tiles) override {
    ASSIGN_OR_RETURN(auto events, NextEvents());
    CUDA_RETURN_IF_ERROR(cudaEventRecord(events.first, stream_));
    RETURN_IF_ERROR(attention_->Backward(shape, dtype_, tiles));
    CUDA_RETURN_IF_ERROR(cudaEventRecord(events.second, stream_));
    return absl::OkStatus();
  }
  absl::Status ComputeDelta(const kernels::AttentionShape& shape, const float* o, const void* d_o,
                            int64_t rows, float* delta) override {
    return attention_->ComputeDelta(shape, dtype_, o, d_o, rows, delta);
  }
  absl::Status Accumulate(float* dst, const float* src, int64_t n) override {
    return attention_->Accumulate(dst, src, n);
  }

  absl::Status Synchronize() override {
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return absl::OkStatus();
  }

  absl::StatusOr<double> AttentionSeconds() override {
    RETURN_IF_ERROR(Synchronize());
    double seconds = 0;
    for (size_t i = 0; i < used_events_; ++i) {
      float ms = 0;
      CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, events_[i].first, events_[i].second));
      seconds += ms / 1e3;
    }
    return seconds;
  }

  absl::Status EndStep(LocalOutputs* out) override {
    const int64_t q_elems = tokens_ * shape_.q_heads * shape_.head_dim;
    const int64_t kv_elems = tokens_ * shape_.kv_heads * shape_.head_dim;
    out->o.resize(q_elems);
    out->lse.resize(tokens_ * shape_.q_heads);
    out->dq.resize(q_elems);
    out->dk.resize(kv_elems);
    out->dv.resize(kv_elems);
    for (auto [host, device] : {std::pair<std::vector<float>*, const float*>{&out->o, tensors_.o},
                                {&out->lse, tensors_.lse},
                                {&out->dq, tensors_.dq},
                                {&out->dk, tensors_.dk},
                                {&out->dv, tensors_.dv}}) {
      CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host->data(), device, host->size() * sizeof(float),
                                           cudaMemcpyDeviceToHost, stream_));
    }
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return FreeStep();
  }

 private:
  // Device copy of `n` host floats in the backend's dtype.
  absl::StatusOr<const void*> Upload(const float* src, int64_t n) {
    ASSIGN_OR_RETURN(void* staged, Allocate(n * sizeof(float), false));
    RETURN_IF_ERROR(CopyFromHost(staged, src, n * sizeof(float)));
    if (dtype_ == kernels::DType::kFp32) return staged;
    ASSIGN_OR_RETURN(void* converted, Allocate(n * kernels::DTypeBytes(dtype_), false));
    RETURN_IF_ERROR(
        attention_->ConvertFromFloat(static_cast<const float*>(staged), dtype_, converted, n));
    return converted;
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

  absl::Status FreeStep() {
    for (void* p : allocations_) CUDA_RETURN_IF_ERROR(cudaFreeAsync(p, stream_));
    allocations_.clear();
    return absl::OkStatus();
  }

  const kernels::DType dtype_;
  const int device_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<kernels::CudaAttention> attention_;
  std::vector<void*> allocations_;  // this step's, freed (stream-ordered) by the next
  std::vector<std::pair<cudaEvent_t, cudaEvent_t>> events_;
  size_t used_events_ = 0;
  kernels::AttentionShape shape_;
  int64_t tokens_ = 0;
  StepTensors tensors_;
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
