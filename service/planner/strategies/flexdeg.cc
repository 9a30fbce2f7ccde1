// flexdeg: Flexible Context Parallelism. Per batch, the workers are split into ring groups of any
// size (3, 5, 6..., not only powers of two); every document belongs to exactly one group and is
// zigzag-sharded over it (kZigzagRing), so KV only rotates inside its group:
//
//   W = 8, mean load m per worker; doc A costs 5.4m, B 1.7m, the rest are short:
//   ranks:   0 1 2 3 4 5 | 6 7 ...
//   group:   [ A, 6      ] [B,2] [c] [d e] ...   ← size 1: whole documents, no traffic
//
// The paper (seed 004, as the design summarises it): groups of any degree chosen per batch,
// documents assigned to groups, a ring inside each, by a near-optimal polynomial-time solver with
// millisecond overhead. Here:
//  1. cost c_d = forward + backward seconds of document d (attention + linear layers, the cost
//     model's whole-step pricing) and its tokens L_d;
//  2. the group sizes are solved exactly (flexdeg_sizing.h): the least step T such that every
//     document costing more than T (or longer than the cap) has a group of its own whose members'
//     compute c_d/k, KV rotation (intra- or inter-node bandwidth by whether k fits a node) and
//     tokens all fit T and the cap, within W workers; each such document gets the least such k;
//  3. the remaining workers are groups of size 1; the other documents are packed onto them (LPT
//     under the token cap), onto ring groups (least per-member load Σc/k) when that is lower, or
//     when no single worker is left or has room;
//  4. groups get contiguous ranks, largest first, first-fit into nodes so rings stay intra-node.
// Where it differs from the paper: the solver is exact for its objective, which packs the short
// documents fluidly (any solver's packing step is a bin packing, done here by LPT); a ring carries
// only its own documents' KV (no sharing of a document across groups). When the exact sizes leave
// short documents no room under a tight cap, the pre-issue-26 greedy (three slacks, then larger
// groups) is the fallback; GroupSizing::Greedy keeps it for comparison.
#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/flexdeg_sizing.h"
#include "service/planner/strategies/packing.h"

namespace fcp {
namespace {

// The greedy's slacks (the fallback, 2. above).
constexpr double kSlacks[] = {0.0, 0.25, 0.5};
// Tried only when none of kSlacks packs under the token budget: larger groups for the long
// documents hold fewer of their tokens per member, leaving room for the documents kept whole.
constexpr double kBudgetSlacks[] = {-0.5, -1, -2, -4, -8};
// At most this many single workers join the slowest ring after the exact sizing (each a repack).
constexpr int kMaxGrowths = 32;

struct Assignment {
  std::vector<int32_t> group_size;
  std::vector<int32_t> doc_group;
  double estimate = 0;  // seconds of the slowest group
  // The sizing's index of the document whose group is the slowest, -1 when that is a single.
  int32_t slowest_ring = -1;
};

class FlexDegPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "flexdeg"; }
  absl::string_view description() const override {
    return "Flexible CP: workers split into ring groups of any size per batch, each document "
           "zigzag inside one group; group sizes solved exactly, the rest LPT-packed";
  }

  int auto_order() const override { return 40; }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    const Batch& batch = ctx.batch;
    const int32_t docs = static_cast<int32_t>(batch.documents.size());
    double total = 0;
    const std::vector<double> seconds = DocumentSeconds(ctx, &total);
    const std::vector<int32_t> order = ByCostDescending(seconds);
    std::vector<SizingDoc> sorted(docs);  // read sequentially by every packing
    for (int32_t i = 0; i < docs; ++i) {
      const int64_t length = batch.documents[order[i]].length;
      sorted[i] = {order[i], length, seconds[order[i]], 3 * ctx.cost.TokenSeconds(length)};
    }
    const GroupSizing sizing(ctx.cost, batch.topology, sorted, TokenCap(batch.topology));

