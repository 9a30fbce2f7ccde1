#include "service/planner/round_scheduler.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "service/planner/radix_sort.h"

namespace fcp {
namespace {

constexpr int64_t kFlipStepsPerEdge = 16;

// Colour tables: src_[c * W + u] = the edge of colour c leaving sender u and its receiver, dst_
// likewise for receivers; a slot is meaningful only where its colour is used at its node (the
// used_ bitsets), so the tables are never cleared and untouched slots cost nothing. A slot is 8
// bytes, read and written whole. An alternating path is walked in the rows of its two colours
// (the rows stay in cache). kOneWord: at most 64 colours, one bitset word per node (the common
// case, its indexing folded).
template <bool kOneWord>
class BipartiteColouring {
 public:
  BipartiteColouring(const std::vector<Edge>& edges, int32_t workers, int32_t delta)
      : edges_(edges),
        workers_(workers),
        delta_(delta),
        words_(kOneWord ? 1 : (delta + 63) / 64),
        src_(new Slot[static_cast<size_t>(workers) * delta]),  // uninitialised
        dst_(new Slot[static_cast<size_t>(workers) * delta]),
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
    if (Used(used_dst_, v, a)) {
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
  struct Slot {
    int32_t peer;
    int32_t edge;
  };

  int32_t Words() const { return kOneWord ? 1 : words_; }
  static uint32_t WordOf(uint32_t c) { return kOneWord ? 0 : c / 64; }
  size_t Index(int32_t node, int32_t c) const { return static_cast<size_t>(c) * workers_ + node; }
  // Lowest colour not used at `node` (a bitset of used colours per node).
  int32_t FreeAt(const std::vector<uint64_t>& used, int32_t node) const {
    const uint64_t* bits = &used[static_cast<size_t>(node) * Words()];
    for (int32_t w = 0; w < Words(); ++w) {
      if (~bits[w] != 0) return w * 64 + __builtin_ctzll(~bits[w]);
    }
    return -1;  // unreachable: degree < delta before colouring this edge
  }
  int32_t FreeAtBoth(int32_t u, int32_t v) const {
    const uint64_t* at_u = &used_src_[static_cast<size_t>(u) * Words()];
    const uint64_t* at_v = &used_dst_[static_cast<size_t>(v) * Words()];
    for (int32_t w = 0; w < Words(); ++w) {
      const uint64_t free = ~(at_u[w] | at_v[w]);
      if (free != 0) {
        const int32_t c = w * 64 + __builtin_ctzll(free);
        return c < delta_ ? c : -1;
      }
    }
    return -1;
  }
  uint64_t& Word(std::vector<uint64_t>& used, int32_t node, uint32_t c) {
    return used[static_cast<size_t>(node) * Words() + WordOf(c)];
  }
  bool Used(const std::vector<uint64_t>& used, int32_t node, uint32_t c) const {
    return (used[static_cast<size_t>(node) * Words() + WordOf(c)] >> (c % 64)) & 1;
  }
  static uint64_t Bit(uint32_t c) { return uint64_t{1} << (c % 64); }
  // Colour `from` is no longer used at `node`, colour `to` is.
  void Move(std::vector<uint64_t>& used, int32_t node, uint32_t from, uint32_t to) {
    Word(used, node, from) &= ~Bit(from);
    Word(used, node, to) |= Bit(to);
  }
  void Assign(int32_t e, int32_t c) {
    const int32_t u = edges_[e].src, v = edges_[e].dst;
    colour_[e] = c;
    src_[Index(u, c)] = {v, e};
    dst_[Index(v, c)] = {u, e};
    Word(used_src_, u, c) |= Bit(c);
    Word(used_dst_, v, c) |= Bit(c);
  }
  // Swaps colours a and b along the alternating path that starts at receiver v with colour a
  // (b is free at v): its edges alternate a (receiver to sender) and b (sender to receiver).
  // Each node of the path trades its slots of the two colours (an end moves its path edge into
  // its free slot), in one pass: a path is simple, so a node is done once its next node is read.
  // Only the two ends change their used sets.
  void FlipPath(int32_t v, int32_t a, int32_t b) {
    Slot* const dst_a = &dst_[Index(0, a)];
    Slot* const dst_b = &dst_[Index(0, b)];
    Slot* const src_a = &src_[Index(0, a)];
    Slot* const src_b = &src_[Index(0, b)];
    Slot edge_a = dst_a[v];  // the path's current edge of colour a, seen from its receiver
    int32_t x = v;
    dst_b[v] = edge_a;
    Move(used_dst_, v, a, b);
    int64_t edges = 0;
    while (true) {
      colour_[edge_a.edge] = b;
      ++edges;
      const int32_t y = edge_a.peer;  // a sender: its colour-a slot holds this edge
      const Slot back = {x, edge_a.edge};
      if (!Used(used_src_, y, b)) {  // the path ends at sender y
        src_b[y] = back;
        Move(used_src_, y, a, b);
        break;
      }
      const Slot edge_b = src_b[y];
      src_a[y] = edge_b;
      src_b[y] = back;
      colour_[edge_b.edge] = a;
      ++edges;
      x = edge_b.peer;  // a receiver: its colour-b slot holds edge_b
      const Slot in = {y, edge_b.edge};
      if (!Used(used_dst_, x, a)) {  // the path ends at receiver x
        dst_a[x] = in;
        Move(used_dst_, x, b, a);
        break;
      }
      edge_a = dst_a[x];
      dst_a[x] = in;
      dst_b[x] = edge_a;
    }
    flip_steps_ += edges;
  }

  const std::vector<Edge>& edges_;
  int32_t workers_;
  int32_t delta_;
  int32_t words_;
  std::unique_ptr<Slot[]> src_, dst_;
  std::vector<uint64_t> used_src_, used_dst_;
  std::vector<int32_t> colour_;
  int64_t flip_budget_;
  int64_t flip_steps_ = 0;
};

// The colour of each edge, coloured in `order` (keys whose low bits are the edge index).
template <bool kOneWord>
std::vector<int32_t> Colour(const std::vector<Edge>& edges, int32_t workers, int32_t delta,
                            const std::vector<uint64_t>& order, uint64_t index_mask) {
  BipartiteColouring<kOneWord> colouring(edges, workers, delta);
  for (const uint64_t key : order) colouring.Colour(static_cast<int32_t>(key & index_mask));
  return colouring.TakeColours();
}

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
  RadixSortAbove(&order, index_bits);  // the index bits ascend already
  const uint64_t index_mask = (uint64_t{1} << index_bits) - 1;
  std::vector<int32_t> rounds = delta <= 64
                                    ? Colour<true>(edges, num_workers, delta, order, index_mask)
                                    : Colour<false>(edges, num_workers, delta, order, index_mask);
  for (int32_t& r : rounds) ++r;
  return rounds;
}

}  // namespace fcp
