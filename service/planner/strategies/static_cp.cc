// static_cp: today's practice (Megatron-LM / TransformerEngine with a fixed CP size and data
// parallelism). The CP size c is the smallest power of two whose ring member's share of the
// longest document fits the token budget; the W workers form W/c data-parallel groups of c
// consecutive ranks; the data loader packs documents into groups by tokens (largest first onto the
// group with the fewest, LPT), and inside its group every document is zigzag-sharded over the c
// members, KV rotating c-1 rounds:
//
//   W = 8, budget 4K tokens, longest document 7K tokens → c = 2 (a member holds 3.5K of it):
//   group:   [0 1] [2 3] [4 5] [6 7]      longest document → group 0, the rest by tokens
//
// If the documents do not fit the groups (a document is never split across groups, and W/c
// groups of c leave W mod c workers out), c doubles, up to one group of all W workers.
// Tokens balance well; attention does not: the straggler is the group that drew the longest
// document. This, not the W-wide ring, is the baseline a trainer would otherwise run.
#include "service/planner/strategies/static_cp.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/packing.h"

namespace fcp {
namespace {

// The tokens member m of a ring of c holds of a document of `length`: zigzag chunks m, 2c-1-m.
int64_t Share(int64_t length, int64_t c, int64_t m) {
  return ChunkBegin(length, 2 * c, m + 1) - ChunkBegin(length, 2 * c, m) +
         ChunkBegin(length, 2 * c, 2 * c - m) - ChunkBegin(length, 2 * c, 2 * c - 1 - m);
}

int64_t LargestShare(int64_t length, int64_t c) {
  int64_t largest = 0;
  for (int64_t m = 0; m < c; ++m) largest = std::max(largest, Share(length, c, m));
  return largest;
}

// The first longest document.
int32_t Longest(const Batch& batch) {
  int32_t longest = 0;
  for (int32_t d = 0; d < static_cast<int32_t>(batch.documents.size()); ++d) {
    if (batch.documents[d].length > batch.documents[longest].length) longest = d;
  }
  return longest;
}

// The smallest power of two c whose ring member's share of `length` fits `budget` (c > W is tried
// as W), or -1 when none does.
int32_t LeastCpSize(int64_t length, int32_t workers, int64_t budget) {
  int32_t c = 1;
  while (c < workers && LargestShare(length, c) > budget) c *= 2;
  return LargestShare(length, std::min(c, workers)) > budget ? -1 : c;
}

class StaticCpPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "static_cp"; }
  absl::string_view description() const override {
    return "today's practice: a static power-of-two CP size that fits the longest document, "
           "data-parallel groups packed by tokens, ring zigzag inside each group";
  }

  // auto: after the balancing strategies and dcp, before the W-wide ring (today's practice rarely
  // wins, but auto must never be slower than it).
  int auto_order() const override { return 65; }

  // Every member's compute: the queries of its zigzag chunks of each document of its group, with
  // their tokens (LayoutLowerBoundMs); the transfers its ring cannot hide only add to it. With an
  // incumbent (planner.h), the longest document's member first (O(documents)): where that
  // reaches the incumbent, the layout is not built. Else the layout (cheap: no schedule), none if
  // there is none, its members' sums stopped once one reaches the incumbent.
  double LowerBoundMs(const PlanContext& ctx) const override {
    if (ctx.incumbent_ms < HUGE_VAL) {
      const double longest = StaticCpLongestDocumentBoundMs(ctx);
      if (longest >= ctx.incumbent_ms) return longest;
    }
    absl::StatusOr<Layout> layout = MakeLayout(ctx);
    return layout.ok() ? LayoutLowerBoundMs(ctx, *layout, ctx.incumbent_ms) : 0;
  }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    const Batch& batch = ctx.batch;
    const int32_t workers = batch.topology.num_workers;
    const int64_t budget = StaticCpBudget(batch);
    const int32_t longest = Longest(batch);
    int32_t c = LeastCpSize(batch.documents[longest].length, workers, budget);
    if (c < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("static_cp: document ", longest, " (", batch.documents[longest].length,
                       " tokens) fits no CP size <= ", workers, " under the token budget of ",
                       budget, " per worker"));
    }
    for (;; c *= 2) {
      absl::StatusOr<Layout> layout =
          PackStaticCpGroups(batch, std::min(c, workers), budget, "static_cp");
      if (layout.ok() || c >= workers) return layout;
    }
  }
};

}  // namespace

