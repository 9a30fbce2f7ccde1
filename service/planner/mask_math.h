// Counting allowed (query, key) pairs of a document's mask over rectangular ranges, in O(1).
//
// A tile is a rectangle [q_begin, q_end) x [k_begin, k_end) of one document's score matrix; its
// attention work is the number of allowed pairs under the document's mask:
//
//        keys j →
//   q  ┌───────────────┐   CAUSAL: j <= i (lower triangle)
//   i  │■              │   SLIDING_WINDOW(w): i-w < j <= i (a band of width w)
//   ↓  │■■   ┌───┐     │   PREFIX_LM(p): j < p (first p columns) or j <= i
//      │■■■  │til│     │   FULL: everything
//      │■■■■ └───┘     │
//      └───────────────┘
//
// FLOP convention (the field's): forward = 4 · head_dim · num_q_heads · pairs; backward = 2.5×.
#ifndef FCP_SERVICE_PLANNER_MASK_MATH_H_
#define FCP_SERVICE_PLANNER_MASK_MATH_H_

#include <cstdint>

#include "service/planner/batch.h"

namespace fcp {

// Number of pairs (i, j), q_begin <= i < q_end, k_begin <= j < k_end, with
// j in [i + lo, i + hi) (a diagonal band; lo/hi may be +-kUnbounded). Empty ranges give 0.
inline constexpr int64_t kUnbounded = int64_t{1} << 60;
int64_t BandPairs(int64_t q_begin, int64_t q_end, int64_t k_begin, int64_t k_end, int64_t lo,
                  int64_t hi);

// Allowed pairs of `mask` in the rectangle. Positions are within the document.
int64_t AllowedPairsSlow(const Mask& mask, int64_t q_begin, int64_t q_end, int64_t k_begin,
                         int64_t k_end);
inline int64_t AllowedPairs(const Mask& mask, int64_t q_begin, int64_t q_end, int64_t k_begin,
                            int64_t k_end) {
  if (q_begin >= q_end || k_begin >= k_end) return 0;
  // Fast paths for the common tiles of causal documents: fully above or below the diagonal.
  if (mask.kind == MaskKind::kCausal) {
    if (k_begin >= q_end) return 0;
    if (k_end <= q_begin + 1) return (q_end - q_begin) * (k_end - k_begin);
    if (k_begin == q_begin && k_end == q_end) return (q_end - q_begin) * (q_end - q_begin + 1) / 2;
    if (k_begin <= q_begin && k_end >= q_end) {
      // Every query i sees keys [k_begin, i]: the sum of i + 1 - k_begin over the queries.
      const int64_t n = q_end - q_begin;
      return n * (q_begin + q_end + 1) / 2 - n * k_begin;
    }
  } else if (mask.kind == MaskKind::kFull) {
    return (q_end - q_begin) * (k_end - k_begin);
  }
  return AllowedPairsSlow(mask, q_begin, q_end, k_begin, k_end);
}

// Whether the rectangle has at least one allowed pair (a required tile).
inline bool TileRequired(const Mask& mask, int64_t q_begin, int64_t q_end, int64_t k_begin,
                         int64_t k_end) {
  return AllowedPairs(mask, q_begin, q_end, k_begin, k_end) > 0;
}

// Forward attention FLOPs of `pairs` allowed pairs.
inline double ForwardFlops(const ModelShape& model, double pairs) {
  return 4.0 * model.head_dim * model.num_q_heads * pairs;
}
inline constexpr double kBackwardFlopsRatio = 2.5;

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_MASK_MATH_H_
