// The executor on a GPU: every rank of a plan as a thread with its own CudaBackend on device 0,
// over the loopback transport (so buffers are staged through host memory, as the emulation of
// many ranks on one GPU runs), against whole-document reference attention. fp32 within 1e-4
// (the GPU sums in another order than the fp64 reference), bf16 within 5e-2 (the inputs
// themselves are rounded to 8 bits of mantissa). Skips, saying why, without a CUDA device.
#include "worker/executor/cuda_backend.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/attention_cuda.h"
#include "service/planner/placed_testing.h"
#include "service/planner/strategies/dcp.h"
#include "worker/verify/executor_testing.h"
#include "worker/verify/reference_check.h"

namespace fcp {
namespace {

using Case = std::tuple<std::string, int, kernels::DType>;  // strategy, mask kind, dtype

class CudaExecutorTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const absl::Status device = kernels::CudaDeviceStatus();
    if (!device.ok()) GTEST_SKIP() << "GPU test skipped: " << device.message();
  }
};

TEST_P(CudaExecutorTest, AllRanksOnOneGpuEqualReferenceAttention) {
  const auto& [strategy, mask_kind, dtype] = GetParam();
  RegisterDcpPlanner();          // optional strategy (strategies/dcp.h)
  RegisterPlacedTestStrategy();  // tiles away from their q block's owner (placed_testing.h)
  const int32_t world = 4;
  const Batch batch = BackendTestBatch(MaskOfKind(mask_kind), world, 64, 300 + mask_kind);
  const Plan plan = BackendTestPlan(batch, strategy);
  ASSERT_FALSE(plan.workers.empty());
  const std::vector<RankRun> runs = RunRanks(plan, batch, [dtype = dtype](int32_t) {
    CudaBackendOptions options;
    options.device = 0;
    options.dtype = dtype;
    absl::StatusOr<std::unique_ptr<CudaBackend>> backend = NewCudaBackend(options);
    EXPECT_TRUE(backend.ok()) << backend.status();
    return backend.ok() ? std::unique_ptr<ExecutorBackend>(std::move(*backend)) : nullptr;
  });
  const double tolerance = dtype == kernels::DType::kFp32 ? 1e-4 : 5e-2;
  for (int32_t r = 0; r < world; ++r) {
    ASSERT_TRUE(runs[r].status.ok()) << "rank " << r << ": " << runs[r].status;
    absl::StatusOr<ReferenceError> error =
        CompareWithReference(plan, r, ShapeOf(batch), kTestSeed, kTestStep, runs[r].outputs);
    ASSERT_TRUE(error.ok()) << error.status();
    EXPECT_LT(error->Max(), tolerance) << "rank " << r << ": " << error->ToString();
    EXPECT_GT(runs[r].stats.attention_seconds, 0) << "rank " << r;
  }
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  static const char* const kMasks[] = {"Causal", "Full", "SlidingWindow", "PrefixLm"};
  return absl::StrCat(std::get<0>(info.param), "_", kMasks[std::get<1>(info.param)], "_",
                      kernels::DTypeName(std::get<2>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(
    StrategiesMasksDtypes, CudaExecutorTest,
    ::testing::Combine(::testing::Values("fcp", "ring", "per_doc", "whole_doc", "flashcp",
                                         "flexdeg", "dcp", kPlacedTestStrategy),
                       ::testing::Values(0, 1, 2, 3),
                       ::testing::Values(kernels::DType::kFp32, kernels::DType::kBf16)),
    CaseName);

TEST(CudaBackendTest, RefusesWithoutADeviceOrReportsItsStream) {
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = NewCudaBackend({});
  if (!kernels::CudaDeviceStatus().ok()) {
    EXPECT_EQ(backend.status().code(), absl::StatusCode::kFailedPrecondition);
    return;
  }
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_NE((*backend)->stream(), nullptr);
  EXPECT_EQ((*backend)->name(), "cuda");
  EXPECT_TRUE((*backend)->device_memory());
}

}  // namespace
}  // namespace fcp
