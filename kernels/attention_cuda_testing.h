// Test support for the CUDA attention kernels, shared by the GPU test (attention_cuda_test.cc) and
// the CPU emulation test (attention_cuda_emulation_test.cc): random packed batches cut into
// blocks and tile lists spread over rounds, as an executor runs them; one driver that runs a batch
// through any `KernelRunner` (a GPU: CudaKernelRunner, or the emulation); and the checks. Also
// used by bench/kernel_bench --check, so that a GPU machine without GoogleTest can check too.
//
// The checks follow FlashAttention's rule for low precision: for every output, the kernel's
// largest error against an exact reference (fp64 on the same rounded inputs) is at most twice the
// error of a naive implementation in the same precision (every matrix product and softmax
// rounded to the input type, as PyTorch computes attention in bf16), plus a small absolute floor.
// fp32 runs are compared with the exact reference at 1e-5 relative to each tensor's largest entry,
// the executor's oracle.
#ifndef FCP_KERNELS_ATTENTION_CUDA_TESTING_H_
#define FCP_KERNELS_ATTENTION_CUDA_TESTING_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/attention.h"
#include "kernels/attention_cuda.h"

namespace fcp {
namespace kernels {
namespace testing {

// Documents packed back to back; each cut into blocks of 1..max_block rows (the same blocks for
// queries and keys, as plans cut them); every tile with an allowed pair runs in a random round.
struct Problem {
  AttentionShape shape;
  DType dtype = DType::kBf16;
  TileMask mask;
  std::vector<int64_t> lengths;
  int32_t rounds = 1;
  // Inputs, already rounded to dtype (every implementation sees the same values).
  std::vector<float> q, k, v, d_o;

  struct BlockRef {
    int64_t row = 0;    // first row in the packed tensors
    int64_t begin = 0;  // position within its document
    int64_t rows = 0;
  };
  struct TileRef {
    BlockRef q, kv;
    int32_t round = 0;
  };
  std::vector<TileRef> tiles;  // in a random order

  int64_t Rows() const;
};

Problem MakeProblem(const AttentionShape& shape, DType dtype, const TileMask& mask,
                    std::vector<int64_t> lengths, int64_t max_block, int32_t rounds, uint32_t seed);

// Outputs of a problem, packed like its inputs.
struct Outputs {
  std::vector<float> o, lse, dq, dk, dv;
};

// What a test runs the kernels on: device (or emulated device) memory and the launches. Pointers
// are the runner's; Forward/Backward/ComputeDelta are attention_cuda.h's contracts.
class KernelRunner {
 public:
  virtual ~KernelRunner() = default;
  virtual absl::StatusOr<void*> Allocate(size_t bytes) = 0;  // freed with the runner
  virtual absl::Status Upload(void* dst, const void* src, size_t bytes) = 0;
  virtual absl::Status Download(void* dst, const void* src, size_t bytes) = 0;  // waits
  virtual absl::Status Forward(const AttentionShape& shape, DType dtype,
                               const std::vector<ForwardTile>& tiles) = 0;
  virtual absl::Status Backward(const AttentionShape& shape, DType dtype,
                                const std::vector<BackwardTile>& tiles) = 0;
  virtual absl::Status ComputeDelta(const AttentionShape& shape, DType dtype, const float* o,
                                    const void* d_o, int64_t rows, float* delta) = 0;
};

// A KernelRunner on the current CUDA device: cudaMalloc'd memory, its own stream, the kernels of
// attention_cuda.h (v1 or v2 by `options`).
class CudaKernelRunner : public KernelRunner {
 public:
  static absl::StatusOr<std::unique_ptr<CudaKernelRunner>> Create(
      const CudaAttentionOptions& options = {});
  ~CudaKernelRunner() override;

  absl::StatusOr<void*> Allocate(size_t bytes) override;
  absl::Status Upload(void* dst, const void* src, size_t bytes) override;
  absl::Status Download(void* dst, const void* src, size_t bytes) override;
  absl::Status Forward(const AttentionShape& shape, DType dtype,
                       const std::vector<ForwardTile>& tiles) override;
  absl::Status Backward(const AttentionShape& shape, DType dtype,
                        const std::vector<BackwardTile>& tiles) override;
  absl::Status ComputeDelta(const AttentionShape& shape, DType dtype, const float* o,
                            const void* d_o, int64_t rows, float* delta) override;

  CudaAttention& attention() { return *attention_; }
  void* stream() const { return stream_; }

 private:
  CudaKernelRunner() = default;
  void* stream_ = nullptr;  // cudaStream_t
  std::unique_ptr<CudaAttention> attention_;
  std::vector<void*> memory_;
};

// Forward rounds (one launch each), delta, backward rounds in reverse, as an executor runs them.
// o starts as NaN under lse = -inf (never read), dq/dk/dv as random values that are subtracted
// after the run (accumulation, not overwrite, is checked).
absl::StatusOr<Outputs> RunProblem(const Problem& problem, KernelRunner& runner);

// fp64 reference attention over each document on the problem's (rounded) inputs.
Outputs ReferenceOutputs(const Problem& problem);
// Naive attention in the problem's dtype: products, softmax and gradients rounded to it.
Outputs NaiveOutputs(const Problem& problem);

// Empty if `got` passes (fp32: within 1e-5 of the reference relative to each tensor's largest
// entry; fp16/bf16: FlashAttention's rule against `naive`); else one line per failing tensor.
std::string CheckOutputs(const Problem& problem, const Outputs& got, const Outputs& reference,
                         const Outputs& naive);

// Float to the dtype and back (round to nearest even).
float RoundTo(DType dtype, float x);

// A test parameter, and its readable name: "bf16_Causal_Q8Kv2D128", "fp32_SlidingWindow9_Q2Kv1D64".
struct KernelCase {
  DType dtype = DType::kBf16;
  TileMask mask;
  AttentionShape shape;
};
std::string KernelCaseName(const KernelCase& c);

}  // namespace testing
}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_ATTENTION_CUDA_TESTING_H_
