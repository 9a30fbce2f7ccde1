// Every mask allows a contiguous range of keys per query, so rows loop over that range only.
// K and V are copied per (tile, kv head) into [head_dim][keys] layout: rows times keys are then
// axpys along the keys, which the compiler vectorises. Rows go in blocks of four: each load of
// K, V serves four rows, and each dk/dv row is read and written once per block.
#include "kernels/tile_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace fcp {
namespace kernels {
namespace internal {
namespace {

// The tile loops are also compiled for AVX2 and picked at load time (the default build targets
// baseline x86-64); their helpers are inlined into each clone. FMA stays off (ISO C++ mode disables
// contraction) and no loop reduces across vector lanes, so every clone computes the same bits.
// ThreadSanitizer crashes in the clones' resolvers, which run before it starts: no clones there.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_THREAD__)
#define FCP_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#define FCP_INLINE inline __attribute__((always_inline))
#else
#define FCP_VECTOR_CLONES
#define FCP_INLINE inline
#endif

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int kRowBlock = 4;  // the helpers below spell out four rows

// Offsets (in floats) into the row-major tensors of attention.h.
struct Dims {
  explicit Dims(const AttentionShape& s)
      : q_heads(s.q_heads),
        kv_heads(s.kv_heads),
        d(s.head_dim),
        group(s.q_heads / s.kv_heads),
        scale(s.Scale()) {}
  int64_t Q(int64_t row, int64_t h) const { return (row * q_heads + h) * d; }    // q, o, do, dq
  int64_t Kv(int64_t row, int64_t g) const { return (row * kv_heads + g) * d; }  // k, v, dk, dv
  int64_t Lse(int64_t row, int64_t h) const { return row * q_heads + h; }        // lse, delta

