// Host side of attention_cuda.h: the launch tables (attention_cuda_tables.h) staged through a
// pinned buffer to the device, then one launch (attention_cuda.cu).
#include "kernels/attention_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/attention_cuda_launch.h"
#include "kernels/attention_cuda_tables.h"
#include "kernels/cuda_status.h"

namespace fcp {
namespace kernels {

using cuda_internal::HostTables;
using cuda_internal::LaunchTables;
using cuda_internal::WorkItem;

namespace {

size_t Align16(size_t n) { return (n + 15) / 16 * 16; }

}  // namespace

struct CudaAttention::Impl {
  ~Impl() {
    if (copied != nullptr) {
      cudaEventSynchronize(copied);
      cudaEventDestroy(copied);
    }
    if (device_tables != nullptr) {
      cudaStreamSynchronize(stream);
      cudaFree(device_tables);
    }
    if (host != nullptr) cudaFreeHost(host);
  }

  // Copies `tables` to the device (through the pinned buffer, ordered on the stream) and returns
  // the device view.
  template <typename Tile>
  absl::StatusOr<LaunchTables<Tile>> Stage(const HostTables<Tile>& t) {
    const size_t tiles = 0;
    const size_t order = tiles + Align16(t.tiles.size() * sizeof(Tile));
    const size_t begin = order + Align16(t.order.size() * sizeof(int32_t));
    const size_t items = begin + Align16(t.begin.size() * sizeof(int32_t));
    const size_t bytes = items + t.items.size() * sizeof(WorkItem);
    // The previous launch's copy out of `host` must be done before `host` is rewritten.
    CUDA_RETURN_IF_ERROR(cudaEventSynchronize(copied));
    if (bytes > host_capacity) {
      if (host != nullptr) CUDA_RETURN_IF_ERROR(cudaFreeHost(host));
      host = nullptr;
      host_capacity = std::max(bytes, 2 * host_capacity);
      CUDA_RETURN_IF_ERROR(cudaMallocHost(&host, host_capacity));
    }
    if (bytes > device_capacity) {
      // Kernels in flight may still read the old tables.
      CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
      if (device_tables != nullptr) CUDA_RETURN_IF_ERROR(cudaFree(device_tables));
      device_tables = nullptr;
      device_capacity = std::max(bytes, 2 * device_capacity);
      CUDA_RETURN_IF_ERROR(cudaMalloc(&device_tables, device_capacity));
    }
    char* h = static_cast<char*>(host);
    std::memcpy(h + tiles, t.tiles.data(), t.tiles.size() * sizeof(Tile));
    std::memcpy(h + order, t.order.data(), t.order.size() * sizeof(int32_t));
    std::memcpy(h + begin, t.begin.data(), t.begin.size() * sizeof(int32_t));
    std::memcpy(h + items, t.items.data(), t.items.size() * sizeof(WorkItem));
    CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(device_tables, host, bytes, cudaMemcpyHostToDevice, stream));
    CUDA_RETURN_IF_ERROR(cudaEventRecord(copied, stream));
    const char* d = static_cast<const char*>(device_tables);
    LaunchTables<Tile> view;
    view.tiles = reinterpret_cast<const Tile*>(d + tiles);
    view.order = reinterpret_cast<const int32_t*>(d + order);
    view.begin = reinterpret_cast<const int32_t*>(d + begin);
    view.items = reinterpret_cast<const WorkItem*>(d + items);
    return view;
  }

  absl::Status CheckSharedMemory(size_t bytes) const {
    if (bytes <= max_shared) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat("attention kernel needs ", bytes,
                                                      " bytes of shared memory per block; device ",
                                                      device, " allows ", max_shared));
  }

  // v2 kernels for this dtype (fp32 always runs v1).
  bool V2(DType dtype) const {
    return options.kernels == CudaKernels::kV2 && dtype != DType::kFp32;
  }

  cudaStream_t stream = nullptr;
  CudaAttentionOptions options;
  int device = 0;
  size_t max_shared = 0;
  void* host = nullptr;  // pinned
  size_t host_capacity = 0;
  void* device_tables = nullptr;
  size_t device_capacity = 0;
  cudaEvent_t copied = nullptr;
};

