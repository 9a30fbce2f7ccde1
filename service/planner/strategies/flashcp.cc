// flashcp: FlashCP's hybrid. Documents above a length threshold are sharded per document (zigzag
// over as few ranks as balance needs); the rest are placed whole (LPT, no traffic). The threshold
// is searched per batch: a few candidates (documents costing more than 1, 1/2, 1/4 of a worker's
// mean load are long, or none), each placed and estimated, the lowest estimated step time wins.
//
//   threshold t:       short (≤ t): whole           long (> t): k = ceil(cost / mean) ranks
//   doc A (long, k=3): chunk 0 1 2 3 4 5 → ranks {0, 2, 5}: 0 2 5 5 2 0
//   doc B, C, D ...:   whole, each onto the least-loaded rank
//
//   rank 0: A0 A5 [c]   rank 2: A1 A4 [b]   rank 5: A2 A3   rank 1: [d] [e] ...
//
// Shard-aware communication comes from the kDirect layout: a rank receives only the KV blocks its
// own q-blocks attend to (causal: only earlier chunks), each once, never a ring's worth.
//
// The paper (seed 003, as the design summarises it): short documents whole, long ones per
// document, a heuristic search over the split, shard-aware KV sends. Decisions here use the cost
// model throughout (issue 26): a document's cost is its attention tiles plus its linear layers
// (whole-step objective), each shard's share is priced by its own tiles, and a candidate's
// estimate is every worker's compute or its receives, whichever is longer, where a receive from
// a member on another node is priced at the inter-node rate and one inside the node at NVLink's
// (CostModel::TransferSeconds, latency included). A long document's k members are taken inside
// one node when k fits a node and that is no slower than the k least-loaded workers anywhere.
// Under a token cap (the whole-step budget), the short documents' tokens that the workers outside
// the groups cannot hold land on the members: each threshold is also tried with groups sized to
// leave room for them (k = ceil(cost / (fill · mean)), Fill below; the idea fcp's "grouped"
// shape had, moved here when fcp became block packing alone), the lower estimate winning.
// Where it differs: the threshold candidates are a fixed few (the paper's search is not
// specified further in the design); the estimate does not schedule rounds (a schedule per
// candidate would cost more than the placement); only the winner is scheduled.
//
// Planning cost (issue 23, the same plans): the candidates share one Placer's buffers; a
// candidate stops once a load or its traffic reaches the best estimate so far (both only grow);
// under a cap the roomy groups are placed first (they win most batches) so that the plain ones
// stop once past them, ties still going to the plain ones. A short document costs a lookup of
// the least-loaded worker, whose tree key is refreshed only when it reaches the front, else one
// RoomQueue query; within-a-node groups skip the nodes that cannot beat the best one found.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/packing.h"
#include "service/planner/strategies/plan_memo.h"
#include "service/planner/strategies/room_queue.h"

namespace fcp {
namespace {

// Threshold candidates: a document is long when its cost exceeds this fraction of the mean
// per-worker load (infinity: every document whole).
constexpr double kLongFractions[] = {1.0, 0.5, 0.25, HUGE_VAL};
// The least share of a member's mean load a long document may be given under a cap.
constexpr double kMinFill = 0.25;

// Where each document goes: document d on ranks members[at[d]], ..., members[at[d] + degree[d] - 1]
// (degree 1: whole).
struct Placement {
  std::vector<int32_t> degree, at, members;
  double estimate = 0;  // the slowest worker's forward + backward seconds, compute or traffic
  double traffic = 0;   // the largest traffic term alone
};

// A document in placement order (costliest first).
struct Sorted {
  int32_t document;
  int64_t length;
  double seconds;
};

// Places candidates: the first `num_long` documents of `sorted` sharded (over
// ceil(cost / (fill · mean)) ranks), the others whole. Its buffers serve every candidate.
class Placer {
 public:
  Placer(const PlanContext& ctx, const std::vector<Sorted>& sorted, double mean);

  // Into *p, its estimate infinite (the candidate loses) once a load or traffic reaches `bound`
  // or exceeds `tie_bound`: loads and traffic only grow, so the estimate would too.
  void Place(int32_t num_long, double fill, double bound, double tie_bound, Placement* p);

