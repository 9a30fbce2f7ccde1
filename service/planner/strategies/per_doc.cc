// per_doc: TransformerEngine's packed (THD) context parallelism, sharded per document. Each
// document gets its own degree k = clamp(length / shard, 1, W) (more if a member's share would
// not fit the token budget; shard: PerDocShardTokens, two automatic blocks unless the options set
// block_size), is cut into 2k chunks placed zigzag on the k least-loaded
// workers, and KV goes only to the workers whose chunks need it:
//
//   doc A (long, k = 4):  chunk 0 1 2 3 4 5 6 7  → workers {1, 2, 5, 6}: 1 2 5 6 6 5 2 1
//   doc B (k = 2):        chunk 0 1 2 3          → workers {0, 3}:       0 3 3 0
//   doc C (short, k = 1): whole                  → worker 4
//
// Documents go largest first (by cost: attention + linear layers), each onto the currently
// least-loaded workers with room under the token budget.
#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/plan_size.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/packing.h"
#include "service/planner/strategies/plan_memo.h"
#include "service/planner/strategies/room_queue.h"

namespace fcp {
namespace {

// Documents by cost, largest first, ties by index: the order of a stable sort on the exact costs.
// `by_cost` (ByCostDescending's order) orders by the costs' top bits; runs that share them (equal
// or nearly equal costs) are then put in exact order, those not already in it (most runs are of
// equal costs) by a stable sort.
std::vector<int32_t> ByCostExactlyDescending(const std::vector<double>& seconds,
                                             std::vector<int32_t> order) {
  // Most batches: already exact (costs that never rise along the order; equal ones by index).
  size_t rising = 1;
  while (rising < order.size() && seconds[order[rising]] <= seconds[order[rising - 1]]) ++rising;
  if (rising >= order.size()) return order;
  const int index_bits = IndexBits(seconds.size());
  auto top_bits = [&](int32_t d) {
    uint64_t bits;
    std::memcpy(&bits, &seconds[d], sizeof bits);
    return bits >> index_bits;
  };
  auto exactly_before = [&](int32_t a, int32_t b) { return seconds[a] > seconds[b]; };
  for (size_t i = 0; i < order.size();) {
    size_t end = i + 1;
    bool sorted = true;
    for (; end < order.size() && top_bits(order[end]) == top_bits(order[i]); ++end) {
      sorted &= !exactly_before(order[end], order[end - 1]);
    }
    if (!sorted) std::stable_sort(order.begin() + i, order.begin() + end, exactly_before);
    i = end;
  }
  return order;
}

// The best worker under `better` (a strict order), by a scan.
template <typename Better>
int32_t BestOf(int32_t workers, Better better) {
  int32_t best = 0;
  for (int32_t w = 1; w < workers; ++w) {
    if (better(w, best)) best = w;
  }
  return best;
}

// Places documents onto workers, each whole or zigzag-sharded, into a layout's blocks (document
// d's blocks from next[d] on, in (document, begin) order).
class DocPlacer {
 public:
  DocPlacer(const PlanContext& ctx, int64_t cap, std::vector<int32_t>* next, Layout* layout)
      : ctx_(ctx),
        workers_(ctx.batch.topology.num_workers),
        cap_(cap),
        load_(workers_, 0),
        tokens_(workers_, 0),
        least_loaded_(workers_),
        room_(workers_),
        next_(next->data()),
        blocks_(layout->blocks.data()) {}

  // Whole, on the least-loaded worker with room (most documents).
  void Whole(int32_t d, int64_t length, double seconds) {
    int32_t w = LeastLoaded();
    if (tokens_[w] + length > cap_) {
      w = room_.LeastLoadedWithRoom(cap_ - length);
      if (w < 0) w = BestOf(workers_, Better{this, length});  // no room anywhere: the least loaded
    }
    blocks_[next_[d]++] = {d, 0, length, w};
    Put(w, length, seconds);
  }
  // Zigzag: 2k chunks on the k least-loaded workers with room for a share.
  void Sharded(int32_t d, int64_t k);

 private:
  // The least-loaded worker (MinTree's order), its key refreshed only when it reaches the front
  // (loads only grow).
  int32_t LeastLoaded() {
    return least_loaded_.ArgMinDeferred([this](int32_t w) { return load_[w]; });
  }
  void Put(int32_t w, int64_t n, double seconds) {
    load_[w] += seconds;
    tokens_[w] += n;
    room_.Set(w, load_[w], tokens_[w]);
  }
  // The order of workers for a share: those with room for it first, then by load, then by rank.
  struct Better {
    bool operator()(int32_t a, int32_t b) const {
      const bool fa = p->tokens_[a] + share <= p->cap_, fb = p->tokens_[b] + share <= p->cap_;
      if (fa != fb) return fa;
      return p->load_[a] != p->load_[b] ? p->load_[a] < p->load_[b] : a < b;
    }
    const DocPlacer* p;
    int64_t share;
  };

