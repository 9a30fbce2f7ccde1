// Helpers shared by the packing strategies (whole_doc, per_doc, fcp): the attention cost of a
// query range against its document, and a least-loaded-worker picker with a token cap.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_PACKING_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_PACKING_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "service/planner/cost_model.h"
#include "service/planner/planner.h"
#include "service/planner/radix_sort.h"

namespace fcp {

// Forward + backward seconds of the queries [q_begin, q_end) of `doc` against every key of the
// document, with keys cut at `kv_bounds` (ascending, [0, ..., length]) for the tile shapes.
double QueryRangeSeconds(const CostModel& cost, const Document& doc, int64_t q_begin, int64_t q_end,
                         const std::vector<int64_t>& kv_bounds);

// A lower bound on the predicted step time, in seconds (forward + backward, or forward alone), of
// any worker that computes the queries [q_begin, q_end) of `doc` against all their keys (in tiles
// of any shape within the document) and holds those tokens: their pairs at the efficiency of the
// largest tile they could form, plus their linear layers. Worker times only add transfers and
// other work to that.
double QueryRangeLowerBoundSeconds(const CostModel& cost, const Document& doc, int64_t q_begin,
                                   int64_t q_end, bool include_backward);

// A lower bound on the predicted step time in ms of `layout`'s plan of ctx.batch, from the layout
// alone (no schedule): the slowest worker's QueryRangeLowerBoundSeconds over the query ranges it
// computes (kDirect: the owner of a block computes all its tiles; kZigzagRing: member m computes
// its chunks m and 2k-1-m of each document of its group). 0 for a layout whose blocks have moved
// into its schedule. (static_cp's LowerBoundMs; `auto` and `grouped` do not schedule a layout
// whose bound is no faster than the best plan they have.) With `stop_at_ms`, the bound may
// return early, with a value >= stop_at_ms, once one worker's partial sum reaches it (the same
// answer to "bound >= stop_at_ms?").
double LayoutLowerBoundMs(const PlanContext& ctx, const Layout& layout,
                          double stop_at_ms = std::numeric_limits<double>::infinity());

// Token limit per worker: the memory cap if set, else unlimited.
int64_t TokenCap(const Topology& topology);

// The requested block size, or AutoBlockSize(batch) when the options leave it at 0.
int64_t RequestedBlockSize(const PlanContext& ctx);

// The worker with the lowest score, maintained under point updates in O(log W): a 4-ary
// tournament tree whose internal nodes hold their subtree's minimum. A node is one integer key:
// the score's bits (non-negative doubles order like their bit patterns) with the lowest
// IndexBits(size) bits replaced by the index, so ties (equal to 2^-40 or so) go to the lower index.
// An update walks up taking the minimum of its three siblings (addresses known in advance, off
// the critical path) and then one compare-and-select with its own key per level: this is the
// inner loop of every packer, and the chain from one update to the next ArgMin is its latency.
class MinTree {
 public:
  explicit MinTree(int32_t size) : MinTree(size, 0) {}  // every score starts at 0
  MinTree(int32_t size, double score);                  // every score starts at `score`
  void Set(int32_t i, double score) { Update<false>(i, score); }
  // Set, its walk up stopping where the least above is unchanged: fewer steps for an update off
  // the least's path (fcp's packer passing over a full least-loaded worker), a compare more per
  // level on it.
  void Raise(int32_t i, double score) { Update<true>(i, score); }
  int32_t ArgMin() const { return static_cast<int32_t>(node_[0] & index_mask_); }
  // ArgMin for a caller whose scores only grow and who defers their updates: `score_of(i)` is i's
  // score now, its key possibly older (lower). A worker that comes out least with a stale key is
  // raised and the search repeats; a stale key hides no lower score, so the answer is the one a
  // tree updated on every change gives (the packers' least-loaded worker: most of their updates
  // are to workers that never come out least again).
  template <typename ScoreOf>
  int32_t ArgMinDeferred(ScoreOf score_of) {
    for (;;) {
      const int32_t i = ArgMin();
      const double score = score_of(i);
      if (Holds(i, score)) return i;
      Raise(i, score);
    }
  }

