#include "service/planner/strategies/flexdeg_bound.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "service/planner/mask_math.h"
#include "service/planner/strategies/flexdeg_sizing.h"
#include "service/planner/strategies/packing.h"

namespace fcp {
namespace {

// RingsBound::Seconds's bisection: its first step, and how many times it doubles it at most.
constexpr double kFirst = 1e-3;
constexpr int kDoublings = 64;
// SecondsAbove's margin over the step asked, for the bisection's 1e-12.
constexpr double kAboveMargin = 1e-9;

// h_d(k) of flexdeg_bound.h for one document, every k.
class GroupBound {
 public:
  explicit GroupBound(const PlanContext& ctx)
      : cost_(ctx.cost),
        backward_(ctx.options.include_backward),
        backward_factor_(ctx.cost.BackwardFactor()),
        linear_(ctx.cost.TokenSeconds(1)),
        latency_(ctx.cost.params().transfer_latency_us * 1e-6),
        kv_bytes_(static_cast<double>(ctx.cost.kv_bytes_per_token())),
        per_node_(std::max(1, ctx.batch.topology.workers_per_node)),
        intra_(ctx.batch.topology.intra_node_gbps * 1e9),
        inter_(ctx.batch.topology.inter_node_gbps * 1e9),
        fastest_(std::max(intra_, inter_)) {}

  // att_d(k), forward.
  double Attention(const Document& doc, int64_t pairs, int64_t k) const {
    const int64_t length = doc.length;
    const int64_t q = (length + 2 * k - 1) / (2 * k);
    const int64_t kv_len = std::max<int64_t>(1, length / std::min(length, 2 * k));
    return static_cast<double>(pairs) * cost_.SecondsPerPair(q, kv_len);
  }

  // The mean member's share of `doc` in a group of k: forward + backward (per the options).
  double MeanMemberSeconds(const Document& doc, int64_t pairs, int64_t k) const {
    const double attention = Attention(doc, pairs, k);
    const double tokens = static_cast<double>(doc.length);
    return (attention + linear_ * tokens +
            (backward_ ? attention * backward_factor_ + 2 * linear_ * tokens : 0)) /
           static_cast<double>(k);
  }

  // The least step of a group of k holding `doc` (`pairs`: its allowed pairs).
  double Seconds(const Document& doc, int64_t pairs, int64_t k) const {
    const int64_t length = doc.length;
    const double attention = Attention(doc, pairs, k);
    const double tokens = static_cast<double>(length);
    const double kk = static_cast<double>(k);
    if (k == 1) {
      return attention + linear_ * tokens +
             (backward_ ? attention * backward_factor_ + 2 * linear_ * tokens : 0);
    }
    // A member's tokens of d: at least `least`, at most MemberTokens.
    const double least = static_cast<double>(2 * (length / (2 * k)));
    const double others = std::max(0.0, tokens - static_cast<double>(MemberTokens(length, k)));
    // Transfers in sequence that carry tokens of d (every member holds some when L >= 2k).
    const double transfers = length >= 2 * k ? kk - 1 : 0;
    const double relay_fwd =
        transfers * latency_ + others * kv_bytes_ / (k > per_node_ ? inter_ : fastest_);
    const double forward =
        std::max((attention + linear_ * tokens) / kk, relay_fwd + linear_ * least);
    if (!backward_) return forward;
    const double same_node = static_cast<double>(std::min<int64_t>(per_node_ - 1, k - 1));
    const double relay_bwd =
        transfers * latency_ +
        std::max(least * kv_bytes_ * ((kk - 1 - same_node) / inter_ + same_node / fastest_),
                 others * kv_bytes_ / fastest_);
    return forward + std::max((attention * backward_factor_ + 2 * linear_ * tokens) / kk,
                              relay_bwd + 2 * linear_ * least);
  }

