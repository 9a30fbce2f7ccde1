#include "service/planner/round_scheduler.h"

#include <algorithm>
#include <memory>

#include "service/planner/radix_sort.h"

namespace fcp {
namespace {

constexpr int64_t kFlipStepsPerEdge = 16;

// Colour tables: peer_src[c * W + u] = the receiver of the edge of colour c leaving u (-1: none)
// and edge_src[c * W + u] that edge; likewise for receivers. An alternating path is walked through
// the peer tables alone, one dependent load per step, in the rows of its two colours (4 bytes a
// worker: the rows stay in cache); its edges are read after the walk, independently.
class BipartiteColouring {
 public:
  BipartiteColouring(const std::vector<Edge>& edges, int32_t workers, int32_t delta)
      : edges_(edges),
        workers_(workers),
        delta_(delta),
        words_((delta + 63) / 64),
        peer_src_(static_cast<size_t>(workers) * delta, -1),
        peer_dst_(static_cast<size_t>(workers) * delta, -1),
        edge_src_(new int32_t[static_cast<size_t>(workers) * delta]),  // left uninitialised
        edge_dst_(new int32_t[static_cast<size_t>(workers) * delta]),
        used_src_(static_cast<size_t>(workers) * words_, 0),
        used_dst_(static_cast<size_t>(workers) * words_, 0),
        colour_(edges.size(), -1),
        path_nodes_(2 * static_cast<size_t>(workers) + 2),
        flip_budget_(kFlipStepsPerEdge * static_cast<int64_t>(edges.size())) {}

  // The lowest colour free at the sender, making it free at the receiver by flipping an
  // alternating path if needed. Flips cost up to O(W) each; once they have cost kFlipStepsPerEdge
  // steps per edge (large cliques of transfers), an edge takes the lowest colour free at both
  // ends instead when there is one (a later round for it, no flip).
  void Colour(int32_t e) {
    const int32_t u = edges_[e].src, v = edges_[e].dst;
    const int32_t a = FreeAt(used_src_, u);
    if (peer_dst_[Index(v, a)] != -1) {
      if (flip_steps_ > flip_budget_) {
        if (const int32_t c = FreeAtBoth(u, v); c >= 0) {
          Assign(e, c);
          return;
        }
      }
      FlipPath(v, a, FreeAt(used_dst_, v));  // now a is free at v, still free at u
    }
    Assign(e, a);
  }

  std::vector<int32_t> TakeColours() { return std::move(colour_); }

 private:
  size_t Index(int32_t node, int32_t c) const { return static_cast<size_t>(c) * workers_ + node; }
  // Lowest colour not used at `node` (a bitset of used colours per node).
  int32_t FreeAt(const std::vector<uint64_t>& used, int32_t node) const {
    const uint64_t* bits = &used[static_cast<size_t>(node) * words_];
    for (int32_t w = 0; w < words_; ++w) {
      if (~bits[w] != 0) return w * 64 + __builtin_ctzll(~bits[w]);
    }
    return -1;  // unreachable: degree < delta before colouring this edge
  }
  int32_t FreeAtBoth(int32_t u, int32_t v) const {
    const uint64_t* at_u = &used_src_[static_cast<size_t>(u) * words_];
    const uint64_t* at_v = &used_dst_[static_cast<size_t>(v) * words_];
    for (int32_t w = 0; w < words_; ++w) {
      const uint64_t free = ~(at_u[w] | at_v[w]);
      if (free != 0) {
        const int32_t c = w * 64 + __builtin_ctzll(free);
        return c < delta_ ? c : -1;
      }
    }
    return -1;
  }
  void Mark(std::vector<uint64_t>& used, int32_t node, int32_t c, bool on) {
    uint64_t& word = used[static_cast<size_t>(node) * words_ + c / 64];
    const uint64_t bit = uint64_t{1} << (c % 64);
    word = on ? (word | bit) : (word & ~bit);
  }
  void Assign(int32_t e, int32_t c) {
    const int32_t u = edges_[e].src, v = edges_[e].dst;
    colour_[e] = c;
    peer_src_[Index(u, c)] = v;
    edge_src_[Index(u, c)] = e;
    peer_dst_[Index(v, c)] = u;
    edge_dst_[Index(v, c)] = e;
    Mark(used_src_, u, c, true);
    Mark(used_dst_, v, c, true);
  }
  // Swaps colours a and b along the alternating path that starts at receiver v with colour a:
  // edge j of the path (colour a if j is even, b if odd) takes the other colour. Inner nodes keep
  // both colours (their two path edges trade slots); only the two ends change their used sets.
  void FlipPath(int32_t v, int32_t a, int32_t b) {
    // A path is simple: at most every worker once on each side, 2W + 1 nodes.
    int32_t* const nodes = path_nodes_.data();  // nodes[j], nodes[j + 1]: the ends of edge j
    size_t count = 0;
    nodes[count++] = v;
    int32_t node = v;
    const int32_t* into_a = &peer_dst_[Index(0, a)];  // receivers' row of colour a
    const int32_t* from_b = &peer_src_[Index(0, b)];  // senders' row of colour b
    while (true) {
      node = into_a[node];
      if (node == -1) break;
      nodes[count++] = node;
      node = from_b[node];
      if (node == -1) break;
      nodes[count++] = node;
    }
    // Edge j leaves receiver nodes[j] in colour a (j even) or sender nodes[j] in colour b.
    const size_t n = count - 1;
    std::vector<int32_t>& path = path_;
    path.resize(n);
    for (size_t j = 0; j < n; ++j) {
      path[j] = j % 2 == 0 ? edge_dst_[Index(nodes[j], a)] : edge_src_[Index(nodes[j], b)];
    }
    for (size_t j = 0; j < n; ++j) colour_[path[j]] = j % 2 == 0 ? b : a;
    // Start (receiver v): its edge of colour a now has b.
    Set(peer_dst_, edge_dst_.get(), v, a, -1, -1);
    Set(peer_dst_, edge_dst_.get(), v, b, nodes[1], path[0]);
    Mark(used_dst_, v, a, false);
    Mark(used_dst_, v, b, true);
    // Inner nodes: senders (odd j) had edge j - 1 in a and j in b; receivers the reverse.
    for (size_t j = 1; j < n; ++j) {
      const int32_t x = nodes[j];
      const bool sender = j % 2 == 1;
      std::vector<int32_t>& peer = sender ? peer_src_ : peer_dst_;
      int32_t* edge = sender ? edge_src_.get() : edge_dst_.get();
      const int32_t was_first = sender ? a : b;  // edge j - 1's colour
      const int32_t was_second = sender ? b : a;
      Set(peer, edge, x, was_second, nodes[j - 1], path[j - 1]);
      Set(peer, edge, x, was_first, nodes[j + 1], path[j]);
    }
    // End: the last edge's far node, a sender if that edge had colour a.
    const int32_t x = nodes[n];
    const bool sender = (n - 1) % 2 == 0;
    const int32_t was = sender ? a : b, now = sender ? b : a;
    std::vector<int32_t>& peer = sender ? peer_src_ : peer_dst_;
    int32_t* edge = sender ? edge_src_.get() : edge_dst_.get();
    std::vector<uint64_t>& used = sender ? used_src_ : used_dst_;
    Set(peer, edge, x, was, -1, -1);
    Set(peer, edge, x, now, nodes[n - 1], path[n - 1]);
    Mark(used, x, was, false);
    Mark(used, x, now, true);
    flip_steps_ += static_cast<int64_t>(n);
  }
  void Set(std::vector<int32_t>& peer, int32_t* edge, int32_t node, int32_t c, int32_t to,
           int32_t e) {
    peer[Index(node, c)] = to;
    edge[Index(node, c)] = e;
  }

