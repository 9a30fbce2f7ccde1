// The emulated warp primitives of kernels/cuda_emulation_mma.h against PTX's layouts written out
// independently here: ldmatrix (.trans) hands lane i the elements the ISA names, mma over
// fragments built from the layout formulas and over fragments loaded with ldmatrix equals a plain
// 16×8×16 (here two n-tiles: 16×16×16) matrix product, for bf16 and fp16; cp.async poisons its
// destination at issue, copies at the wait and zero-fills.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cuda_emulation.h"
// The emulation must come first.
#include "kernels/attention_cuda_mma.cuh"

namespace fcp {
namespace kernels {
namespace {

using cuda_internal::CpAsync16;
using cuda_internal::CpAsyncCommit;
using cuda_internal::CpAsyncWait;
using cuda_internal::LdMatrixX4;
using cuda_internal::LdMatrixX4Trans;
using cuda_internal::Mma;
using cuda_internal::PackPair;

float Round(__half, float x) { return __half2float(__float2half_rn(x)); }
float Round(__nv_bfloat16, float x) { return __bfloat162float(__float2bfloat16_rn(x)); }
uint16_t Bits(__half, float x) {
  __half h = __float2half_rn(x);
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}
uint16_t Bits(__nv_bfloat16, float x) {
  __nv_bfloat16 h = __float2bfloat16_rn(x);
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}

// 16×16 matrices of exactly representable values, row-major.
template <typename T>
std::vector<float> RandomMatrix(int seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<float> m(256);
  for (float& x : m) x = Round(T{}, u(rng));
  return m;
}

// C(16×16) = A·B, fp64 sums.
std::vector<float> MatMul(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> c(256);
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      double s = 0;
      for (int k = 0; k < 16; ++k) s += static_cast<double>(a[16 * i + k]) * b[16 * k + j];
      c[16 * i + j] = static_cast<float>(s);
    }
  }
  return c;
}

struct Out {
  std::vector<float> c = std::vector<float>(256, NAN);
  std::vector<uint32_t> regs = std::vector<uint32_t>(32 * 4);
};

// Writes a lane's two 16×8 accumulators (n-tiles 0 and 1) into c by the PTX C layout.
void StoreC(const float (&c0)[4], const float (&c1)[4], float* c) {
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  for (int i = 0; i < 4; ++i) {
    const int r = g + 8 * (i / 2), n = 2 * t + i % 2;
    c[16 * r + n] = c0[i];
    c[16 * r + 8 + n] = c1[i];
  }
}

// The block's shared memory as a 16×16 matrix of T, rows padded to 24 elements (48 bytes: rows
// 16-byte aligned, as ldmatrix needs, but not contiguous).
constexpr int kLd = 24;

template <typename T>
void ToShared(const std::vector<float>& m, T* s) {
  for (int i = 0; i < 256; ++i) {
    const uint16_t b = Bits(T{}, m[i]);
    std::memcpy(static_cast<void*>(&s[(i / 16) * kLd + i % 16]), &b, 2);
  }
}

// C = A·B with A loaded by ldmatrix (from A, or .trans from Aᵀ) and B by ldmatrix (.trans from B
// stored k-major, or plain from Bᵀ stored n-major: the K of attention).
template <typename T, bool kTransA, bool kTransB>
void LoadedMmaKernel(const float* a, const float* b, Out* out) {
  T* as = reinterpret_cast<T*>(cuda_emulation::SharedMemory());
  T* bs = as + 16 * kLd;
  const int lane = threadIdx.x % 32;
  if (lane == 0) {
    std::vector<float> at(256), bt(256);
    for (int i = 0; i < 16; ++i) {
      for (int j = 0; j < 16; ++j) {
        at[16 * j + i] = a[16 * i + j];
        bt[16 * j + i] = b[16 * i + j];
      }
    }
    ToShared<T>(kTransA ? at : std::vector<float>(a, a + 256), as);
    ToShared<T>(kTransB ? std::vector<float>(b, b + 256) : bt, bs);
  }
  __syncwarp();
  const int m = lane / 8, r = lane % 8;
  uint32_t fa[4], fb[4];
  if (kTransA) {
    // Aᵀ(k, row): matrix j = (rows 8(j%2).., k 8(j/2)..) of A is Aᵀ's rows k 8(j/2) + r.
    LdMatrixX4Trans(fa, as + (8 * (m / 2) + r) * kLd + 8 * (m % 2));
  } else {
    LdMatrixX4(fa, as + (8 * (m % 2) + r) * kLd + 8 * (m / 2));
  }
  if (kTransB) {
    // B(k, n) stored k-major; matrix j = (k 8(j%2).., n 8(j/2)..).
    LdMatrixX4Trans(fb, bs + (8 * (m % 2) + r) * kLd + 8 * (m / 2));
  } else {
    // Bᵀ(n, k) stored n-major; matrix j = (n 8(j/2).., k 8(j%2)..).
    LdMatrixX4(fb, bs + (8 * (m / 2) + r) * kLd + 8 * (m % 2));
  }
  float c0[4] = {}, c1[4] = {};
  const uint32_t b0[2] = {fb[0], fb[1]}, b1[2] = {fb[2], fb[3]};
  Mma<T>(c0, fa, b0);
  Mma<T>(c1, fa, b1);
  StoreC(c0, c1, out->c.data());
  for (int j = 0; j < 4; ++j) out->regs[4 * lane + j] = fa[j];
}

// C = A·B with fragments packed by the layout formulas, no ldmatrix.
template <typename T>
void FormulaMmaKernel(const float* a, const float* b, Out* out) {
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  auto at = [&](int r, int k) { return a[16 * r + k]; };
  const uint32_t fa[4] = {PackPair<T>(at(g, 2 * t), at(g, 2 * t + 1)),
                          PackPair<T>(at(g + 8, 2 * t), at(g + 8, 2 * t + 1)),
                          PackPair<T>(at(g, 2 * t + 8), at(g, 2 * t + 9)),
                          PackPair<T>(at(g + 8, 2 * t + 8), at(g + 8, 2 * t + 9))};
  float c[2][4] = {};
  for (int nt = 0; nt < 2; ++nt) {
    auto bt = [&](int k) { return b[16 * k + 8 * nt + g]; };
    const uint32_t fb[2] = {PackPair<T>(bt(2 * t), bt(2 * t + 1)),
                            PackPair<T>(bt(2 * t + 8), bt(2 * t + 9))};
    for (int i = 0; i < 4; ++i) c[nt][i] = 0.25f * static_cast<float>(i + 1);  // c accumulates
    Mma<T>(c[nt], fa, fb);
  }
  StoreC(c[0], c[1], out->c.data());
}

template <typename T>
class MmaEmulationTest : public ::testing::Test {};
using Types = ::testing::Types<__nv_bfloat16, __half>;
TYPED_TEST_SUITE(MmaEmulationTest, Types);

void ExpectProduct(const std::vector<float>& got, const std::vector<float>& want, float add) {
  for (int i = 0; i < 256; ++i) {
    const float w =
        want[i] + (add > 0 ? add * static_cast<float>(2 * ((i / 16) >= 8) + i % 2 + 1) : 0.0f);
    ASSERT_NEAR(got[i], w, 1e-4f * (1.0f + std::fabs(w))) << "element " << i / 16 << "," << i % 16;
  }
}

TYPED_TEST(MmaEmulationTest, FormulaFragmentsGiveThePlainProduct) {
  using T = TypeParam;
  const std::vector<float> a = RandomMatrix<T>(1), b = RandomMatrix<T>(2);
  Out out;
  cuda_emulation::Launch(dim3(1), dim3(32), 0, FormulaMmaKernel<T>, a.data(), b.data(), &out);
  ExpectProduct(out.c, MatMul(a, b), 0.25f);
}

TYPED_TEST(MmaEmulationTest, LdMatrixFragmentsGiveThePlainProductInEveryLayout) {
  using T = TypeParam;
  const std::vector<float> a = RandomMatrix<T>(3), b = RandomMatrix<T>(4);
  const std::vector<float> want = MatMul(a, b);
  const size_t shared = sizeof(T) * 2 * 16 * kLd;
  for (int variant = 0; variant < 4; ++variant) {
    SCOPED_TRACE(variant);
    Out out;
    auto* kernel = variant == 0   ? LoadedMmaKernel<T, false, false>
                   : variant == 1 ? LoadedMmaKernel<T, false, true>
                   : variant == 2 ? LoadedMmaKernel<T, true, false>
                                  : LoadedMmaKernel<T, true, true>;
    cuda_emulation::Launch(dim3(1), dim3(32), shared, kernel, a.data(), b.data(), &out);
    ExpectProduct(out.c, want, 0.0f);
  }
}

TYPED_TEST(MmaEmulationTest, LdMatrixHandsEachLaneThePtxElements) {
  using T = TypeParam;
  const std::vector<float> a = RandomMatrix<T>(5), b = RandomMatrix<T>(6);
  Out plain, trans;
  const size_t shared = sizeof(T) * 2 * 16 * kLd;
  cuda_emulation::Launch(dim3(1), dim3(32), shared, LoadedMmaKernel<T, false, false>, a.data(),
                         b.data(), &plain);
  cuda_emulation::Launch(dim3(1), dim3(32), shared, LoadedMmaKernel<T, true, false>, a.data(),
                         b.data(), &trans);
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int j = 0; j < 4; ++j) {
      // Register j of the A fragment: rows g + 8(j%2), columns 2t + 8(j/2) and the next.
      const int r = g + 8 * (j % 2), k = 2 * t + 8 * (j / 2);
      const uint32_t want = Bits(T{}, a[16 * r + k]) | uint32_t{Bits(T{}, a[16 * r + k + 1])} << 16;
      EXPECT_EQ(plain.regs[4 * lane + j], want) << "lane " << lane << " reg " << j;
      EXPECT_EQ(trans.regs[4 * lane + j], want) << "trans: lane " << lane << " reg " << j;
    }
  }
}

