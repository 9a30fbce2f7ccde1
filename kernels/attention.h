// Attention over lists of tiles, forward and backward, and the log-sum-exp merge (DESIGN §5).
//
// This header is the one interface of every implementation (CPU here, CUDA in
// kernels/attention_cuda.h): it holds plain pointers and sizes, no CUDA types and no planner types.
// Tensors are row-major:
//   q, o, do, dq        [rows, q_heads, head_dim]
//   k, v, dk, dv        [rows, kv_heads, head_dim]
//   lse, delta          [rows, q_heads]
// Query head h reads kv head h / (q_heads / kv_heads) (GQA). Scores are scaled by 1/sqrt(head_dim);
// lse is the natural log of the sum of exp(scaled scores) over the allowed keys (-inf when a row
// has none).
//
// Only the inputs q, k, v and d_o have an element type (DType): fp32 on the CPU (the functions
// below), fp32, fp16 or bf16 on a GPU (the dtype travels beside the tile list). Outputs and running
// state (o, lse, delta, dq, dk, dv) are fp32 everywhere: the log-sum-exp merge across rounds and
// the sums of dK/dV partials across tiles, launches and peers stay in full precision.
//
// A tile pairs a block of query rows with a block of key rows of the same document; positions
// (q_begin, kv_begin) are offsets within that document, and the mask decides which (i, j) pairs of
// the rectangle attend.
#ifndef FCP_KERNELS_ATTENTION_H_
#define FCP_KERNELS_ATTENTION_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fcp {
namespace kernels {

// Same kinds, values and meaning as the planner's Mask (positions i: query, j: key, within a
// document); worker/executor/kernel_types.h converts and checks that they stay tied.
enum class MaskKind : uint8_t {
  kCausal = 0,         // j <= i
  kFull = 1,           // always
  kSlidingWindow = 2,  // 0 <= i - j < window
  kPrefixLm = 3,       // j < prefix or j <= i
};

// Element type of q, k, v and d_o. Same values as the planner's DType (service/planner/batch.h);
// worker/executor/kernel_types.h converts between them and checks that they stay tied.
enum class DType : uint8_t { kBf16 = 0, kFp16 = 1, kFp32 = 2 };

inline size_t DTypeBytes(DType dtype) { return dtype == DType::kFp32 ? 4 : 2; }
inline const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFp32:
      return "fp32";
    case DType::kFp16:
      return "fp16";
    case DType::kBf16:
      return "bf16";
  }
  return "?";
}

struct TileMask {
  MaskKind kind = MaskKind::kCausal;
  int64_t window = 0;
  int64_t prefix = 0;
  bool Allows(int64_t i, int64_t j) const {
    switch (kind) {
      case MaskKind::kCausal:
        return j <= i;
      case MaskKind::kFull:
        return true;
      case MaskKind::kSlidingWindow:
        return j <= i && i - j < window;
      case MaskKind::kPrefixLm:
        return j < prefix || j <= i;
    }
    return false;
  }
};

struct AttentionShape {
  int32_t q_heads = 0;
  int32_t kv_heads = 0;
  int32_t head_dim = 0;
  float Scale() const;  // 1 / sqrt(head_dim)
};

// Forward of one tile, merged into the q block's running (o, lse): before the first tile of a
// block, o = 0 and lse = -inf; after its last, (o, lse) is the block's attention output and LSE.
// Merge rule: lse' = log(e^lse + e^lse_t), o' = e^(lse-lse')·o + e^(lse_t-lse')·o_t.
// q, k, v are of the list's DType (fp32 for AttentionForward).
struct ForwardTile {
  const void* q = nullptr;  // q_rows rows
  const void* k = nullptr;  // kv_rows rows
  const void* v = nullptr;
  int64_t q_rows = 0, kv_rows = 0;
  int64_t q_begin = 0, kv_begin = 0;  // positions within the document
  TileMask mask;
  float* o = nullptr;    // q_rows rows, running output (read and written)
  float* lse = nullptr;  // q_rows rows, running LSE (read and written)
};

// Backward of one tile from the final (o, lse) of its q block: accumulates (+=) into dq, dk, dv.
// delta = rowsum(dO · O) per (row, q head), from ComputeDelta. q, k, v, d_o are of the list's
// DType (fp32 for AttentionBackward).
struct BackwardTile {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* d_o = nullptr;     // q_rows rows: gradient of the output
  const float* lse = nullptr;    // q_rows rows: the block's final LSE
  const float* delta = nullptr;  // q_rows rows
  int64_t q_rows = 0, kv_rows = 0;
  int64_t q_begin = 0, kv_begin = 0;
  TileMask mask;
  float* dq = nullptr;  // q_rows rows, accumulated
  float* dk = nullptr;  // kv_rows rows, accumulated
  float* dv = nullptr;
};

// On the CPU, inputs fp32. Runs tiles in list order per output block; tiles writing the same o/lse
// (or dq/dk/dv) are never run concurrently. `threads` <= 0: hardware concurrency. Work is split
// over heads (and blocks). Tiles whose outputs overlap are treated as writing the same output, so
// results do not depend on `threads`. A shape whose q_heads is not a positive multiple of kv_heads
// does nothing.
void AttentionForward(const AttentionShape& shape, const std::vector<ForwardTile>& tiles,
                      int threads = 0);
void AttentionBackward(const AttentionShape& shape, const std::vector<BackwardTile>& tiles,
                       int threads = 0);

// delta[r, h] = sum_d d_o[r, h, d] * o[r, h, d].
void ComputeDelta(const AttentionShape& shape, const float* o, const float* d_o, int64_t rows,
                  float* delta);

// Merges a partial (o_b, lse_b) into (o_a, lse_a) in place (the rule above), rows × q_heads.
void MergeLse(const AttentionShape& shape, int64_t rows, float* o_a, float* lse_a, const float* o_b,
              const float* lse_b);

}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_ATTENTION_H_
