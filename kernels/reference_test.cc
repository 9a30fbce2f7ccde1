#include "kernels/reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernels/test_util.h"

namespace fcp {
namespace kernels {
namespace {

using test_util::RandomTensor;

constexpr TileMask kCausal{MaskKind::kCausal, 0, 0};

TEST(ReferenceTest, LengthOneAttendsToItself) {
  const AttentionShape shape{1, 1, 4};
  const std::vector<float> q{1, 2, 0, -1}, k{0.5f, 1, 3, 2}, v{1, -2, 3, 4}, d_o{2, 1, 0, 1};
  const ReferenceResult r =
      ReferenceAttention(shape, kCausal, 1, q.data(), k.data(), v.data(), d_o.data());
  EXPECT_EQ(r.o, v);
  EXPECT_FLOAT_EQ(r.lse[0], (0.5f + 2 + 0 - 2) / 2.0f);  // q·k / √4, a single key
  EXPECT_EQ(r.dv, d_o);                                  // o = v
  EXPECT_EQ(r.dq, std::vector<float>(4, 0.0f));          // softmax of one key is constant
  EXPECT_EQ(r.dk, std::vector<float>(4, 0.0f));
}

TEST(ReferenceTest, EqualScoresAverageTheValues) {
  const AttentionShape shape{1, 1, 2};
  const std::vector<float> q(4, 0.0f), k{1, 2, 3, 4}, v{1, 2, 3, 6}, d_o(4, 1.0f);
  const ReferenceResult r =
      ReferenceAttention(shape, kCausal, 2, q.data(), k.data(), v.data(), d_o.data());
  EXPECT_EQ(r.o, (std::vector<float>{1, 2, 2, 4}));
  EXPECT_FLOAT_EQ(r.lse[0], 0.0f);
  EXPECT_FLOAT_EQ(r.lse[1], std::log(2.0f));
  EXPECT_EQ(r.dv, (std::vector<float>{1.5f, 1.5f, 0.5f, 0.5f}));
}

TEST(ReferenceTest, KnownScores) {
  // d = 1: scale 1, row 1 scores (1, 2) against v = (10, 20).
  const AttentionShape shape{1, 1, 1};
  const std::vector<float> q{0, 1}, k{1, 2}, v{10, 20};
  const ReferenceResult r =
      ReferenceAttention(shape, kCausal, 2, q.data(), k.data(), v.data(), nullptr);
  const double e1 = std::exp(1.0), e2 = std::exp(2.0);
  EXPECT_FLOAT_EQ(r.o[1], static_cast<float>((10 * e1 + 20 * e2) / (e1 + e2)));
  EXPECT_FLOAT_EQ(r.lse[1], static_cast<float>(std::log(e1 + e2)));
  EXPECT_TRUE(r.dq.empty());  // no d_o: forward only
}

TEST(ReferenceTest, RowWithoutKeysHasZeroOutputAndNoLse) {
  const AttentionShape shape{1, 1, 2};
  const TileMask no_window{MaskKind::kSlidingWindow, 0, 0};
  std::mt19937 rng(1);
  const std::vector<float> x = RandomTensor(6, rng);
  const ReferenceResult r =
      ReferenceAttention(shape, no_window, 3, x.data(), x.data(), x.data(), x.data());
  EXPECT_EQ(r.o, std::vector<float>(6, 0.0f));
  EXPECT_EQ(r.lse, std::vector<float>(3, -INFINITY));
  EXPECT_EQ(r.dq, std::vector<float>(6, 0.0f));
  EXPECT_EQ(r.dk, std::vector<float>(6, 0.0f));
}

// With GQA, each query head equals single-head attention against its kv head.
TEST(ReferenceTest, GroupedQueryHeadsReadTheirKvHead) {
  const int64_t length = 5, d = 3;
  const AttentionShape gqa{4, 2, d}, single{1, 1, d};
  std::mt19937 rng(2);
  const std::vector<float> q = RandomTensor(length * 4 * d, rng), do_ = RandomTensor(q.size(), rng);
  const std::vector<float> k = RandomTensor(length * 2 * d, rng), v = RandomTensor(k.size(), rng);
  const ReferenceResult all =
      ReferenceAttention(gqa, kCausal, length, q.data(), k.data(), v.data(), do_.data());
  auto head = [&](const std::vector<float>& x, int64_t heads, int64_t h) {
    std::vector<float> out;
    for (int64_t i = 0; i < length; ++i) {
      out.insert(out.end(), x.begin() + (i * heads + h) * d, x.begin() + (i * heads + h + 1) * d);
    }
    return out;
  };
  for (int64_t h = 0; h < 4; ++h) {
    const std::vector<float> qh = head(q, 4, h), doh = head(do_, 4, h);
    const std::vector<float> kh = head(k, 2, h / 2), vh = head(v, 2, h / 2);
    const ReferenceResult one =
        ReferenceAttention(single, kCausal, length, qh.data(), kh.data(), vh.data(), doh.data());
    EXPECT_EQ(head(all.o, 4, h), one.o) << "head " << h;
    EXPECT_EQ(head(all.dq, 4, h), one.dq) << "head " << h;
  }
}

// dq, dk, dv against central differences of loss = Σ o·do, for every mask kind.
class ReferenceGradientTest : public ::testing::TestWithParam<TileMask> {};

TEST_P(ReferenceGradientTest, MatchesFiniteDifferences) {
  const int64_t length = 6, d = 4;
  const AttentionShape shape{2, 1, d};
  std::mt19937 rng(3);
  std::vector<float> q = RandomTensor(length * 2 * d, rng), d_o = RandomTensor(q.size(), rng);
  std::vector<float> k = RandomTensor(length * d, rng), v = RandomTensor(k.size(), rng);
  auto loss = [&] {
    const ReferenceResult r =
        ReferenceAttention(shape, GetParam(), length, q.data(), k.data(), v.data(), nullptr);
    double sum = 0;
    for (size_t i = 0; i < r.o.size(); ++i) sum += static_cast<double>(r.o[i]) * d_o[i];
    return sum;
  };
  const ReferenceResult r =
      ReferenceAttention(shape, GetParam(), length, q.data(), k.data(), v.data(), d_o.data());
  // eps balances truncation error (~eps²) against the float rounding of o (~1e-6 / eps).
  const float eps = 1e-2f;
  auto check = [&](std::vector<float>& x, const std::vector<float>& grad, const char* name) {
    for (size_t i = 0; i < x.size(); ++i) {
      const float saved = x[i];
      x[i] = saved + eps;
      const double up = loss();
      x[i] = saved - eps;
      const double down = loss();
      x[i] = saved;
      EXPECT_NEAR(grad[i], (up - down) / (2 * eps), 2e-3) << name << "[" << i << "]";
    }
  };
  check(q, r.dq, "dq");
  check(k, r.dk, "dk");
  check(v, r.dv, "dv");
}

INSTANTIATE_TEST_SUITE_P(Masks, ReferenceGradientTest,
                         ::testing::Values(TileMask{MaskKind::kCausal, 0, 0},
                                           TileMask{MaskKind::kFull, 0, 0},
                                           TileMask{MaskKind::kSlidingWindow, 3, 0},
                                           TileMask{MaskKind::kPrefixLm, 0, 4}),
                         [](const auto& info) { return test_util::MaskName(info.param); });

}  // namespace
}  // namespace kernels
}  // namespace fcp
