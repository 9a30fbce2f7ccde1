#include "kernels/dtype_convert.h"

#include <cmath>
#include <cstring>

namespace fcp {
namespace kernels {
namespace {

uint32_t Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

float FromBits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

}  // namespace

uint16_t FloatToBf16Bits(float x) {
  const uint32_t u = Bits(x);
  if (std::isnan(x)) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN, sign kept
  const uint32_t rounding = 0x7FFF + ((u >> 16) & 1);                 // to nearest even
  return static_cast<uint16_t>((u + rounding) >> 16);
}

float Bf16BitsToFloat(uint16_t b) { return FromBits(static_cast<uint32_t>(b) << 16); }

uint16_t FloatToHalfBits(float x) {
  const uint32_t u = Bits(x);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t abs = u & 0x7FFFFFFF;
  if (abs > 0x7F800000) return sign | 0x7E00;   // NaN
  if (abs >= 0x477FF000) return sign | 0x7C00;  // >= 65520: rounds to infinity
  if (abs < 0x38800000) {                       // below 2^-14: subnormal half (or zero)
    if (abs < 0x33000000) return sign;          // below 2^-25: rounds to zero
    const uint32_t exponent = abs >> 23;        // 102 .. 112
    const uint32_t mantissa = (abs & 0x7FFFFF) | 0x800000;
    const uint32_t shift = 126 - exponent;  // 14 .. 24
    uint32_t half = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1))) ++half;
    return sign | static_cast<uint16_t>(half);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits.
  const uint32_t rebased = abs - (112u << 23);
  const uint32_t rounding = 0xFFF + ((rebased >> 13) & 1);
  return sign | static_cast<uint16_t>((rebased + rounding) >> 13);
}

float HalfBitsToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1F;
  const uint32_t mantissa = h & 0x3FF;
  if (exponent == 0x1F) return FromBits(sign | 0x7F800000 | (mantissa << 13));  // inf, NaN
  if (exponent != 0) return FromBits(sign | ((exponent + 112) << 23) | (mantissa << 13));
  // Zero or subnormal: mantissa * 2^-24.
  const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  return sign != 0 ? -magnitude : magnitude;
}

void ConvertToFloat(const void* src, DType dtype, float* dst, int64_t n) {
  if (dtype == DType::kFp32) {
    if (n > 0) std::memcpy(dst, src, n * sizeof(float));
    return;
  }
  const uint16_t* in = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = dtype == DType::kBf16 ? Bf16BitsToFloat(in[i]) : HalfBitsToFloat(in[i]);
  }
}

void ConvertFromFloat(const float* src, DType dtype, void* dst, int64_t n) {
  if (dtype == DType::kFp32) {
    if (n > 0) std::memcpy(dst, src, n * sizeof(float));
    return;
  }
  uint16_t* out = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    out[i] = dtype == DType::kBf16 ? FloatToBf16Bits(src[i]) : FloatToHalfBits(src[i]);
  }
}

}  // namespace kernels
}  // namespace fcp
