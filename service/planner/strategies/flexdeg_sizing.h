// flexdeg's group-size choice (strategies/flexdeg.cc): which documents get a ring group of their
// own, and of how many workers, solved exactly for the objective below; the original three-slack
// greedy stays beside it for comparison (and as more candidates for flexdeg's packing).
//
// A choice gives each document a size k_d: k_d ≥ 2 is a ring group of its own (zigzag over k_d
// workers), k_d = 1 leaves it to the pool (packed whole onto single workers, or onto a ring's
// spare room). A choice fits a step time T when
//
//   T ≥ total / W                     (no worker below the mean: the pool's compute is fluid)
//   k_d ≥ 2:  g_d(k_d) ≤ T,  MemberTokens(L_d, k_d) ≤ cap,  Σ k_d ≤ W
//   k_d = 1:  c_d ≤ T,  L_d ≤ cap
//   Σ_{k_d = 1} L_d ≤ (W − Σ k_d)·room_1(T) + Σ_{k_d ≥ 2} k_d·room_d(k_d, T)   (the pool's tokens)
//
//   g_d(k)       = lin_d / k + max(fwd_d / k, ring / 2) + max(bwd_d / k, ring / 2), ring =
//                  ring_d(k): a member of d's ring, its linear layers, then each pass of its
//                  attention with that pass's rotation hidden behind it (c_d = lin_d + fwd + bwd)
//   ring_d(k)    = 2 (k − 1) (α + KvBytes(L_d / k) / bandwidth(k))   (KV forward, dKV backward;
//                  intra-node bandwidth when k fits a node, which PlaceGroups then honours)
//   room_d(k, T) = the short-document tokens x a member of that ring may hold beside its chunks:
//                  g_d(k) with x more tokens rotating and x·λ more linear time stays ≤ T (λ the
//                  linear seconds per token), and L_d / k + x ≤ cap
//   room_1(T)    = a single worker's: min(cap, T / λ)
//
// and its objective F is the least T it fits (the step the choice allows when the pool packs
// fluidly). The token line is what the pre-issue-26 greedy lacked: under a cap, short documents
// that found no single worker with room rode in the rings, whose rotation then set the step.
//
// Exact(): for a target T, Within decides whether any choice fits. d must be grouped iff c_d > T
// or L_d > cap (grouping a document that could stay whole only costs the pool room: a member's
// room plus its chunk is at most a single's). Each grouped d first takes its least k with
// g_d(k) ≤ T (g_d falls then rises on each side of the node size, where the rate drops: a ternary
// then a binary search); if those fit the workers, each ring is widened to the k that costs the
// pool least room, k·(room_1 − room_d(k)), within kMaxWider workers more: each ring on its own
// when their choices fit the workers left, a multiple-choice knapsack (exact DP) when they do not
// and it is small (kMaxDpSteps), else costliest first. A larger T only loosens every constraint,
// so "some choice fits T" is monotone, and a bisection on T (doubles, to 1e-12 relative) finds
// the least. Exact to that precision except for the two bounds named (wider than kMaxWider, or a
// knapsack over kMaxDpSteps); flexdeg_sizing_test checks it against brute force.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_FLEXDEG_SIZING_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_FLEXDEG_SIZING_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "service/planner/batch.h"
#include "service/planner/cost_model.h"

namespace fcp {

// A document as the sizing sees it; the sizing's documents are sorted by `seconds`, descending.
struct SizingDoc {
  int32_t document;  // index in the batch
  int64_t length;
  double seconds;  // forward + backward (attention + linear layers) of the whole document
  double linear;   // of which the linear layers (0 under the attention objective)
};

// A choice's rings alone: (index in GroupSizing::docs(), size >= 2), by index ascending (the other
// documents' sizes are 1).
using SizingRings = std::vector<std::pair<int32_t, int32_t>>;

class GroupSizing {
 public:
  // `docs` sorted by seconds descending; `cap`: the token cap per worker (TokenCap).
  GroupSizing(const CostModel& cost, const Topology& topology, std::vector<SizingDoc> docs,
              int64_t cap);