 private:
  // Whether i's key is the one `score` gives it (else an update of i is outstanding).
  bool Holds(int32_t i, double score) const {
    return node_[first_leaf_ + static_cast<size_t>(i)] == Key(i, score);
  }
  template <bool kStopUnchanged>
  void Update(int32_t i, double score) {
    size_t n = first_leaf_ + static_cast<size_t>(i);
    uint64_t cur = Key(i, score);
    uint64_t* const node = node_.data();
    // Node m + 1 (m >= 0) is child m & 3 of node m >> 2; its siblings are nodes (m ^ k) + 1.
    const uint64_t* const after_root = node + 1;
    node[n] = cur;
    while (n > 0) {
      const size_t m = n - 1;
      const uint64_t a = after_root[m ^ 1], b = after_root[m ^ 2], c = after_root[m ^ 3];
      const uint64_t ab = a < b ? a : b;
      const uint64_t others = ab < c ? ab : c;
      cur = others < cur ? others : cur;
      n = m >> 2;
      if (kStopUnchanged && node[n] == cur) break;
      node[n] = cur;
    }
  }
  uint64_t Key(int32_t i, double score) const {
    const double s = score > 0 ? score : 0.0;  // also maps -0.0 and tiny negative rounding to 0
    uint64_t bits;
    std::memcpy(&bits, &s, sizeof bits);
    return (bits & ~index_mask_) | static_cast<uint64_t>(i);
  }
  size_t first_leaf_;  // node_[0] is the root; children of n are 4n+1 .. 4n+4
  uint64_t index_mask_;
  std::vector<uint64_t> node_;
};

// The slot with the lowest score (ties: the lowest slot) under point updates, scores compared
// exactly (MinTree's keys give up their lowest bits to the index): a binary tree whose nodes hold
// the least score below them, found by a walk down (left on a tie). An infinite score marks a
// slot out; ArgMin is -1 when all are. fcp's packer fills one per run of identical items, a slot
// per worker (out: no room for the item): the same answers as RoomTree::LeastWithRoom, by a walk
// up per update instead of a search per item.
class LeastScoreTree {
 public:
  // Slots 0 .. size - 1, scored score_of(slot).
  template <typename ScoreOf>
  void Fill(int32_t size, ScoreOf score_of);
  void Set(int32_t slot, double score) {
    size_t n = leaves_ + static_cast<size_t>(slot);
    node_[n] = score;
    for (n /= 2; n >= 1; n /= 2) {
      const double least = std::min(node_[2 * n], node_[2 * n + 1]);
      if (least == node_[n]) break;  // nothing above changes
      node_[n] = least;
    }
  }
  int32_t ArgMin() const {
    const double least = node_[1];  // every node on the way down holds it
    if (!(least < std::numeric_limits<double>::infinity())) return -1;
    size_t n = 1;
    while (n < leaves_) n = 2 * n + (node_[2 * n] != least);  // left holds it, or right
    return static_cast<int32_t>(n - leaves_);
  }

