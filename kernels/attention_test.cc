#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/reference.h"
#include "kernels/test_util.h"

namespace fcp {
namespace kernels {
namespace {

using test_util::MaskName;
using test_util::RandomTensor;
using test_util::RelError;

// Documents packed back to back, as an executor holds its slice.
struct Batch {
  AttentionShape shape;
  TileMask mask;
  std::vector<int64_t> lengths;
  std::vector<float> q, k, v, d_o;

  int64_t Rows() const {
    int64_t rows = 0;
    for (int64_t length : lengths) rows += length;
    return rows;
  }
};

Batch MakeBatch(const AttentionShape& shape, const TileMask& mask, std::vector<int64_t> lengths,
                uint32_t seed) {
  Batch b{shape, mask, std::move(lengths), {}, {}, {}, {}};
  std::mt19937 rng(seed);
  const int64_t q_size = b.Rows() * shape.q_heads * shape.head_dim;
  const int64_t kv_size = b.Rows() * shape.kv_heads * shape.head_dim;
  b.q = RandomTensor(q_size, rng);
  b.k = RandomTensor(kv_size, rng);
  b.v = RandomTensor(kv_size, rng);
  b.d_o = RandomTensor(q_size, rng);
  return b;
}

struct Outputs {
  std::vector<float> o, lse, dq, dk, dv;
};

struct Block {
  int64_t begin, rows;
};

// A random split of [0, length) into blocks of 1..max_rows rows.
std::vector<Block> RandomBlocks(int64_t length, int64_t max_rows, std::mt19937& rng) {
  std::uniform_int_distribution<int64_t> size(1, max_rows);
  std::vector<Block> blocks;
  for (int64_t begin = 0; begin < length;) {
    const int64_t rows = std::min(size(rng), length - begin);
    blocks.push_back({begin, rows});
    begin += rows;
  }
  return blocks;
}

// Every (q block, kv block) tile of every document, with independent random splits of queries and
// keys, shuffled: each block sees its tiles in a random order, interleaved with other blocks'.
Outputs RunTiles(const Batch& b, int threads, uint32_t seed) {
  const int64_t hq = b.shape.q_heads, hkv = b.shape.kv_heads, d = b.shape.head_dim;
  const int64_t rows = b.Rows();
  Outputs out{std::vector<float>(rows * hq * d, 0.0f), std::vector<float>(rows * hq, -INFINITY),
              std::vector<float>(rows * hq * d, 0.0f), std::vector<float>(rows * hkv * d, 0.0f),
              std::vector<float>(rows * hkv * d, 0.0f)};
  std::mt19937 rng(seed);
  std::vector<ForwardTile> forward;
  std::vector<BackwardTile> backward;
  std::vector<float> delta(rows * hq);
  int64_t offset = 0;
  for (int64_t length : b.lengths) {
    for (const Block& qb : RandomBlocks(length, 40, rng)) {
      for (const Block& kb : RandomBlocks(length, 40, rng)) {
        const int64_t qo = offset + qb.begin, ko = offset + kb.begin;
        forward.push_back({&b.q[qo * hq * d], &b.k[ko * hkv * d], &b.v[ko * hkv * d], qb.rows,
                           kb.rows, qb.begin, kb.begin, b.mask, &out.o[qo * hq * d],
                           &out.lse[qo * hq]});
        backward.push_back({&b.q[qo * hq * d], &b.k[ko * hkv * d], &b.v[ko * hkv * d],
                            &b.d_o[qo * hq * d], &out.lse[qo * hq], &delta[qo * hq], qb.rows,
                            kb.rows, qb.begin, kb.begin, b.mask, &out.dq[qo * hq * d],
                            &out.dk[ko * hkv * d], &out.dv[ko * hkv * d]});
      }
    }
    offset += length;
  }
  std::shuffle(forward.begin(), forward.end(), rng);
  std::shuffle(backward.begin(), backward.end(), rng);
  AttentionForward(b.shape, forward, threads);
  ComputeDelta(b.shape, out.o.data(), b.d_o.data(), rows, delta.data());
  AttentionBackward(b.shape, backward, threads);
  return out;
}

std::vector<float> Slice(const std::vector<float>& x, int64_t row, int64_t rows, int64_t width) {
  return {x.begin() + row * width, x.begin() + (row + rows) * width};
}

struct TileCase {
  TileMask mask;
  AttentionShape shape;
};

std::string Name(const TileCase& c) {
  return MaskName(c.mask) + "_Q" + std::to_string(c.shape.q_heads) + "Kv" +
         std::to_string(c.shape.kv_heads) + "D" + std::to_string(c.shape.head_dim);
}

void PrintTo(const TileCase& c, std::ostream* os) { *os << Name(c); }

class TiledAttentionTest : public ::testing::TestWithParam<TileCase> {};

// The tiled forward and backward equal the reference on every document, within 1e-5 relative to
// each tensor's largest entry (see RelError for why not per element).
TEST_P(TiledAttentionTest, MatchesReference) {
  const AttentionShape& shape = GetParam().shape;
  const Batch b = MakeBatch(shape, GetParam().mask, {150, 1, 83}, 11);
  const Outputs out = RunTiles(b, 2, 12);
  const int64_t hq = shape.q_heads, hkv = shape.kv_heads, d = shape.head_dim;
  int64_t row = 0;
  for (int64_t length : b.lengths) {
    SCOPED_TRACE("document of length " + std::to_string(length));
    const ReferenceResult ref =
        ReferenceAttention(shape, b.mask, length, &b.q[row * hq * d], &b.k[row * hkv * d],
                           &b.v[row * hkv * d], &b.d_o[row * hq * d]);
    EXPECT_LT(RelError(Slice(out.o, row, length, hq * d), ref.o), 1e-5);
    EXPECT_LT(RelError(Slice(out.lse, row, length, hq), ref.lse), 1e-5);
    EXPECT_LT(RelError(Slice(out.dq, row, length, hq * d), ref.dq), 1e-5);
    EXPECT_LT(RelError(Slice(out.dk, row, length, hkv * d), ref.dk), 1e-5);
    EXPECT_LT(RelError(Slice(out.dv, row, length, hkv * d), ref.dv), 1e-5);
    row += length;
  }
}

// Every output is written by its tiles in list order whatever the thread count, so the bits match;
// one document with few kv heads also takes the two-pass backward at higher thread counts.
TEST_P(TiledAttentionTest, ThreadCountDoesNotChangeBits) {
  for (const std::vector<int64_t>& lengths : {std::vector<int64_t>{120}, {70, 50}}) {
    const Batch b = MakeBatch(GetParam().shape, GetParam().mask, lengths, 21);
    const Outputs one = RunTiles(b, 1, 22);
    for (int threads : {3, 8}) {
      const Outputs many = RunTiles(b, threads, 22);
      EXPECT_EQ(one.o, many.o) << threads << " threads";
      EXPECT_EQ(one.lse, many.lse) << threads << " threads";
      EXPECT_EQ(one.dq, many.dq) << threads << " threads";
      EXPECT_EQ(one.dk, many.dk) << threads << " threads";
      EXPECT_EQ(one.dv, many.dv) << threads << " threads";
    }
  }
}

std::vector<TileCase> TileCases() {
  const TileMask masks[] = {{MaskKind::kCausal, 0, 0},
                            {MaskKind::kFull, 0, 0},
                            {MaskKind::kSlidingWindow, 1, 0},
                            {MaskKind::kSlidingWindow, 9, 0},
                            {MaskKind::kPrefixLm, 0, 13}};
  std::vector<TileCase> cases;
  for (const TileMask& mask : masks) {
    cases.push_back({mask, {4, 2, 16}});
    cases.push_back({mask, {4, 2, 64}});
  }
  cases.push_back({masks[0], {3, 3, 8}});  // one q head per kv head
  cases.push_back({masks[0], {4, 1, 5}});  // one kv head; head_dim not a multiple of 4
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Masks, TiledAttentionTest, ::testing::ValuesIn(TileCases()),
                         [](const auto& info) { return Name(info.param); });

TEST(AttentionTest, MaskedOutTileLeavesOutputsUntouched) {
  const AttentionShape shape{2, 1, 4};
  const std::vector<float> x(3 * 2 * 4, 1.0f);
  std::vector<float> o(3 * 2 * 4, 7.0f), lse(3 * 2, 3.0f);
  // Causal: queries 0..2 never see keys 5..7.
  const TileMask causal{MaskKind::kCausal, 0, 0};
  AttentionForward(shape,
                   {{x.data(), x.data(), x.data(), 3, 3, 0, 5, causal, o.data(), lse.data()}});
  EXPECT_EQ(o, std::vector<float>(o.size(), 7.0f));
  EXPECT_EQ(lse, std::vector<float>(lse.size(), 3.0f));
  std::vector<float> grad(o.size(), 7.0f);
  AttentionBackward(shape, {{x.data(), x.data(), x.data(), x.data(), lse.data(), lse.data(), 3, 3,
                             0, 5, causal, grad.data(), grad.data() + 12, grad.data() + 18}});
  EXPECT_EQ(grad, std::vector<float>(grad.size(), 7.0f));
}

TEST(AttentionTest, ScaleIsInverseSqrtHeadDim) {
  EXPECT_FLOAT_EQ((AttentionShape{1, 1, 64}.Scale()), 0.125f);
  EXPECT_FLOAT_EQ((AttentionShape{1, 1, 2}.Scale()), static_cast<float>(1 / std::sqrt(2.0)));
}

TEST(AttentionTest, ComputeDeltaIsRowwiseDot) {
  const AttentionShape shape{2, 1, 3};
  const std::vector<float> o{1, 2, 3, 4, 5, 6}, d_o{1, 1, 1, 0, 1, -1};
  std::vector<float> delta(2);
  ComputeDelta(shape, o.data(), d_o.data(), 1, delta.data());
  EXPECT_EQ(delta, (std::vector<float>{6, -1}));
}

// A partial (o, lse) per (row, head) with random values.
struct Partial {
  std::vector<float> o, lse;
};

Partial RandomPartial(const AttentionShape& shape, int64_t rows, std::mt19937& rng) {
  Partial p{RandomTensor(rows * shape.q_heads * shape.head_dim, rng),
            RandomTensor(rows * shape.q_heads, rng)};
  for (float& l : p.lse) l *= 4;  // spread enough that one side can dominate
  return p;
}

void Merge(const AttentionShape& shape, Partial& a, const Partial& b) {
  MergeLse(shape, static_cast<int64_t>(a.lse.size()) / shape.q_heads, a.o.data(), a.lse.data(),
           b.o.data(), b.lse.data());
}

TEST(MergeLseTest, NegativeInfinityIsTheIdentity) {
  const AttentionShape shape{2, 1, 8};
  std::mt19937 rng(31);
  const Partial a = RandomPartial(shape, 3, rng);
  Partial empty{std::vector<float>(a.o.size(), NAN), std::vector<float>(a.lse.size(), -INFINITY)};
  Partial merged = a;
  Merge(shape, merged, empty);  // an empty partial's o is never read
  EXPECT_EQ(merged.o, a.o);
  EXPECT_EQ(merged.lse, a.lse);
  Merge(shape, empty, a);
  EXPECT_EQ(empty.o, a.o);
  EXPECT_EQ(empty.lse, a.lse);
}

TEST(MergeLseTest, IsAssociativeAndCommutative) {
  const AttentionShape shape{2, 1, 8};
  std::mt19937 rng(32);
  const Partial a = RandomPartial(shape, 3, rng), b = RandomPartial(shape, 3, rng),
                c = RandomPartial(shape, 3, rng);
  Partial left = a;  // (a ∘ b) ∘ c
  Merge(shape, left, b);
  Merge(shape, left, c);
  Partial right = b;  // a ∘ (b ∘ c), computed as (b ∘ c) ∘ a
  Merge(shape, right, c);
  Merge(shape, right, a);
  EXPECT_LT(RelError(left.o, right.o), 1e-6);
  EXPECT_LT(RelError(left.lse, right.lse), 1e-6);
}

// Attention over all keys equals the merge of attention over two disjoint key sets.
TEST(MergeLseTest, MergingKeyHalvesGivesWholeAttention) {
  const AttentionShape shape{2, 2, 16};
  const int64_t rows = 10, width = rows * 2 * 16;
  std::mt19937 rng(33);
  const std::vector<float> q = RandomTensor(width, rng), k = RandomTensor(width, rng),
                           v = RandomTensor(width, rng);
  const TileMask full{MaskKind::kFull, 0, 0};
  auto attend = [&](int64_t kv_begin, int64_t kv_rows) {
    Partial p{std::vector<float>(width, 0.0f), std::vector<float>(rows * 2, -INFINITY)};
    const int64_t off = kv_begin * 2 * 16;
    AttentionForward(shape, {{q.data(), &k[off], &v[off], rows, kv_rows, 0, kv_begin, full,
                              p.o.data(), p.lse.data()}});
    return p;
  };
  const Partial whole = attend(0, rows);
  Partial merged = attend(0, 4);
  Merge(shape, merged, attend(4, 6));
  EXPECT_LT(RelError(merged.o, whole.o), 1e-6);
  EXPECT_LT(RelError(merged.lse, whole.lse), 1e-6);
}

}  // namespace
}  // namespace kernels
}  // namespace fcp
