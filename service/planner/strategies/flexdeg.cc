// flexdeg: Flexible Context Parallelism. Per batch, the workers are split into groups of any size
// (3, 5, 6..., not only powers of two). In its ring structure (A below) every document belongs to
// exactly one group and is zigzag-sharded over it (kZigzagRing), so KV only rotates inside it:
//
//   W = 8, mean load m per worker; doc A costs 5.4m, B 1.7m, the rest are short:
//   ranks:   0 1 2 3 4 5 | 6 7 ...
//   group:   [ A, 6      ] [B,2] [c] [d e] ...   ← size 1: whole documents, no traffic
//
// The paper (seed 004, FlexSP, as the design summarises it): groups of any degree chosen per
// batch, documents assigned to groups, by a near-optimal polynomial-time solver with millisecond
// overhead; the groups may differ per micro-batch: the long sequences in sequence-parallel groups
// of any size, the short ones in groups of size 1 on the same GPUs, one micro-batch after another.
// Here two structures are candidates, and the lower predicted step wins:
//
// A. rings (the structure above, kZigzagRing):
//  1. cost c_d = forward + backward seconds of document d (attention + linear layers, the cost
//     model's whole-step pricing), its linear part and its tokens L_d;
//  2. the group sizes are solved exactly for a model in which the short documents pack fluidly
//     (flexdeg_sizing.h: the least step T such that every document costing more than T, or
//     longer than the cap, has a ring of its own whose members' linear layers, attention with the
//     rotation hidden behind it (intra- or inter-node bandwidth) and tokens fit T and the cap, and
//     the short documents' tokens fit the single workers' and the rings' room within T);
//  3. the remaining workers are groups of size 1; the other documents are packed onto them (LPT
//     under the token cap), onto ring groups (least per-member load Σc/k) when that is lower, or
//     when no single worker is left or has room (a ring only up to the room its member has within
//     the solved T, then up to the cap); the sizing's choices for T × 1.05 and × 1.1 and the
//     greedy's sizes (three slacks) are packed too; the candidates within 3% of the best
//     estimate (a member: linear layers, then attention or rotation per pass) are scheduled
//     (ring schedules are analytic) and the lowest predicted step wins;
//  4. groups get contiguous ranks, largest first, first-fit into nodes so rings stay intra-node.
//  A ring carries only its own documents' KV and a worker is in one group only, so the short
//  documents riding in a ring rotate with it: under a memory cap a ring sized for its long
//  document leaves little room, and the riders' rotation sets the step.
// B. micro-batched (flexdeg_micro.h, kDirect): FlexSP's per-micro-batch groups. Each long
//  document is cut into 2k zigzag chunks pinned in pairs to its group's k members (node-local
//  where it fits); every other document stays whole on the least-loaded worker with room, ring
//  members included (it does not rotate: a member's room is the cap minus its share of its
//  document). The sizes: the sizing's exact choice, and each document costing more than 1.05 ×
//  the mean worker given ceil(cost / (fill × mean)) workers for a few fills; the packings within
//  3% of the least estimate are scheduled.
// Where it differs from the paper: the sizing is exact for its fluid model, and the packing of the
// short documents (a bin packing) is LPT. In B the paper's micro-batches are one step: kDirect
// overlaps a worker's group work and its whole documents in one schedule rather than running the
// micro-batches one after another, and a group's KV moves by direct transfers to the members that
// need it, not around a ring. Under a tight cap, if nothing packs, A's greedy with larger groups
// (negative slacks) is the fallback, and in B a document that fits no worker whole is spread over
// the fewest workers with room.
// The single workers with room are found by flexdeg_singles.h; auto skips flexdeg by its lower
// bound: the least of A's (flexdeg_bound.h: any ring groups' bound, and its own candidates' rings
// under the token cap) and B's (flexdeg_micro.h: its packings' least compute per worker).
#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/planner.h"
#include "service/planner/schedule.h"
#include "service/planner/strategies/flexdeg_bound.h"
#include "service/planner/strategies/flexdeg_micro.h"
#include "service/planner/strategies/flexdeg_singles.h"
#include "service/planner/strategies/flexdeg_sizing.h"
#include "service/planner/strategies/packing.h"
#include "service/planner/strategies/plan_memo.h"

