// Helpers shared by the kernels' tests: seeded random tensors and the error measure.
#ifndef FCP_KERNELS_TEST_UTIL_H_
#define FCP_KERNELS_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"

namespace fcp {
namespace kernels {
namespace test_util {

// Standard-normal entries, so that scores have the spread of real attention at scale 1/√d.
inline std::vector<float> RandomTensor(int64_t size, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size);
  for (float& e : x) e = normal(rng);
  return x;
}

// max|a − b| / max(max|b|, floor): the error relative to the tensor's largest magnitude.
//
// Per-element relative error is meaningless for entries that cancel to ~0 (a gradient summing terms
// of both signs, an output averaging values of both signs): their float rounding is relative to the
// terms summed, not to the result. Normalising by the tensor's max keeps a bound of 1e-5 strict for
// every entry that matters while tolerating absolute noise of 1e-5·max on tiny ones.
//
// `floor` is the magnitude of the terms, for tensors that are exactly zero by the math: dq and dk
// of rows that see a single key (a one-token document, a window of 1), where dS = P·(dP − delta)
// cancels exactly in the reference but leaves float rounding of dP ≈ do·v, i.e. ~1e-7 of O(1)
// terms, in a float kernel. With standard-normal inputs (RandomTensor) every other tensor has a max
// of 1..7, so a floor of 1 loosens no real comparison by more than ~1.5×. -inf entries (lse of a
// row without keys) must match exactly; a mismatch in size or a NaN gives +inf.
inline double RelError(const std::vector<float>& a, const std::vector<float>& b,
                       double floor = 1.0) {
  if (a.size() != b.size()) return INFINITY;
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(b[i]) || std::isinf(a[i])) {
      if (a[i] != b[i]) return INFINITY;
      continue;
    }
    const double e = std::abs(static_cast<double>(a[i]) - b[i]);
    if (std::isnan(e)) return INFINITY;
    diff = std::max(diff, e);
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff / std::max(scale, floor);
}

// A readable test-parameter name: "Causal", "SlidingWindow7", "PrefixLm13", ...
inline std::string MaskName(const TileMask& mask) {
  switch (mask.kind) {
    case MaskKind::kCausal:
      return "Causal";
    case MaskKind::kFull:
      return "Full";
    case MaskKind::kSlidingWindow:
      return "SlidingWindow" + std::to_string(mask.window);
    case MaskKind::kPrefixLm:
      return "PrefixLm" + std::to_string(mask.prefix);
  }
  return "Unknown";
}

}  // namespace test_util
}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_TEST_UTIL_H_