  const PlanContext& ctx_;
  const int32_t workers_;
  const int64_t cap_;
  std::vector<double> load_;
  std::vector<int64_t> tokens_;
  MinTree least_loaded_;
  RoomQueue room_;  // the exact Better among workers with room
  int32_t* const next_;
  Block* const blocks_;
  // Scratch.
  std::vector<int32_t> ranks_, members_;
  std::vector<int64_t> bounds_;
};

void DocPlacer::Sharded(int32_t d, int64_t k) {
  const Document& doc = ctx_.batch.documents[d];
  const int64_t share = (doc.length + k - 1) / k;
  bounds_.resize(2 * k + 1);
  for (int64_t c = 0; c <= 2 * k; ++c) bounds_[c] = ChunkBegin(doc.length, 2 * k, c);
  // The k best under Better: the k lightest with room, else (near the end) a partial sort.
  members_.clear();
  while (static_cast<int64_t>(members_.size()) < k) {
    const int32_t w = room_.LeastLoadedWithRoom(cap_ - share);
    if (w < 0) break;
    members_.push_back(w);
    room_.Hide(w);
  }
  for (int32_t w : members_) room_.Set(w, load_[w], tokens_[w]);
  if (static_cast<int64_t>(members_.size()) < k) {
    ranks_.resize(workers_);
    std::iota(ranks_.begin(), ranks_.end(), 0);
    std::nth_element(ranks_.begin(), ranks_.begin() + (k - 1), ranks_.end(), Better{this, share});
    members_.assign(ranks_.begin(), ranks_.begin() + k);
  }
  std::sort(members_.begin(), members_.end());
  for (int64_t c = 0; c < 2 * k; ++c) {
    if (bounds_[c] == bounds_[c + 1]) continue;
    const int32_t w = members_[c < k ? c : 2 * k - 1 - c];
    blocks_[next_[d]++] = {d, bounds_[c], bounds_[c + 1], w};
    Put(w, bounds_[c + 1] - bounds_[c],
        QueryRangeSeconds(ctx_.cost, doc, bounds_[c], bounds_[c + 1], bounds_) +
            3 * ctx_.cost.TokenSeconds(bounds_[c + 1] - bounds_[c]));
  }
}

class PerDocPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "per_doc"; }
  absl::string_view description() const override {
    return "TE THD-style: each document zigzag-sharded over only as many ranks as its length "
           "needs; KV sent only where needed";
  }

  // auto: tried first. Its plans are among the best and the cheapest to make, and the best plan
  // so far lets auto skip scheduling the later candidates' layouts that cannot beat it.
  int auto_order() const override { return 10; }
  // Exactly the transfers its plan makes (plan_size.h).
  PlanningCost EstimatePlanningCost(const PlanContext& ctx) const override {
    return {static_cast<double>(MinimumTransfers(name(), ctx.batch, ctx.options.block_size)), 0};
  }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    const Batch& batch = ctx.batch;
    const int32_t workers = batch.topology.num_workers;
    const int64_t block = PerDocShardTokens(batch, ctx.options.block_size);
    const int64_t cap = TokenCap(batch.topology);
    const int32_t docs = static_cast<int32_t>(batch.documents.size());
    // The documents' costs (under auto, computed once for all its candidates).
    const std::shared_ptr<const DocCosts> costs = SharedDocCosts(ctx);
    const std::vector<double>& doc_seconds = costs->seconds;
    const std::vector<int32_t> order = ByCostExactlyDescending(doc_seconds, costs->by_cost);

    Layout layout;
    layout.kind = Layout::Kind::kDirect;
    layout.strategy = "per_doc";
    layout.block_size = block;
    // Each document's degree (its length's alone) and where its blocks go: blocks are written
    // in (document, begin) order as they are placed.
    std::vector<int32_t> degree(docs), next(docs);
    int32_t num_blocks = 0;
    for (int32_t d = 0; d < docs; ++d) {
      const int64_t length = batch.documents[d].length;
      if (length < block && length <= cap) {  // most documents: whole
        degree[d] = 1;
        next[d] = num_blocks++;
        continue;
      }
      int64_t k = length < block ? 1 : std::clamp<int64_t>(length / block, 1, workers);
      while (k < workers && MemberTokens(length, k) > cap) ++k;  // a share must fit the budget
      degree[d] = static_cast<int32_t>(k);
      next[d] = num_blocks;
      if (k == 1) {
        ++num_blocks;
        continue;
      }
      for (int64_t c = 0; c < 2 * k; ++c) {
        num_blocks += ChunkBegin(length, 2 * k, c) != ChunkBegin(length, 2 * k, c + 1);
      }
    }
    layout.blocks.resize(num_blocks);
    DocPlacer placer(ctx, cap, &next, &layout);
    const Document* const documents = batch.documents.data();
    for (size_t i = 0; i < order.size(); ++i) {
      // Documents come by cost, scattered over the batch: fetch a few ahead.
      constexpr size_t kAhead = 8;
      if (i + kAhead < order.size()) {
        const int32_t ahead = order[i + kAhead];
        __builtin_prefetch(&documents[ahead]);
        __builtin_prefetch(&degree[ahead]);
        __builtin_prefetch(&next[ahead]);
        __builtin_prefetch(&doc_seconds[ahead]);
      }
      const int32_t d = order[i];
      if (degree[d] == 1) {
        placer.Whole(d, documents[d].length, doc_seconds[d]);
      } else {
        placer.Sharded(d, degree[d]);
      }
    }
    // Zigzag shares need k workers with room each; near the end of the packing there may be
    // fewer: cut what is over the budget.
    if (absl::Status s = FitTokenBudget(workers, cap, &layout.blocks); !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("per_doc: ", s.message()));
    }
    return layout;
  }
};

}  // namespace

std::unique_ptr<Planner> NewPerDocPlanner() { return std::make_unique<PerDocPlanner>(); }

}  // namespace fcp