 private:
  const CostModel& cost_;
  bool backward_;
  double backward_factor_, linear_, latency_, kv_bytes_;
  int64_t per_node_;
  double intra_, inter_, fastest_;
};

}  // namespace

double FlexDegLowerBoundMs(const PlanContext& ctx) {
  const Batch& batch = ctx.batch;
  const int32_t workers = batch.topology.num_workers;
  if (workers <= 0) return 0;
  const int64_t cap = TokenCap(batch.topology);
  const GroupBound group(ctx);
  // The mean worker: every document at k = 1 (the least it costs in any group).
  std::vector<int64_t> pairs(batch.documents.size());
  std::vector<double> whole(batch.documents.size());
  double total = 0;
  for (size_t d = 0; d < batch.documents.size(); ++d) {
    const Document& doc = batch.documents[d];
    pairs[d] = AllowedPairs(doc.mask, 0, doc.length, 0, doc.length);
    whole[d] = group.Seconds(doc, pairs[d], 1);
    total += whole[d];
  }
  double bound = total / workers;
  // Each document's least group: only those whose least allowed group's bound is above the bound
  // so far can raise it (the scan stops at a k that cannot).
  for (size_t d = 0; d < batch.documents.size(); ++d) {
    const Document& doc = batch.documents[d];
    const int64_t first = GroupSizeForCap(doc.length, cap, workers);
    if (first > workers) continue;  // no group holds it: no plan, nothing to bound
    if ((first == 1 ? whole[d] : group.Seconds(doc, pairs[d], first)) <= bound) continue;
    double least = HUGE_VAL;
    for (int64_t k = first; k <= workers && least > bound; ++k) {
      least = std::min(least, k == 1 ? whole[d] : group.Seconds(doc, pairs[d], k));
    }
    bound = std::max(bound, least);
  }
  return bound * 1e3;
}

double RingAssignmentLowerBoundSeconds(const PlanContext& ctx,
                                       const std::vector<int32_t>& group_size,
                                       const std::vector<int32_t>& doc_group) {
  const GroupBound bound(ctx);
  std::vector<double> mean(group_size.size(), 0);
  for (size_t d = 0; d < ctx.batch.documents.size(); ++d) {
    const Document& doc = ctx.batch.documents[d];
    const int32_t g = doc_group[d];
    mean[g] += bound.MeanMemberSeconds(doc, AllowedPairs(doc.mask, 0, doc.length, 0, doc.length),
                                       group_size[g]);
  }
  return mean.empty() ? 0 : *std::max_element(mean.begin(), mean.end());
}

double RingsLowerBoundSeconds(const PlanContext& ctx, const GroupSizing& sizing,
                              const std::vector<int32_t>& sizes) {
  return RingsBound(ctx, sizing, RingsOf(sizes), BatchTokens(ctx.batch)).Seconds();
}

double BatchTokens(const Batch& batch) {
  double tokens = 0;
  for (const Document& doc : batch.documents) tokens += static_cast<double>(doc.length);
  return tokens;
}

RingsBound::RingsBound(const PlanContext& ctx, const GroupSizing& sizing, const SizingRings& rings,
                       double tokens)
    : cap_(static_cast<double>(TokenCap(ctx.batch.topology))),
      backward_(ctx.options.include_backward),
      linear_(ctx.cost.TokenSeconds(1)),
      tokens_(tokens),
      singles_(ctx.batch.topology.num_workers) {
  const Batch& batch = ctx.batch;
  const Topology& topology = batch.topology;
  const CostModel& cost = ctx.cost;
  const double latency = cost.params().transfer_latency_us * 1e-6;
  const double fastest = std::max(topology.intra_node_gbps, topology.inter_node_gbps) * 1e9;
  for (const auto& [i, size] : rings) {
    const int64_t k = size, length = sizing.docs()[i].length;
    const Document& doc = batch.documents[sizing.docs()[i].document];
    const int64_t q = (length + 2 * k - 1) / (2 * k);
    const int64_t kv_len = std::max<int64_t>(1, length / std::min(length, 2 * k));
    const double kk = static_cast<double>(k);
    const double attention = static_cast<double>(AllowedPairs(doc.mask, 0, length, 0, length)) *
                             cost.SecondsPerPair(q, kv_len);
    const double least = static_cast<double>(2 * (length / (2 * k)));
    // The relay member's KV seconds per token, and the most tokens of its own that spare it some
    // (all of them only pay when its linear layers cost less per token than the relay).
    const double relay =
        static_cast<double>(cost.kv_bytes_per_token()) /
        (k > std::max(1, topology.workers_per_node) ? topology.inter_node_gbps * 1e9 : fastest);
    const double own_most = linear_ >= relay ? least : cap_;
    const double transfers = length >= 2 * k ? kk - 1 : 0;
    // The slowest backward, the mean member's (added to each forward bound).
    const Affine back =
        backward_ ? Affine{attention * cost.BackwardFactor() / kk, 2 * linear_ / kk} : Affine{0, 0};
    rings_.push_back(
        {kk,
         static_cast<double>(length),
         {attention / kk + back.a, linear_ / kk + back.b},
         {transfers * latency - relay * own_most + linear_ * least + back.a, relay + back.b},
         {linear_ * least + back.a, back.b}});
    singles_ -= k;
  }
}

bool RingsBound::SecondsAbove(double step) const {
  // Fits is monotone: the bisection ends within 1e-12 of the least step that fits, and that is
  // above step × (1 + kAboveMargin) when the tokens do not fit there; and it finds one that fits
  // (else Seconds is 0) when the last of its doublings does.
  return singles_ >= 0 && !Fits(step * (1 + kAboveMargin)) &&
         Fits(std::ldexp(kFirst, kDoublings - 1));
}

bool RingsBound::Fits(double step) const {
  const double single =
      std::min(cap_, linear_ > 0 ? step / ((backward_ ? 3 : 1) * linear_) : HUGE_VAL);
  double room = static_cast<double>(singles_) * single;
  for (const Ring& r : rings_) {
    double most = r.k * single;
    for (const Affine& c : {r.mean, r.relay, r.own}) {
      if (c.b > 0) {
        most = std::min(most, (step - c.a) / c.b);
      } else if (c.a > step) {
        return false;
      }
    }
    if (most < r.leader_tokens) return false;
    room += most;
  }
  return room >= tokens_;
}

double RingsBound::Seconds() const {
  if (singles_ < 0) return 0;
  // The lower end of a bisection, where the tokens do not fit: below the least step that fits.
  double lo = 0, hi = kFirst;
  for (int i = 0; !Fits(hi); ++i) {
    if (i == kDoublings) return 0;
    hi *= 2;
  }
  for (int i = 0; i < 64 && hi - lo > 1e-12 * hi; ++i) {
    const double mid = lo + (hi - lo) / 2;
    (Fits(mid) ? hi : lo) = mid;
  }
  return lo;
}

}  // namespace fcp