namespace fcp {
namespace {

// The greedy's slacks (the fallback, 2. above).
constexpr double kSlacks[] = {0.0, 0.25, 0.5};
// Candidates whose estimate is within this fraction of the best one's are scheduled (the
// estimate ranks them only roughly: a few percent either way against the schedule).
constexpr double kScheduleMargin = 0.03;
// Steps above the sizing's optimum whose choices are candidates too (factors of it).
constexpr double kLooserTargets[] = {1.05, 1.1};
// Tried only when none of kSlacks packs under the token budget: larger groups for the long
// documents hold fewer of their tokens per member, leaving room for the documents kept whole.
constexpr double kBudgetSlacks[] = {-0.5, -1, -2, -4, -8};

// Whether a candidate whose own lower bound is `bound_ms` cannot beat ctx.incumbent_ms (auto keeps
// only a strictly faster plan), with a margin for the round-off between the bound and the
// schedule's pricing: the candidate is then not scheduled (planner.h).
bool CannotBeatIncumbent(const PlanContext& ctx, double bound_ms) {
  return bound_ms > ctx.incumbent_ms * (1 + 1e-9);
}

struct Assignment {
  std::vector<int32_t> sizes;  // the candidate's (sizes[i]: that of sizing.docs()[i])
  std::vector<int32_t> group_size;
  std::vector<int32_t> doc_group;
  // The slowest group by the sizing's pricing (a member: linear layers, then attention or the
  // rotation per pass): only candidates near the best estimate are scheduled.
  double estimate = 0;
};

class FlexDegPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "flexdeg"; }
  absl::string_view description() const override {
    return "Flexible CP: workers split into ring groups of any size per batch, each document "
           "zigzag inside one group; group sizes solved exactly, the rest LPT-packed";
  }

  int auto_order() const override { return 40; }
  // No flexdeg plan beats it: the least of the bounds of its two structures. The micro-batched
  // candidates' (flexdeg_micro.h: the mean worker, their documents left whole, their groups'
  // shares; the relay of flexdeg_bound.h is a ring's). The ring candidates': the bound of any
  // ring groups (flexdeg_bound.h), or, when each of their rings is above that, the least of their
  // bounds. auto skips flexdeg where the best plan it has is as fast.
  // With an incumbent (planner.h), the micro-batched packings stop once they reach it, and a ring
  // candidate's bound is only decided against it (RingsBound::SecondsAbove, no bisection).
  double LowerBoundMs(const PlanContext& ctx) const override {
    const double incumbent = ctx.incumbent_ms * 1e-3;
    const GroupSizing sizing = Sizing(ctx);
    const std::optional<GroupSizing::Solution> exact = sizing.Exact();
    // (without a token cap the workers' room is unbounded: the rings' bounds add little)
    const bool capped = ctx.batch.topology.max_tokens_per_worker > 0;
    double rings = incumbent;
    // With an incumbent that every ring candidate's rings are above, so is the rings' bound,
    // whatever the bound of any groups: that one is not needed.
    if (!capped || !(incumbent < HUGE_VAL) || !EveryRingsAbove(ctx, sizing, exact, incumbent)) {
      const double any = FlexDegLowerBoundMs(ctx) * 1e-3;
      rings = capped ? RingsBoundSeconds(ctx, sizing, exact, any, incumbent) : any;
    }
    const double bound = MicroLowerBoundSeconds(ctx, sizing, exact, std::min(rings, incumbent));
    return bound >= incumbent ? std::max(bound * 1e3, ctx.incumbent_ms) : bound * 1e3;
  }