 private:
  size_t leaves_ = 1;
  // node_[1] is the root, children of n are 2n and 2n + 1; leaves from node_[leaves_].
  std::vector<double> node_ = {0, std::numeric_limits<double>::infinity()};
};

template <typename ScoreOf>
void LeastScoreTree::Fill(int32_t size, ScoreOf score_of) {
  leaves_ = 1;
  while (leaves_ < static_cast<size_t>(size)) leaves_ *= 2;
  node_.resize(2 * leaves_);
  double* const node = node_.data();
  const size_t n = static_cast<size_t>(std::max(size, 0));
  std::fill(node + leaves_ + n, node + 2 * leaves_, std::numeric_limits<double>::infinity());
  if (leaves_ == 1) {  // the root is the only leaf
    if (n == 1) node[1] = score_of(0);
    return;
  }
  // Leaves two at a time with their parent (the bottom level of the tree in the same pass), then
  // the levels above.
  size_t q = 0;
  for (; q + 1 < n; q += 2) {
    const double a = score_of(static_cast<int32_t>(q)), b = score_of(static_cast<int32_t>(q + 1));
    node[leaves_ + q] = a;
    node[leaves_ + q + 1] = b;
    node[(leaves_ + q) / 2] = std::min(a, b);
  }
  if (q < n) node[leaves_ + q] = score_of(static_cast<int32_t>(q));  // an odd last leaf
  for (; q < leaves_; q += 2) {  // its parent, and the padding's
    node[(leaves_ + q) / 2] = std::min(node[leaves_ + q], node[leaves_ + q + 1]);
  }
  for (size_t p = leaves_ / 2 - 1; p >= 1; --p) node[p] = std::min(node[2 * p], node[2 * p + 1]);
}

// The workers by index in a binary tree whose nodes hold their subtree's least load and least
// tokens, for the packers' fallback once the least-loaded worker is full: the least-loaded worker
// with room, visiting (lower-loaded child first) only subtrees that have a worker with room and
// could still hold a lower load. A scan of every worker does the same in O(W) per document; at
// W = 1024 under a tight token budget those scans were most of whole_doc's, flashcp's and
// flexdeg's planning time.
class RoomTree {
 public:
  explicit RoomTree(int32_t size);  // every worker at load 0, no tokens
  void Set(int32_t w, double load, int64_t tokens);
  // Lays the workers out in the leaves in `order` (a permutation of 0 .. size-1), keeping their
  // values. Answers do not depend on the layout (ties still go to the lowest index); searches
  // visit fewer nodes when workers alike (e.g. by tokens) share subtrees.
  void Arrange(const std::vector<int32_t>& order);
  // The worker with the least load among those holding at most `max_tokens` (ties: the lowest
  // index), as a scan in index order keeping strictly lower loads finds it; -1 if none.
  int32_t LeastLoadedWithRoom(int64_t max_tokens) const {
    return LeastWithRoom(max_tokens, [](double load, int64_t) { return load; });
  }
  // The same for any score(load, tokens) that does not decrease when either argument grows: the
  // score of a node's least load and least tokens then bounds every worker below it, so only
  // subtrees that could still hold a lower (or equal, at a lower index) score are visited. fcp's
  // packer asks for its max(load / mean, tokens / budget) with an item added.
  template <typename Score>
  int32_t LeastWithRoom(int64_t max_tokens, Score score) const;

 private:
  struct Node {
    double load;     // the least below
    int64_t tokens;  // the least below (of any worker: not necessarily the least-loaded one's)
  };
  static Node Merge(const Node& a, const Node& b) {
    return {std::min(a.load, b.load), std::min(a.tokens, b.tokens)};
  }