int64_t StaticCpBudget(const Batch& batch) {
  // Without a budget (attention objective) the trainer still has one: its share of the tokens
  // with the topology's slack (a data loader packs to a length, it does not cut documents).
  const int64_t budget = batch.topology.max_tokens_per_worker;
  return budget > 0 ? budget : TokenBudget(batch, Objective::kWholeStep);
}

// Documents by length, largest first, each onto the group holding the fewest tokens that has room
// for its members' shares.
absl::StatusOr<Layout> PackStaticCpGroups(const Batch& batch, int32_t c, int64_t budget,
                                          absl::string_view strategy) {
  const int32_t docs = static_cast<int32_t>(batch.documents.size());
  const int32_t groups = batch.topology.num_workers / c;
  std::vector<double> lengths(docs);
  for (int32_t d = 0; d < docs; ++d) lengths[d] = static_cast<double>(batch.documents[d].length);
  std::vector<int64_t> held(static_cast<size_t>(groups) * c, 0);  // per (group, member)
  std::vector<int64_t> group_tokens(groups, 0), share(c);
  MinTree fewest(groups);
  Layout layout;
  layout.kind = Layout::Kind::kZigzagRing;
  layout.strategy = std::string(strategy);
  layout.doc_group.assign(docs, -1);
  for (int32_t d : ByCostDescending(lengths)) {
    const int64_t length = batch.documents[d].length;
    for (int32_t m = 0; m < c; ++m) share[m] = Share(length, c, m);
    auto fits = [&](int32_t g) {
      for (int32_t m = 0; m < c; ++m) {
        if (held[static_cast<size_t>(g) * c + m] + share[m] > budget) return false;
      }
      return true;
    };
    int32_t g = fewest.ArgMin();
    if (!fits(g)) {  // rounding: another group's members may still have room
      g = -1;
      for (int32_t h = 0; h < groups && g < 0; ++h) {
        if (fits(h)) g = h;
      }
      if (g < 0) {
        return absl::FailedPreconditionError(
            absl::StrCat(strategy, ": document ", d, " (", length, " tokens) fits in no group of ",
                         c, " under the token budget of ", budget, " per worker"));
      }
    }
    for (int32_t m = 0; m < c; ++m) held[static_cast<size_t>(g) * c + m] += share[m];
    layout.doc_group[d] = g;
    group_tokens[g] += length;
    fewest.Set(g, static_cast<double>(group_tokens[g]));
    layout.block_size = std::max(layout.block_size, (length + 2 * c - 1) / (2 * c));
  }
  layout.groups = PlaceGroups(std::vector<int32_t>(groups, c), batch.topology);
  return layout;
}

