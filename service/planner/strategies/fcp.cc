// fcp: block-level packing (FCP). Documents are cut into blocks of at most `block_size` tokens
// (smaller for a document whose last block alone would outweigh a worker's share); blocks of short
// and long documents are bin-packed together, then refined by local search:
//
//   doc A (long, causal): [a0][a1][a2][a3][a4][a5]   cost grows along the document: a5 > a0
//   packing units:        (a0+a5) (a1+a4) (a2+a3)    zigzag pairs: equal cost, and every holder
//   doc B, C, D (short):  [b] [c] [d] ...            of a late block owns an early one to send
//
//   worker 0: (a0+a5) [c] ...   worker 1: (a1+a4) [b] ...   worker 2: (a2+a3) [d] ...
//
//   1. LPT: units by cost (forward+backward attention time + token time), largest first, each
//      onto the least-loaded worker by max(compute / mean, tokens / mean); among workers within
//      a small slack of the best, prefer one that already holds the same document, then one on
//      the same node (fewer, cheaper KV transfers).
//   2. Local search: move or swap units off the most loaded worker while that lowers its load.
//   3. Communication (Schedule): each remote KV block a worker needs is sent once, directly from
//      its owner; rounds by bipartite edge colouring.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "service/planner/mask_math.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/packing.h"

namespace fcp {
namespace {

// A packing unit: one block, or two blocks of one document placed together (zigzag pair).
struct Item {
  int32_t document;
  int64_t begin, end;
  double seconds;
  int64_t begin2 = 0, end2 = 0;    // the paired block, if any (empty otherwise)
  int32_t block = 0, block2 = -1;  // positions of the blocks in the layout (ordered by position)
  int32_t owner = -1;
  int64_t tokens() const { return (end - begin) + (end2 - begin2); }
};

class Packer {
 public:
  Packer(const Topology& topology, std::vector<Item>* items)
      : topology_(topology),
        items_(*items),
        workers_(topology.num_workers),
        cap_(TokenCap(topology)),
        load_(workers_, 0),
        tokens_(workers_, 0),
        owned_(workers_) {
    double total_seconds = 0;
    int64_t total_tokens = 0;
    for (const Item& it : items_) {
      total_seconds += it.seconds;
      total_tokens += it.tokens();
    }
    mean_seconds_ = std::max(total_seconds / workers_, 1e-12);
    mean_tokens_ = std::max(static_cast<double>(total_tokens) / workers_, 1.0);
  }

  void Pack(int32_t documents);
  void Refine(int iterations);

 private:
  double Score(double seconds, int64_t tokens) const {
    return std::max(seconds / mean_seconds_, static_cast<double>(tokens) / mean_tokens_);
  }
  double ScoreWith(int32_t w, const Item& it) const {
    return Score(load_[w] + it.seconds, tokens_[w] + it.tokens());
  }
  bool Fits(int32_t w, const Item& it) const { return tokens_[w] + it.tokens() <= cap_; }
  void Assign(int32_t i, int32_t w) {
    Item& it = items_[i];
    it.owner = w;
    load_[w] += it.seconds;
    tokens_[w] += it.tokens();
    owned_[w].push_back(i);
  }
  void Unassign(int32_t i) {
    Item& it = items_[i];
    load_[it.owner] -= it.seconds;
    tokens_[it.owner] -= it.tokens();
    auto& list = owned_[it.owner];
    list.erase(std::find(list.begin(), list.end(), i));
    it.owner = -1;
  }
  bool TryImprove(int32_t hot);

