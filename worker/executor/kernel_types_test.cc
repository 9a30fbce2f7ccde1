#include "worker/executor/kernel_types.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "gtest/gtest.h"
#include "service/planner/mask_math.h"

namespace fcp {
namespace {

// The kernel mask allows exactly the pairs the planner counts, for every kind, over a square that
// crosses the diagonal, the window and the prefix.
TEST(KernelTypesTest, EveryMaskAllowsThePairsThePlannerCounts) {
  for (const Mask& mask :
       {Mask::Causal(), Mask::Full(), Mask::SlidingWindow(3), Mask::PrefixLm(4)}) {
    const kernels::TileMask kernel = ToKernelMask(mask);
    EXPECT_EQ(kernel.window, mask.window);
    EXPECT_EQ(kernel.prefix, mask.prefix);
    for (int64_t i = 0; i < 12; ++i) {
      for (int64_t j = 0; j < 12; ++j) {
        EXPECT_EQ(kernel.Allows(i, j), AllowedPairsSlow(mask, i, i + 1, j, j + 1) == 1)
            << "kind " << static_cast<int>(mask.kind) << " at (" << i << ", " << j << ")";
      }
    }
  }
}

TEST(KernelTypesTest, EveryDTypeKeepsItsNameAndSize) {
  for (DType dtype : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    const kernels::DType kernel = ToKernelDType(dtype);
    EXPECT_EQ(absl::AsciiStrToUpper(kernels::DTypeName(kernel)), DTypeName(dtype));
    EXPECT_EQ(static_cast<int>(kernels::DTypeBytes(kernel)), DTypeBytes(dtype));
  }
}

}  // namespace
}  // namespace fcp