  int64_t q_heads, kv_heads, d;
  int64_t group;  // q heads per kv head
  float scale;
};

// Tile-local keys [begin, end).
struct KeyRange {
  int64_t begin = 0, end = 0;
  bool empty() const { return begin >= end; }
};

// The keys of a tile that query position `i` (within the document) may attend.
KeyRange AllowedKeys(const TileMask& mask, int64_t i, int64_t kv_begin, int64_t kv_rows) {
  int64_t lo = kv_begin, hi = kv_begin + kv_rows;
  switch (mask.kind) {
    case MaskKind::kCausal:
      hi = std::min(hi, i + 1);
      break;
    case MaskKind::kFull:
      break;
    case MaskKind::kSlidingWindow:
      lo = std::max(lo, i - mask.window + 1);
      hi = std::min(hi, i + 1);
      break;
    case MaskKind::kPrefixLm:
      hi = std::min(hi, std::max(mask.prefix, i + 1));
      break;
  }
  return {lo - kv_begin, std::max(lo, hi) - kv_begin};
}

// Up to four consecutive query rows of a tile: their keys (empty for a row past the tile or one
// that takes no part) and the union of those keys.
struct RowBlock {
  void Add(int r, KeyRange k) {
    keys[r] = k;
    if (!k.empty()) all = {std::min(all.begin, k.begin), std::max(all.end, k.end)};
  }
  KeyRange keys[kRowBlock];
  KeyRange all{std::numeric_limits<int64_t>::max(), 0};
};

void Fit(TileScratch& sc, int64_t kv_rows, int64_t d) {
  sc.kt.resize(kv_rows * d);
  sc.vt.resize(kv_rows * d);
  sc.s.resize(kRowBlock * kv_rows);
  sc.dp.resize(kRowBlock * kv_rows);
  sc.q_scaled.resize(kRowBlock * d);
  sc.acc.resize(d);
  sc.zeros.assign(d, 0.0f);
}

// out[c * rows + j] = x[j, head, c].
void PackTransposed(const Dims& dims, const float* x, int64_t rows, int64_t head, float* out) {
  for (int64_t j = 0; j < rows; ++j) {
    const float* row = x + dims.Kv(j, head);
    for (int64_t c = 0; c < dims.d; ++c) out[c * rows + j] = row[c];
  }
}

// s_r[j] = Σ_c a_r[c]·t[c * rows + j] for the four rows r and the keys j in `keys`.
FCP_INLINE void RowsTimesKeys(const float* const* a, const float* __restrict t, int64_t rows,
                              int64_t d, KeyRange keys, float* const* s) {
  float* __restrict s0 = s[0];
  float* __restrict s1 = s[1];
  float* __restrict s2 = s[2];
  float* __restrict s3 = s[3];
  for (int r = 0; r < kRowBlock; ++r) std::fill(s[r] + keys.begin, s[r] + keys.end, 0.0f);
  int64_t c = 0;
  for (; c + 2 <= d; c += 2) {  // two c at a time: 8 weights stay in registers
    const float a00 = a[0][c], a01 = a[0][c + 1], a10 = a[1][c], a11 = a[1][c + 1];
    const float a20 = a[2][c], a21 = a[2][c + 1], a30 = a[3][c], a31 = a[3][c + 1];
    const float* __restrict t0 = t + c * rows;
    const float* __restrict t1 = t0 + rows;
    for (int64_t j = keys.begin; j < keys.end; ++j) {
      const float u0 = t0[j], u1 = t1[j];
      s0[j] += a00 * u0 + a01 * u1;
      s1[j] += a10 * u0 + a11 * u1;
      s2[j] += a20 * u0 + a21 * u1;
      s3[j] += a30 * u0 + a31 * u1;
    }
  }
  for (; c < d; ++c) {
    const float* __restrict tc = t + c * rows;
    const float a0 = a[0][c], a1 = a[1][c], a2 = a[2][c], a3 = a[3][c];
    for (int64_t j = keys.begin; j < keys.end; ++j) {
      s0[j] += a0 * tc[j];
      s1[j] += a1 * tc[j];
      s2[j] += a2 * tc[j];
      s3[j] += a3 * tc[j];
    }
  }
}

// y += a·x over d elements.
FCP_INLINE void Axpy(float a, const float* __restrict x, int64_t d, float* __restrict y) {
  for (int64_t c = 0; c < d; ++c) y[c] += a * x[c];
}

// y += Σ_r w[r]·x[r] over four rows: one pass over y instead of four.
FCP_INLINE void Axpy4(const float* w, const float* const* x, int64_t d, float* __restrict y) {
  const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  const float* __restrict x0 = x[0];
  const float* __restrict x1 = x[1];
  const float* __restrict x2 = x[2];
  const float* __restrict x3 = x[3];
  for (int64_t c = 0; c < d; ++c) y[c] += (w0 * x0[c] + w1 * x1[c]) + (w2 * x2[c] + w3 * x3[c]);
}

// acc += Σ_j w[j]·x_j over j in `keys`, where row x_j starts at x + j·stride.
FCP_INLINE void AccumulateRows(const float* w, const float* x, int64_t stride, int64_t d,
                               KeyRange keys, float* acc) {
  int64_t j = keys.begin;
  for (; j + 4 <= keys.end; j += 4) {
    const float* rows[4] = {x + j * stride, x + (j + 1) * stride, x + (j + 2) * stride,
                            x + (j + 3) * stride};
    Axpy4(w + j, rows, d, acc);
  }
  for (; j < keys.end; ++j) Axpy(w[j], x + j * stride, d, acc);
}

// Scaled query rows of a block (zeros for rows that take no part), written into sc.q_scaled.
void ScaleQueries(const Dims& dims, const float* q, int64_t i0, int64_t h, const RowBlock& block,
                  TileScratch& sc, const float** out) {
  for (int r = 0; r < kRowBlock; ++r) {
    out[r] = sc.zeros.data();
    if (block.keys[r].empty()) continue;
    const float* qi = q + dims.Q(i0 + r, h);
    float* qs = sc.q_scaled.data() + r * dims.d;
    for (int64_t c = 0; c < dims.d; ++c) qs[c] = dims.scale * qi[c];
    out[r] = qs;
  }
}

}  // namespace

void MergeRow(int64_t d, const float* o_b, float lse_b, float* o, float* lse) {
  if (lse_b == kNegInf) return;
  if (*lse == kNegInf) {
    std::copy(o_b, o_b + d, o);
    *lse = lse_b;
    return;
  }
  const double a = *lse, b = lse_b;
  const double merged = std::max(a, b) + std::log1p(std::exp(-std::abs(a - b)));
  const float wa = static_cast<float>(std::exp(a - merged));
  const float wb = static_cast<float>(std::exp(b - merged));
  for (int64_t c = 0; c < d; ++c) o[c] = wa * o[c] + wb * o_b[c];
  *lse = static_cast<float>(merged);
}

// The inputs of a tile on the CPU are fp32 (kernels/attention.h).
inline const float* F32(const void* p) { return static_cast<const float*>(p); }

FCP_VECTOR_CLONES void ForwardTileHead(const AttentionShape& shape, const ForwardTile& tile,
                                       int64_t h, TileScratch& sc) {
  const Dims dims(shape);
  const int64_t d = dims.d, g = h / dims.group, kv_rows = tile.kv_rows;
  Fit(sc, kv_rows, d);
  PackTransposed(dims, F32(tile.k), kv_rows, g, sc.kt.data());
  float* s[kRowBlock];
  for (int r = 0; r < kRowBlock; ++r) s[r] = sc.s.data() + r * kv_rows;
  for (int64_t i0 = 0; i0 < tile.q_rows; i0 += kRowBlock) {
    RowBlock block;
    for (int r = 0; r < kRowBlock && i0 + r < tile.q_rows; ++r) {
      block.Add(r, AllowedKeys(tile.mask, tile.q_begin + i0 + r, tile.kv_begin, kv_rows));
    }
    if (block.all.empty()) continue;
    const float* q_scaled[kRowBlock];
    ScaleQueries(dims, F32(tile.q), i0, h, block, sc, q_scaled);
    RowsTimesKeys(q_scaled, sc.kt.data(), kv_rows, d, block.all, s);
    for (int r = 0; r < kRowBlock; ++r) {
      const KeyRange keys = block.keys[r];
      if (keys.empty()) continue;
      float* p = s[r];
      const float max = *std::max_element(p + keys.begin, p + keys.end);
      double sum = 0;
      for (int64_t j = keys.begin; j < keys.end; ++j) {
        p[j] = std::exp(p[j] - max);
        sum += p[j];
      }
      float* acc = sc.acc.data();
      std::fill(acc, acc + d, 0.0f);
      AccumulateRows(p, F32(tile.v) + dims.Kv(0, g), dims.kv_heads * d, d, keys, acc);
      for (int64_t c = 0; c < d; ++c) acc[c] = static_cast<float>(acc[c] / sum);
      MergeRow(d, acc, static_cast<float>(max + std::log(sum)), tile.o + dims.Q(i0 + r, h),
               tile.lse + dims.Lse(i0 + r, h));
    }
  }
}

void PackKv(const AttentionShape& shape, const BackwardTile& tile, int64_t g, TileScratch& sc) {
  const Dims dims(shape);
  Fit(sc, tile.kv_rows, dims.d);
  PackTransposed(dims, F32(tile.k), tile.kv_rows, g, sc.kt.data());
  PackTransposed(dims, F32(tile.v), tile.kv_rows, g, sc.vt.data());
}

FCP_VECTOR_CLONES void BackwardTileHead(const AttentionShape& shape, const BackwardTile& tile,
                                        int64_t h, unsigned grads, TileScratch& sc) {
  const Dims dims(shape);
  const int64_t d = dims.d, g = h / dims.group, kv_rows = tile.kv_rows;
  float* p[kRowBlock];   // P, over the block's keys; 0 outside the row's own
  float* ds[kRowBlock];  // dP, then dS, likewise
  for (int r = 0; r < kRowBlock; ++r) {
    p[r] = sc.s.data() + r * kv_rows;
    ds[r] = sc.dp.data() + r * kv_rows;
  }
  for (int64_t i0 = 0; i0 < tile.q_rows; i0 += kRowBlock) {
    RowBlock block;  // rows without any key in the document (lse = -inf) take no part
    for (int r = 0; r < kRowBlock && i0 + r < tile.q_rows; ++r) {
      if (tile.lse[dims.Lse(i0 + r, h)] == kNegInf) continue;
      block.Add(r, AllowedKeys(tile.mask, tile.q_begin + i0 + r, tile.kv_begin, kv_rows));
    }
    const KeyRange all = block.all;
    if (all.empty()) continue;
    const float* q_scaled[kRowBlock];
    const float* d_o[kRowBlock];
    ScaleQueries(dims, F32(tile.q), i0, h, block, sc, q_scaled);
    for (int r = 0; r < kRowBlock; ++r) {
      d_o[r] = block.keys[r].empty() ? sc.zeros.data() : F32(tile.d_o) + dims.Q(i0 + r, h);
    }
    RowsTimesKeys(q_scaled, sc.kt.data(), kv_rows, d, all, p);
    RowsTimesKeys(d_o, sc.vt.data(), kv_rows, d, all, ds);
    for (int r = 0; r < kRowBlock; ++r) {
      const KeyRange own = block.keys[r].empty() ? KeyRange{all.end, all.end} : block.keys[r];
      const float lse = own.empty() ? 0.0f : tile.lse[dims.Lse(i0 + r, h)];
      const float delta = own.empty() ? 0.0f : tile.delta[dims.Lse(i0 + r, h)];
      for (int64_t j = own.begin; j < own.end; ++j) {
        p[r][j] = std::exp(p[r][j] - lse);
        ds[r][j] = p[r][j] * (ds[r][j] - delta);
      }
      for (float* x : {p[r], ds[r]}) {
        std::fill(x + all.begin, x + own.begin, 0.0f);
        std::fill(x + own.end, x + all.end, 0.0f);
      }
    }
    if (grads & kDkDv) {
      for (int64_t j = all.begin; j < all.end; ++j) {
        const float pj[kRowBlock] = {p[0][j], p[1][j], p[2][j], p[3][j]};
        const float dsj[kRowBlock] = {ds[0][j], ds[1][j], ds[2][j], ds[3][j]};
        Axpy4(pj, d_o, d, tile.dv + dims.Kv(j, g));        // dv_j += Σ_i P_ij·do_i
        Axpy4(dsj, q_scaled, d, tile.dk + dims.Kv(j, g));  // dk_j += Σ_i dS_ij·scale·q_i
      }
    }
    if (grads & kDq) {
      for (int r = 0; r < kRowBlock; ++r) {
        if (block.keys[r].empty()) continue;
        float* acc = sc.acc.data();
        std::fill(acc, acc + d, 0.0f);
        AccumulateRows(ds[r], F32(tile.k) + dims.Kv(0, g), dims.kv_heads * d, d, block.keys[r],
                       acc);
        float* dq = tile.dq + dims.Q(i0 + r, h);
        for (int64_t c = 0; c < d; ++c) dq[c] += dims.scale * acc[c];
      }
    }
  }
}

}  // namespace internal
}  // namespace kernels
}  // namespace fcp