  const Topology& topology_;
  std::vector<Item>& items_;
  int32_t workers_;
  int64_t cap_;
  double mean_seconds_ = 0, mean_tokens_ = 0;
  std::vector<double> load_;
  std::vector<int64_t> tokens_;
  std::vector<std::vector<int32_t>> owned_;
};

void Packer::Pack(int32_t documents) {
  constexpr double kLocalitySlack = 0.01;
  // Largest first. The sort key packs the cost's top bits (non-negative doubles order like their
  // bit patterns) above the item's index, so ties are broken by position and one integer sort
  // does it all.
  int index_bits = 1;
  while ((size_t{1} << index_bits) < items_.size()) ++index_bits;
  std::vector<uint64_t> order(items_.size());
  for (size_t i = 0; i < items_.size(); ++i) {
    uint64_t bits;
    std::memcpy(&bits, &items_[i].seconds, sizeof bits);
    order[i] = (~bits >> index_bits << index_bits) | i;
  }
  if (!order.empty()) RadixSort(&order);
  MinTree least_loaded(workers_);
  // Workers holding blocks of each document (few: documents span few workers).
  std::vector<absl::InlinedVector<int32_t, 2>> doc_workers(documents);
  for (const uint64_t key : order) {
    const int32_t i = static_cast<int32_t>(key & ((uint64_t{1} << index_bits) - 1));
    const Item& it = items_[i];
    const int32_t candidate = least_loaded.ArgMin();
    int32_t best = -1;
    double best_score = 0;
    if (Fits(candidate, it)) {
      best = candidate;
      best_score = ScoreWith(candidate, it);
    } else {  // the least-loaded worker is full (memory cap): scan everyone
      for (int32_t w = 0; w < workers_; ++w) {
        if (Fits(w, it) && (best < 0 || ScoreWith(w, it) < best_score)) {
          best = w;
          best_score = ScoreWith(w, it);
        }
      }
    }
    // Locality: a worker that already holds this document (no new sender for its KV) while it
    // stays under the mean load, so a long document spans as few workers as balance allows;
    // else one on the same node, if it is almost as good as the best.
    int32_t chosen = best;
    const auto& holders = doc_workers[it.document];
    const double holder_limit = std::max(1.0, best_score + kLocalitySlack);
    for (int32_t w : holders) {
      if (Fits(w, it) && ScoreWith(w, it) <= holder_limit) {
        chosen = w;
        break;
      }
    }
    if (chosen == best && !holders.empty()) {
      const int32_t node = topology_.NodeOf(holders.front());
      for (int32_t w = node * topology_.workers_per_node;
           w < std::min(workers_, (node + 1) * topology_.workers_per_node); ++w) {
        if (Fits(w, it) && ScoreWith(w, it) <= best_score + kLocalitySlack) {
          chosen = w;
          break;
        }
      }
    }
    if (chosen < 0) chosen = 0;  // cannot happen after ValidateBatch's total-cap check
    Assign(i, chosen);
    if (std::find(holders.begin(), holders.end(), chosen) == holders.end()) {
      doc_workers[it.document].push_back(chosen);
    }
    least_loaded.Set(chosen, Score(load_[chosen], tokens_[chosen]));
  }
}

// One move or swap off `hot` to the least-loaded worker that lowers the larger of the two scores.
bool Packer::TryImprove(int32_t hot) {
  int32_t cold = 0;
  for (int32_t w = 1; w < workers_; ++w) {
    if (Score(load_[w], tokens_[w]) < Score(load_[cold], tokens_[cold])) cold = w;
  }
  if (cold == hot) return false;
  const double before = Score(load_[hot], tokens_[hot]);
  double best = before;
  int32_t move = -1, swap = -1;
  for (int32_t i : owned_[hot]) {
    const Item& a = items_[i];
    const double da = a.seconds;
    const int64_t ta = a.tokens();
    if (tokens_[cold] + ta <= cap_) {
      const double s = std::max(Score(load_[hot] - da, tokens_[hot] - ta),
                                Score(load_[cold] + da, tokens_[cold] + ta));
      if (s < best - 1e-9) best = s, move = i, swap = -1;
    }
    for (int32_t j : owned_[cold]) {
      const Item& b = items_[j];
      const double dd = da - b.seconds;
      const int64_t dt = ta - b.tokens();
      if (dd <= 0 || tokens_[cold] + dt > cap_) continue;
      const double s = std::max(Score(load_[hot] - dd, tokens_[hot] - dt),
                                Score(load_[cold] + dd, tokens_[cold] + dt));
      if (s < best - 1e-9) best = s, move = i, swap = j;
    }
  }
  if (move < 0) return false;
  Unassign(move);
  if (swap >= 0) {
    Unassign(swap);
    Assign(swap, hot);
  }
  Assign(move, cold);
  return true;
}

void Packer::Refine(int iterations) {
  // Below this the remaining imbalance is within the cost model's own error: stop searching.
  constexpr double kGoodEnough = 1.01;
  for (int it = 0; it < iterations; ++it) {
    int32_t hot = 0;
    for (int32_t w = 1; w < workers_; ++w) {
      if (Score(load_[w], tokens_[w]) > Score(load_[hot], tokens_[hot])) hot = w;
    }
    if (Score(load_[hot], tokens_[hot]) <= kGoodEnough || !TryImprove(hot)) return;
  }
}

class FcpPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "fcp"; }
  absl::string_view description() const override {
    return "block-level bin-packing of short and long documents together, deduplicated "
           "point-to-point KV, edge-coloured rounds, local-search refinement";
  }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    const Batch& batch = ctx.batch;
    const bool automatic = ctx.options.block_size == 0;
    const int64_t block = RequestedBlockSize(ctx);
    // In automatic mode a long document whose last block alone would carry more than
    // 1/kMaxBlockShare of a worker's mean attention work gets smaller blocks (down to
    // kMinBlock), so that no single block makes balance impossible.
    constexpr int64_t kMinBlock = 256;
    constexpr double kMaxBlockShare = 1;
    double total_pairs = 0;
    for (const Document& doc : batch.documents) {
      total_pairs += static_cast<double>(AllowedPairs(doc.mask, 0, doc.length, 0, doc.length));
    }
    const double pairs_limit = total_pairs / (kMaxBlockShare * batch.topology.num_workers);
    std::vector<Item> items;
    items.reserve(batch.documents.size() + batch.TotalTokens() / block);
    std::vector<int64_t> bounds;
    int64_t largest = 0;
    size_t blocks = 0;
    for (int32_t d = 0; d < static_cast<int32_t>(batch.documents.size()); ++d) {
      const Document& doc = batch.documents[d];
      int64_t doc_block = block;
      while (automatic && doc_block > kMinBlock && doc.length > doc_block &&
             static_cast<double>(AllowedPairs(doc.mask, doc.length - doc_block, doc.length, 0,
                                              doc.length)) > pairs_limit) {
        doc_block = std::max(kMinBlock, doc_block / 2);
      }
      if (doc.length <= doc_block) {
        bounds = {0, doc.length};
      } else {
        bounds = SplitEvenly(doc.length, doc_block);
      }
      largest = std::max(largest, bounds[1] - bounds[0]);
      auto seconds = [&](size_t i) {
        return QueryRangeSeconds(ctx.cost, doc, bounds[i], bounds[i + 1], bounds) +
               3 * ctx.cost.TokenSeconds(bounds[i + 1] - bounds[i]);
      };
      const size_t n = bounds.size() - 1;
      // Causal work grows along a document: pair block i with block n-1-i (zigzag), so every
      // holder of a late block also holds an early one and sends its share of the KV.
      const bool pair = doc.mask.kind == MaskKind::kCausal || doc.mask.kind == MaskKind::kPrefixLm;
      for (size_t i = 0; i < (pair ? (n + 1) / 2 : n); ++i) {
        Item item{d, bounds[i], bounds[i + 1], seconds(i)};
        item.block = static_cast<int32_t>(blocks + i);
        const size_t j = n - 1 - i;
        if (pair && j != i) {
          item.begin2 = bounds[j];
          item.end2 = bounds[j + 1];
          item.seconds += seconds(j);
          item.block2 = static_cast<int32_t>(blocks + j);
        }
        items.push_back(item);
      }
      blocks += n;
    }
    Packer packer(batch.topology, &items);
    packer.Pack(static_cast<int32_t>(batch.documents.size()));
    packer.Refine(4 * batch.topology.num_workers);
    Layout layout;
    layout.kind = Layout::Kind::kDirect;
    layout.strategy = "fcp";
    layout.block_size = automatic ? largest : block;
    layout.blocks.resize(blocks);
    for (const Item& it : items) {
      layout.blocks[it.block] = {it.document, it.begin, it.end, it.owner};
      if (it.block2 >= 0) layout.blocks[it.block2] = {it.document, it.begin2, it.end2, it.owner};
    }
    return layout;
  }
};

}  // namespace

std::unique_ptr<Planner> NewFcpPlanner() { return std::make_unique<FcpPlanner>(); }

}  // namespace fcp
