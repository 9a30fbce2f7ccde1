// The CUDA attention kernels on a real GPU against fp64 reference attention: fp32 within 1e-5,
// fp16/bf16 within FlashAttention's rule (at most 2× the error of naive attention in the same
// precision), fresh random inputs for every case, poisoned outputs (attention_cuda_testing.h).
// Every test skips, saying why, on a machine without a CUDA device; the same kernels run on the
// CPU in attention_cuda_emulation_test.cc.
#include "kernels/attention_cuda.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "kernels/attention_cuda_testing.h"
#include "kernels/test_util.h"

namespace fcp {
namespace kernels {
namespace {

using testing::KernelCase;
using testing::KernelCaseName;
using testing::Problem;

#define SKIP_WITHOUT_CUDA_DEVICE()                                              \
  do {                                                                          \
    const absl::Status device = CudaDeviceStatus();                             \
    if (!device.ok()) GTEST_SKIP() << "GPU test skipped: " << device.message(); \
  } while (false)

// Skips without a device; else a runner on its own stream.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override { CreateRunner({}); }
  void CreateRunner(const CudaAttentionOptions& options) {
    SKIP_WITHOUT_CUDA_DEVICE();
    absl::StatusOr<std::unique_ptr<testing::CudaKernelRunner>> runner =
        testing::CudaKernelRunner::Create(options);
    ASSERT_TRUE(runner.ok()) << runner.status();
    runner_ = std::move(*runner);
  }
  std::unique_ptr<testing::CudaKernelRunner> runner_;
};

// A kernel case on v1, or on v2 with dq by atomics or by its own pass.
struct VersionedCase {
  KernelCase c;
  CudaAttentionOptions options;
};

std::string VersionedCaseName(const VersionedCase& v) {
  if (v.options.kernels == CudaKernels::kV1) return KernelCaseName(v.c);
  return "v2" + std::string(v.options.dq == CudaDqMode::kAtomic ? "" : "SeparateDq") + "_" +
         KernelCaseName(v.c);
}

class CudaAttentionTest : public CudaTest, public ::testing::WithParamInterface<VersionedCase> {
 protected:
  void SetUp() override { CreateRunner(GetParam().options); }
};

// Documents of 1000, 300, 77 and 1 tokens, blocks of up to 300 rows (several work items per block,
// several key steps per tile), tiles over three rounds (launches), inputs drawn afresh per seed.
TEST_P(CudaAttentionTest, MatchesReference) {
  const KernelCase& c = GetParam().c;
  for (uint32_t seed : {1u, 2u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const Problem problem = testing::MakeProblem(c.shape, c.dtype, c.mask, {1000, 300, 77, 1},
                                                 /*max_block=*/300, /*rounds=*/3, seed);
    absl::StatusOr<testing::Outputs> got = testing::RunProblem(problem, *runner_);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(testing::CheckOutputs(problem, *got, testing::ReferenceOutputs(problem),
                                    testing::NaiveOutputs(problem)),
              "");
  }
}

// The forward and dk/dv have one writer per element: the same inputs give the same bits (a race
// would not). dq takes atomic adds from many blocks, so only its values are compared.
TEST_P(CudaAttentionTest, RepeatsBitForBitExceptAtomicDq) {
  const KernelCase& c = GetParam().c;
  const Problem problem = testing::MakeProblem(c.shape, c.dtype, c.mask, {700, 50}, 200, 2, 5);
  absl::StatusOr<testing::Outputs> a = testing::RunProblem(problem, *runner_);
  absl::StatusOr<testing::Outputs> b = testing::RunProblem(problem, *runner_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->o, b->o);
  EXPECT_EQ(a->lse, b->lse);
  EXPECT_EQ(a->dk, b->dk);
  EXPECT_EQ(a->dv, b->dv);
  if (GetParam().options.kernels == CudaKernels::kV2 &&
      GetParam().options.dq == CudaDqMode::kSeparate && c.dtype != DType::kFp32) {
    EXPECT_EQ(a->dq, b->dq);  // the separate pass has one writer per dq element
  }
  for (size_t i = 0; i < a->dq.size(); ++i) ASSERT_NEAR(a->dq[i], b->dq[i], 1e-4) << i;
}

std::vector<VersionedCase> Cases() {
  const TileMask masks[] = {{MaskKind::kCausal, 0, 0},
                            {MaskKind::kFull, 0, 0},
                            {MaskKind::kSlidingWindow, 100, 0},
                            {MaskKind::kSlidingWindow, 1, 0},
                            {MaskKind::kPrefixLm, 0, 130}};
  const CudaAttentionOptions v1, v2{CudaKernels::kV2, CudaDqMode::kAtomic},
      v2_separate{CudaKernels::kV2, CudaDqMode::kSeparate};
  std::vector<VersionedCase> cases;
  for (DType dtype : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    for (const TileMask& mask : masks) {
      for (const AttentionShape& shape : {AttentionShape{8, 2, 128}, AttentionShape{4, 4, 64}}) {
        cases.push_back({{dtype, mask, shape}, v1});  // {8, 2, 128}: GQA, 4 q heads per kv head
        if (dtype == DType::kFp32) continue;          // fp32 always runs v1
        cases.push_back({{dtype, mask, shape}, v2});
        cases.push_back({{dtype, mask, shape}, v2_separate});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Kernels, CudaAttentionTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return VersionedCaseName(info.param); });

class CudaAttentionOpsTest : public CudaTest {
 protected:
  template <typename T>
  T* Upload(const std::vector<T>& x) {
    void* p = *runner_->Allocate(x.size() * sizeof(T));
    EXPECT_TRUE(runner_->Upload(p, x.data(), x.size() * sizeof(T)).ok());
    return static_cast<T*>(p);
  }
  template <typename T>
  std::vector<T> Download(const T* p, size_t n) {
    std::vector<T> x(n);
    EXPECT_TRUE(runner_->Download(x.data(), p, n * sizeof(T)).ok());
    return x;
  }
};

std::vector<float> Random(size_t n, uint32_t seed, float scale = 1) {
  std::mt19937 rng(seed);
  std::vector<float> x = test_util::RandomTensor(static_cast<int64_t>(n), rng);
  for (float& e : x) e *= scale;
  return x;
}

TEST_F(CudaAttentionOpsTest, MergeLseMatchesCpu) {
  const AttentionShape shape{4, 2, 128};
  const int64_t rows = 37, n = rows * 4 * 128;
  std::vector<float> o_a = Random(n, 1), o_b = Random(n, 2);
  std::vector<float> lse_a = Random(rows * 4, 3, 4), lse_b = Random(rows * 4, 4, 4);
  lse_a[5] = -INFINITY;
  lse_b[9] = -INFINITY;
  std::fill(o_b.begin() + 9 * 128, o_b.begin() + 10 * 128, NAN);  // never read
  float* d_oa = Upload(o_a);
  float* d_lsea = Upload(lse_a);
  ASSERT_TRUE(
      runner_->attention().MergeLse(shape, rows, d_oa, d_lsea, Upload(o_b), Upload(lse_b)).ok());
  MergeLse(shape, rows, o_a.data(), lse_a.data(), o_b.data(), lse_b.data());
  const std::vector<float> o = Download(d_oa, n), lse = Download(d_lsea, rows * 4);
  for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(o[i], o_a[i], 1e-5) << i;
  for (int64_t i = 0; i < rows * 4; ++i) ASSERT_NEAR(lse[i], lse_a[i], 1e-5) << i;
}

TEST_F(CudaAttentionOpsTest, ConvertRoundsToNearestEvenAndAccumulateAdds) {
  const std::vector<float> x = Random(10001, 5, 100);
  float* d_x = Upload(x);
  for (DType dtype : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    void* d_y = *runner_->Allocate(x.size() * 4);
    ASSERT_TRUE(runner_->attention().ConvertFromFloat(d_x, dtype, d_y, x.size()).ok());
    std::vector<char> bytes(x.size() * DTypeBytes(dtype));
    ASSERT_TRUE(runner_->Download(bytes.data(), d_y, bytes.size()).ok());
    for (size_t i = 0; i < x.size(); i += 97) {
      const float expected = testing::RoundTo(dtype, x[i]);
      float got = 0;
      if (dtype == DType::kFp32) {
        std::memcpy(&got, &bytes[4 * i], 4);
      } else if (dtype == DType::kBf16) {
        __nv_bfloat16 b;
        std::memcpy(&b, &bytes[2 * i], 2);
        got = __bfloat162float(b);
      } else {
        __half h;
        std::memcpy(&h, &bytes[2 * i], 2);
        got = __half2float(h);
      }
      ASSERT_EQ(got, expected) << DTypeName(dtype) << " " << i;
    }
  }
  std::vector<float> y = Random(x.size(), 6);
  float* d_y = Upload(y);
  ASSERT_TRUE(runner_->attention().Accumulate(d_y, d_x, x.size()).ok());
  const std::vector<float> sum = Download(d_y, x.size());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(sum[i], y[i] + x[i]) << i;
}

TEST_F(CudaAttentionOpsTest, RefusesBadArgumentsBeforeLaunching) {
  const AttentionShape shape{2, 1, 64};
  float* buffer = static_cast<float*>(*runner_->Allocate(4096));
  ForwardTile t;
  t.q = t.k = t.v = buffer;
  t.q_rows = t.kv_rows = 4;
  t.o = buffer + 512;
  t.lse = buffer + 1000;
  t.k = reinterpret_cast<const char*>(buffer) + 4;
  absl::Status s = runner_->attention().Forward(shape, DType::kBf16, {t});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "tiles[0].k: not 16-byte aligned")) << s;
  EXPECT_EQ(runner_->attention().Forward({2, 1, 96}, DType::kBf16, {}).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kernels
}  // namespace fcp
