// The numerical oracle: naive single-process attention over one whole document, fp32 (with double
// accumulation), forward and backward, written for clarity rather than speed. Tests compare every
// executor path against it.
#ifndef FCP_KERNELS_REFERENCE_H_
#define FCP_KERNELS_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "kernels/attention.h"

namespace fcp {
namespace kernels {

struct ReferenceResult {
  std::vector<float> o;    // [length, q_heads, head_dim]
  std::vector<float> lse;  // [length, q_heads]
  std::vector<float> dq;   // [length, q_heads, head_dim]
  std::vector<float> dk;   // [length, kv_heads, head_dim]
  std::vector<float> dv;
};

// q, d_o: [length, q_heads, head_dim]; k, v: [length, kv_heads, head_dim]. d_o may be null: forward
// only, and dq, dk, dv are left empty.
ReferenceResult ReferenceAttention(const AttentionShape& shape, const TileMask& mask,
                                   int64_t length, const float* q, const float* k, const float* v,
                                   const float* d_o);

}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_REFERENCE_H_