 private:
  // The least-loaded worker (MinTree's order). A worker's key is refreshed only when it reaches
  // the front: loads only grow, so a stale key is lower and hides no lighter worker.
  int32_t LeastLoaded();
  void Put(int32_t w, int64_t length, double seconds) {
    load_[w] += seconds;
    highest_ = std::max(highest_, load_[w]);
    tokens_[w] += length;
    room_->Set(w, load_[w], tokens_[w]);
  }
  void Shard(const Sorted& doc_info);
  // The k least-loaded workers with room for a piece (else, the least loaded), ascending.
  void LeastLoadedK(int64_t k, int64_t piece, std::vector<int32_t>* out);
  // Within one node: the node whose k least-loaded workers with room are least loaded (false if
  // no node has k with room).
  bool WithinANode(int64_t k, int64_t piece, std::vector<int32_t>* out);
  // The slowest member of `group` once it holds the document: its compute, or its receives
  // (from each other member the chunks before its last one, KV forward and dK/dV backward, at
  // the link between their nodes), whichever is longer.
  double SlowestAfter(const std::vector<int32_t>& group);

  const PlanContext& ctx_;
  const std::vector<Sorted>& sorted_;
  const double mean_;
  const int32_t workers_, per_node_;
  const int64_t cap_;
  // The candidate being placed.
  Placement* p_ = nullptr;
  double fill_ = 1;
  double highest_ = 0;  // the estimate so far: the largest load or traffic
  std::vector<double> load_, keyed_, traffic_seconds_;  // keyed_: load_ when last keyed in the tree
  std::vector<double> node_floor_;  // per node, a load at or below each of its workers' loads
  std::vector<int64_t> tokens_;
  std::optional<MinTree> least_loaded_;
  std::optional<RoomQueue> room_;  // the fallback once the least-loaded worker is full
  // Scratch.
  std::vector<int32_t> popped_, full_, local_, chosen_;
  std::vector<int64_t> bounds_, chunk_tokens_;
  std::vector<double> share_seconds_, after_load_, after_traffic_, kth_, sends_;
};

class FlashCpPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "flashcp"; }
  absl::string_view description() const override {
    return "FlashCP: short documents whole, long ones zigzag-sharded per document; the length "
           "threshold searched per batch; shard-aware KV sends";
  }

  // auto: after fcp and per_doc (flashcp and flexdeg are the seed systems fcp is compared with).
  int auto_order() const override { return 30; }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    const Batch& batch = ctx.batch;
    const int32_t docs = static_cast<int32_t>(batch.documents.size());
    // The documents' costs in order (under auto, computed once for all its candidates).
    const std::shared_ptr<const DocCosts> costs = SharedDocCosts(ctx);
    const std::vector<double>& seconds = costs->seconds;
    const std::vector<int32_t>& order = costs->by_cost;
    const double mean = costs->total / batch.topology.num_workers;
    // Documents in placement order, side by side: every candidate walks them sequentially.
    std::vector<Sorted> sorted(docs);
    for (int32_t i = 0; i < docs; ++i) {
      sorted[i] = {order[i], batch.documents[order[i]].length, seconds[order[i]]};
    }
    std::vector<double> suffix_tokens(docs + 1, 0), suffix_seconds(docs + 1, 0);
    for (int32_t i = docs; i-- > 0;) {
      suffix_tokens[i] = suffix_tokens[i + 1] + static_cast<double>(sorted[i].length);
      suffix_seconds[i] = suffix_seconds[i + 1] + sorted[i].seconds;
    }

