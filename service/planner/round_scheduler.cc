#include "service/planner/round_scheduler.h"

#include <algorithm>
#include <memory>

#include "service/planner/radix_sort.h"

namespace fcp {
namespace {

constexpr int64_t kFlipStepsPerEdge = 16;

// Colour tables: at_src[u * delta + c] = edge of colour c leaving u (or -1), peer_src[u * delta +
// c] = that edge's receiver; likewise at_dst and peer_dst. An alternating path is walked through
// the peer tables alone (one dependent load per step); the edges are read beside it.
class BipartiteColouring {
 public:
  BipartiteColouring(const std::vector<Edge>& edges, int32_t workers, int32_t delta)
      : edges_(edges),
        delta_(delta),
        words_((delta + 63) / 64),
        at_src_(static_cast<size_t>(workers) * delta, -1),
        at_dst_(static_cast<size_t>(workers) * delta, -1),
        peer_src_(new int32_t[static_cast<size_t>(workers) * delta]),  // read only where
        peer_dst_(new int32_t[static_cast<size_t>(workers) * delta]),  // at_* holds an edge
        used_src_(static_cast<size_t>(workers) * words_, 0),
        used_dst_(static_cast<size_t>(workers) * words_, 0),
        colour_(edges.size(), -1),
        flip_budget_(kFlipStepsPerEdge * static_cast<int64_t>(edges.size())) {}

  // The lowest colour free at the sender, making it free at the receiver by flipping an
  // alternating path if needed. Flips cost up to O(W) each; once they have cost kFlipStepsPerEdge
  // steps per edge (large cliques of transfers), an edge takes the lowest colour free at both
  // ends instead when there is one (a later round for it, no flip).
  void Colour(int32_t e) {
    const int32_t u = edges_[e].src, v = edges_[e].dst;
    const int32_t a = FreeAt(used_src_, u);
    if (Slot(at_dst_, v, a) != -1) {
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
  int32_t& Slot(std::vector<int32_t>& table, int32_t node, int32_t c) {
    return table[static_cast<size_t>(node) * delta_ + c];
  }
  int32_t& Slot(std::unique_ptr<int32_t[]>& table, int32_t node, int32_t c) {
    return table[static_cast<size_t>(node) * delta_ + c];
  }
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
    Slot(at_src_, u, c) = e;
    Slot(at_dst_, v, c) = e;
    Slot(peer_src_, u, c) = v;
    Slot(peer_dst_, v, c) = u;
    Mark(used_src_, u, c, true);
    Mark(used_dst_, v, c, true);
  }
  // Swaps colours a and b along the alternating path that starts at receiver v with colour a.
  void FlipPath(int32_t v, int32_t a, int32_t b) {
    std::vector<int32_t>& path = path_;
    path.clear();
    // Colour a into each receiver on the path, colour b out of each sender.
    int32_t node = v;
    while (true) {
      size_t i = static_cast<size_t>(node) * delta_ + a;
      if (at_dst_[i] == -1) break;
      path.push_back(at_dst_[i]);
      node = peer_dst_[i];
      i = static_cast<size_t>(node) * delta_ + b;
      if (at_src_[i] == -1) break;
      path.push_back(at_src_[i]);
      node = peer_src_[i];
    }
    for (int32_t e : path) {
      Slot(at_src_, edges_[e].src, colour_[e]) = -1;
      Slot(at_dst_, edges_[e].dst, colour_[e]) = -1;
      Mark(used_src_, edges_[e].src, colour_[e], false);
      Mark(used_dst_, edges_[e].dst, colour_[e], false);
    }
    for (int32_t e : path) Assign(e, colour_[e] == a ? b : a);
    flip_steps_ += static_cast<int64_t>(path.size());
  }

  const std::vector<Edge>& edges_;
  int32_t delta_;
  int32_t words_;
  std::vector<int32_t> at_src_, at_dst_;
  std::unique_ptr<int32_t[]> peer_src_, peer_dst_;
  std::vector<uint64_t> used_src_, used_dst_;
  std::vector<int32_t> colour_;
  std::vector<int32_t> path_;  // scratch for FlipPath
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