  const std::vector<SizingDoc>& docs() const { return docs_; }
  // The tokens of every document, summed in the docs() order.
  double total_tokens() const { return total_tokens_; }
  // The indices of the documents longer than the cap, ascending.
  const std::vector<int32_t>& over_cap() const { return over_cap_; }

  // Whether `sizes` (sizes[i] that of docs()[i]) fits the step time `target`.
  bool Fits(const std::vector<int32_t>& sizes, double target) const;
  // F(sizes): the least T it fits (bisection); +infinity when it fits none.
  double Objective(const std::vector<int32_t>& sizes) const;
  // ring_d(k) above for a document of `length` tokens.
  double RingSeconds(int64_t length, int64_t k) const;
  // g_d(k) above: the time of a member of d's own ring of k (k = 1: the whole document).
  double GroupSeconds(const SizingDoc& d, int64_t k) const;
  // A ring member's `attention` seconds (forward + backward) with a rotation of `ring` seconds
  // (half forward, half backward) hidden behind each pass where it can be.
  double AttentionOrRotation(double attention, double ring) const;
  // room_d(k, target): the tokens a member of d's ring of k may hold beside its share of d
  // within `target` (-1: its share alone is over); room_1: a single worker's, min(cap, T / λ).
  double Room(const SizingDoc& d, int64_t k, double target) const;
  double SingleRoom(double target) const;

  struct Solution {
    std::vector<int32_t> sizes;
    double objective;   // F(sizes)
    SizingRings rings;  // those of sizes
  };
  // The choice minimising F; nullopt when none fits (a document too long for every group the
  // workers allow).
  std::optional<Solution> Exact() const;

  // The greedy (flexdeg before issue 26): costliest first, a document wanting
  // k = ceil(c_d / mean − slack) ≥ 2 workers (at least enough for the cap) gets them while
  // workers remain.
  std::vector<int32_t> Greedy(double slack) const;
  // Its rings alone (O(rings), not O(documents)).
  SizingRings GreedyRings(double slack) const;

  // The choice Exact() would build for the step `target` (any target at or above its objective
  // fits), or false.
  // (`rings`, if given: its rings alone)
  bool Within(double target, std::vector<int32_t>* sizes, SizingRings* rings = nullptr) const;

 private:
  // Within for `sizes` all ones and `target` at least the mean worker; `rings` (empty on entry)
  // gets every index whose size it sets, ascending, whether it fits or not.
  bool WithinFromOnes(double target, std::vector<int32_t>* sizes,
                      std::vector<int32_t>* rings) const;
  // Widens the rings of `sizes` (indices `rings`, ascending; their least sizes within `target`)
  // to leave the pool the most room with the `left` workers not in rings.
  void WidenRings(double target, int64_t left, const std::vector<int32_t>& rings,
                  std::vector<int32_t>* sizes) const;
  // The indices of the rings of `sizes`, the tokens and the largest cost of the documents left
  // whole; false if one of those is over the cap.
  bool Split(const std::vector<int32_t>& sizes, std::vector<int32_t>* rings, double* rest,
             double* largest) const;
  // Fits for `sizes` split as Split does, but for the whole documents' costs.
  bool FitsRings(const std::vector<int32_t>& rings, const std::vector<int32_t>& sizes, double rest,
                 double target) const;
  // The least k ≤ left within `target` for docs()[i]'s own ring (cap included), or -1.
  int64_t LeastSize(int32_t i, double target, int64_t left) const;
  double Rate(int64_t k) const;  // bytes/s of a ring of k
  // Room(d, k, ·): what of it does not depend on the target, so that Exact()'s bisection, which
  // asks the same rings at each step, computes it once per (document, size). At(target) walks
  // the pieces as Room did, with the same operations in the same order (bit-identical).
  struct RoomCurve {
    struct Piece {
      // where the piece starts, the time there, its slope, its end time (-inf for a flat piece,
      // which the walk passes over)
      double x, t, slope, end;
    };
    double most = 0;        // the cap, over the document's chunks
    bool over_cap = false;  // MemberTokens over the cap
    double time0 = 0;       // the member's time with no more tokens
    Piece pieces[3];
    int count = -1;    // pieces (-1: not computed yet)
    double x_end = 0;  // where the walk ends when no piece reaches the target
    double At(double target) const {
      if (!std::isfinite(target)) return std::max(0.0, most);
      if (time0 > target) return -1;
      double x = x_end;
      for (int p = 0; p < count; ++p) {
        const Piece& s = pieces[p];
        if (s.end >= target) {
          x = s.x + (target - s.t) / s.slope;
          break;
        }
      }
      return std::max(0.0, std::min(most, x));
    }
  };
  RoomCurve Curve(const SizingDoc& d, int64_t k) const;
  // The least of [lo, hi] where `fits` holds (it holds at hi and is monotone), to 1e-12.
  template <typename Pred>
  static double Bisect(double lo, double hi, Pred fits);

