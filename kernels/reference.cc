// Naive attention over one document: every score is computed in double, straight from the
// definition, one (query row, head) at a time. O(length²·head_dim) per head, for tests only.
#include "kernels/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace fcp {
namespace kernels {
namespace {

double Dot(const float* a, const float* b, int64_t d) {
  double sum = 0;
  for (int64_t c = 0; c < d; ++c) sum += static_cast<double>(a[c]) * b[c];
  return sum;
}

std::vector<float> ToFloat(const std::vector<double>& x) { return {x.begin(), x.end()}; }

}  // namespace

ReferenceResult ReferenceAttention(const AttentionShape& shape, const TileMask& mask,
                                   int64_t length, const float* q, const float* k, const float* v,
                                   const float* d_o) {
  const int64_t hq = shape.q_heads, hkv = shape.kv_heads, d = shape.head_dim;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> o(length * hq * d, 0.0), dq(length * hq * d, 0.0);
  std::vector<double> dk(length * hkv * d, 0.0), dv(length * hkv * d, 0.0);
  std::vector<float> lse(length * hq, -std::numeric_limits<float>::infinity());
  std::vector<double> p(length);  // probabilities of the current row, 0 where masked
  for (int64_t h = 0; h < hq; ++h) {
    const int64_t g = h / (hq / hkv);
    for (int64_t i = 0; i < length; ++i) {
      const float* qi = q + (i * hq + h) * d;
      // Softmax over the allowed keys, shifted by the row max for stability.
      double max = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < length; ++j) {
        if (mask.Allows(i, j)) max = std::max(max, scale * Dot(qi, k + (j * hkv + g) * d, d));
      }
      if (max == -std::numeric_limits<double>::infinity()) continue;  // no allowed key
      double sum = 0;
      for (int64_t j = 0; j < length; ++j) {
        p[j] = mask.Allows(i, j) ? std::exp(scale * Dot(qi, k + (j * hkv + g) * d, d) - max) : 0;
        sum += p[j];
      }
      lse[i * hq + h] = static_cast<float>(max + std::log(sum));
      double* oi = &o[(i * hq + h) * d];
      for (int64_t j = 0; j < length; ++j) {
        p[j] /= sum;
        for (int64_t c = 0; c < d; ++c) oi[c] += p[j] * v[(j * hkv + g) * d + c];
      }
      if (d_o == nullptr) continue;
      // dP_ij = do_i·v_j, delta_i = Σ_j P_ij dP_ij = do_i·o_i, dS_ij = P_ij (dP_ij − delta_i).
      const float* doi = d_o + (i * hq + h) * d;
      double delta = 0;
      for (int64_t c = 0; c < d; ++c) delta += doi[c] * oi[c];
      for (int64_t j = 0; j < length; ++j) {
        if (p[j] == 0) continue;
        const int64_t kv = (j * hkv + g) * d;
        const double ds = p[j] * (Dot(doi, v + kv, d) - delta);
        for (int64_t c = 0; c < d; ++c) {
          dv[kv + c] += p[j] * doi[c];
          dk[kv + c] += scale * ds * qi[c];
          dq[(i * hq + h) * d + c] += scale * ds * k[kv + c];
        }
      }
    }
  }
  ReferenceResult result{ToFloat(o), std::move(lse), {}, {}, {}};
  if (d_o != nullptr) {
    result.dq = ToFloat(dq);
    result.dk = ToFloat(dk);
    result.dv = ToFloat(dv);
  }
  return result;
}

}  // namespace kernels
}  // namespace fcp