  size_t leaves_ = 1;
  int32_t size_;
  std::vector<Node> node_;          // node_[1] is the root; children of n are 2n and 2n + 1
  std::vector<int32_t> leaf_of_;    // worker -> leaf (0-based)
  std::vector<int32_t> worker_at_;  // leaf -> worker, -1 past the last worker
};

template <typename Score>
int32_t RoomTree::LeastWithRoom(int64_t max_tokens, Score score) const {
  int32_t best = -1;
  double best_score = std::numeric_limits<double>::infinity();
  // Depth-first, the lower-scored child first; a node is visited only if some worker below has
  // room and could score no higher than the best so far (equal: a lower index may still win). The
  // other child waits on the stack (at most one per level) with its score.
  struct Open {
    size_t node;
    double score;
  };
  Open stack[64];
  int top = 0;
  auto bound = [&](size_t n) { return score(node_[n].load, node_[n].tokens); };
  if (node_[1].tokens <= max_tokens) stack[top++] = {1, bound(1)};
  while (top > 0) {
    const Open open = stack[--top];
    if (open.score > best_score) continue;  // best improved since it was pushed
    size_t n = open.node;
    while (n < leaves_) {
      const size_t l = 2 * n, r = 2 * n + 1;
      const bool l_room = node_[l].tokens <= max_tokens, r_room = node_[r].tokens <= max_tokens;
      const double ls = l_room ? bound(l) : std::numeric_limits<double>::infinity();
      const double rs = r_room ? bound(r) : std::numeric_limits<double>::infinity();
      const bool left_first = ls <= rs;
      const size_t low = left_first ? l : r, high = left_first ? r : l;
      const double low_s = left_first ? ls : rs, high_s = left_first ? rs : ls;
      const bool high_room = left_first ? r_room : l_room, low_room = left_first ? l_room : r_room;
      if (high_room && high_s <= best_score) stack[top++] = {high, high_s};
      if (!low_room || low_s > best_score) break;
      n = low;
    }
    if (n < leaves_) continue;
    const int32_t w = worker_at_[n - leaves_];
    if (w < 0) continue;
    const double s = bound(n);
    if (s < best_score || (s == best_score && w < best)) {
      best = w;
      best_score = s;
    }
  }
  return best;
}

// Whether a document's chunks over a group pair zigzag (chunk c with n − 1 − c): the masks whose
// late rows hold the most pairs, so every holder of a late chunk also holds an early one.
inline bool PairsZigzag(const Document& doc) {
  return doc.mask.kind == MaskKind::kCausal || doc.mask.kind == MaskKind::kPrefixLm;
}

// The chunks of `doc` over a group of k members: 2k when they pair zigzag, else k; never more than
// its tokens.
inline int64_t GroupChunks(const Document& doc, int64_t k) {
  return std::min<int64_t>(PairsZigzag(doc) ? 2 * k : k, doc.length);
}

// Upper bound on the tokens one member of a ring group of k holds of a document of `length`
// tokens (two zigzag chunks, each at most ceil(length / 2k)).
inline int64_t MemberTokens(int64_t length, int64_t k) {
  return k == 1 ? length : 2 * ((length + 2 * k - 1) / (2 * k));
}

// Sorts blocks by (document, begin), the order a kDirect layout needs.
void SortByPosition(std::vector<Block>* blocks);

// Brings every worker within `cap` tokens (TokenCap of the resolved topology) when a packing left
// some above it (coarse units that fit nowhere whole): while a worker is over, the worker with the
// most room takes the smallest of its blocks that clears the excess (or fills the room), or the
// tail of its largest, cut off. Blocks stay in position order. A no-op on a packing within the
// cap; FailedPrecondition naming the worker and the budget if the workers' room cannot hold the
// excess (never after ValidateBatch).
absl::Status FitTokenBudget(int32_t workers, int64_t cap, std::vector<Block>* blocks);

// Forward + backward seconds of each whole document (attention plus linear layers), and their sum
// in *total.
std::vector<double> DocumentSeconds(const PlanContext& ctx, double* total);

// Indices by value, largest first, ties by index (one radix sort on keys packing the value's top
// bits above the index; non-negative doubles order like their bit patterns). Among many values
// (8192 or more) of which at most half are distinct, a sort of the distinct ones and a counting
// sort over their ranks, to the same order.
std::vector<int32_t> ByCostDescending(const std::vector<double>& seconds);
// The same for the documents' own costs (DocumentSeconds): documents by length, longest first
// (a counting sort), when that turns out to be the costs' order (checked; the costs of one mask
// grow with the length), else ByCostDescending(seconds).
std::vector<int32_t> ByCostDescending(const std::vector<double>& seconds,
                                      const std::vector<Document>& documents);

// Ranks for groups of the given sizes (sum <= num_workers): each group contiguous, largest first;
// groups larger than a node take whole nodes from rank 0, smaller ones go first-fit into the
// nodes' free tails, so a group that fits in a node stays inside one (its traffic on NVLink).
std::vector<std::vector<int32_t>> PlaceGroups(const std::vector<int32_t>& sizes,
                                              const Topology& topology);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_PACKING_H_
