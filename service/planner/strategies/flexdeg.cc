// flexdeg: Flexible Context Parallelism. Per batch, the workers are split into ring groups of any
// size (3, 5, 6..., not only powers of two); every document belongs to exactly one group and is
// zigzag-sharded over it (kZigzagRing), so KV only rotates inside its group:
//
//   W = 8, mean load m per worker; doc A costs 5.4m, B 1.7m, the rest are short (slack 0.5):
//   ranks:   0 1 2 3 4 | 5 6 | 7
//   group:   [ A, 5    ] [B,2] [c d e ...]   ← size 1: whole documents, no traffic
//
// Algorithm (polynomial, O(D log D + D log G + G·nodes)):
//  1. cost c_d = forward + backward seconds of document d; m = Σc / W;
//  2. documents by cost, descending: a document wanting k = ceil(c_d/m − slack) ≥ 2 workers (or
//     more for the memory cap) gets its own group of k while workers remain;
//  3. the remaining workers are groups of size 1; the other documents are packed onto them (LPT
//     under the token cap), onto ring groups (least per-member load Σc/k) only when no single
//     worker is left or has room;
//  4. a few slacks are tried; the one with the lowest estimated step (compute per member, or the
//     ring's transfers when they cannot be hidden) wins;
//  5. groups get contiguous ranks, largest first, first-fit into nodes so rings stay intra-node.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/packing.h"

namespace fcp {
namespace {

constexpr double kSlacks[] = {0.0, 0.25, 0.5};
// Tried only when none of kSlacks packs under the token budget: larger groups for the long
// documents hold fewer of their tokens per member, leaving room for the documents kept whole.
constexpr double kBudgetSlacks[] = {-0.5, -1, -2, -4, -8};

// The smallest group size whose members can hold `length` under `cap` (> workers: none can).
int64_t GroupSizeForCap(int64_t length, int64_t cap, int32_t workers) {
  if (length <= cap) return 1;
  if (cap < 2) return workers + 1;
  const int64_t half = cap / 2;
  return (length + 2 * half - 1) / (2 * half);
}

struct SortedDoc {
  int32_t document;
  int64_t length;
  double seconds;
};

struct Assignment {
  std::vector<int32_t> group_size;
  std::vector<int32_t> doc_group;
  double estimate = 0;  // seconds of the slowest group
};

class FlexDegPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "flexdeg"; }
  absl::string_view description() const override {
    return "Flexible CP: workers split into ring groups of any size per batch, each document "
           "zigzag inside one group; greedy group sizing + best-fit packing";
  }

  int auto_order() const override { return 40; }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    const Batch& batch = ctx.batch;
    const int32_t docs = static_cast<int32_t>(batch.documents.size());
    double total = 0;
    const std::vector<double> seconds = DocumentSeconds(ctx, &total);
    const std::vector<int32_t> order = ByCostDescending(seconds);
    const double mean = total / batch.topology.num_workers;

    std::vector<SortedDoc> sorted(docs);  // read sequentially by every slack's packing
    for (int32_t i = 0; i < docs; ++i) {
      sorted[i] = {order[i], batch.documents[order[i]].length, seconds[order[i]]};
    }
    absl::StatusOr<Assignment> best = absl::FailedPreconditionError("flexdeg: no assignment");
    std::vector<Assignment> tried;  // long-document groups of the slacks already tried
    auto try_slack = [&](double slack) {
      Assignment a = LongGroups(ctx, order, seconds, mean, slack);
      // A slack that forms the same groups packs the rest the same way: nothing new to try.
      const bool seen = std::any_of(tried.begin(), tried.end(), [&](const Assignment& t) {
        return t.group_size == a.group_size && t.doc_group == a.doc_group;
      });
      if (seen) return;
      tried.push_back(a);
      absl::StatusOr<Assignment> packed = PackRest(ctx, order, seconds, sorted, std::move(a));
      if (packed.ok() && (!best.ok() || packed->estimate < best->estimate)) {
        best = std::move(packed);
      }
      if (!best.ok()) best = std::move(packed);  // keeps the first error
    };
    for (double slack : kSlacks) try_slack(slack);
    for (size_t i = 0; i < std::size(kBudgetSlacks) && !best.ok(); ++i) try_slack(kBudgetSlacks[i]);
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
  // 2. Long documents get their own group (the other documents' doc_group stays -1).
  static Assignment LongGroups(const PlanContext& ctx, const std::vector<int32_t>& order,
                               const std::vector<double>& seconds, double mean, double slack) {
    const Batch& batch = ctx.batch;
    const int32_t workers = batch.topology.num_workers;
    const int64_t cap = TokenCap(batch.topology);
    Assignment a;
    a.doc_group.assign(batch.documents.size(), -1);
    int32_t left = workers;
    for (int32_t d : order) {
      const int64_t length = batch.documents[d].length;
      const double share = mean > 0 ? seconds[d] / mean : 0;
      // Costs descend: once a document wants fewer than two workers, so do all the rest, unless
      // a memory cap forces groups on documents longer than it.
      if (share - slack <= 1 && cap == TokenCap(Topology{})) break;
      int64_t want = static_cast<int64_t>(std::ceil(share - slack - 1e-9));
      want = std::max(want, GroupSizeForCap(length, cap, workers));
      const int64_t k = std::min<int64_t>(want, left);
      if (k < 2 || MemberTokens(length, k) > cap) continue;
      a.doc_group[d] = static_cast<int32_t>(a.group_size.size());
      a.group_size.push_back(static_cast<int32_t>(k));
      left -= static_cast<int32_t>(k);
    }
    return a;
  }