    // Thresholds are tried from the highest down while the estimate improves, then "all whole"
    // unless its costliest document alone already exceeds the best estimate. Each candidate is
    // placed and estimated (a schedule per candidate would cost more than the placement); only
    // the best becomes a layout.
    Placer placer(ctx, sorted, mean);
    Placement best, placement, roomy;
    bool have_best = false;
    int32_t last_long = -1;
    bool improving = true;
    for (double fraction : kLongFractions) {
      const bool all_whole = fraction == HUGE_VAL;
      if (all_whole ? have_best && docs > 0 && sorted[0].seconds >= best.estimate : !improving) {
        continue;
      }
      int32_t num_long = 0;
      while (num_long < docs && sorted[num_long].seconds > fraction * mean) ++num_long;
      if (num_long == last_long) continue;
      last_long = num_long;
      // A candidate whose estimate reaches the best one's cannot win: placing it stops there.
      const double bound = have_best ? best.estimate : HUGE_VAL;
      // Under a token cap the short documents' tokens may not fit beside the long ones' shares:
      // then also groups sized to leave room for them (fcp's grouped shape had this; issue 26);
      // the plain groups win ties. The roomy groups are placed first (they win most batches
      // under a cap), so that the plain ones stop as soon as they exceed them.
      if (const double fill = Fill(batch, sorted, suffix_tokens, suffix_seconds, mean, num_long);
          fill < 1) {
        placer.Place(num_long, fill, bound, HUGE_VAL, &roomy);
        placer.Place(num_long, 1.0, bound, roomy.estimate, &placement);
        if (roomy.estimate < placement.estimate) std::swap(placement, roomy);
      } else {
        placer.Place(num_long, 1.0, bound, HUGE_VAL, &placement);
      }
      improving = !have_best || placement.estimate < best.estimate;
      // A lower threshold shards the same documents first, identically, then more: its traffic
      // is no lower, and no worker is below the mean. At that bound, stop searching.
      if (placement.estimate <= std::max(mean, placement.traffic)) improving = false;
      if (!have_best || placement.estimate < best.estimate) {
        std::swap(best, placement);
        have_best = true;
      }
    }
    if (!have_best) return absl::FailedPreconditionError("flashcp: no layout");
    Layout layout = Emit(batch, best);
    // Zigzag shares need k workers with room each; near the end there may be fewer: cut what
    // is over the budget.
    if (absl::Status s =
            FitTokenBudget(batch.topology.num_workers, TokenCap(batch.topology), &layout.blocks);
        !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("flashcp: ", s.message()));
    }
    return layout;
  }

 private:
  // The share of a worker's mean load a long document's group member may take so that the short
  // documents (sorted[num_long..]) fit: the workers outside groups hold at most `cap` tokens
  // each, the rest of the short tokens land on the members, at the short documents' seconds per
  // token. 1 when they fit (or without a cap); fixed-point iterated, as the groups grow with it.
  static double Fill(const Batch& batch, const std::vector<Sorted>& sorted,
                     const std::vector<double>& suffix_tokens,
                     const std::vector<double>& suffix_seconds, double mean, int32_t num_long) {
    const int64_t cap = TokenCap(batch.topology);
    const double short_tokens = suffix_tokens[num_long];
    if (num_long == 0 || cap == TokenCap(Topology{}) || short_tokens <= 0 || mean <= 0) return 1;
    const double density = suffix_seconds[num_long] / short_tokens;
    double fill = 1;
    for (int iteration = 0; iteration < 3; ++iteration) {
      double members = 0;
      for (int32_t i = 0; i < num_long; ++i)
        members += std::ceil(sorted[i].seconds / (fill * mean));
      const double others = batch.topology.num_workers - members;
      if (others <= 0) break;
      const double excess = short_tokens - others * static_cast<double>(cap);
      if (excess <= 0) break;
      fill = std::clamp(1 - density * excess / (members * mean), kMinFill, 1.0);
    }
    return fill;
  }

  // Blocks in (document, begin) order, as they are emitted.
  static Layout Emit(const Batch& batch, const Placement& p) {
    Layout layout;
    layout.kind = Layout::Kind::kDirect;
    layout.strategy = "flashcp";
    const int32_t docs = static_cast<int32_t>(batch.documents.size());
    layout.blocks.reserve(p.members.size() * 2);
    for (int32_t d = 0; d < docs; ++d) {
      const int64_t length = batch.documents[d].length, k = p.degree[d];
      if (k == 1) {
        layout.blocks.push_back({d, 0, length, p.members[p.at[d]]});
        layout.block_size = std::max(layout.block_size, length);
        continue;
      }
      for (int64_t c = 0; c < 2 * k; ++c) {
        const int64_t begin = ChunkBegin(length, 2 * k, c), end = ChunkBegin(length, 2 * k, c + 1);
        if (begin == end) continue;
        layout.blocks.push_back({d, begin, end, p.members[p.at[d] + (c < k ? c : 2 * k - 1 - c)]});
        layout.block_size = std::max(layout.block_size, end - begin);
      }
    }
    return layout;
  }
};

Placer::Placer(const PlanContext& ctx, const std::vector<Sorted>& sorted, double mean)
    : ctx_(ctx),
      sorted_(sorted),
      mean_(mean),
      workers_(ctx.batch.topology.num_workers),
      // Nodes of at most W workers: the same nodes (one, when workers_per_node >= W), and no
      // overflow in node arithmetic for a huge workers_per_node.
      per_node_(std::clamp(ctx.batch.topology.workers_per_node, 1, std::max(1, workers_))),
      cap_(TokenCap(ctx.batch.topology)) {}