void CpAsyncKernel(const float* src, float* seen_before, float* seen_after) {
  float* dst = reinterpret_cast<float*>(cuda_emulation::SharedMemory());
  const int i = threadIdx.x;
  dst[8 * i] = 7.0f;  // overwritten, undefined from the issue on
  CpAsync16(dst + 8 * i, src + 8 * i, 16);
  CpAsync16(dst + 8 * i + 4, src, 0);  // zero fill
  CpAsyncCommit();
  seen_before[i] = dst[8 * i];
  CpAsyncWait<0>();
  for (int e = 0; e < 8; ++e) seen_after[8 * i + e] = dst[8 * i + e];
}

TEST(CpAsyncEmulationTest, PoisonsAtIssueCopiesAtTheWaitAndZeroFills) {
  std::vector<float> src(256), before(32), after(256);
  for (int i = 0; i < 256; ++i) src[i] = static_cast<float>(i + 1);
  cuda_emulation::Launch(dim3(1), dim3(32), 1024, CpAsyncKernel, src.data(), before.data(),
                         after.data());
  for (int i = 0; i < 32; ++i) {
    EXPECT_TRUE(std::isnan(before[i])) << i;  // issued, not yet waited for
    for (int e = 0; e < 4; ++e) EXPECT_EQ(after[8 * i + e], src[8 * i + e]);
    for (int e = 4; e < 8; ++e) EXPECT_EQ(after[8 * i + e], 0.0f);
  }
}

}  // namespace
}  // namespace kernels
}  // namespace fcp