  int32_t workers_;
  int32_t workers_per_node_;
  double intra_bytes_per_second_, inter_bytes_per_second_;
  double latency_seconds_, kv_bytes_per_token_;
  double linear_per_token_;  // forward + backward seconds of the linear layers per token
  double backward_factor_;   // backward attention time / forward
  std::vector<SizingDoc> docs_;
  int64_t cap_;
  double total_ = 0;               // seconds of every document
  double total_tokens_ = 0;        // tokens of every document
  std::vector<int32_t> over_cap_;  // indices of documents longer than the cap
  // Per document index, what its rings' sizing keeps across Exact()'s bisection: CurvesOf's curves
  // for the sizes first, first + 1, ... asked so far, and LeastSize's minima (not thread-safe: a
  // sizing serves one planning call).
  struct Curves {
    int64_t first = 0;
    std::vector<RoomCurve> of;
    int64_t done_lo = 0, done_hi = -1;  // a range of sizes whose curves are all computed
    // LeastSize's last minimum of GroupSeconds over [a, b] on each side of the node size.
    struct Side {
      int64_t a = -1, b = -1, best = -1;
    };
    Side sides[2];
    std::vector<double> seconds;  // GroupSeconds by size, as asked (NaN: not yet)
  };
  // curves_[slot_[i] - 1]: document index i's (slot_[i] = 0, or past slot_'s end: none yet); a
  // deque, so that references stay valid.
  mutable std::vector<int32_t> slot_;
  mutable std::deque<Curves> curves_;
  Curves& CurvesAt(int32_t i) const;
  // GroupSeconds(d, k), kept in `c` (d's): the bisection's steps ask the same sizes again.
  double SecondsAt(Curves& c, const SizingDoc& d, int64_t k) const;
  mutable std::vector<double> loss_;  // WidenRings' losses
  // The curves of docs()[i] for the sizes lo..hi (kept in CurvesAt(i)); the pointer is that of
  // lo's, valid until the next call for i.
  const RoomCurve* CurvesOf(int32_t i, int64_t lo, int64_t hi) const;
};

// The rings of `sizes` (sizes[i] that of docs()[i]); RingsOf(sizes, indices): those of the
// indices `indices` (ascending) alone.
SizingRings RingsOf(const std::vector<int32_t>& sizes);
SizingRings RingsOf(const std::vector<int32_t>& sizes, const std::vector<int32_t>& indices);

// The smallest group size whose members can hold `length` under `cap` (> workers: none can).
int64_t GroupSizeForCap(int64_t length, int64_t cap, int32_t workers);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_FLEXDEG_SIZING_H_
