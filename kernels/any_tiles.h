// Tile lists whose inputs may be of any element type, in host or device memory: what an executor
// hands to whichever implementation runs its attention (kernels/attention.h on the CPU, fp32 only;
// kernels/attention_cuda.h on a GPU, fp32, fp16 and bf16).
//
// Only the inputs q, k, v and d_o take the list's DType. Outputs and running state (o, lse, delta,
// dq, dk, dv) are fp32 everywhere: the log-sum-exp merge across rounds and the sums of dK/dV
// partials across tiles, launches and peers stay in full precision. Tensor layouts, masks and the
// merge rule are those of kernels/attention.h.
#ifndef FCP_KERNELS_ANY_TILES_H_
#define FCP_KERNELS_ANY_TILES_H_

#include <cstddef>
#include <cstdint>

#include "kernels/attention.h"

namespace fcp {
namespace kernels {

// Element type of q, k, v and d_o.
enum class DType : uint8_t { kFp32 = 0, kFp16 = 1, kBf16 = 2 };

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

// ForwardTile with inputs of the list's DType.
struct AnyForwardTile {
  const void* q = nullptr;  // q_rows rows
  const void* k = nullptr;  // kv_rows rows
  const void* v = nullptr;
  int64_t q_rows = 0, kv_rows = 0;
  int64_t q_begin = 0, kv_begin = 0;  // positions within the document
  TileMask mask;
  float* o = nullptr;    // q_rows rows, running output (read and written)
  float* lse = nullptr;  // q_rows rows, running LSE (read and written)
};

// BackwardTile with inputs of the list's DType.
struct AnyBackwardTile {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* d_o = nullptr;
  const float* lse = nullptr;    // q_rows rows: the block's final LSE
  const float* delta = nullptr;  // q_rows rows: rowsum(dO · O)
  int64_t q_rows = 0, kv_rows = 0;
  int64_t q_begin = 0, kv_begin = 0;
  TileMask mask;
  float* dq = nullptr;  // q_rows rows, accumulated
  float* dk = nullptr;  // kv_rows rows, accumulated
  float* dv = nullptr;
};

// The fp32 tiles of attention.h, for lists whose DType is kFp32.
inline ForwardTile AsFloatTile(const AnyForwardTile& t) {
  ForwardTile f;
  f.q = static_cast<const float*>(t.q);
  f.k = static_cast<const float*>(t.k);
  f.v = static_cast<const float*>(t.v);
  f.q_rows = t.q_rows;
  f.kv_rows = t.kv_rows;
  f.q_begin = t.q_begin;
  f.kv_begin = t.kv_begin;
  f.mask = t.mask;
  f.o = t.o;
  f.lse = t.lse;
  return f;
}

inline BackwardTile AsFloatTile(const AnyBackwardTile& t) {
  BackwardTile b;
  b.q = static_cast<const float*>(t.q);
  b.k = static_cast<const float*>(t.k);
  b.v = static_cast<const float*>(t.v);
  b.d_o = static_cast<const float*>(t.d_o);
  b.lse = t.lse;
  b.delta = t.delta;
  b.q_rows = t.q_rows;
  b.kv_rows = t.kv_rows;
  b.q_begin = t.q_begin;
  b.kv_begin = t.kv_begin;
  b.mask = t.mask;
  b.dq = t.dq;
  b.dk = t.dk;
  b.dv = t.dv;
  return b;
}

}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_ANY_TILES_H_
