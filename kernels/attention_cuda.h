// CUDA attention over tile lists: the GPU twin of kernels/attention.h (same tensors, masks, LSE
// and merge rule), on device memory, with inputs in fp32, fp16 or bf16 (kernels/attention.h).
// This header has no CUDA types: a stream is a `void*` holding a cudaStream_t.
//
// One launch per call, whatever the number of tiles: the grid is indexed by work items, each a
// chunk of output rows and one head, and each work item walks, in list order, every tile that
// writes its rows:
//
//   forward   item = (q block, 64 query rows, query head h)
//             for each tile of the q block, each 64-key chunk its mask reaches (online softmax):
//               S = Q·Kᵀ·scale;  m' = max(m, rowmax S);  P = e^(S−m');  l = e^(m−m')·l + rowsum P
//               O = e^(m−m')·O + P·V
//             then (o, lse) ← merge((o, lse), (O/l, m + ln l))       one read-modify-write per row
//   backward  item = (kv block, 64 (fp32: 32) key rows, kv head g)
//             for each tile of the kv block, each query head of g, each 32-row query chunk:
//               P = e^(S − lse);  dS = P∘(dO·Vᵀ − delta)
//               dV += Pᵀ·dO;  dK += scale·dSᵀ·Q  (in shared memory, added to dk, dv once)
//               dq += scale·dS·K                   (atomic adds: many kv blocks share a q block)
//
// fp16/bf16 products run on tensor cores (wmma 16×16×16, fp32 accumulation; P and dS are rounded
// to the input type before their products, as FlashAttention does); fp32 inputs run on CUDA cores
// (the GPU oracle of the same tiling). Requires compute capability 8.0 or later.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<kernels::CudaAttention> attention,
//                    kernels::CudaAttention::Create(stream));
//   RETURN_IF_ERROR(attention->Forward(shape, kernels::DType::kBf16, tiles));  // one launch
//
// Contracts of every call: pointers are device pointers, 16-byte aligned (cudaMalloc'd buffers
// and row offsets of them are); head_dim is 64 or 128 (SupportedHeadDim); q_heads is a multiple of
// kv_heads. Tiles that write the same o (forward) or dk (backward) must be the same block: same
// q (k), rows, position and lse (v, dv); outputs of different blocks must not overlap. Violations
// are InvalidArgument naming the tile. Work is enqueued on the stream and the call returns without
// waiting; the tile list is copied, so it may be destroyed at once, but the tensors must stay
// valid until the stream reaches the work. A launch failure is Internal with file:line.
#ifndef FCP_KERNELS_ATTENTION_CUDA_H_
#define FCP_KERNELS_ATTENTION_CUDA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/attention.h"

namespace fcp {
namespace kernels {

// Ok when this process sees at least one CUDA device; Unavailable (with the driver's reason)
// otherwise. GPU tests skip on !ok.
absl::Status CudaDeviceStatus();

// Head dims the kernels are built for (64, 128).
bool SupportedHeadDim(int32_t head_dim);

// Which kernels Forward and Backward launch for fp16/bf16 inputs; fp32 always runs v1.
//   kV1  the design above: products on shared memory (wmma), one 64-key step at a time.
//   kV2  FlashAttention-2's dataflow (attention_cuda_v2_forward.cuh, _backward.cuh): mma.sync
//        fragments in registers, P reused from registers, K/V double-buffered by cp.async,
//        masks evaluated only on sub-blocks that are not wholly allowed. Same tables, masks and
//        merge; not yet measured on a GPU, so v1 stays the default.
enum class CudaKernels { kV1, kV2 };

// How the v2 backward accumulates dQ (v1: always atomics).
//   kAtomic    dq += dS·K by atomic adds from every kv block, in the dK/dV kernel.
//   kSeparate  a second kernel per query block recomputes P and dS and owns its dq rows: no
//              atomics, at the price of recomputing S = Q·Kᵀ and dP = dO·Vᵀ.
enum class CudaDqMode { kAtomic, kSeparate };

struct CudaAttentionOptions {
  CudaKernels kernels = CudaKernels::kV1;
  CudaDqMode dq = CudaDqMode::kAtomic;
};

// The options a bench flag names: "v1", "v2" (dq by atomics) or "v2-separate-dq";
// InvalidArgument naming `flag` otherwise. CudaKernelsName is the inverse.
absl::StatusOr<CudaAttentionOptions> ParseCudaKernels(absl::string_view name,
                                                      absl::string_view flag);
std::string CudaKernelsName(const CudaAttentionOptions& options);

class CudaAttention {
 public:
  // Kernels on `stream` (a cudaStream_t; null: the legacy default stream), on the current device.
  // FailedPrecondition without a device or below compute capability 8.0.
  static absl::StatusOr<std::unique_ptr<CudaAttention>> Create(void* stream);
  static absl::StatusOr<std::unique_ptr<CudaAttention>> Create(void* stream,
                                                               const CudaAttentionOptions& options);
  ~CudaAttention();

  CudaAttention(const CudaAttention&) = delete;
  CudaAttention& operator=(const CudaAttention&) = delete;

  // attention.h's AttentionForward / AttentionBackward for device tiles, inputs of `dtype`.
  absl::Status Forward(const AttentionShape& shape, DType dtype,
                       const std::vector<ForwardTile>& tiles);
  absl::Status Backward(const AttentionShape& shape, DType dtype,
                        const std::vector<BackwardTile>& tiles);

  // delta[r, h] = Σ_d d_o[r, h, d] · o[r, h, d]  (o fp32, d_o of `dtype`).
  absl::Status ComputeDelta(const AttentionShape& shape, DType dtype, const float* o,
                            const void* d_o, int64_t rows, float* delta);
  // (o_a, lse_a) ← merge((o_a, lse_a), (o_b, lse_b)), rows × q_heads (attention.h's MergeLse).
  absl::Status MergeLse(const AttentionShape& shape, int64_t rows, float* o_a, float* lse_a,
                        const float* o_b, const float* lse_b);
  // dst[i] += src[i] for i < n (dK/dV partials received from peers).
  absl::Status Accumulate(float* dst, const float* src, int64_t n);
  // dst[i] = src[i] rounded to `dtype` (round to nearest even), i < n.
  absl::Status ConvertFromFloat(const float* src, DType dtype, void* dst, int64_t n);

  void* stream() const;

  struct Impl;

 private:
  explicit CudaAttention(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_ATTENTION_CUDA_H_