bool StaticCpSurelyPacks(const Batch& batch, int32_t c, int64_t budget) {
  const int64_t groups = batch.topology.num_workers / c;
  const int64_t docs = static_cast<int64_t>(batch.documents.size());
  if (groups <= 0 || docs == 0) return groups > 0;
  using Wide = __int128;  // (workers × budget need not fit 64 bits)
  // The most share of a document of `length` (2·ceil(L/2c)), and the room left for it when the
  // groups hold `placed` tokens (the condition above, failing when negative).
  auto share = [&](int64_t length) { return 2 * ((length + 2 * c - 1) / (2 * c)); };
  const Wide slack = Wide{docs - 1} * (2 * c - 1);
  auto room = [&](int64_t length, Wide placed) {
    return Wide{groups} * c * (Wide{budget} - share(length)) - placed - slack;
  };
  int64_t tokens = 0;
  for (const Document& doc : batch.documents) tokens += doc.length;
  const Wide total = tokens;
  // The documents that fail with every other document placed before them: from the shortest of
  // them on, every document no shorter is summed in order. (A share is at most L/c + 2, so a
  // document's room is at least A − (G − 1)·L, A = G·c·(budget − 2) − total − slack: none of
  // length up to A / (G − 1) fails, and those are passed over without the wide arithmetic.)
  const Wide least_room = Wide{groups} * c * (Wide{budget} - 2) - total - slack;
  Wide safe = -1;  // lengths up to `safe` cannot fail
  if (least_room >= 0) safe = groups > 1 ? least_room / (groups - 1) : total;
  const int64_t passed = safe >= std::numeric_limits<int64_t>::max()
                             ? std::numeric_limits<int64_t>::max()
                             : static_cast<int64_t>(safe);
  int64_t shortest = -1;
  for (const Document& doc : batch.documents) {
    if (doc.length <= passed) continue;
    if (room(doc.length, total - doc.length) < 0 && (shortest < 0 || doc.length < shortest)) {
      shortest = doc.length;
    }
  }
  if (shortest < 0) return true;
  std::vector<int64_t> longer;
  for (const Document& doc : batch.documents) {
    if (doc.length >= shortest) longer.push_back(doc.length);
  }
  std::sort(longer.begin(), longer.end(), std::greater<int64_t>());
  // Before a document: at most the tokens of every other document as long or longer (whatever
  // the order among equals).
  Wide before = 0;
  for (size_t i = 0; i < longer.size();) {
    size_t j = i;
    Wide equal = 0;
    for (; j < longer.size() && longer[j] == longer[i]; ++j) equal += longer[j];
    if (room(longer[i], before + equal - longer[i]) < 0) return false;
    before += equal;
    i = j;
  }
  return true;
}

namespace {

// The most seconds a member of a group of c computes of `doc` (QueryRangeLowerBoundSeconds of its
// two zigzag chunks, m and 2c − 1 − m, summed in LayoutLowerBoundMs's order).
double LongestMemberSeconds(const PlanContext& ctx, const Document& doc, int64_t c) {
  const bool backward = ctx.options.include_backward;
  double most = 0;
  for (int64_t m = 0; m < c; ++m) {
    double seconds = 0;
    for (int64_t chunk : {m, 2 * c - 1 - m}) {
      const int64_t begin = ChunkBegin(doc.length, 2 * c, chunk);
      const int64_t end = ChunkBegin(doc.length, 2 * c, chunk + 1);
      if (begin < end) seconds += QueryRangeLowerBoundSeconds(ctx.cost, doc, begin, end, backward);
    }
    most = std::max(most, seconds);
  }
  return most;
}

}  // namespace

double StaticCpLongestDocumentBoundMs(const PlanContext& ctx) {
  const Batch& batch = ctx.batch;
  const int32_t workers = batch.topology.num_workers;
  if (batch.documents.empty() || workers <= 0) return 0;
  const int64_t budget = StaticCpBudget(batch);
  const Document& doc = batch.documents[Longest(batch)];
  const int32_t first = LeastCpSize(doc.length, workers, budget);
  if (first < 0) return 0;
  // The layout tries first, 2·first, ... (the last W) and keeps the first size that packs: up to
  // one that surely packs, the least of their members' bounds.
  double least = HUGE_VAL;
  for (int32_t c = first;; c *= 2) {
    const int32_t size = std::min(c, workers);
    least = std::min(least, LongestMemberSeconds(ctx, doc, size));
    if (least * 1e3 < ctx.incumbent_ms && ctx.incumbent_ms < HUGE_VAL) return 0;
    if (StaticCpSurelyPacks(batch, size, budget)) return least * 1e3;
    if (c >= workers) return 0;
  }
}

std::unique_ptr<Planner> NewStaticCpPlanner() { return std::make_unique<StaticCpPlanner>(); }

}  // namespace fcp
