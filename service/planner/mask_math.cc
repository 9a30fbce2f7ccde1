#include "service/planner/mask_math.h"

#include <algorithm>

namespace fcp {
namespace {

// Sum over i in [a, b) of max(0, c + s·i), for s in {-1, 0, 1}.
int64_t SumPositivePart(int64_t a, int64_t b, int64_t c, int s) {
  if (a >= b) return 0;
  if (s == 0) return c > 0 ? c * (b - a) : 0;
  if (s > 0) {
    a = std::max(a, 1 - c);  // c + i > 0  <=>  i >= 1 - c
  } else {
    b = std::min(b, c);  // c - i > 0  <=>  i < c
  }
  if (a >= b) return 0;
  const int64_t n = b - a;
  const int64_t first = c + s * a;
  const int64_t last = c + s * (b - 1);
  return (first + last) * n / 2;
}

}  // namespace

int64_t BandPairs(int64_t q_begin, int64_t q_end, int64_t k_begin, int64_t k_end, int64_t lo,
                  int64_t hi) {
  if (q_begin >= q_end || k_begin >= k_end || lo >= hi) return 0;
  // For row i the allowed keys are [max(k_begin, i + lo), min(k_end, i + hi)). Split the rows where
  // either clamp switches, so that on each piece the count is linear in i.
  const bool lo_bounded = lo > -kUnbounded;
  const bool hi_bounded = hi < kUnbounded;
  int64_t cuts[4] = {q_begin, q_end, q_end, q_end};
  int n = 1;
  if (lo_bounded) cuts[n++] = std::clamp(k_begin - lo, q_begin, q_end);
  if (hi_bounded) cuts[n++] = std::clamp(k_end - hi, q_begin, q_end);
  cuts[n++] = q_end;
  std::sort(cuts, cuts + n);
  int64_t total = 0;
  for (int p = 0; p + 1 < n; ++p) {
    const int64_t a = cuts[p], b = cuts[p + 1];
    if (a >= b) continue;
    // On [a, b): upper = hi clamped? (i + hi < k_end <=> i < k_end - hi)
    const bool upper_moves = hi_bounded && a < k_end - hi;
    const bool lower_moves = lo_bounded && a >= k_begin - lo;
    // count(i) = upper(i) - lower(i) = c + s·i
    int64_t c = (upper_moves ? hi : k_end) - (lower_moves ? lo : k_begin);
    int s = (upper_moves ? 1 : 0) - (lower_moves ? 1 : 0);
    total += SumPositivePart(a, b, c, s);
  }
  return total;
}

int64_t AllowedPairsSlow(const Mask& mask, int64_t q_begin, int64_t q_end, int64_t k_begin,
                         int64_t k_end) {
  switch (mask.kind) {
    case MaskKind::kFull:
      return std::max<int64_t>(0, q_end - q_begin) * std::max<int64_t>(0, k_end - k_begin);
    case MaskKind::kCausal:
      return BandPairs(q_begin, q_end, k_begin, k_end, -kUnbounded, 1);
    case MaskKind::kSlidingWindow:
      return BandPairs(q_begin, q_end, k_begin, k_end, 1 - mask.window, 1);
    case MaskKind::kPrefixLm:
      // Causal pairs plus the prefix columns above the diagonal (j < p and j > i).
      return BandPairs(q_begin, q_end, k_begin, k_end, -kUnbounded, 1) +
             BandPairs(q_begin, q_end, k_begin, std::min(k_end, mask.prefix), 1, kUnbounded);
  }
  return 0;
}

}  // namespace fcp
