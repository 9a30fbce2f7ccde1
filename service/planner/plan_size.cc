#include "service/planner/plan_size.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "service/planner/planner.h"

namespace fcp {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

int64_t SaturatingAdd(int64_t a, int64_t b) { return b > kMax - a ? kMax : a + b; }

// Allowed (query, key) pairs of a whole document, in double: lengths up to 2^34 overflow int64.
double DocumentPairs(const Document& d) {
  const double n = static_cast<double>(d.length);
  switch (d.mask.kind) {
    case MaskKind::kFull:
      return n * n;
    case MaskKind::kSlidingWindow: {
      const double w = std::min(n, static_cast<double>(d.mask.window));
      return w * (w + 1) / 2 + (n - w) * w;
    }
    case MaskKind::kPrefixLm: {
      const double p = std::min(n, static_cast<double>(d.mask.prefix));
      return p * p + (n * (n + 1) - p * (p + 1)) / 2;
    }
    case MaskKind::kCausal:
    default:
      return n * (n + 1) / 2;
  }
}

// KV transfers among the k ranks a document of this mask spreads over.
double TransfersAmong(const Document& d, double k) {
  switch (d.mask.kind) {
    case MaskKind::kFull:
      return k * (k - 1);
    case MaskKind::kSlidingWindow: {
      const double per_rank = static_cast<double>(d.length) / k;
      const double back = std::ceil(static_cast<double>(d.mask.window) / per_rank);
      return k * std::min(k - 1, back);
    }
    default:
      return k * (k - 1) / 2;
  }
}

}  // namespace

int64_t MinimumTransfers(absl::string_view strategy, const Batch& batch, int64_t block_size) {
  const int64_t workers = batch.topology.num_workers;
  if (strategy == "ring") return workers * (workers - 1);
  const int64_t cap = batch.topology.max_tokens_per_worker;
  if (strategy == "whole_doc") {
    if (cap <= 0) return 0;
    double transfers = 0;  // a document over the cap is cut into k pieces of at most `cap` tokens
    for (const Document& d : batch.documents) {
      if (d.length > cap)
        transfers += TransfersAmong(d, std::ceil(static_cast<double>(d.length) / cap));
    }
    return transfers >= static_cast<double>(kMax) ? kMax : static_cast<int64_t>(transfers);
  }
  if (strategy != "per_doc") return 0;
  const int64_t block = PerDocShardTokens(batch, block_size);
  int64_t transfers = 0;
  for (const Document& d : batch.documents) {
    const int64_t k = std::clamp<int64_t>(d.length / block, 1, workers);
    transfers = SaturatingAdd(transfers, k * (k - 1));
  }
  return transfers;
}

int64_t PerDocShardTokens(const Batch& batch, int64_t block_size) {
  return block_size > 0 ? block_size : 2 * AutoBlockSize(batch);
}

int64_t EstimatedBalancedTransfers(const Batch& batch) {
  const double workers = batch.topology.num_workers;
  double total_pairs = 0;
  double total_tokens = 0;
  for (const Document& d : batch.documents) {
    total_pairs += DocumentPairs(d);
    total_tokens += static_cast<double>(d.length);
  }
  if (total_pairs <= 0 || workers <= 1) return 0;
  double transfers = 0;
  for (const Document& d : batch.documents) {
    const double share =
        std::max(DocumentPairs(d) / total_pairs, static_cast<double>(d.length) / total_tokens);
    // The small tolerance keeps a document of exactly one rank's share on one rank.
    const double k = std::clamp(std::ceil(share * workers - 1e-9), 1.0, workers);
    transfers += TransfersAmong(d, k);
  }
  return transfers >= static_cast<double>(kMax) ? kMax : static_cast<int64_t>(transfers);
}

}  // namespace fcp