  const std::vector<Edge>& edges_;
  int32_t workers_;
  int32_t delta_;
  int32_t words_;
  std::vector<int32_t> peer_src_, peer_dst_;  // -1: no edge of that colour there
  // Meaningful only where the peer is not -1 (never read elsewhere: not initialised).
  std::unique_ptr<int32_t[]> edge_src_, edge_dst_;
  std::vector<uint64_t> used_src_, used_dst_;
  std::vector<int32_t> colour_;
  std::vector<int32_t> path_, path_nodes_;  // scratch for FlipPath
  int64_t flip_budget_;
  int64_t flip_steps_ = 0;
};

}  // namespace

std::vector<int32_t> ScheduleRounds(const std::vector<Edge>& edges, int32_t num_workers) {
  if (edges.empty()) return {};
  std::vector<int32_t> out_degree(num_workers, 0), in_degree(num_workers, 0);
  for (const Edge& e : edges) {
    ++out_degree[e.src];
    ++in_degree[e.dst];
  }
  const int32_t delta = std::max(*std::max_element(out_degree.begin(), out_degree.end()),
                                 *std::max_element(in_degree.begin(), in_degree.end()));
  // Heaviest first; ties by edge index (deterministic). One integer key per edge: bytes below
  // the heaviest (dropping low bits only if they would not fit beside the index) over the index.
  const int index_bits = IndexBits(edges.size());
  int64_t heaviest = 0;
  for (const Edge& e : edges) heaviest = std::max(heaviest, e.bytes);
  int shift = 0;
  while (shift < 63 && (static_cast<uint64_t>(heaviest) >> shift) >> (64 - index_bits) != 0)
    ++shift;
  // Low bits every difference has clear (byte counts are multiples of a token's KV bytes) carry
  // no order: shifted out too, so the radix sort has fewer digits to pass over.
  uint64_t differences = 0;
  for (const Edge& e : edges) differences |= static_cast<uint64_t>(heaviest - e.bytes);
  if (differences != 0) shift = std::max(shift, __builtin_ctzll(differences));
  std::vector<uint64_t> order(edges.size());
  for (size_t e = 0; e < edges.size(); ++e) {
    order[e] = (static_cast<uint64_t>(heaviest - edges[e].bytes) >> shift << index_bits) | e;
  }
  RadixSort(&order);
  const uint64_t index_mask = (uint64_t{1} << index_bits) - 1;
  BipartiteColouring colouring(edges, num_workers, delta);
  for (const uint64_t key : order) colouring.Colour(static_cast<int32_t>(key & index_mask));
  std::vector<int32_t> rounds = colouring.TakeColours();
  for (int32_t& r : rounds) ++r;
  return rounds;
}

}  // namespace fcp