void Placer::Place(int32_t num_long, double fill, double bound, double tie_bound, Placement* p) {
  const int32_t docs = static_cast<int32_t>(sorted_.size());
  // Past `tie_bound` is at or past the next double up.
  const double cut = std::min(bound, std::nextafter(tie_bound, HUGE_VAL));
  p_ = p;
  fill_ = fill;
  highest_ = 0;
  load_.assign(workers_, 0);
  keyed_.assign(workers_, 0);
  node_floor_.assign((workers_ + per_node_ - 1) / per_node_, 0);
  traffic_seconds_.assign(workers_, 0);  // receives, forward + backward
  tokens_.assign(workers_, 0);
  least_loaded_.emplace(workers_);
  room_.emplace(workers_);
  p->estimate = p->traffic = 0;
  p->degree.assign(docs, 1);
  p->at.resize(docs);
  p->members.clear();
  p->members.reserve(docs + 2 * workers_);
  auto reached = [&] {
    if (highest_ < cut) return false;
    p->estimate = HUGE_VAL;
    p->traffic = 0;
    return true;
  };
  for (int32_t i = 0; i < num_long; ++i) {
    Shard(sorted_[i]);
    if (reached()) return;
  }
  // The short documents, whole: the least-loaded worker, else the least loaded with room.
  const int64_t* const tokens = tokens_.data();
  int32_t* const at = p->at.data();
  for (const Sorted *doc = sorted_.data() + num_long, *end = sorted_.data() + docs; doc != end;
       ++doc) {
    if (reached()) return;
    if (doc->length > cap_) {  // too long to stay whole, whatever the threshold
      Shard(*doc);
      continue;
    }
    int32_t w = LeastLoaded();
    if (tokens[w] + doc->length > cap_) {
      w = room_->LeastLoadedWithRoom(cap_ - doc->length);
      if (w < 0) {  // fits whole on no worker: sharded instead, over workers with room
        Shard(*doc);
        continue;
      }
    }
    at[doc->document] = static_cast<int32_t>(p->members.size());
    p->members.push_back(w);
    Put(w, doc->length, doc->seconds);
  }
  for (int32_t w = 0; w < workers_; ++w) {
    p->traffic = std::max(p->traffic, traffic_seconds_[w]);
    p->estimate = std::max(p->estimate, std::max(load_[w], traffic_seconds_[w]));
  }
}

int32_t Placer::LeastLoaded() {
  for (;;) {
    const int32_t w = least_loaded_->ArgMin();
    if (keyed_[w] == load_[w]) return w;
    keyed_[w] = load_[w];
    least_loaded_->Set(w, load_[w]);
  }
}

void Placer::LeastLoadedK(int64_t k, int64_t piece, std::vector<int32_t>* out) {
  out->clear();
  popped_.clear();
  full_.clear();
  while (static_cast<int64_t>(out->size()) < k && static_cast<int32_t>(popped_.size()) < workers_) {
    const int32_t w = LeastLoaded();
    least_loaded_->Set(w, HUGE_VAL);
    popped_.push_back(w);
    (tokens_[w] + piece <= cap_ ? *out : full_).push_back(w);
  }
  for (size_t i = 0; static_cast<int64_t>(out->size()) < k; ++i) out->push_back(full_[i]);
  for (int32_t w : popped_) least_loaded_->Set(w, load_[w]);
  std::sort(out->begin(), out->end());
}

bool Placer::WithinANode(int64_t k, int64_t piece, std::vector<int32_t>* out) {
  out->clear();
  // Each node's k-th least load among its workers with room, against the best so far: a node
  // with fewer than k of them below it cannot beat it, nor can one whose floor (a load at or
  // below all of its workers': loads only grow) is not below it. No load is below 0: a node
  // whose k-th is 0 cannot be beaten. The best node's k workers are then taken as nth_element
  // takes them (among equal loads, its choice).
  double best = HUGE_VAL;
  int32_t best_first = -1;
  kth_.resize(per_node_);
  for (int32_t first = 0, node = 0; first < workers_ && best > 0; first += per_node_, ++node) {
    if (node_floor_[node] >= best) continue;
    const int32_t last = std::min(workers_, first + per_node_);
    int64_t below = 0;
    double floor = HUGE_VAL;
    for (int32_t w = first; w < last; ++w) {
      kth_[below] = load_[w];
      floor = std::min(floor, load_[w]);
      below += tokens_[w] + piece <= cap_ && load_[w] < best;
    }
    node_floor_[node] = floor;
    if (below < k) continue;
    std::nth_element(kth_.begin(), kth_.begin() + (k - 1), kth_.begin() + below);
    best = kth_[k - 1];
    best_first = first;
  }
  if (best_first < 0) return false;
  popped_.clear();
  for (int32_t w = best_first; w < std::min(workers_, best_first + per_node_); ++w) {
    if (tokens_[w] + piece <= cap_) popped_.push_back(w);
  }
  std::nth_element(popped_.begin(), popped_.begin() + (k - 1), popped_.end(),
                   [&](int32_t a, int32_t b) { return load_[a] < load_[b]; });
  out->assign(popped_.begin(), popped_.begin() + k);
  std::sort(out->begin(), out->end());
  return true;
}

