// flexdeg's lower bound (FlexDegPlanner::LowerBoundMs, strategies/flexdeg.cc): a step time that
// no flexdeg plan of the batch can beat, so that `auto` skips flexdeg when the best plan it has
// is already that fast. It holds for every kZigzagRing layout whose groups partition the workers
// under the token cap (flexdeg's every candidate: the exact sizing's, its looser steps', the
// greedy's), whatever the groups' sizes, placement and documents, because it reads only what the
// ring schedule (ring_schedule.cc) and the timeline (timeline.cc) must charge:
//
//   a document d of L tokens in a group of k (k = 1: a single worker) is cut into 2k chunks of at
//   most ceil(L / 2k) tokens priced at kv_len = L / min(L, 2k): its attention costs at least
//       att_d(k) = pairs_d · SecondsPerPair(ceil(L / 2k), L / min(L, 2k))   (forward; backward ×b)
//   (tile overheads only add), which grows with k; each member holds 2 chunks, at least
//   2·floor(L / 2k) and at most MemberTokens(L, k) of its tokens; linear layers cost λ per token
//   forward, 2λ backward.
//   forward, the slowest member ≥ the mean member, (att_d(k) + λL) / k; and ≥ a member's KV
//   relay: it receives every other member's tokens in k − 1 transfers in sequence (nonzero when
//   L ≥ 2k), (L − MemberTokens(L, k)) KV bytes, all over the inter-node link for the member
//   after a node boundary when k > workers_per_node (the group then spans nodes), else at best
//   the faster link; then its own linear layers. The transfers' serial part (transfer_overlap <
//   1) only moves time from the link to the ranks: the sum is the same.
//   backward, the same with 2λ and ×b; the relay is a member's dK/dV partials sent to each other
//   member (the tokens that member holds, in k − 1 transfers in sequence: at least
//   2·floor(L / 2k) each, only the same-node ones, at most workers_per_node − 1, on NVLink).
//   the step = the slowest forward + the slowest backward (forward alone without backward).
//
// h_d(k) is that bound for a group of k holding d; d is in some group, so the plan's step is at
// least min over k allowed (k ≤ W, MemberTokens(L, k) ≤ cap) of h_d(k), for every d: the bound is
// the largest of those and of the mean worker, Σ_d h-like whole costs at k = 1 over W (every
// document's cost grows with its group's size). O(documents), and O(W) more for each of the few
// documents whose whole cost is above the bound so far.
//
// That bound holds for any groups; flexdeg's groups are few: a ring of its own for each document
// i with sizes[i] >= 2 of one of its candidates' sizes (the others ride in rings or sit on
// singles), so its plan is at least the least over its candidates of RingsLowerBoundSeconds: the
// tokens must fit somewhere. Under a step S,
//   a single worker holds at most c1 = min(cap, S / 3λ) tokens (S / λ forward only), a ring
//   member too (its linear layers alone), so a ring of k at most k·c1;
//   a ring of k led by document d, with N tokens in all (d's and its riders'): the slowest
//   forward ≥ the mean member's, (att_d(k) + λN) / k, and ≥ the relay member's (the member
//   after a node boundary when k > workers_per_node, any member else), whose forward is at
//   least its KV relay of N − t tokens (t its own: at least 2·floor(L / 2k), at most the cap) and
//   its linear layers λt; the slowest backward ≥ the mean member's, (b·att_d(k) + 2λN) / k.
//   Each is affine in N: the ring holds at most Ncap(S) tokens, and at least L_d.
//   the singles' and rings' room must hold every token of the batch.
// That is monotone in S; a bisection finds the least S it allows. The riders' attention (which
// would hide more of the relay) is left out, so it stays a bound whatever rides where.
// lower_bound_test checks both against the plans on random batches (every mask, both
// objectives, with and without backward, links, latencies and overlaps).
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_FLEXDEG_BOUND_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_FLEXDEG_BOUND_H_

#include <cstdint>
#include <vector>

#include "service/planner/planner.h"
#include "service/planner/strategies/flexdeg_sizing.h"

namespace fcp {

// The bound above, in ms (forward + backward, or forward only per ctx.options.include_backward).
double FlexDegLowerBoundMs(const PlanContext& ctx);

// The least step in seconds of the ring layout whose groups have `group_size` members and hold
// the documents of `doc_group` (one flexdeg candidate, packed): its slowest forward is at least
// any group's mean member's, Σ over the group's documents of (att_d(k) + λL) / k, and so is its
// backward (b·att_d(k) + 2λL) / k, so its step is at least the most of their sums over the groups.
double RingAssignmentLowerBoundSeconds(const PlanContext& ctx,
                                       const std::vector<int32_t>& group_size,
                                       const std::vector<int32_t>& doc_group);

// The least step in seconds of any plan whose rings are those of `sizes` (sizes[i] >= 2: a ring
// of that many workers led by sizing.docs()[i]; the rest of the workers single), as above; 0 if
// the rings need more workers than there are.
double RingsLowerBoundSeconds(const PlanContext& ctx, const GroupSizing& sizing,
                              const std::vector<int32_t>& sizes);

// The tokens of the batch's documents, summed in order (RingsBound's `tokens`).
double BatchTokens(const Batch& batch);

// RingsLowerBoundSeconds for the rings `rings` (a choice's rings alone), its model built once:
// Fits(step) is false when no plan with these rings has a step of `step` or less (the tokens do
// not fit), Seconds() the bisection's answer (RingsLowerBoundSeconds). `tokens`: BatchTokens.
class RingsBound {
 public:
  RingsBound(const PlanContext& ctx, const GroupSizing& sizing, const SizingRings& rings,
             double tokens);
  bool Fits(double step) const;
  double Seconds() const;
  // True only where Seconds() > step, from two Fits (no bisection): with an incumbent, a choice
  // whose rings cannot beat it is known so without the least step they allow.
  bool SecondsAbove(double step) const;

 private:
  // Each ring's constraints a + b·N <= S on its tokens N, and the least N it holds (its leader's).
  struct Affine {
    double a, b;
  };
  struct Ring {
    double k, leader_tokens;
    Affine mean, relay, own;
  };
  double cap_;
  bool backward_;
  double linear_, tokens_;
  int64_t singles_;  // the workers not in rings (negative: the rings need more than there are)
  std::vector<Ring> rings_;
};

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_FLEXDEG_BOUND_H_