  // 3.-4. The rest onto single workers (or groups), and the estimate.
  // `sorted`: the documents in `order`, with their lengths and costs side by side.
  static absl::StatusOr<Assignment> PackRest(const PlanContext& ctx,
                                             const std::vector<int32_t>& order,
                                             const std::vector<double>& seconds,
                                             const std::vector<SortedDoc>& sorted, Assignment a) {
    const Batch& batch = ctx.batch;
    const int64_t cap = TokenCap(batch.topology);
    std::vector<double> load;
    std::vector<int64_t> tokens;  // per member, upper bound
    int32_t left = batch.topology.num_workers;
    for (int32_t d : order) {
      const int32_t g = a.doc_group[d];
      if (g < 0) continue;
      if (g >= static_cast<int32_t>(load.size())) {
        load.resize(g + 1, 0);
        tokens.resize(g + 1, 0);
      }
      load[g] = seconds[d];
      tokens[g] = MemberTokens(batch.documents[d].length, a.group_size[g]);
      left -= a.group_size[g];
    }
    const int32_t left_before_singles = left;
    for (; left > 0; --left) {  // 3. the rest are single workers
      a.group_size.push_back(1);
      load.push_back(0);
      tokens.push_back(0);
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
    for (const SortedDoc& doc : sorted) {
      const int32_t d = doc.document;
      if (a.doc_group[d] >= 0) continue;
      const int64_t length = doc.length;
      auto fits = [&](int32_t g) {
        return tokens[g] + MemberTokens(length, a.group_size[g]) <= cap;
      };
      int32_t g = singles ? single.ArgMin() : ring.ArgMin();
      if (singles && rings) {
        const int32_t r = ring.ArgMin();
        if ((load[r] + doc.seconds) / a.group_size[r] < load[g]) g = r;
      }
      if (!fits(g)) {  // full: the least-loaded group with room
        g = -1;
        for (int32_t h = 0; h < groups; ++h) {
          if (fits(h) && (g < 0 || load[h] / a.group_size[h] < load[g] / a.group_size[g])) g = h;
        }
        if (g < 0) {
          return absl::FailedPreconditionError(absl::StrCat(
              "flexdeg: document ", d, " (", length,
              " tokens) fits in no group under the token budget of ", cap, " per worker"));
        }
      }
      a.doc_group[d] = g;
      load[g] += doc.seconds;
      tokens[g] += MemberTokens(length, a.group_size[g]);
      update(g);
    }
    for (int32_t g = 0; g < groups; ++g) {  // 4. compute, or the ring's unhidden transfers
      const int32_t k = a.group_size[g];
      const double compute = load[g] / k;
      double ring = 0;
      if (k > 1) {
        const double gbps = k <= batch.topology.workers_per_node ? batch.topology.intra_node_gbps
                                                                 : batch.topology.inter_node_gbps;
        const double per_round = ctx.cost.params().transfer_latency_us * 1e-6 +
                                 ctx.cost.KvBytes(tokens[g]) / (gbps * 1e9);
        ring = 2 * (k - 1) * per_round;  // KV forward, dKV backward
      }
      a.estimate = std::max(a.estimate, std::max(compute, ring));
    }
    return a;
  }
};

}  // namespace

std::unique_ptr<Planner> NewFlexDegPlanner() { return std::make_unique<FlexDegPlanner>(); }

}  // namespace fcp