absl::Status CudaDeviceStatus() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    return absl::UnavailableError(absl::StrCat(
        "no CUDA device: cudaGetDeviceCount: ", cudaGetErrorName(e), ": ", cudaGetErrorString(e)));
  }
  if (count == 0) return absl::UnavailableError("no CUDA device: cudaGetDeviceCount returned 0");
  return absl::OkStatus();
}

bool SupportedHeadDim(int32_t head_dim) { return head_dim == 64 || head_dim == 128; }

absl::StatusOr<CudaAttentionOptions> ParseCudaKernels(absl::string_view name,
                                                      absl::string_view flag) {
  if (name == "v1") return CudaAttentionOptions{CudaKernels::kV1, CudaDqMode::kAtomic};
  if (name == "v2") return CudaAttentionOptions{CudaKernels::kV2, CudaDqMode::kAtomic};
  if (name == "v2-separate-dq") {
    return CudaAttentionOptions{CudaKernels::kV2, CudaDqMode::kSeparate};
  }
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": \"", name, "\" is not v1, v2 or v2-separate-dq"));
}

std::string CudaKernelsName(const CudaAttentionOptions& options) {
  if (options.kernels == CudaKernels::kV1) return "v1";
  return options.dq == CudaDqMode::kSeparate ? "v2-separate-dq" : "v2";
}

CudaAttention::CudaAttention(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaAttention::~CudaAttention() = default;

void* CudaAttention::stream() const { return impl_->stream; }

absl::StatusOr<std::unique_ptr<CudaAttention>> CudaAttention::Create(void* stream) {
  return Create(stream, CudaAttentionOptions{});
}

absl::StatusOr<std::unique_ptr<CudaAttention>> CudaAttention::Create(
    void* stream, const CudaAttentionOptions& options) {
  if (absl::Status s = CudaDeviceStatus(); !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  auto impl = std::make_unique<Impl>();
  impl->stream = static_cast<cudaStream_t>(stream);
  impl->options = options;
  CUDA_RETURN_IF_ERROR(cudaGetDevice(&impl->device));
  int major = 0, shared = 0;
  CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, impl->device));
  if (major < 8) {
    return absl::FailedPreconditionError(
        absl::StrCat("CUDA device ", impl->device, " has compute capability ", major,
                     ".x; the attention kernels need 8.0 or later (bf16 tensor cores)"));
  }
  CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, impl->device));
  impl->max_shared = static_cast<size_t>(shared);
  CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&impl->copied, cudaEventDisableTiming));
  return std::unique_ptr<CudaAttention>(new CudaAttention(std::move(impl)));
}

absl::Status CudaAttention::Forward(const AttentionShape& shape, DType dtype,
                                    const std::vector<ForwardTile>& tiles) {
  ASSIGN_OR_RETURN(const HostTables<ForwardTile> tables,
                   cuda_internal::ForwardTables(shape, dtype, tiles));
  if (tables.items.empty()) return absl::OkStatus();
  const bool v2 = impl_->V2(dtype);
  RETURN_IF_ERROR(
      impl_->CheckSharedMemory(v2 ? cuda_internal::ForwardV2SharedBytes(dtype, shape.head_dim)
                                  : cuda_internal::ForwardSharedBytes(dtype, shape.head_dim)));
  ASSIGN_OR_RETURN(const LaunchTables<ForwardTile> view, impl_->Stage(tables));
  const auto items = static_cast<int32_t>(tables.items.size());
  CUDA_RETURN_IF_ERROR(v2 ? cuda_internal::LaunchForwardV2(shape, dtype, view, items, impl_->stream)
                          : cuda_internal::LaunchForward(shape, dtype, view, items, impl_->stream));
  return absl::OkStatus();
}

