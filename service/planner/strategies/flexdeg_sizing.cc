#include "service/planner/strategies/flexdeg_sizing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "service/planner/strategies/packing.h"

namespace fcp {
namespace {

// How far above its least size Within looks for a ring's best size.
constexpr int64_t kMaxWider = 64;
// The largest sharing of workers among rings solved exactly (rings × workers × sizes steps).
constexpr double kMaxDpSteps = 1 << 14;

}  // namespace

int64_t GroupSizeForCap(int64_t length, int64_t cap, int32_t workers) {
  if (length <= cap) return 1;
  if (cap < 2) return workers + 1;
  const int64_t half = cap / 2;
  return (length + 2 * half - 1) / (2 * half);
}

GroupSizing::GroupSizing(const CostModel& cost, const Topology& topology,
                         std::vector<SizingDoc> docs, int64_t cap)
    : workers_(topology.num_workers),
      workers_per_node_(std::max(1, topology.workers_per_node)),
      intra_bytes_per_second_(topology.intra_node_gbps * 1e9),
      inter_bytes_per_second_(topology.inter_node_gbps * 1e9),
      latency_seconds_(cost.params().transfer_latency_us * 1e-6),
      kv_bytes_per_token_(static_cast<double>(cost.kv_bytes_per_token())),
      linear_per_token_(3 * cost.TokenSeconds(1)),
      backward_factor_(cost.BackwardFactor()),
      docs_(std::move(docs)),
      cap_(cap) {
  for (size_t i = 0; i < docs_.size(); ++i) {
    total_ += docs_[i].seconds;
    total_tokens_ += static_cast<double>(docs_[i].length);
    if (docs_[i].length > cap_) over_cap_.push_back(static_cast<int32_t>(i));
  }
}

// Chunks at their mean size L/k rather than rounded up: the rotation then grows strictly with k
// (more rounds, each of more of the document).
double GroupSizing::RingSeconds(int64_t length, int64_t k) const {
  if (k <= 1) return 0;
  const double member_tokens = static_cast<double>(length) / static_cast<double>(k);
  return 2.0 * static_cast<double>(k - 1) *
         (latency_seconds_ + member_tokens * kv_bytes_per_token_ / Rate(k));
}

double GroupSizing::Rate(int64_t k) const {
  return k <= workers_per_node_ ? intra_bytes_per_second_ : inter_bytes_per_second_;
}

double GroupSizing::GroupSeconds(const SizingDoc& d, int64_t k) const {
  if (k <= 1) return d.seconds;
  const double kk = static_cast<double>(k);
  return d.linear / kk + AttentionOrRotation((d.seconds - d.linear) / kk, RingSeconds(d.length, k));
}

double GroupSizing::AttentionOrRotation(double attention, double ring) const {
  const double forward = attention / (1 + backward_factor_);
  return std::max(forward, ring / 2) + std::max(attention - forward, ring / 2);
}

double GroupSizing::SingleRoom(double target) const {
  const double cap = static_cast<double>(cap_);
  return linear_per_token_ > 0 ? std::min(cap, target / linear_per_token_) : cap;
}

double GroupSizing::Room(const SizingDoc& d, int64_t k, double target) const {
  return Curve(d, k).At(target);
}

GroupSizing::Curves& GroupSizing::CurvesAt(int32_t i) const {
  if (static_cast<size_t>(i) >= slot_.size()) slot_.resize(i + 1, 0);
  if (slot_[i] == 0) {
    curves_.emplace_back();
    slot_[i] = static_cast<int32_t>(curves_.size());
  }
  return curves_[slot_[i] - 1];
}

double GroupSizing::SecondsAt(Curves& c, const SizingDoc& d, int64_t k) const {
  if (static_cast<size_t>(k) >= c.seconds.size()) {
    c.seconds.resize(k + 1, std::numeric_limits<double>::quiet_NaN());
  }
  double& seconds = c.seconds[k];
  if (std::isnan(seconds)) seconds = GroupSeconds(d, k);
  return seconds;
}

const GroupSizing::RoomCurve* GroupSizing::CurvesOf(int32_t i, int64_t lo, int64_t hi) const {
  Curves& c = CurvesAt(i);
  if (lo >= c.done_lo && hi <= c.done_hi) return c.of.data() + (lo - c.first);
  if (c.of.empty()) {
    c.first = lo;
  } else if (lo < c.first) {
    c.of.insert(c.of.begin(), c.first - lo, RoomCurve());
    c.first = lo;
  }
  if (static_cast<size_t>(hi - c.first) >= c.of.size()) c.of.resize(hi - c.first + 1);
  for (int64_t k = lo; k <= hi; ++k) {
    RoomCurve& curve = c.of[k - c.first];
    if (curve.count < 0) curve = Curve(docs_[i], k);
  }
  // (two computed ranges that overlap or touch are one)
  if (c.done_lo <= hi + 1 && lo <= c.done_hi + 1) {
    c.done_lo = std::min(c.done_lo, lo);
    c.done_hi = std::max(c.done_hi, hi);
  } else {
    c.done_lo = lo;
    c.done_hi = hi;
  }
  return c.of.data() + (lo - c.first);
}

GroupSizing::RoomCurve GroupSizing::Curve(const SizingDoc& d, int64_t k) const {
  RoomCurve c;
  c.count = 0;
  c.over_cap = MemberTokens(d.length, k) > cap_;
  const double kk = static_cast<double>(k);
  const double held = static_cast<double>(d.length) / kk;
  c.most = static_cast<double>(cap_) - held;  // the cap, over the doc's chunks
  // x more tokens: x·λ more linear time, and a rotation of held + x tokens per member, hidden
  // behind each pass of the member's attention as far as it goes. Convex and piecewise linear in
  // x: walk its pieces (breakpoints where the rotation's half reaches the forward, then the
  // backward attention) to where it reaches the target.
  const double attention = (d.seconds - d.linear) / kk;
  const double forward = attention / (1 + backward_factor_), backward = attention - forward;
  const double rounds = 2.0 * (kk - 1);
  const double ring0 = rounds * (latency_seconds_ + held * kv_bytes_per_token_ / Rate(k));
  const double ring_slope = rounds * kv_bytes_per_token_ / Rate(k);  // per token
  auto time = [&](double x) {
    return d.linear / kk + x * linear_per_token_ +
           AttentionOrRotation(attention, ring0 + ring_slope * x);
  };
  c.time0 = time(0);
  // Pieces: the rotation hidden in both passes (slope λ), in the longer pass only (λ + r/2),
  // in neither (λ + r), r the rotation's seconds per token.
  const double breaks[] = {(2 * std::min(forward, backward) - ring0) / ring_slope,
                           (2 * std::max(forward, backward) - ring0) / ring_slope, HUGE_VAL};
  const double slopes[] = {linear_per_token_, linear_per_token_ + ring_slope / 2,
                           linear_per_token_ + ring_slope};
  // The walk's states at each piece it enters, whatever the target (At stops at the first whose
  // end reaches it).
  double x = 0, t = c.time0;
  for (int piece = 0; piece < 3 && x < c.most; ++piece) {
    if (breaks[piece] <= x) continue;  // already past it
    c.pieces[c.count++] = {x, t, slopes[piece],
                           slopes[piece] > 0 ? t + slopes[piece] * (breaks[piece] - x) : -HUGE_VAL};
    t += slopes[piece] * (breaks[piece] - x);
    x = breaks[piece];
  }
  c.x_end = x;
  return c;
}

int64_t GroupSizing::LeastSize(int32_t i, double target, int64_t left) const {
  const SizingDoc& d = docs_[i];
  Curves& memo = CurvesAt(i);  // (its sides' last minima)
  // GroupSeconds ≥ c/k, so nothing below ceil(c / target) fits; on each side of the node size
  // (where the rate drops) it falls, then rises (its terms: c/k-like, and a rotation that only
  // grows), so the least k within the target is left of that side's minimum.
  const double want = std::ceil(d.seconds / target);
  if (!(want <= static_cast<double>(left))) return -1;
  int64_t from = std::max<int64_t>(1, static_cast<int64_t>(want));
  while (from > 1 && d.seconds / static_cast<double>(from - 1) <= target) --from;
  from = std::max({from, int64_t{2}, GroupSizeForCap(d.length, cap_, workers_)});
  auto fits = [&](int64_t k) { return SecondsAt(memo, d, k) <= target; };
  const std::pair<int64_t, int64_t> sides[] = {
      {from, std::min<int64_t>(left, workers_per_node_)},
      {std::max<int64_t>(from, workers_per_node_ + 1), left}};
  for (int side = 0; side < 2; ++side) {
    const auto [a, b] = sides[side];
    if (a > b) continue;
    // The side's minimum, by ternary search on integers: GroupSeconds does not depend on the
    // target, so neither does it for the same [a, b] (kept per side: a bisection asks the same
    // sides again and again).
    Curves::Side& last = memo.sides[side];
    if (last.a != a || last.b != b) {
      int64_t lo = a, hi = b;
      while (hi - lo > 2) {
        const int64_t m1 = lo + (hi - lo) / 3, m2 = hi - (hi - lo) / 3;
        if (SecondsAt(memo, d, m1) <= SecondsAt(memo, d, m2)) {
          hi = m2;
        } else {
          lo = m1;
        }
      }
      int64_t best = lo;
      for (int64_t k = lo + 1; k <= hi; ++k) {
        if (SecondsAt(memo, d, k) < SecondsAt(memo, d, best)) best = k;
      }
      last = {a, b, best};
    }
    const int64_t best = last.best;
    if (!fits(best)) continue;
    int64_t lo = a, hi = best;  // falling on [a, best]: the least k that fits
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (fits(mid)) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return lo;
  }
  return -1;
}

bool GroupSizing::Split(const std::vector<int32_t>& sizes, std::vector<int32_t>* rings,
                        double* rest, double* largest) const {
  rings->clear();
  *rest = 0;
  *largest = 0;
  for (size_t i = 0; i < docs_.size(); ++i) {
    if (sizes[i] >= 2) {
      rings->push_back(static_cast<int32_t>(i));
      continue;
    }
    if (docs_[i].length > cap_) return false;
    *rest += static_cast<double>(docs_[i].length);
    *largest = std::max(*largest, docs_[i].seconds);
  }
  return true;
}

bool GroupSizing::FitsRings(const std::vector<int32_t>& rings, const std::vector<int32_t>& sizes,
                            double rest, double target) const {
  if (!(target >= total_ / workers_)) return false;
  int64_t left = workers_;
  double room = 0;  // tokens the pool has room for
  for (int32_t i : rings) {
    const SizingDoc& d = docs_[i];
    const int64_t k = sizes[i];
    if (MemberTokens(d.length, k) > cap_ || SecondsAt(CurvesAt(i), d, k) > target) return false;
    left -= k;
    room += static_cast<double>(k) * CurvesOf(i, k, k)->At(target);
  }
  if (left < 0) return false;
  room += static_cast<double>(left) * SingleRoom(target);
  return rest <= room;
}

bool GroupSizing::Fits(const std::vector<int32_t>& sizes, double target) const {
  std::vector<int32_t> rings;
  double rest, largest;
  return Split(sizes, &rings, &rest, &largest) && largest <= target &&
         FitsRings(rings, sizes, rest, target);
}

double GroupSizing::Objective(const std::vector<int32_t>& sizes) const {
  std::vector<int32_t> rings;
  double rest, largest;
  if (!Split(sizes, &rings, &rest, &largest)) return std::numeric_limits<double>::infinity();
  auto fits = [&](double t) { return largest <= t && FitsRings(rings, sizes, rest, t); };
  double hi = total_ / workers_;
  for (int i = 0; !fits(hi); ++i) {
    if (i == 64 || !std::isfinite(hi)) return std::numeric_limits<double>::infinity();
    hi = 2 * hi + 1e-9;
  }
  return Bisect(total_ / workers_, hi, fits);
}

template <typename Pred>
double GroupSizing::Bisect(double lo, double hi, Pred fits) {
  if (fits(lo)) return lo;
  for (int i = 0; i < 100 && hi - lo > 1e-12 * hi; ++i) {
    const double mid = lo + (hi - lo) / 2;
    (fits(mid) ? hi : lo) = mid;
  }
  return hi;
}

bool GroupSizing::Within(double target, std::vector<int32_t>* sizes, SizingRings* rings_out) const {
  if (!(target >= total_ / workers_)) return false;
  sizes->assign(docs_.size(), 1);
  std::vector<int32_t> rings;
  const bool within = WithinFromOnes(target, sizes, &rings);
  if (rings_out != nullptr) *rings_out = RingsOf(*sizes, rings);
  return within;
}

bool GroupSizing::WithinFromOnes(double target, std::vector<int32_t>* sizes,
                                 std::vector<int32_t>* rings_out) const {
  int64_t left = workers_;
  std::vector<int32_t>& rings = *rings_out;
  double rest = total_tokens_;
  // Document i in a ring of its own, the least workers within the target.
  auto group = [&](size_t i) {
    const int64_t k = LeastSize(static_cast<int32_t>(i), target, left);
    if (k < 0) return false;
    (*sizes)[i] = static_cast<int32_t>(k);
    left -= k;
    rings.push_back(static_cast<int32_t>(i));
    rest -= static_cast<double>(docs_[i].length);
    return true;
  };
  size_t i = 0;
  for (; i < docs_.size() && docs_[i].seconds > target; ++i) {
    if (!group(i)) return false;
  }
  for (int32_t j : over_cap_) {  // (those among the costliest are grouped already)
    if (static_cast<size_t>(j) >= i && !group(j)) return false;
  }
  // (the documents left whole cost at most the target and fit the cap: no check for them)
  WidenRings(target, left, rings, sizes);
  return FitsRings(rings, *sizes, rest, target);
}

void GroupSizing::WidenRings(double target, int64_t left, const std::vector<int32_t>& rings,
                             std::vector<int32_t>* sizes) const {
  if (left <= 0) return;
  // loss[r][x]: the pool room ring r costs at x workers above its least size (k members could
  // each be a single worker with SingleRoom; they hold Room beside their chunks instead).
  const double single = SingleRoom(target);
  const int64_t widest = std::min(left, kMaxWider);
  // (row r of loss_: loss[r][x], the rows kept across calls: a bisection widens at each step)
  const size_t row = static_cast<size_t>(widest + 1);
  loss_.assign(rings.size() * row, HUGE_VAL);
  auto loss = [&](size_t r) { return loss_.data() + r * row; };
  int64_t wanted = 0;  // workers the rings' own best sizes would add
  std::vector<int64_t> own_best;
  // The loss of ring j at x workers above `least` (infinite where that size is not allowed: over
  // the cap, or GroupSeconds over the target, where Room, whose time at no more tokens is
  // GroupSeconds computed alike, is -1).
  // (`curves`: CurvesOf(j, least, least + widest))
  auto loss_at = [&](const RoomCurve* curves, int64_t least, int64_t x) {
    const RoomCurve& curve = curves[x];
    if (x > 0 && curve.over_cap) return HUGE_VAL;
    const double room = curve.At(target);
    return x > 0 && room < 0 ? HUGE_VAL : static_cast<double>(least + x) * (single - room);
  };
  for (int32_t j : rings) {  // costliest first
    const int64_t least = (*sizes)[j];
    const RoomCurve* curves = CurvesOf(j, least, least + widest);
    double* l = loss(own_best.size());
    int64_t best = 0;
    l[0] = loss_at(curves, least, 0);
    double least_loss = l[0];  // l[best]
    for (int64_t x = 1; x <= widest; ++x) {
      // Room is at most the cap less the ring's chunks (the curve's `most`), so the loss is at
      // least k·(single − most) (rounding is monotone): where that is not below the best so far,
      // x is not the ring's best, and its loss is left unknown (NaN) unless the workers must be
      // shared out below. (Beyond the node size most rings' room is that cap's and their losses
      // tie but for rounding: this spares most of the Room calls.)
      const double k = static_cast<double>(least + x);
      const double most = curves[x].most;
      if (most >= 0 && k * (single - most) >= least_loss) {
        l[x] = std::numeric_limits<double>::quiet_NaN();
        continue;
      }
      l[x] = loss_at(curves, least, x);
      if (l[x] < least_loss) {
        least_loss = l[x];
        best = x;
      }
    }
    own_best.push_back(best);
    wanted += best;
  }
  std::vector<int64_t> extra = own_best;
  if (wanted > left) {  // the workers do not stretch to every ring's best: share them out
    const size_t n = rings.size();
    if (static_cast<double>(n) * static_cast<double>(left + 1) * static_cast<double>(widest + 1) <=
        kMaxDpSteps) {
      for (size_t r = 0; r < n; ++r) {  // every loss known
        const int64_t least = (*sizes)[rings[r]];
        const RoomCurve* curves = CurvesOf(rings[r], least, least + widest);
        for (int64_t x = 1; x <= widest; ++x) {
          if (std::isnan(loss(r)[x])) loss(r)[x] = loss_at(curves, least, x);
        }
      }
      // Exact: dp over rings and workers used (a multiple-choice knapsack).
      std::vector<double> dp(left + 1, 0), next(left + 1);
      std::vector<std::vector<int32_t>> pick(n, std::vector<int32_t>(left + 1, 0));
      for (size_t r = 0; r < n; ++r) {
        for (int64_t e = 0; e <= left; ++e) {
          next[e] = HUGE_VAL;
          for (int64_t x = 0; x <= std::min(e, widest); ++x) {
            const double v = dp[e - x] + loss(r)[x];
            if (v < next[e]) {
              next[e] = v;
              pick[r][e] = static_cast<int32_t>(x);
            }
          }
        }
        dp.swap(next);
      }
      int64_t e = std::min_element(dp.begin(), dp.end()) - dp.begin();
      for (size_t r = n; r-- > 0;) {
        extra[r] = pick[r][e];
        e -= extra[r];
      }
    } else {  // too large to share exactly: costliest rings first, each its best while left
      // (an unknown loss is at least that of the best before it, a smaller x: never the first
      // least of a range from 0, and NaN is never below the best)
      int64_t free = left;
      for (size_t r = 0; r < n; ++r) {
        int64_t best = 0;
        const double* lr = loss(r);
        for (int64_t x = 1; x <= std::min(free, widest); ++x) {
          if (lr[x] < lr[best]) best = x;
        }
        extra[r] = best;
        free -= best;
      }
    }
  }
  for (size_t r = 0; r < rings.size(); ++r) (*sizes)[rings[r]] += static_cast<int32_t>(extra[r]);
}

std::optional<GroupSizing::Solution> GroupSizing::Exact() const {
  if (workers_ <= 0) return std::nullopt;
  // Within at each step, its sizes set back to ones where the step before changed them (not the
  // whole vector: a bisection's ~50 steps over tens of thousands of documents).
  std::vector<int32_t> sizes(docs_.size(), 1), rings;
  auto within = [&](double t) {
    for (int32_t j : rings) sizes[j] = 1;
    rings.clear();
    return t >= total_ / workers_ && WithinFromOnes(t, &sizes, &rings);
  };
  const double lo = total_ / workers_;
  double hi = std::max(lo, docs_.empty() ? lo : docs_[0].seconds);
  for (int i = 0; !within(hi); ++i) {
    if (i == 64 || !std::isfinite(hi)) return std::nullopt;
    hi = 2 * hi + 1e-9;
  }
  const double target = Bisect(lo, hi, within);
  within(target);
  SizingRings ringed = RingsOf(sizes, rings);
  return Solution{std::move(sizes), target, std::move(ringed)};
}

std::vector<int32_t> GroupSizing::Greedy(double slack) const {
  std::vector<int32_t> sizes(docs_.size(), 1);
  for (const auto& [i, k] : GreedyRings(slack)) sizes[i] = k;
  return sizes;
}

SizingRings GroupSizing::GreedyRings(double slack) const {
  SizingRings rings;
  const double mean = total_ / workers_;
  const bool capped = cap_ != std::numeric_limits<int64_t>::max();
  int64_t left = workers_;
  auto group = [&](size_t i) {
    const SizingDoc& d = docs_[i];
    const double share = mean > 0 ? d.seconds / mean : 0;
    int64_t want = static_cast<int64_t>(std::ceil(share - slack - 1e-9));
    want = std::max(want, GroupSizeForCap(d.length, cap_, workers_));
    const int64_t k = std::min<int64_t>(want, left);
    if (k < 2 || MemberTokens(d.length, k) > cap_) return;
    rings.push_back({static_cast<int32_t>(i), static_cast<int32_t>(k)});
    left -= k;
  };
  // Costs descend: once a document wants fewer than two workers, so do all the rest; only those
  // longer than a memory cap still get groups (the cap's).
  // (with fewer than two workers left, no document gets a group: the scans stop)
  size_t i = 0;
  for (; i < docs_.size() && (mean > 0 ? docs_[i].seconds / mean : 0) - slack > 1 && left >= 2;
       ++i) {
    group(i);
  }
  if (capped) {
    for (int32_t j : over_cap_) {
      if (left < 2) break;
      if (static_cast<size_t>(j) >= i) group(j);
    }
  }
  return rings;
}

SizingRings RingsOf(const std::vector<int32_t>& sizes, const std::vector<int32_t>& indices) {
  SizingRings rings;
  for (int32_t i : indices) {
    if (sizes[i] >= 2) rings.push_back({i, sizes[i]});
  }
  return rings;
}

SizingRings RingsOf(const std::vector<int32_t>& sizes) {
  SizingRings rings;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] >= 2) rings.push_back({static_cast<int32_t>(i), sizes[i]});
  }
  return rings;
}

}  // namespace fcp
