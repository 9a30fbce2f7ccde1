// The CUDA attention kernels, compiled by the host compiler and run on the CPU over
// kernels/cuda_emulation.h (threads as fibers, wmma as plain loops with the GPU's operand rules),
// against the same oracles as the GPU test: fp32 within 1e-5 of fp64 reference attention, fp16 and
// bf16 within FlashAttention's rule. This is the kernels' test on machines without a GPU; the GPU
// test (attention_cuda_test.cc) runs the real thing where there is one. Plus the host half of a
// launch (attention_cuda_tables.h): tile grouping, work items, refusals.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda_emulation.h"
// The emulation must come first.
#include "absl/strings/match.h"
#include "kernels/attention_cuda_kernels.cuh"
#include "kernels/attention_cuda_tables.h"
#include "kernels/attention_cuda_testing.h"
#include "kernels/attention_cuda_v2_backward.cuh"
#include "kernels/attention_cuda_v2_dq.cuh"
#include "kernels/attention_cuda_v2_forward.cuh"

namespace fcp {
namespace kernels {
namespace {

using cuda_internal::BackwardConfig;
using cuda_internal::BackwardV2Config;
using cuda_internal::DqV2Config;
using cuda_internal::ForwardConfig;
using cuda_internal::ForwardV2Config;
using cuda_internal::HostTables;
using cuda_internal::kThreads;
using testing::KernelCase;
using testing::KernelCaseName;
using testing::KernelRunner;
using testing::Problem;

// Runs f(T{}, std::integral_constant<int, D>{}) for (dtype, head_dim).
template <typename F>
void Dispatch(DType dtype, int head_dim, F f) {
  cuda_internal::DispatchKernel(dtype, head_dim, 0, [&](auto type, auto dim) {
    f(type, dim);
    return 0;
  });
}

class EmulatedRunner : public KernelRunner {
 public:
  explicit EmulatedRunner(const CudaAttentionOptions& options = {}) : options_(options) {}