double Placer::SlowestAfter(const std::vector<int32_t>& group) {
  const int64_t k = static_cast<int64_t>(group.size());
  double slowest = 0;
  after_load_.assign(k, 0);
  after_traffic_.assign(k, 0);
  // A send's seconds depend on its bytes and on whether its ends share a node alone: member j's
  // four (one chunk or two, same node or not), each priced once, summed in the same order.
  const Topology& topology = ctx_.cost.topology();
  sends_.assign(4 * k, -1);
  for (int64_t m = 0; m < k; ++m) {
    const int32_t to = group[m];
    double traffic = traffic_seconds_[to];
    for (int64_t j = 0; j < k; ++j) {
      if (j == m) continue;
      // Member j's first chunk precedes m's last; its second (chunk 2k-1-j) too when j > m.
      double& send = sends_[4 * j + 2 * (j > m) + topology.SameNode(group[j], to)];
      if (send < 0) {
        const int64_t needed = chunk_tokens_[j] + (j > m ? chunk_tokens_[2 * k - 1 - j] : 0);
        send = ctx_.cost.TransferSeconds(group[j], to, ctx_.cost.KvBytes(needed));
      }
      traffic += 2 * send;
    }
    after_load_[m] = load_[to] + share_seconds_[m];
    after_traffic_[m] = traffic;
    slowest = std::max(slowest, std::max(after_load_[m], traffic));
  }
  return slowest;
}

void Placer::Shard(const Sorted& doc_info) {
  const Batch& batch = ctx_.batch;
  const int32_t d = doc_info.document;
  const Document& doc = batch.documents[d];
  const double share = mean_ > 0 ? doc_info.seconds / (fill_ * mean_) : 1;
  int64_t k = std::max<int64_t>(2, static_cast<int64_t>(std::ceil(share - 1e-9)));
  if (cap_ < doc.length) k = std::max<int64_t>(k, (doc.length + cap_ - 1) / cap_);
  k = std::clamp<int64_t>(k, 1, std::min<int64_t>(workers_, doc.length));
  const int64_t piece = (doc.length + k - 1) / k;
  std::vector<int32_t>& members = p_->members;
  p_->at[d] = static_cast<int32_t>(members.size());
  p_->degree[d] = static_cast<int32_t>(k);
  bounds_.resize(2 * k + 1);
  for (int64_t c = 0; c <= 2 * k; ++c) bounds_[c] = ChunkBegin(doc.length, 2 * k, c);
  chunk_tokens_.resize(2 * k);
  share_seconds_.assign(k, 0);
  for (int64_t c = 0; c < 2 * k; ++c) {
    chunk_tokens_[c] = bounds_[c + 1] - bounds_[c];
    if (k == 1 || chunk_tokens_[c] == 0) continue;
    share_seconds_[c < k ? c : 2 * k - 1 - c] +=
        QueryRangeSeconds(ctx_.cost, doc, bounds_[c], bounds_[c + 1], bounds_) +
        3 * ctx_.cost.TokenSeconds(chunk_tokens_[c]);
  }
  if (k == 1) share_seconds_[0] = doc_info.seconds;
  // Topology-aware: a group that fits a node is placed inside one when that is no slower
  // than the least-loaded workers anywhere (whose receives may cross nodes).
  LeastLoadedK(k, piece, &chosen_);
  if (k > 1 && k <= per_node_ && workers_ > per_node_ && WithinANode(k, piece, &local_) &&
      SlowestAfter(local_) <= SlowestAfter(chosen_)) {
    chosen_.swap(local_);
  }
  SlowestAfter(chosen_);
  for (int64_t m = 0; m < k; ++m) {
    const int32_t w = chosen_[m];
    members.push_back(w);
    Put(w,
        chunk_tokens_.empty() || k == 1 ? doc.length
                                        : chunk_tokens_[m] + chunk_tokens_[2 * k - 1 - m],
        share_seconds_[m]);
    traffic_seconds_[w] = after_traffic_[m];
    highest_ = std::max(highest_, traffic_seconds_[w]);
  }
}

}  // namespace

std::unique_ptr<Planner> NewFlashCpPlanner() { return std::make_unique<FlashCpPlanner>(); }

}  // namespace fcp