  // The lower predicted step of the ring candidates and the micro-batched ones (flexdeg_micro.h).
  // With an incumbent (planner.h), a candidate whose own bound is above it is not scheduled (a
  // ring candidate's: the bound of any groups, its rings' and its packing's mean members'; a
  // micro-batched one's: its packing's least compute per worker). Every candidate is still
  // packed: the estimates of all of them choose which are scheduled, so that the plan stays the
  // one made without an incumbent.
  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    const GroupSizing sizing = Sizing(ctx);
    const std::optional<GroupSizing::Solution> exact = sizing.Exact();
    double best_ms = HUGE_VAL;
    absl::StatusOr<Layout> best = BestRings(ctx, sizing, exact, &best_ms);
    // The micro-batched candidates near the least estimate, scheduled; with an incumbent, each
    // with its own bound (ms).
    const bool incumbent = ctx.incumbent_ms < HUGE_VAL;
    const std::vector<double> whole = incumbent ? MicroWholeSeconds(ctx) : std::vector<double>();
    struct Micro {
      double estimate, bound_ms;
      Layout layout;
    };
    std::vector<Micro> micro;
    double least_estimate = HUGE_VAL;
    for (const std::vector<int32_t>& sizes : MicroSizes(ctx, sizing, exact)) {
      double estimate = 0, bound = 0;
      absl::StatusOr<Layout> layout =
          MicroBatchedLayout(ctx, sizing, sizes, &estimate, &whole, incumbent ? &bound : nullptr);
      if (!layout.ok()) continue;  // (a document fits no workers: the others' answer stands)
      least_estimate = std::min(least_estimate, estimate);
      micro.push_back({estimate, bound * 1e3, *std::move(layout)});
    }
    for (auto& [estimate, bound_ms, layout] : micro) {
      if (estimate > least_estimate * (1 + kScheduleMargin)) continue;
      if (CannotBeatIncumbent(ctx, bound_ms)) {
        if (!best.ok()) best = std::move(layout);  // (unscheduled: it cannot win either)
        continue;
      }
      Layout blocks_only;  // the blocks move into the schedule, which MakePlan then uses
      blocks_only.kind = layout.kind;
      blocks_only.blocks = std::move(layout.blocks);
      absl::StatusOr<std::unique_ptr<Schedule>> schedule =
          NewSchedule(ctx.batch, ctx.cost, std::move(blocks_only));
      if (!schedule.ok()) return schedule.status();
      const double ms = StepMs(ctx, **schedule);
      if (ms < best_ms || (!best.ok() && ms < HUGE_VAL)) {
        best_ms = ms;
        layout.schedule = std::move(*schedule);
        best = std::move(layout);
      }
    }
    return best;
  }

 private:
  // The ring candidates (1.-4. above): the lowest predicted step among them (`*best_ms`), or the
  // first candidate's error when none packs.
  static absl::StatusOr<Layout> BestRings(const PlanContext& ctx, const GroupSizing& sizing,
                                          const std::optional<GroupSizing::Solution>& exact,
                                          double* best_ms_out) {
    const Batch& batch = ctx.batch;
    const int32_t docs = static_cast<int32_t>(batch.documents.size());

    std::vector<Assignment> packed;  // every candidate that packs
    absl::Status first_error = absl::OkStatus();
    std::vector<std::vector<int32_t>> tried;  // the sizes already packed
    auto try_sizes = [&](std::vector<int32_t> sizes, double target) {
      // The same groups pack the rest the same way: nothing new to try.
      if (std::find(tried.begin(), tried.end(), sizes) != tried.end()) return;
      absl::StatusOr<Assignment> assignment = PackRest(ctx, sizing, sizes, target);
      tried.push_back(std::move(sizes));
      if (assignment.ok()) {
        assignment->sizes = tried.back();
        packed.push_back(*std::move(assignment));
      } else if (first_error.ok()) {
        first_error = assignment.status();
      }
    };
    for (Candidate& c : ExactCandidates(sizing, exact)) try_sizes(std::move(c.sizes), c.target);
    // The greedy's sizes too: the exact sizes are optimal for a pool that packs fluidly, and
    // LPT does not.
    // (their rings too take short documents only up to the room the sizing's model gives them
    // at the step these sizes allow)
    for (double slack : kSlacks) {
      std::vector<int32_t> sizes = sizing.Greedy(slack);
      const double target = sizing.Objective(sizes);
      try_sizes(std::move(sizes), target);
    }
    for (size_t i = 0; i < std::size(kBudgetSlacks) && packed.empty(); ++i) {
      try_sizes(sizing.Greedy(kBudgetSlacks[i]), HUGE_VAL);
    }
    if (packed.empty()) return first_error;

    // Each candidate scheduled (a ring schedule is analytic, O(chunks) per document): the lowest
    // predicted step within the cap wins, and MakePlan reuses its schedule. With an incumbent, a
    // candidate whose rings' bound (and that of any groups) is above it is not scheduled; if
    // every one is skipped, the first is returned unscheduled (`*best_ms_out` infinite).
    Layout best, skipped;
    double& best_ms = *best_ms_out;
    const double any_ms = ctx.incumbent_ms < HUGE_VAL ? FlexDegLowerBoundMs(ctx) : 0;
    double least_estimate = HUGE_VAL;
    for (const Assignment& a : packed) least_estimate = std::min(least_estimate, a.estimate);
    for (Assignment& a : packed) {
      if (a.estimate > least_estimate * (1 + kScheduleMargin)) continue;
      Layout layout;
      layout.kind = Layout::Kind::kZigzagRing;
      layout.strategy = "flexdeg";
      layout.groups = PlaceGroups(a.group_size, batch.topology);
      layout.doc_group = std::move(a.doc_group);
      for (int32_t d = 0; d < docs; ++d) {
        const int64_t chunks = 2 * static_cast<int64_t>(layout.groups[layout.doc_group[d]].size());
        layout.block_size =
            std::max(layout.block_size, (batch.documents[d].length + chunks - 1) / chunks);
      }
      if (ctx.incumbent_ms < HUGE_VAL &&
          CannotBeatIncumbent(
              ctx, std::max({any_ms, RingsLowerBoundSeconds(ctx, sizing, a.sizes) * 1e3,
                             RingAssignmentLowerBoundSeconds(ctx, a.group_size, layout.doc_group) *
                                 1e3}))) {
        if (skipped.groups.empty()) skipped = std::move(layout);
        continue;
      }
      absl::StatusOr<std::unique_ptr<Schedule>> schedule = NewSchedule(ctx.batch, ctx.cost, layout);
      if (!schedule.ok()) return schedule.status();
      const double ms = StepMs(ctx, **schedule);
      if (ms < best_ms || best.groups.empty()) {
        best_ms = ms;
        layout.schedule = std::move(*schedule);
        best = std::move(layout);
      }
    }
    return best.groups.empty() ? std::move(skipped) : std::move(best);
  }

  struct Candidate {
    std::vector<int32_t> sizes;
    double target;      // the sizing's step for them
    SizingRings rings;  // those of sizes
  };

  // The ring candidates' bound, at least `any` (ForEachRings: stops at one no better). With an
  // incumbent (seconds), a candidate whose rings' bound is above it counts as the incumbent
  // (RingsBound::SecondsAbove, no bisection): the same answer where it is below the incumbent.
  static double RingsBoundSeconds(const PlanContext& ctx, const GroupSizing& sizing,
                                  const std::optional<GroupSizing::Solution>& exact, double any,
                                  double incumbent) {
    if (any >= incumbent) return any;
    const double tokens = BatchTokens(ctx.batch);
    double least = HUGE_VAL;
    const bool all = ForEachRings(sizing, exact, [&](const SizingRings& rings) {
      const RingsBound bound(ctx, sizing, rings, tokens);
      least =
          std::min(least, incumbent < HUGE_VAL && bound.SecondsAbove(incumbent) ? incumbent
                                                                                : bound.Seconds());
      return least > any;
    });
    return all ? std::max(any, least) : any;
  }

  // Whether the rings of every ring candidate are above `incumbent` (RingsBound::SecondsAbove).
  static bool EveryRingsAbove(const PlanContext& ctx, const GroupSizing& sizing,
                              const std::optional<GroupSizing::Solution>& exact, double incumbent) {
    const double tokens = BatchTokens(ctx.batch);
    return ForEachRings(sizing, exact, [&](const SizingRings& rings) {
      return RingsBound(ctx, sizing, rings, tokens).SecondsAbove(incumbent);
    });
  }

  // `visit` on the rings of each ring candidate, the greedy's first (they are cheap), until it
  // returns false; whether it returned true for all.
  template <typename Visit>
  static bool ForEachRings(const GroupSizing& sizing,
                           const std::optional<GroupSizing::Solution>& exact, Visit visit) {
    for (double slack : kSlacks) {
      if (!visit(sizing.GreedyRings(slack))) return false;
    }
    for (double slack : kBudgetSlacks) {  // (packed only when none of the others packs)
      if (!visit(sizing.GreedyRings(slack))) return false;
    }
    for (const Candidate& c : ExactCandidates(sizing, exact)) {
      if (!visit(c.rings)) return false;
    }
    return true;
  }

  // 1.-2. The documents' costs and the group sizing over them, costliest first.
  static GroupSizing Sizing(const PlanContext& ctx) {
    const Batch& batch = ctx.batch;
    const int32_t docs = static_cast<int32_t>(batch.documents.size());
    // (under auto, computed once for every candidate: plan_memo.h)
    const std::shared_ptr<const DocCosts> costs = SharedDocCosts(ctx);
    const std::vector<double>& seconds = costs->seconds;
    const std::vector<int32_t>& order = costs->by_cost;
    std::vector<SizingDoc> sorted(docs);  // read sequentially by every packing
    for (int32_t i = 0; i < docs; ++i) {
      const int64_t length = batch.documents[order[i]].length;
      sorted[i] = {order[i], length, seconds[order[i]], 3 * ctx.cost.TokenSeconds(length)};
    }
    return GroupSizing(ctx.cost, batch.topology, std::move(sorted), TokenCap(batch.topology));
  }

  // The sizing's exact choice, and, since the model's optimum is not the schedule's, its choices
  // for a few looser steps (rings narrower, their members with more room); none if none fits.
  // (`exact`: sizing.Exact(), shared with the micro-batched candidates)
  static std::vector<Candidate> ExactCandidates(const GroupSizing& sizing,
                                                const std::optional<GroupSizing::Solution>& exact) {
    std::vector<Candidate> candidates;
    if (!exact) return candidates;
    candidates.push_back({exact->sizes, exact->objective, exact->rings});
    for (double looser : kLooserTargets) {
      std::vector<int32_t> sizes;
      SizingRings rings;
      if (sizing.Within(exact->objective * looser, &sizes, &rings)) {
        candidates.push_back({std::move(sizes), exact->objective * looser, std::move(rings)});
      }
    }
    return candidates;
  }

  // The predicted step of a scheduled candidate, infinite if it breaks the token cap.
  static double StepMs(const PlanContext& ctx, const Schedule& schedule) {
    const int64_t cap = TokenCap(ctx.batch.topology);
    for (const WorkerCost& c : schedule.costs()) {
      if (c.tokens > cap) return HUGE_VAL;
    }
    const PlanSummary& s = schedule.summary();
    return s.predicted_fwd_ms + (ctx.options.include_backward ? s.predicted_bwd_ms : 0);
  }

  // 3. The documents of size 1 onto single workers (or groups), and the estimate. sizes[i]: the
  // size of sizing.docs()[i]. A ring takes short documents up to the tokens a member may hold
  // within `target` (the sizing's step), else, if none has room, up to the cap.
  static absl::StatusOr<Assignment> PackRest(const PlanContext& ctx, const GroupSizing& sizing,
                                             const std::vector<int32_t>& sizes, double target) {
    const Batch& batch = ctx.batch;
    const std::vector<SizingDoc>& sorted = sizing.docs();
    const int64_t cap = TokenCap(batch.topology);
    std::vector<int64_t> room;  // per member, within the target
    Assignment a;
    a.doc_group.assign(batch.documents.size(), -1);
    std::vector<double> load, linear;  // per group: all its documents' seconds, their linear part
    std::vector<int64_t> tokens;       // per member, upper bound
    int32_t left = batch.topology.num_workers;
    for (size_t i = 0; i < sorted.size(); ++i) {  // 2. the long documents' own groups
      if (sizes[i] < 2) continue;
      a.doc_group[sorted[i].document] = static_cast<int32_t>(a.group_size.size());
      a.group_size.push_back(sizes[i]);
      load.push_back(sorted[i].seconds);
      linear.push_back(sorted[i].linear);
      tokens.push_back(MemberTokens(sorted[i].length, sizes[i]));
      // (a room over the cap, an infinite target's, is the cap's: no int64 overflow)
      room.push_back(std::min<int64_t>(
          cap, tokens.back() + static_cast<int64_t>(std::min<double>(
                                   static_cast<double>(cap),
                                   std::max(0.0, sizing.Room(sorted[i], sizes[i], target))))));
      left -= sizes[i];
    }
    const int32_t left_before_singles = left;
    for (; left > 0; --left) {  // 3. the rest are single workers
      a.group_size.push_back(1);
      load.push_back(0);
      linear.push_back(0);
      tokens.push_back(0);
      room.push_back(cap);
    }
    const int32_t groups = static_cast<int32_t>(a.group_size.size());
    // Short documents go to the least-loaded single worker; to a ring group only when, with the
    // document, its members stay below that worker's load (a short document in a ring adds KV
    // traffic but little compute to hide it), or when no single worker is left or has room.
    MinTree single(groups), ring(groups);  // per-member load, HUGE_VAL for the other kind
    const int32_t ring_groups = groups - left_before_singles;  // rings first, then singles
    SinglesByRoom by_room(groups);
    // Per ring: load per member, and the longest document it has room for under its room and
    // under the cap (MemberTokens(L, k) <= r  <=>  L <= 2k·floor(r / 2): no division per test).
    std::vector<double> per_member(groups, 0);
    std::vector<int64_t> room_longest(groups, 0), cap_longest(groups, 0);
    auto update_ring = [&](int32_t h) {
      const int64_t k = a.group_size[h];
      // (room of half the cap or more holds any document the pool has: no overflow to risk)
      auto longest = [&](int64_t r) { return r >= cap / 2 ? cap : 2 * k * (r / 2); };
      per_member[h] = load[h] / static_cast<double>(k);
      room_longest[h] = longest(room[h] - tokens[h]);
      cap_longest[h] = longest(cap - tokens[h]);
    };
    for (int32_t h = 0; h < ring_groups; ++h) update_ring(h);
    std::vector<int64_t> free(groups, 0);  // singles' room left, tokens
    for (int32_t g = ring_groups; g < groups; ++g) {
      free[g] = cap;
      by_room.Set(g, cap, 0);
    }
    for (int32_t g = 0; g < groups; ++g) {
      (a.group_size[g] == 1 ? ring : single).Set(g, HUGE_VAL);
    }
    auto update = [&](int32_t g) {
      if (a.group_size[g] == 1) {
        single.Set(g, load[g]);  // (load / 1: no division on the packing's critical path)
      } else {
        ring.Set(g, load[g] / a.group_size[g]);
      }
    };
    const bool singles = left_before_singles > 0;
    const bool rings = groups > left_before_singles;
    for (const SizingDoc& doc : sorted) {
      const int32_t d = doc.document;
      if (a.doc_group[d] >= 0) continue;
      const int64_t length = doc.length;
      auto fits = [&](int32_t g, const std::vector<int64_t>& limit) {
        return tokens[g] + MemberTokens(length, a.group_size[g]) <= limit[g];
      };
      // The least-loaded ring with room for the document under `longest` (room_longest or
      // cap_longest), or -1.
      auto least_ring_with_room = [&](const std::vector<int64_t>& longest) {
        // (loads are finite: the first ring with room is below the infinite start)
        int32_t best = -1;
        double least = HUGE_VAL;
        const int64_t* longest_data = longest.data();
        const double* per_member_data = per_member.data();
        for (int32_t h = 0; h < ring_groups; ++h) {
          const bool better = length <= longest_data[h] && per_member_data[h] < least;
          least = better ? per_member_data[h] : least;
          best = better ? h : best;
        }
        return best;
      };
      int32_t g = singles ? single.ArgMin() : ring.ArgMin();
      if (singles && rings) {
        const int32_t r = ring.ArgMin();
        if ((load[r] + doc.seconds) / a.group_size[r] < load[g]) g = r;
      }
      if (!fits(g, room)) {  // full: the least-loaded group with room
        // Singles by their room (SinglesByRoom); rings (few) by a scan.
        g = singles ? by_room.LeastWithRoom(length, free, load) : -1;
        // (no ring is less loaded than the single found: no scan)
        const bool scan = rings && (g < 0 || per_member[ring.ArgMin()] < load[g]);
        const int32_t r = scan ? least_ring_with_room(room_longest) : -1;
        if (r >= 0 && (g < 0 || per_member[r] < load[g])) g = r;
        // Last, rings up to the cap (singles' room is the cap already).
        if (g < 0 && rings) g = least_ring_with_room(cap_longest);
        if (g < 0) {
          return absl::FailedPreconditionError(absl::StrCat(
              "flexdeg: document ", d, " (", length,
              " tokens) fits in no group under the token budget of ", cap, " per worker"));
        }
      }
      a.doc_group[d] = g;
      load[g] += doc.seconds;
      linear[g] += doc.linear;
      tokens[g] += MemberTokens(length, a.group_size[g]);
      update(g);
      if (a.group_size[g] == 1) {
        free[g] = cap - tokens[g];
        by_room.Set(g, free[g], load[g]);
      } else {
        update_ring(g);
      }
    }
    for (int32_t g = 0; g < groups; ++g) {
      const int32_t k = a.group_size[g];
      const double ring = k > 1 ? sizing.RingSeconds(tokens[g] * k, k) : 0;
      a.estimate = std::max(a.estimate, k > 1 ? linear[g] / k + sizing.AttentionOrRotation(
                                                                    (load[g] - linear[g]) / k, ring)
                                              : load[g]);
    }
    return a;
  }
};

}  // namespace

std::unique_ptr<Planner> NewFlexDegPlanner() { return std::make_unique<FlexDegPlanner>(); }

}  // namespace fcp