    absl::StatusOr<Assignment> best = absl::FailedPreconditionError("flexdeg: no assignment");
    std::vector<std::vector<int32_t>> tried;  // the sizes already packed
    auto consider = [&](absl::StatusOr<Assignment> packed) {
      if (packed.ok() && (!best.ok() || packed->estimate < best->estimate)) {
        best = std::move(packed);
      }
      if (!best.ok()) best = std::move(packed);  // keeps the first error
    };
    auto try_sizes = [&](std::vector<int32_t> sizes, double target) {
      // The same groups pack the rest the same way: nothing new to try.
      if (std::find(tried.begin(), tried.end(), sizes) != tried.end()) return;
      consider(PackRest(ctx, sizing, sizes, target));
      tried.push_back(std::move(sizes));
    };
    if (std::optional<GroupSizing::Solution> exact = sizing.Exact()) {
      std::vector<int32_t> sizes = std::move(exact->sizes);
      try_sizes(sizes, exact->objective);
      // The sizing packs the rest fluidly, but a member of a ring whose document fills its
      // compute has room for tokens only, not for their work: while a ring is the slowest group
      // and a single worker is left, it takes one more worker (a ring over k + 1 frees compute on
      // every member) as long as the packed estimate improves.
      int32_t left = batch.topology.num_workers;
      for (int32_t k : sizes) left -= k > 1 ? k : 0;
      for (int i = 0; i < kMaxGrowths && left > 0 && best.ok() && best->slowest_ring >= 0; ++i) {
        const double before = best->estimate;
        ++sizes[best->slowest_ring];
        --left;
        consider(PackRest(ctx, sizing, sizes, exact->objective));
        if (!(best->estimate < before)) break;
      }
    }
    // The greedy, as it was, only when the exact sizes leave the rest no room under the cap.
    if (!best.ok()) {
      for (double slack : kSlacks) try_sizes(sizing.Greedy(slack), HUGE_VAL);
    }
    for (size_t i = 0; i < std::size(kBudgetSlacks) && !best.ok(); ++i) {
      try_sizes(sizing.Greedy(kBudgetSlacks[i]), HUGE_VAL);
    }
    if (!best.ok()) return best.status();

    Layout layout;
    layout.kind = Layout::Kind::kZigzagRing;
    layout.strategy = "flexdeg";
    layout.groups = PlaceGroups(best->group_size, batch.topology);
    layout.doc_group = std::move(best->doc_group);
    for (int32_t d = 0; d < docs; ++d) {
      const int64_t chunks = 2 * static_cast<int64_t>(layout.groups[layout.doc_group[d]].size());
      layout.block_size =
          std::max(layout.block_size, (batch.documents[d].length + chunks - 1) / chunks);
    }
    return layout;
  }

 private:
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
    std::vector<int32_t> ring_doc;                // the sizing's index of each ring's document
    for (size_t i = 0; i < sorted.size(); ++i) {  // 2. the long documents' own groups
      if (sizes[i] < 2) continue;
      ring_doc.push_back(static_cast<int32_t>(i));
      a.doc_group[sorted[i].document] = static_cast<int32_t>(a.group_size.size());
      a.group_size.push_back(sizes[i]);
      load.push_back(sorted[i].seconds);
      linear.push_back(sorted[i].linear);
      tokens.push_back(MemberTokens(sorted[i].length, sizes[i]));
      room.push_back(static_cast<int64_t>(std::min<double>(
          static_cast<double>(cap), std::max<double>(static_cast<double>(tokens.back()),
                                                     sizing.MemberRoom(sizes[i], target)))));
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
      // The least-loaded group with room under `limit`, or -1.
      auto least_with_room = [&](const std::vector<int64_t>& limit) {
        int32_t best = -1;
        for (int32_t h = 0; h < groups; ++h) {
          if (fits(h, limit) &&
              (best < 0 || load[h] / a.group_size[h] < load[best] / a.group_size[best])) {
            best = h;
          }
        }
        return best;
      };
      int32_t g = singles ? single.ArgMin() : ring.ArgMin();
      if (singles && rings) {
        const int32_t r = ring.ArgMin();
        if ((load[r] + doc.seconds) / a.group_size[r] < load[g]) g = r;
      }
      if (!fits(g, room)) {  // full: the least-loaded group with room
        g = least_with_room(room);
        if (g < 0) g = least_with_room(std::vector<int64_t>(groups, cap));
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
    }
    // A member's linear layers, then its attention or the ring's transfers, whichever is longer
    // (the rotation hides behind attention only).
    for (int32_t g = 0; g < groups; ++g) {
      const int32_t k = a.group_size[g];
      double seconds = load[g];
      if (k > 1) {
        const double gbps = k <= batch.topology.workers_per_node ? batch.topology.intra_node_gbps
                                                                 : batch.topology.inter_node_gbps;
        const double per_round = ctx.cost.params().transfer_latency_us * 1e-6 +
                                 ctx.cost.KvBytes(tokens[g]) / (gbps * 1e9);
        const double ring = 2 * (k - 1) * per_round;  // KV forward, dKV backward
        seconds = linear[g] / k + sizing.AttentionOrRotation((load[g] - linear[g]) / k, ring);
      }
      if (seconds > a.estimate) {
        a.estimate = seconds;
        a.slowest_ring = k > 1 ? ring_doc[g] : -1;
      }
    }
    return a;
  }
};

}  // namespace

std::unique_ptr<Planner> NewFlexDegPlanner() { return std::make_unique<FlexDegPlanner>(); }

}  // namespace fcp