absl::Status CudaAttention::Backward(const AttentionShape& shape, DType dtype,
                                     const std::vector<BackwardTile>& tiles) {
  ASSIGN_OR_RETURN(const HostTables<BackwardTile> tables,
                   cuda_internal::BackwardTables(shape, dtype, tiles));
  if (tables.items.empty()) return absl::OkStatus();
  if (!impl_->V2(dtype)) {
    RETURN_IF_ERROR(
        impl_->CheckSharedMemory(cuda_internal::BackwardSharedBytes(dtype, shape.head_dim)));
    ASSIGN_OR_RETURN(const LaunchTables<BackwardTile> view, impl_->Stage(tables));
    CUDA_RETURN_IF_ERROR(cuda_internal::LaunchBackward(
        shape, dtype, view, static_cast<int32_t>(tables.items.size()), impl_->stream));
    return absl::OkStatus();
  }
  const bool separate_dq = impl_->options.dq == CudaDqMode::kSeparate;
  RETURN_IF_ERROR(
      impl_->CheckSharedMemory(cuda_internal::BackwardV2SharedBytes(dtype, shape.head_dim)));
  HostTables<BackwardTile> dq_tables;
  if (separate_dq) {
    ASSIGN_OR_RETURN(dq_tables, cuda_internal::BackwardDqTables(shape, tiles));
    RETURN_IF_ERROR(
        impl_->CheckSharedMemory(cuda_internal::DqV2SharedBytes(dtype, shape.head_dim)));
  }
  ASSIGN_OR_RETURN(const LaunchTables<BackwardTile> view, impl_->Stage(tables));
  CUDA_RETURN_IF_ERROR(cuda_internal::LaunchBackwardV2(shape, dtype, view,
                                                       static_cast<int32_t>(tables.items.size()),
                                                       /*atomic_dq=*/!separate_dq, impl_->stream));
  if (separate_dq && !dq_tables.items.empty()) {
    // Stream order: this copy overwrites the device tables after the dK/dV kernel has read them.
    ASSIGN_OR_RETURN(const LaunchTables<BackwardTile> dq_view, impl_->Stage(dq_tables));
    CUDA_RETURN_IF_ERROR(cuda_internal::LaunchDqV2(
        shape, dtype, dq_view, static_cast<int32_t>(dq_tables.items.size()), impl_->stream));
  }
  return absl::OkStatus();
}

absl::Status CudaAttention::ComputeDelta(const AttentionShape& shape, DType dtype, const float* o,
                                         const void* d_o, int64_t rows, float* delta) {
  RETURN_IF_ERROR(cuda_internal::CheckShape(shape));
  if (rows < 0) return absl::InvalidArgumentError("rows: must be >= 0");
  if (rows > 0 && (o == nullptr || d_o == nullptr || delta == nullptr)) {
    return absl::InvalidArgumentError("ComputeDelta: null o, d_o or delta");
  }
  CUDA_RETURN_IF_ERROR(
      cuda_internal::LaunchDelta(shape, dtype, o, d_o, rows, delta, impl_->stream));
  return absl::OkStatus();
}

absl::Status CudaAttention::MergeLse(const AttentionShape& shape, int64_t rows, float* o_a,
                                     float* lse_a, const float* o_b, const float* lse_b) {
  if (shape.q_heads < 1 || shape.head_dim < 1) {
    return absl::InvalidArgumentError("attention shape: q_heads and head_dim must be >= 1");
  }
  if (rows < 0) return absl::InvalidArgumentError("rows: must be >= 0");
  if (rows > 0 && (o_a == nullptr || lse_a == nullptr || o_b == nullptr || lse_b == nullptr)) {
    return absl::InvalidArgumentError("MergeLse: null pointer");
  }
  CUDA_RETURN_IF_ERROR(
      cuda_internal::LaunchMerge(shape, rows, o_a, lse_a, o_b, lse_b, impl_->stream));
  return absl::OkStatus();
}

absl::Status CudaAttention::Accumulate(float* dst, const float* src, int64_t n) {
  if (n < 0) return absl::InvalidArgumentError("n: must be >= 0");
  if (n > 0 && (dst == nullptr || src == nullptr)) {
    return absl::InvalidArgumentError("Accumulate: null pointer");
  }
  CUDA_RETURN_IF_ERROR(cuda_internal::LaunchAccumulate(dst, src, n, impl_->stream));
  return absl::OkStatus();
}

absl::Status CudaAttention::ConvertFromFloat(const float* src, DType dtype, void* dst, int64_t n) {
  if (n < 0) return absl::InvalidArgumentError("n: must be >= 0");
  if (n > 0 && (dst == nullptr || src == nullptr)) {
    return absl::InvalidArgumentError("ConvertFromFloat: null pointer");
  }
  CUDA_RETURN_IF_ERROR(cuda_internal::LaunchConvert(src, dtype, dst, n, impl_->stream));
  return absl::OkStatus();
}

}  // namespace kernels
}  // namespace fcp
