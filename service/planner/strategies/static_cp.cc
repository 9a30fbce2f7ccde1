// static_cp: today's practice (Megatron-LM / TransformerEngine with a fixed CP size and data
// parallelism). The CP size c is the smallest power of two whose ring member's share of the
// longest document fits the token budget; the W workers form W/c data-parallel groups of c
// consecutive ranks; the data loader packs documents into groups by tokens (largest first onto the
// group with the fewest, LPT), and inside its group every document is zigzag-sharded over the c
// members, KV rotating c-1 rounds:
//
//   W = 8, budget 4K tokens, longest document 7K tokens → c = 2 (a member holds ≤ 3.5K of it):
//   group:   [0 1] [2 3] [4 5] [6 7]      longest document → group 0, the rest by tokens
//
// Tokens balance well; attention does not: the straggler is the group that drew the longest
// document. This, not the W-wide ring, is the baseline a trainer would otherwise run.
#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/packing.h"

namespace fcp {
namespace {

class StaticCpPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "static_cp"; }
  absl::string_view description() const override {
    return "today's practice: a static power-of-two CP size that fits the longest document, "
           "data-parallel groups packed by tokens, ring zigzag inside each group";
  }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    const Batch& batch = ctx.batch;
    const int32_t workers = batch.topology.num_workers;
    const int32_t docs = static_cast<int32_t>(batch.documents.size());
    // Without a budget (attention objective), the trainer's share: the mean tokens per worker.
    int64_t budget = batch.topology.max_tokens_per_worker;
    if (budget <= 0) budget = (batch.TotalTokens() + workers - 1) / workers;
    std::vector<double> lengths(docs);
    int32_t longest = 0;
    for (int32_t d = 0; d < docs; ++d) {
      lengths[d] = static_cast<double>(batch.documents[d].length);
      if (batch.documents[d].length > batch.documents[longest].length) longest = d;
    }
    const int64_t longest_length = batch.documents[longest].length;
    int32_t c = 1;
    while (c < workers && MemberTokens(longest_length, c) > budget) c *= 2;
    c = std::min(c, workers);
    if (MemberTokens(longest_length, c) > budget) {
      return absl::FailedPreconditionError(absl::StrCat(
          "static_cp: document ", longest, " (", longest_length, " tokens) fits no CP size <= ",
          workers, " under the token budget of ", budget, " per worker"));
    }
    const int32_t groups = workers / c;
    std::vector<int64_t> tokens(groups, 0);  // per member, upper bound
    MinTree fewest(groups);
    Layout layout;
    layout.kind = Layout::Kind::kZigzagRing;
    layout.strategy = "static_cp";
    layout.doc_group.assign(docs, -1);
    for (int32_t d : ByCostDescending(lengths)) {
      const int64_t share = MemberTokens(batch.documents[d].length, c);
      int32_t g = fewest.ArgMin();
      if (tokens[g] + share > budget) {
        return absl::FailedPreconditionError(
            absl::StrCat("static_cp: document ", d, " (", batch.documents[d].length,
                         " tokens) fits in no group of ", c, " under the token budget of ", budget,
                         " per worker"));
      }
      layout.doc_group[d] = g;
      tokens[g] += share;
      fewest.Set(g, static_cast<double>(tokens[g]));
      layout.block_size =
          std::max(layout.block_size, (batch.documents[d].length + 2 * c - 1) / (2 * c));
    }
    layout.groups = PlaceGroups(std::vector<int32_t>(groups, c), batch.topology);
    return layout;
  }
};

}  // namespace

std::unique_ptr<Planner> NewStaticCpPlanner() { return std::make_unique<StaticCpPlanner>(); }

}  // namespace fcp
