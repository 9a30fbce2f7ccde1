#include "kernels/dtype_convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace fcp {
namespace kernels {
namespace {

TEST(DTypeConvertTest, HalfRoundsToNearestEven) {
  EXPECT_EQ(FloatToHalfBits(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalfBits(-2.0f), 0xC000);
  EXPECT_EQ(FloatToHalfBits(65504.0f), 0x7BFF);                          // largest finite
  EXPECT_EQ(FloatToHalfBits(65519.0f), 0x7BFF);                          // below the halfway point
  EXPECT_EQ(FloatToHalfBits(65520.0f), 0x7C00);                          // halfway: to infinity
  EXPECT_EQ(FloatToHalfBits(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie: even
  EXPECT_EQ(FloatToHalfBits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie: even (up)
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -24)), 0x0001);             // smallest subnormal
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -25)), 0x0000);             // tie: even (zero)
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(FloatToHalfBits(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalfBits(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_TRUE(std::isnan(HalfBitsToFloat(FloatToHalfBits(std::nanf("")))));
}

TEST(DTypeConvertTest, Bf16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBf16Bits(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBf16Bits(1.0f + std::ldexp(1.0f, -8)), 0x3F80);      // tie: even
  EXPECT_EQ(FloatToBf16Bits(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);  // tie: even (up)
  EXPECT_EQ(FloatToBf16Bits(1.0f + std::ldexp(1.0f, -7)), 0x3F81);      // exact
  EXPECT_EQ(FloatToBf16Bits(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_TRUE(std::isnan(Bf16BitsToFloat(FloatToBf16Bits(std::nanf("")))));
}

// Every non-NaN 16-bit pattern widens and rounds back to itself.
TEST(DTypeConvertTest, EveryValueRoundTrips) {
  for (uint32_t bits = 0; bits <= 0xFFFF; ++bits) {
    const uint16_t b = static_cast<uint16_t>(bits);
    const float half = HalfBitsToFloat(b);
    if (!std::isnan(half)) {
      EXPECT_EQ(FloatToHalfBits(half), b) << std::hex << bits;
    }
    const float bf = Bf16BitsToFloat(b);
    if (!std::isnan(bf)) {
      EXPECT_EQ(FloatToBf16Bits(bf), b) << std::hex << bits;
    }
  }
}

TEST(DTypeConvertTest, ArraysConvertElementwise) {
  const std::vector<float> x = {0.1f, -3.25f, 1e-3f, 7.0f};
  for (DType dtype : {DType::kFp16, DType::kBf16, DType::kFp32}) {
    std::vector<uint8_t> packed(x.size() * DTypeBytes(dtype));
    ConvertFromFloat(x.data(), dtype, packed.data(), static_cast<int64_t>(x.size()));
    std::vector<float> back(x.size());
    ConvertToFloat(packed.data(), dtype, back.data(), static_cast<int64_t>(x.size()));
    const double epsilon = dtype == DType::kBf16   ? 1.0 / 256
                           : dtype == DType::kFp16 ? 1.0 / 2048
                                                   : 0;
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_LE(std::fabs(back[i] - x[i]), epsilon * std::fabs(x[i])) << DTypeName(dtype) << i;
    }
  }
}

}  // namespace
}  // namespace kernels
}  // namespace fcp
