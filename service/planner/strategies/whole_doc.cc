// whole_doc: plain packing. Whole documents are bin-packed onto workers by attention cost with the
// LPT rule (largest first, onto the least-loaded worker), so no KV ever moves:
//
//   docs by cost:  [AAAAAAAA] [BBBBB] [CCC] [DD] [E] [F]
//   worker 0:      AAAAAAAA
//   worker 1:      BBBBB CCC
//   worker 2:      DD E F ...
//
// One long document can still overload a worker (its cost is indivisible). A document longer than
// the memory cap is cut into cap-sized pieces, and a piece that fits nowhere is spread over the
// workers with the most room; those pieces exchange KV like any block.
#include <algorithm>
#include <memory>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/plan_size.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/block_units.h"
#include "service/planner/strategies/packing.h"
#include "service/planner/strategies/plan_memo.h"

namespace fcp {
namespace {

struct Piece {
  int32_t document;
  int64_t begin, end;
  double seconds;
};

// What MakeLayout packs by: piece i of `doc` cut at `bounds`, forward + backward attention and
// linear layers.
double PieceSeconds(const PlanContext& ctx, const Document& doc, const std::vector<int64_t>& bounds,
                    size_t i) {
  return QueryRangeSeconds(ctx.cost, doc, bounds[i], bounds[i + 1], bounds) +
         ctx.cost.TokenSeconds(bounds[i + 1] - bounds[i]) * 3;
}

// The pieces of `doc` under `cap`: SplitEvenly(length, min(cap, length)) into `bounds`, whose
// storage is reused from one document to the next.
void CutAtCap(const Document& doc, int64_t cap, std::vector<int64_t>* bounds) {
  const int64_t block = std::min(cap, doc.length);
  const int64_t pieces = (doc.length + block - 1) / block;
  bounds->resize(pieces + 1);
  for (int64_t i = 0; i <= pieces; ++i) (*bounds)[i] = ChunkBegin(doc.length, pieces, i);
}

// PieceSeconds of every piece of ctx.batch's documents, in document and position order, to `fn`
// (document, begin, end, seconds). A document within the cap is one piece, whose PieceSeconds is
// its DocumentSeconds bit for bit (one tile, the same terms in the same order: every mask allows
// the diagonal, so the tile has pairs): those come from SharedDocCosts, computed once under auto.
template <typename Fn>
void ForEachPiece(const PlanContext& ctx, int64_t cap, Fn fn) {
  const std::shared_ptr<const DocCosts> costs = SharedDocCosts(ctx);
  std::vector<int64_t> bounds;
  for (int32_t d = 0; d < static_cast<int32_t>(ctx.batch.documents.size()); ++d) {
    const Document& doc = ctx.batch.documents[d];
    if (doc.length <= cap) {
      fn(d, int64_t{0}, doc.length, costs->seconds[d]);
      continue;
    }
    CutAtCap(doc, cap, &bounds);
    for (size_t i = 0; i + 1 < bounds.size(); ++i) {
      fn(d, bounds[i], bounds[i + 1], PieceSeconds(ctx, doc, bounds, i));
    }
  }
}

class WholeDocPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "whole_doc"; }
  absl::string_view description() const override {
    return "whole documents bin-packed by attention cost (LPT); no communication unless a "
           "document exceeds the memory cap";
  }

  int auto_order() const override { return 50; }
  // The piece it places first (the costliest by its own estimate, onto an empty worker, so
  // whole): that worker computes all of it. Without a token budget pieces are whole documents.
  double LowerBoundMs(const PlanContext& ctx) const override {
    const Batch& batch = ctx.batch;
    const int64_t cap = TokenCap(batch.topology);
    double first_seconds = -1;
    int32_t first_doc = -1;
    int64_t first_begin = 0, first_end = 0;
    ForEachPiece(ctx, cap, [&](int32_t d, int64_t begin, int64_t end, double seconds) {
      if (seconds > first_seconds) {  // the first of equals, as MakeLayout's stable sort
        first_seconds = seconds;
        first_doc = d;
        first_begin = begin;
        first_end = end;
      }
    });
    if (first_doc < 0) return 0;
    return QueryRangeLowerBoundSeconds(ctx.cost, batch.documents[first_doc], first_begin, first_end,
                                       ctx.options.include_backward) *
           1e3;
  }
  // Exactly the transfers its plan makes: none, or those of the documents cut under the cap.
  PlanningCost EstimatePlanningCost(const PlanContext& ctx) const override {
    return {static_cast<double>(MinimumTransfers(name(), ctx.batch, 0)), 0};
  }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    const Batch& batch = ctx.batch;
    const int32_t workers = batch.topology.num_workers;
    const int64_t cap = TokenCap(batch.topology);
    std::vector<Piece> pieces;
    ForEachPiece(ctx, cap, [&](int32_t d, int64_t begin, int64_t end, double seconds) {
      pieces.push_back({d, begin, end, seconds});
    });
    std::stable_sort(pieces.begin(), pieces.end(),
                     [](const Piece& a, const Piece& b) { return a.seconds > b.seconds; });
    std::vector<double> load(workers, 0);
    std::vector<int64_t> tokens(workers, 0);
    Layout layout;
    layout.kind = Layout::Kind::kDirect;
    layout.strategy = "whole_doc";
    MinTree least_loaded(workers);
    RoomTree room(workers);
    for (const Piece& p : pieces) {
      int32_t best = least_loaded.ArgMin();
      if (tokens[best] + (p.end - p.begin) > cap) {  // full: the least-loaded worker with room
        best = room.LeastLoadedWithRoom(cap - (p.end - p.begin));
      }
      if (best >= 0) {
        layout.blocks.push_back({p.document, p.begin, p.end, best});
        load[best] += p.seconds;
        tokens[best] += p.end - p.begin;
        least_loaded.Set(best, load[best]);
        room.Set(best, load[best], tokens[best]);
        continue;
      }
      // Fits nowhere whole: spread it over the workers with the most room.
      std::vector<int32_t> order(workers);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int32_t a, int32_t b) { return tokens[a] < tokens[b]; });
      int64_t at = p.begin;
      for (int32_t w : order) {
        const int64_t take = std::min(p.end - at, cap - tokens[w]);
        if (take <= 0) continue;
        layout.blocks.push_back({p.document, at, at + take, w});
        load[w] += p.seconds * take / (p.end - p.begin);
        tokens[w] += take;
        least_loaded.Set(w, load[w]);
        room.Set(w, load[w], tokens[w]);
        at += take;
        if (at == p.end) break;
      }
      if (at != p.end) {
        return absl::InvalidArgumentError(
            absl::StrCat("whole_doc: document ", p.document, " (", p.end - p.begin,
                         " tokens) does not fit under the token budget of ", cap, " per worker"));
      }
    }
    SortByPosition(&layout.blocks);
    for (const Block& b : layout.blocks)
      layout.block_size = std::max(layout.block_size, b.tokens());
    return layout;
  }
};

}  // namespace

std::unique_ptr<Planner> NewWholeDocPlanner() { return std::make_unique<WholeDocPlanner>(); }

}  // namespace fcp