  absl::StatusOr<void*> Allocate(size_t bytes) override {
    memory_.emplace_back(static_cast<char*>(std::aligned_alloc(256, (bytes + 255) / 256 * 256)));
    return memory_.back().get();
  }
  absl::Status Upload(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status Download(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status Forward(const AttentionShape& shape, DType dtype,
                       const std::vector<ForwardTile>& tiles) override {
    absl::StatusOr<HostTables<ForwardTile>> tables =
        cuda_internal::ForwardTables(shape, dtype, tiles);
    if (!tables.ok()) return tables.status();
    if (tables->items.empty()) return absl::OkStatus();
    const float scale_log2 = shape.Scale() * cuda_internal::kLog2e;
    Dispatch(dtype, shape.head_dim, [&](auto type, auto dim) {
      using T = decltype(type);
      constexpr int D = decltype(dim)::value;
      const dim3 grid(tables->items.size(), shape.q_heads);
      if constexpr (!std::is_same<T, float>::value) {
        if (options_.kernels == CudaKernels::kV2) {
          cuda_emulation::Launch(grid, dim3(kThreads), ForwardV2Config<T, D>::kBytes,
                                 cuda_internal::ForwardV2Kernel<T, D>, tables->HostView(), shape,
                                 scale_log2);
          return;
        }
      }
      cuda_emulation::Launch(grid, dim3(kThreads), ForwardConfig<T, D>::kBytes,
                             cuda_internal::ForwardKernel<T, D>, tables->HostView(), shape,
                             scale_log2);
    });
    return absl::OkStatus();
  }
  absl::Status Backward(const AttentionShape& shape, DType dtype,
                        const std::vector<BackwardTile>& tiles) override {
    absl::StatusOr<HostTables<BackwardTile>> tables =
        cuda_internal::BackwardTables(shape, dtype, tiles);
    if (!tables.ok()) return tables.status();
    if (tables->items.empty()) return absl::OkStatus();
    absl::StatusOr<HostTables<BackwardTile>> dq_tables =
        cuda_internal::BackwardDqTables(shape, tiles);
    if (!dq_tables.ok()) return dq_tables.status();
    const float scale = shape.Scale(), scale_log2 = scale * cuda_internal::kLog2e;
    Dispatch(dtype, shape.head_dim, [&](auto type, auto dim) {
      using T = decltype(type);
      constexpr int D = decltype(dim)::value;
      const dim3 grid(tables->items.size(), shape.kv_heads);
      if constexpr (!std::is_same<T, float>::value) {
        if (options_.kernels == CudaKernels::kV2) {
          if (options_.dq == CudaDqMode::kAtomic) {
            cuda_emulation::Launch(grid, dim3(kThreads), BackwardV2Config<T, D>::kBytes,
                                   cuda_internal::BackwardV2Kernel<T, D, true>, tables->HostView(),
                                   shape, scale, scale_log2);
            return;
          }
          cuda_emulation::Launch(grid, dim3(kThreads), BackwardV2Config<T, D>::kBytes,
                                 cuda_internal::BackwardV2Kernel<T, D, false>, tables->HostView(),
                                 shape, scale, scale_log2);
          if (dq_tables->items.empty()) return;
          cuda_emulation::Launch(dim3(dq_tables->items.size(), shape.q_heads), dim3(kThreads),
                                 DqV2Config<T, D>::kBytes, cuda_internal::DqV2Kernel<T, D>,
                                 dq_tables->HostView(), shape, scale, scale_log2);
          return;
        }
      }
      cuda_emulation::Launch(grid, dim3(kThreads), BackwardConfig<T, D>::kBytes,
                             cuda_internal::BackwardKernel<T, D>, tables->HostView(), shape, scale,
                             scale_log2);
    });
    return absl::OkStatus();
  }
  absl::Status ComputeDelta(const AttentionShape& shape, DType dtype, const float* o,
                            const void* d_o, int64_t rows, float* delta) override {
    const int64_t row_heads = rows * shape.q_heads;
    const unsigned blocks = static_cast<unsigned>((row_heads * 32 + 255) / 256);
    Dispatch(dtype, shape.head_dim, [&](auto type, auto) {
      using T = decltype(type);
      cuda_emulation::Launch(dim3(blocks), dim3(256), 0, cuda_internal::DeltaKernel<T>, o,
                             static_cast<const T*>(d_o), row_heads, shape.head_dim, delta);
    });
    return absl::OkStatus();
  }

 private:
  CudaAttentionOptions options_;
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  std::vector<std::unique_ptr<char, Free>> memory_;
};

// Two documents cut into blocks of up to 80 rows (several work items per block and several
// 64-key steps per item), a one-token document, tiles over two rounds: the forward merges into
// (o, lse) across launches, the backward accumulates into dq/dk/dv.
void ExpectMatchesReference(const KernelCase& c, const CudaAttentionOptions& options) {
  const Problem problem = testing::MakeProblem(c.shape, c.dtype, c.mask, {100, 1, 29},
                                               /*max_block=*/80, /*rounds=*/2, /*seed=*/17);
  EmulatedRunner runner(options);
  absl::StatusOr<testing::Outputs> got = testing::RunProblem(problem, runner);
  ASSERT_TRUE(got.ok()) << got.status();
  const std::string failures = testing::CheckOutputs(
      problem, *got, testing::ReferenceOutputs(problem), testing::NaiveOutputs(problem));
  EXPECT_EQ(failures, "");
}

class EmulatedKernelTest : public ::testing::TestWithParam<KernelCase> {};
TEST_P(EmulatedKernelTest, MatchesReference) { ExpectMatchesReference(GetParam(), {}); }

// The v2 kernels (fp16/bf16) on the same problems, dq by atomics or by its own pass.
struct V2Case {
  KernelCase c;
  CudaDqMode dq = CudaDqMode::kAtomic;
};
class EmulatedKernelV2Test : public ::testing::TestWithParam<V2Case> {};
TEST_P(EmulatedKernelV2Test, MatchesReference) {
  ExpectMatchesReference(GetParam().c, {CudaKernels::kV2, GetParam().dq});
}

std::vector<KernelCase> Cases() {
  const TileMask causal{MaskKind::kCausal, 0, 0}, full{MaskKind::kFull, 0, 0};
  const TileMask window{MaskKind::kSlidingWindow, 9, 0}, prefix{MaskKind::kPrefixLm, 0, 13};
  std::vector<KernelCase> cases;
  for (DType dtype : {DType::kFp32, DType::kBf16}) {
    for (const TileMask& mask : {causal, full, window, prefix}) {
      cases.push_back({dtype, mask, {2, 1, 64}});
    }
    cases.push_back({dtype, causal, {2, 2, 128}});
  }
  cases.push_back({DType::kFp16, causal, {2, 1, 64}});  // fp16 shares bf16's code but conversions
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Kernels, EmulatedKernelTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return KernelCaseName(info.param); });

// Every mask, both half types, both head dims, GQA at d = 128; dQ by atomics and by its own pass.
std::vector<V2Case> V2Cases() {
  const TileMask causal{MaskKind::kCausal, 0, 0}, full{MaskKind::kFull, 0, 0};
  const TileMask window{MaskKind::kSlidingWindow, 9, 0}, prefix{MaskKind::kPrefixLm, 0, 13};
  std::vector<V2Case> cases;
  for (CudaDqMode dq : {CudaDqMode::kAtomic, CudaDqMode::kSeparate}) {
    for (DType dtype : {DType::kBf16, DType::kFp16}) {
      for (const TileMask& mask : {causal, full, window, prefix}) {
        // The separate dQ pass shares all but its dtype's conversions: fp16 on causal only.
        if (dq == CudaDqMode::kSeparate && dtype == DType::kFp16 &&
            mask.kind != MaskKind::kCausal) {
          continue;
        }
        cases.push_back({{dtype, mask, {2, 1, 64}}, dq});
        cases.push_back({{dtype, mask, {2, 2, 128}}, dq});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Kernels, EmulatedKernelV2Test, ::testing::ValuesIn(V2Cases()),
                         [](const auto& info) {
                           return (info.param.dq == CudaDqMode::kSeparate ? "SeparateDq_" : "") +
                                  KernelCaseName(info.param.c);
                         });

TEST(EmulatedMergeTest, MatchesCpuMerge) {
  const AttentionShape shape{2, 1, 64};
  const int64_t rows = 5, n = rows * 2 * 64;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> o_a(n), o_b(n), lse_a(rows * 2), lse_b(rows * 2);
  for (float& x : o_a) x = normal(rng);
  for (float& x : o_b) x = normal(rng);
  for (float& x : lse_a) x = 4 * normal(rng);
  for (float& x : lse_b) x = 4 * normal(rng);
  lse_a[1] = -INFINITY;  // an empty side on either
  lse_b[2] = -INFINITY;
  std::vector<float> cpu_o = o_a, cpu_lse = lse_a;
  MergeLse(shape, rows, cpu_o.data(), cpu_lse.data(), o_b.data(), lse_b.data());
  cuda_emulation::Launch(dim3(2), dim3(256), 0, cuda_internal::MergeKernel, rows * 2, 64,
                         o_a.data(), lse_a.data(), o_b.data(), lse_b.data());
  for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(o_a[i], cpu_o[i], 1e-5) << i;
  for (int64_t i = 0; i < rows * 2; ++i) ASSERT_NEAR(lse_a[i], cpu_lse[i], 1e-5) << i;
}

TEST(EmulatedRowKernelsTest, AccumulateAddsAndConvertRoundsToNearestEven) {
  std::vector<float> x(1000), y(1000);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = 0.37f * static_cast<float>(i) - 100.0f;
    y[i] = 1.0f / (1.0f + static_cast<float>(i));
  }
  std::vector<float> sum = y;
  cuda_emulation::Launch(dim3(2), dim3(128), 0, cuda_internal::AccumulateKernel, sum.data(),
                         x.data(), static_cast<int64_t>(x.size()));
  std::vector<__nv_bfloat16> b(x.size());
  cuda_emulation::Launch(dim3(3), dim3(64), 0, cuda_internal::ConvertKernel<__nv_bfloat16>,
                         x.data(), b.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(sum[i], y[i] + x[i]) << i;
    ASSERT_EQ(__bfloat162float(b[i]), testing::RoundTo(DType::kBf16, x[i])) << i;
  }
}

// ---- the host half: grouping and refusals ------------------------------------------------------

class TablesTest : public ::testing::Test {
 protected:
  // Tiles of one document of 3 blocks of 100 rows, all (q, kv) pairs, causal.
  void SetUp() override {
    for (int b = 0; b < 3; ++b) {
      for (int kb = 0; kb <= b; ++kb) {
        ForwardTile t;
        t.q = &data_[b * 64];
        t.k = &data_[kb * 64];
        t.v = &data_[kb * 64];
        t.q_rows = t.kv_rows = 100;
        t.q_begin = 100 * b;
        t.kv_begin = 100 * kb;
        t.o = &out_[b * 100 * 64];
        t.lse = &lse_[b * 100];
        tiles_.push_back(t);
      }
    }
  }
  alignas(16) float data_[256] = {};
  std::vector<float> out_ = std::vector<float>(300 * 64), lse_ = std::vector<float>(300);
  std::vector<ForwardTile> tiles_;
  const AttentionShape shape_{1, 1, 64};
};

TEST_F(TablesTest, GroupsByOutputBlockInListOrderHeaviestItemsFirst) {
  absl::StatusOr<HostTables<ForwardTile>> t =
      cuda_internal::ForwardTables(shape_, DType::kBf16, tiles_);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->begin, (std::vector<int32_t>{0, 1, 3, 6}));
  EXPECT_EQ(t->order, (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  // 3 blocks × 2 chunks of 64 rows; the last chunk of the last block reaches the most keys.
  ASSERT_EQ(t->items.size(), 6u);
  EXPECT_EQ(t->items.front().group, 2);
  EXPECT_EQ(t->items.front().row0, 64);
  EXPECT_EQ(t->items.back().group, 0);
  EXPECT_EQ(t->items.back().row0, 0);
}

TEST_F(TablesTest, SkipsChunksWithoutAllowedPairs) {
  // Keys 200..299 against queries 0..99 under a causal mask: nothing to do.
  ForwardTile t = tiles_[0];
  t.kv_begin = 200;
  absl::StatusOr<HostTables<ForwardTile>> tables =
      cuda_internal::ForwardTables(shape_, DType::kBf16, {t});
  ASSERT_TRUE(tables.ok());
  EXPECT_TRUE(tables->items.empty());
}

TEST_F(TablesTest, RefusesTilesOfOneOutputWithAnotherQueryBlock) {
  tiles_[2].q_rows = 99;
  absl::Status s = cuda_internal::ForwardTables(shape_, DType::kBf16, tiles_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "tiles[2]: writes the output block of tiles[1]")) << s;
}

TEST_F(TablesTest, RefusesOverlappingOutputBlocks) {
  tiles_[0].o = &out_[50 * 64];
  absl::Status s = cuda_internal::ForwardTables(shape_, DType::kBf16, tiles_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "overlap")) << s;
}

TEST_F(TablesTest, RefusesMisalignedInputsAndUnsupportedShapes) {
  tiles_[3].k = reinterpret_cast<const char*>(tiles_[3].k) + 2;
  EXPECT_TRUE(absl::StrContains(
      cuda_internal::ForwardTables(shape_, DType::kBf16, tiles_).status().message(),
      "tiles[3].k: not 16-byte aligned"));
  EXPECT_EQ(cuda_internal::ForwardTables({1, 1, 96}, DType::kBf16, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cuda_internal::ForwardTables({3, 2, 64}, DType::kBf16, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CudaKernelsFlagTest, ParsesTheThreeNamesAndRefusesOthersNamingTheFlag) {
  for (const char* name : {"v1", "v2", "v2-separate-dq"}) {
    absl::StatusOr<CudaAttentionOptions> o = ParseCudaKernels(name, "--kernels");
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(CudaKernelsName(*o), name);
  }
  const absl::StatusOr<CudaAttentionOptions> v2 = ParseCudaKernels("v2", "--kernels");
  EXPECT_EQ(v2->kernels, CudaKernels::kV2);
  EXPECT_EQ(v2->dq, CudaDqMode::kAtomic);
  EXPECT_EQ(ParseCudaKernels("v2-separate-dq", "--kernels")->dq, CudaDqMode::kSeparate);
  const absl::Status bad = ParseCudaKernels("v3", "--kernels").status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bad.message(), "--kernels: \"v3\"")) << bad;
}

// The separate dQ pass groups by dq: one group per query block, items of 64 query rows.
TEST(DqTablesTest, GroupsByQueryBlockAndRefusesMismatchedInputs) {
  alignas(16) static float data[1024] = {};
  std::vector<float> dq(2 * 100 * 64);  // two disjoint dq blocks
  std::vector<BackwardTile> tiles;
  for (int b = 0; b < 2; ++b) {
    for (int kb = 0; kb <= b; ++kb) {
      BackwardTile t;
      t.q = t.d_o = &data[b * 64];
      t.k = t.v = &data[kb * 64];
      t.q_rows = t.kv_rows = 100;
      t.q_begin = 100 * b;
      t.kv_begin = 100 * kb;
      t.lse = t.delta = &data[512 + b * 100];
      t.dq = &dq[b * 100 * 64];
      t.dk = t.dv = &data[256 + kb * 8];
      tiles.push_back(t);
    }
  }
  const AttentionShape shape{1, 1, 64};
  absl::StatusOr<HostTables<BackwardTile>> t = cuda_internal::BackwardDqTables(shape, tiles);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->begin, (std::vector<int32_t>{0, 1, 3}));
  EXPECT_EQ(t->items.size(), 4u);  // 2 blocks × 2 chunks of 64 rows
  tiles[2].d_o = &data[4];
  absl::Status s = cuda_internal::BackwardDqTables(shape, tiles).status();
  EXPECT_TRUE(absl::StrContains(s.message(), "tiles[2]: writes the output block of tiles[1]")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "d_o differs")) << s;
}

}  // namespace
}  // namespace kernels
}  // namespace fcp
