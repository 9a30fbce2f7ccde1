#include "service/planner/strategies/packing.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "service/planner/mask_math.h"

namespace fcp {

double QueryRangeLowerBoundSeconds(const CostModel& cost, const Document& doc, int64_t q_begin,
                                   int64_t q_end, bool include_backward) {
  const int64_t pairs = AllowedPairs(doc.mask, q_begin, q_end, 0, doc.length);
  const double attention =
      static_cast<double>(pairs) * cost.SecondsPerPair(q_end - q_begin, doc.length);
  const double linear = cost.TokenSeconds(q_end - q_begin);
  return include_backward ? attention * (1 + cost.BackwardFactor()) + 3 * linear
                          : attention + linear;
}

double LayoutLowerBoundMs(const PlanContext& ctx, const Layout& layout, double stop_at_ms) {
  const Batch& batch = ctx.batch;
  const bool backward = ctx.options.include_backward;
  std::vector<double> seconds(batch.topology.num_workers, 0);
  if (layout.kind == Layout::Kind::kDirect) {
    for (const Block& b : layout.blocks) {
      double& sum = seconds[b.owner];
      sum += QueryRangeLowerBoundSeconds(ctx.cost, batch.documents[b.document], b.begin, b.end,
                                         backward);
      // Sums only grow (and so does their largest, times 1e3): the bound is at least this.
      if (sum * 1e3 >= stop_at_ms) return sum * 1e3;
    }
  } else {
    for (int32_t d = 0; d < static_cast<int32_t>(layout.doc_group.size()); ++d) {
      if (layout.doc_group[d] < 0) continue;
      const Document& doc = batch.documents[d];
      const std::vector<int32_t>& group = layout.groups[layout.doc_group[d]];
      const int64_t k = static_cast<int64_t>(group.size());
      for (int64_t chunk = 0; chunk < 2 * k; ++chunk) {
        const int64_t begin = ChunkBegin(doc.length, 2 * k, chunk);
        const int64_t end = ChunkBegin(doc.length, 2 * k, chunk + 1);
        if (begin == end) continue;
        double& sum = seconds[group[chunk < k ? chunk : 2 * k - 1 - chunk]];
        sum += QueryRangeLowerBoundSeconds(ctx.cost, doc, begin, end, backward);
        if (sum * 1e3 >= stop_at_ms) return sum * 1e3;
      }
    }
  }
  return seconds.empty() ? 0 : *std::max_element(seconds.begin(), seconds.end()) * 1e3;
}

double QueryRangeSeconds(const CostModel& cost, const Document& doc, int64_t q_begin, int64_t q_end,
                         const std::vector<int64_t>& kv_bounds) {
  double seconds = 0;
  size_t i = 0;
  const size_t tiles = kv_bounds.size() - 1;
  if (doc.mask.kind == MaskKind::kCausal) {
    // Tiles entirely below the diagonal (keys end at or before the first query) in O(1); keys
    // from the first query on are partial tiles, and keys past the last query are masked out.
    const size_t dense =
        static_cast<size_t>(std::upper_bound(kv_bounds.begin() + 1, kv_bounds.end(), q_begin + 1) -
                            kv_bounds.begin() - 1);
    if (dense > 1) {  // (one tile costs the same either way: the loop keeps its rounding)
      const double fwd = cost.DenseTilesForwardSeconds(
          q_end - q_begin, kv_bounds[dense] - kv_bounds[0], static_cast<int64_t>(dense));
      seconds += fwd + cost.BackwardFromForward(fwd, static_cast<int64_t>(dense));
      i = dense;
    }
  }
  for (; i < tiles; ++i) {
    if (doc.mask.kind == MaskKind::kCausal && kv_bounds[i] >= q_end) break;
    const int64_t pairs = AllowedPairs(doc.mask, q_begin, q_end, kv_bounds[i], kv_bounds[i + 1]);
    if (pairs > 0) {
      const double fwd =
          cost.TileForwardSeconds(q_end - q_begin, kv_bounds[i + 1] - kv_bounds[i], pairs);
      seconds += fwd + cost.BackwardFromForward(fwd);
    }
  }
  return seconds;
}

int64_t TokenCap(const Topology& topology) {
  return topology.max_tokens_per_worker > 0 ? topology.max_tokens_per_worker
                                            : std::numeric_limits<int64_t>::max();
}

int64_t RequestedBlockSize(const PlanContext& ctx) {
  return ctx.options.block_size > 0 ? ctx.options.block_size : AutoBlockSize(ctx.batch);
}

RoomTree::RoomTree(int32_t size) : size_(size) {
  while (leaves_ < static_cast<size_t>(std::max(size, 1))) leaves_ *= 2;
  node_.assign(2 * leaves_,
               {std::numeric_limits<double>::infinity(), std::numeric_limits<int64_t>::max()});
  for (int32_t w = 0; w < size; ++w) node_[leaves_ + w] = {0, 0};
  for (size_t n = leaves_ - 1; n >= 1; --n) node_[n] = Merge(node_[2 * n], node_[2 * n + 1]);
  leaf_of_.resize(size);
  worker_at_.assign(leaves_, -1);
  for (int32_t w = 0; w < size; ++w) leaf_of_[w] = worker_at_[w] = w;
}

void RoomTree::Arrange(const std::vector<int32_t>& order) {
  std::vector<Node> values(size_);
  for (int32_t w = 0; w < size_; ++w) values[w] = node_[leaves_ + leaf_of_[w]];
  for (int32_t leaf = 0; leaf < size_; ++leaf) {
    const int32_t w = order[leaf];
    worker_at_[leaf] = w;
    leaf_of_[w] = leaf;
    node_[leaves_ + leaf] = values[w];
  }
  for (size_t n = leaves_ - 1; n >= 1; --n) node_[n] = Merge(node_[2 * n], node_[2 * n + 1]);
}

void RoomTree::Set(int32_t w, double load, int64_t tokens) {
  size_t n = leaves_ + static_cast<size_t>(leaf_of_[w]);
  node_[n] = {load, tokens};
  for (n /= 2; n >= 1; n /= 2) node_[n] = Merge(node_[2 * n], node_[2 * n + 1]);
}

MinTree::MinTree(int32_t size, double score) {
  size_t leaves = 4;
  while (leaves < static_cast<size_t>(size)) leaves *= 4;
  first_leaf_ = (leaves - 1) / 3;
  // Indices below `size` (padding leaves hold the largest key and need none).
  index_mask_ = (uint64_t{1} << IndexBits(static_cast<size_t>(std::max(size, 1)))) - 1;
  node_.assign(first_leaf_ + leaves, std::numeric_limits<uint64_t>::max());
  for (int32_t i = 0; i < size; ++i) node_[first_leaf_ + i] = Key(i, score);
  for (size_t n = first_leaf_; n-- > 0;) {
    node_[n] = std::min({node_[4 * n + 1], node_[4 * n + 2], node_[4 * n + 3], node_[4 * n + 4]});
  }
}

namespace {

bool PositionLess(const Block& a, const Block& b) {
  return a.document != b.document ? a.document < b.document : a.begin < b.begin;
}

// Puts the pieces cut off and appended past `kept` back in position order. Blocks [0, kept) in
// strictly increasing position (`in_order`), pieces that share no position with any block: a
// sort of the pieces and one merge from the back; otherwise the whole sort.
void MergePieces(size_t kept, bool in_order, std::vector<Block>* blocks) {
  std::vector<Block> pieces(blocks->begin() + static_cast<std::ptrdiff_t>(kept), blocks->end());
  std::sort(pieces.begin(), pieces.end(), PositionLess);
  const auto kept_end = blocks->begin() + static_cast<std::ptrdiff_t>(kept);
  for (size_t p = 0; in_order && p < pieces.size(); ++p) {
    const auto at = std::lower_bound(blocks->begin(), kept_end, pieces[p], PositionLess);
    in_order = (at == kept_end || PositionLess(pieces[p], *at)) &&
               (p == 0 || PositionLess(pieces[p - 1], pieces[p]));
  }
  if (!in_order) {  // equal positions: the order std::sort gives them, as ever
    SortByPosition(blocks);
    return;
  }
  size_t out = blocks->size(), i = kept, p = pieces.size();
  while (p > 0) {
    if (i > 0 && PositionLess(pieces[p - 1], (*blocks)[i - 1])) {
      (*blocks)[--out] = (*blocks)[--i];
    } else {
      (*blocks)[--out] = pieces[--p];
    }
  }
}

}  // namespace

void SortByPosition(std::vector<Block>* blocks) {
  std::sort(blocks->begin(), blocks->end(), PositionLess);
}

absl::Status FitTokenBudget(int32_t workers, int64_t cap, std::vector<Block>* blocks) {
  std::vector<int64_t> tokens(workers, 0);
  for (const Block& b : *blocks) tokens[b.owner] += b.tokens();
  int32_t over = 0;
  while (over < workers && tokens[over] <= cap) ++over;
  if (over == workers) return absl::OkStatus();
  bool in_order = true;  // strictly by position (then cut pieces merge in: no sort)
  for (size_t i = 1; i < blocks->size(); ++i) {
    in_order &= PositionLess((*blocks)[i - 1], (*blocks)[i]);
  }
  // Indexed for the moves: the donor (fewest tokens) in a tree; each worker's blocks in index
  // order (a counting sort by owner), so a move scans only the over-full worker's blocks. Only
  // blocks of the kept part are listed: pieces go to a donor, which never goes over the cap.
  const size_t kept = blocks->size();
  // The donor: the worker with the fewest tokens, ties to the lowest index (tokens are exact as
  // doubles).
  LeastScoreTree fewest;
  fewest.Fill(workers, [&](int32_t w) { return static_cast<double>(tokens[w]); });
  std::vector<int32_t> first(workers + 1, 0), of_worker(kept);
  for (const Block& b : *blocks) ++first[b.owner + 1];
  for (int32_t w = 0; w < workers; ++w) first[w + 1] += first[w];
  {
    std::vector<int32_t> next(first.begin(), first.end() - 1);
    for (size_t i = 0; i < kept; ++i) {
      of_worker[next[(*blocks)[i].owner]++] = static_cast<int32_t>(i);
    }
  }
  for (int32_t w = over; w < workers; ++w) {
    while (tokens[w] > cap) {
      const int32_t to = fewest.ArgMin();
      const int64_t room = cap - tokens[to];
      if (room <= 0) {
        return absl::FailedPreconditionError(absl::StrCat("worker ", w, " holds ", tokens[w],
                                                          " tokens and no worker has room "
                                                          "under the token budget of ",
                                                          cap, " per worker"));
      }
      const int64_t target = std::min(tokens[w] - cap, room);
      // The smallest block of w that clears the target whole (no cut), else w's largest.
      size_t pick = blocks->size(), largest = blocks->size();
      for (int32_t k = first[w]; k < first[w + 1]; ++k) {
        const size_t i = static_cast<size_t>(of_worker[k]);
        const Block& b = (*blocks)[i];
        if (b.owner != w) continue;  // moved away whole
        if (largest == blocks->size() || b.tokens() > (*blocks)[largest].tokens()) largest = i;
        if (b.tokens() >= target && b.tokens() <= room &&
            (pick == blocks->size() || b.tokens() < (*blocks)[pick].tokens())) {
          pick = i;
        }
      }
      if (pick == blocks->size()) pick = largest;
      Block& b = (*blocks)[pick];
      const int64_t moved = std::min(b.tokens(), room);
      if (moved == b.tokens()) {
        b.owner = to;
      } else {  // cut its tail off to `to`
        b.end -= moved;
        blocks->push_back({b.document, b.end, b.end + moved, to});
      }
      tokens[w] -= moved;
      tokens[to] += moved;
      fewest.Set(w, static_cast<double>(tokens[w]));
      fewest.Set(to, static_cast<double>(tokens[to]));
    }
  }
  MergePieces(kept, in_order, blocks);
  return absl::OkStatus();
}

std::vector<double> DocumentSeconds(const PlanContext& ctx, double* total) {
  const std::vector<Document>& documents = ctx.batch.documents;
  std::vector<double> seconds(documents.size());
  *total = 0;
  for (size_t d = 0; d < documents.size(); ++d) {
    const Document& doc = documents[d];
    // One tile: the whole document against itself (no bounds vector: this runs per document).
    const int64_t pairs = AllowedPairs(doc.mask, 0, doc.length, 0, doc.length);
    const double fwd = ctx.cost.TileForwardSeconds(doc.length, doc.length, pairs);
    seconds[d] = fwd + ctx.cost.BackwardFromForward(fwd) +
                 3 * ctx.cost.TokenSeconds(doc.length);  // + linear layers, fwd + bwd
    *total += seconds[d];
  }
  return seconds;
}

namespace {

// ByCostDescending's keys without the index: the costs' top bits, inverted.
uint64_t CostKey(double seconds, int index_bits) {
  uint64_t bits;
  std::memcpy(&bits, &seconds, sizeof bits);
  return ~bits >> index_bits;
}

// ByCostDescending by its repeated values (documents of one length and mask cost the same): the
// distinct keys sorted, then the indices placed by a counting sort over their keys' ranks, in
// index order (ties by index, as the full keys break them). Empty if over half are distinct.
std::vector<int32_t> ByFewDistinctCosts(const std::vector<double>& seconds, int index_bits) {
  const size_t n = seconds.size();
  absl::flat_hash_map<uint64_t, int32_t> distinct_of;
  distinct_of.reserve(n / 8);
  std::vector<uint64_t> distinct;
  std::vector<int32_t> rank(n);  // first the index of the key in `distinct`, then its rank
  for (size_t i = 0; i < n; ++i) {
    const uint64_t key = CostKey(seconds[i], index_bits);
    const auto [it, added] = distinct_of.try_emplace(key, static_cast<int32_t>(distinct.size()));
    if (added) {
      if (distinct.size() >= n / 2) return {};
      distinct.push_back(key);
    }
    rank[i] = it->second;
  }
  const int distinct_bits = IndexBits(distinct.size());
  std::vector<uint64_t> keys(distinct.size());
  for (size_t v = 0; v < distinct.size(); ++v) keys[v] = distinct[v] << distinct_bits | v;
  RadixSort(&keys);
  const uint64_t mask = (uint64_t{1} << distinct_bits) - 1;
  std::vector<int32_t> rank_of(distinct.size());
  for (size_t r = 0; r < keys.size(); ++r) rank_of[keys[r] & mask] = static_cast<int32_t>(r);
  std::vector<int32_t> start(distinct.size() + 1, 0);
  for (size_t i = 0; i < n; ++i) ++start[(rank[i] = rank_of[rank[i]]) + 1];
  for (size_t r = 0; r < distinct.size(); ++r) start[r + 1] += start[r];
  std::vector<int32_t> order(n);
  for (size_t i = 0; i < n; ++i) order[start[rank[i]]++] = static_cast<int32_t>(i);
  return order;
}

}  // namespace

std::vector<int32_t> ByCostDescending(const std::vector<double>& seconds) {
  const size_t n = seconds.size();
  const int index_bits = IndexBits(n);
  if (n >= 8192) {  // below, one 8-bit radix sort of every key is cheaper
    std::vector<int32_t> order = ByFewDistinctCosts(seconds, index_bits);
    if (!order.empty()) return order;
  }
  std::vector<uint64_t> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = CostKey(seconds[i], index_bits) << index_bits | i;
  if (!keys.empty()) RadixSort(&keys);
  std::vector<int32_t> order(n);
  const uint64_t mask = (uint64_t{1} << index_bits) - 1;
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(keys[i] & mask);
  return order;
}

std::vector<int32_t> ByCostDescending(const std::vector<double>& seconds,
                                      const std::vector<Document>& documents) {
  const size_t n = seconds.size();
  int64_t longest = 0;
  for (const Document& doc : documents) longest = std::max(longest, doc.length);
  // The counter per length must cost less than the sort it spares.
  if (n < 1024 || longest > 8 * static_cast<int64_t>(n)) return ByCostDescending(seconds);
  std::vector<int32_t> start(static_cast<size_t>(longest) + 2, 0);  // by longest - length
  for (const Document& doc : documents) ++start[longest - doc.length + 1];
  for (size_t l = 1; l < start.size(); ++l) start[l] += start[l - 1];
  std::vector<int32_t> order(n);
  for (size_t d = 0; d < n; ++d) {
    order[start[longest - documents[d].length]++] = static_cast<int32_t>(d);
  }
  // In the order of ByCostDescending's keys (cost key, then index)?
  const int index_bits = IndexBits(n);
  for (size_t k = 1; k < n; ++k) {
    const uint64_t before = CostKey(seconds[order[k - 1]], index_bits),
                   here = CostKey(seconds[order[k]], index_bits);
    if (before > here || (before == here && order[k - 1] > order[k])) {
      return ByCostDescending(seconds);
    }
  }
  return order;
}

std::vector<std::vector<int32_t>> PlaceGroups(const std::vector<int32_t>& sizes,
                                              const Topology& topology) {
  const int32_t workers = topology.num_workers;
  const int32_t per_node = std::max(1, topology.workers_per_node);
  const int32_t nodes = workers / per_node + (workers % per_node != 0 ? 1 : 0);
  std::vector<int32_t> used(nodes, 0);
  auto node_size = [&](int32_t n) { return std::min(per_node, workers - n * per_node); };
  std::vector<int32_t> by_size(sizes.size());
  std::iota(by_size.begin(), by_size.end(), 0);
  std::stable_sort(by_size.begin(), by_size.end(),
                   [&](int32_t a, int32_t b) { return sizes[a] > sizes[b]; });
  std::vector<std::vector<int32_t>> groups(sizes.size());
  int32_t cursor = 0;
  for (int32_t g : by_size) {
    std::vector<int32_t>& ranks = groups[g];
    if (sizes[g] > per_node) {  // sorted: every earlier group was big too, so nodes are full
      for (int32_t i = 0; i < sizes[g]; ++i) ranks.push_back(cursor + i);
      cursor += sizes[g];
      for (int32_t n = 0; n < nodes; ++n)
        used[n] = std::clamp(cursor - n * per_node, 0, node_size(n));
      continue;
    }
    int32_t fit = -1;
    for (int32_t n = 0; n < nodes && fit < 0; ++n) {
      if (node_size(n) - used[n] >= sizes[g]) fit = n;
    }
    for (int32_t n = fit < 0 ? 0 : fit; n < nodes && static_cast<int32_t>(ranks.size()) < sizes[g];
         ++n) {
      while (used[n] < node_size(n) && static_cast<int32_t>(ranks.size()) < sizes[g]) {
        ranks.push_back(n * per_node + used[n]++);
      }
    }
  }
  return groups;
}

}  // namespace fcp
