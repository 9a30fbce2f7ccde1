// Host conversions between fp32 and the 16-bit input types of kernels/attention.h (IEEE fp16 and
// bfloat16), bit-exact with CUDA's __float2half_rn / __float2bfloat16_rn: round to nearest even,
// NaN stays NaN, overflow goes to infinity. The CPU kernels are fp32 only: a CPU executor given
// fp16/bf16 tensors widens them with ConvertToFloat and rounds its outputs once with
// ConvertFromFloat.
#ifndef FCP_KERNELS_DTYPE_CONVERT_H_
#define FCP_KERNELS_DTYPE_CONVERT_H_

#include <cstdint>

#include "kernels/attention.h"

namespace fcp {
namespace kernels {

uint16_t FloatToHalfBits(float x);
float HalfBitsToFloat(uint16_t h);
uint16_t FloatToBf16Bits(float x);
float Bf16BitsToFloat(uint16_t b);

// dst[i] = src[i] as fp32, i < n; src holds n elements of `dtype`.
void ConvertToFloat(const void* src, DType dtype, float* dst, int64_t n);
// dst[i] = src[i] rounded to `dtype`, i < n.
void ConvertFromFloat(const float* src, DType dtype, void* dst, int64_t n);

}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_DTYPE_CONVERT_H_
