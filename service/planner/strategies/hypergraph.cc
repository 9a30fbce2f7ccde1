#include "service/planner/strategies/hypergraph.h"

#include <algorithm>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "service/planner/mask_math.h"

namespace fcp {
namespace {

// The distinct workers of net n's pins, ascending.
std::vector<int32_t> Reach(const Hypergraph& h, const std::vector<int32_t>& part, int32_t n) {
  std::vector<int32_t> workers;
  for (int64_t i = h.pin_first[n]; i < h.pin_first[n + 1]; ++i) workers.push_back(part[h.pins[i]]);
  std::sort(workers.begin(), workers.end());
  workers.erase(std::unique(workers.begin(), workers.end()), workers.end());
  return workers;
}

// Gains are exact sums of byte weights times link prices; a move must gain more than rounding.
constexpr double kMinGain = 0.5;

class Refiner {
 public:
  Refiner(const Hypergraph& h, int32_t workers, const LinkCosts& links, const BalanceLimits& limits,
          std::vector<int32_t>* part)
      : h_(h), links_(links), limits_(limits), part_(*part) {
    const int32_t vertices = h.vertices();
    // Incidence: the nets each vertex is a pin of, in net order.
    incidence_first_.assign(vertices + 1, 0);
    for (int32_t v : h.pins) ++incidence_first_[v + 1];
    for (int32_t v = 0; v < vertices; ++v) incidence_first_[v + 1] += incidence_first_[v];
    incidence_.resize(h.pins.size());
    std::vector<int64_t> next(incidence_first_.begin(), incidence_first_.end() - 1);
    reach_.resize(h.nets());
    changed_.assign(h.nets(), -1);
    for (int32_t n = 0; n < h.nets(); ++n) {
      for (int64_t i = h.pin_first[n]; i < h.pin_first[n + 1]; ++i) {
        incidence_[next[h.pins[i]]++] = n;
        Add(n, part_[h.pins[i]]);
      }
    }
    compute_.assign(workers, 0);
    tokens_.assign(workers, 0);
    for (int32_t v = 0; v < vertices; ++v) {
      compute_[part_[v]] += static_cast<double>(h.compute[v]);
      tokens_[part_[v]] += h.tokens[v];
    }
    penalty_.assign(workers, 0);
    part_weight_.assign(workers, 0);
    touched_.assign(workers, 0);
    const int32_t nodes = links.workers_per_node >= workers
                              ? 1
                              : (workers + links.workers_per_node - 1) / links.workers_per_node;
    node_weight_.assign(nodes, 0);
    node_.resize(workers);
    for (int32_t w = 0; w < workers; ++w) node_[w] = w / links.workers_per_node;
  }

  // Pass `pass` over the vertices (all of them if `full`, else those with a net changed since
  // the previous pass began); returns the moves made.
  int64_t Pass(int32_t pass, bool full, double* gain) {
    int64_t moves = 0;
    for (int32_t v = 0; v < h_.vertices(); ++v) {
      if (!full && !Changed(v, pass - 1)) continue;
      const int32_t to = BestMove(v, gain);
      if (to < 0) continue;
      Move(v, to, pass);
      ++moves;
    }
    return moves;
  }

  // The worker v gains most by moving to, under the limits; -1 if no move gains. Adds the gain.
  int32_t BestMove(int32_t v, double* gain) {
    int32_t best = -1;
    double best_gain = kMinGain;
    if (Prepare(v, /*only_if_gain=*/true)) {
      for (int32_t b : candidates_) {
        if (b == part_[v] || !Fits(v, b)) continue;
        const double g = -Delta(v, b);
        if (g > best_gain) best_gain = g, best = b;
      }
    }
    Clear(v);
    if (best >= 0) *gain += best_gain;
    return best;
  }

  // Moves vertices off workers over a limit, the cheapest move first (it may raise the cost),
  // onto the workers its nets reach or the lightest ones, while a move fits; returns the moves.
  int64_t Rebalance() {
    const int32_t workers = static_cast<int32_t>(compute_.size());
    auto over = [&](int32_t w) {
      return std::max(compute_[w] / std::max(limits_.max_compute, 1e-300),
                      static_cast<double>(tokens_[w]) /
                          static_cast<double>(std::max<int64_t>(limits_.max_tokens, 1)));
    };
    constexpr int32_t kLightest = 4;  // of each weight, offered to every vertex
    std::vector<int32_t> order(workers), lightest;
    std::vector<std::vector<int32_t>> members(workers);
    for (int32_t v = 0; v < h_.vertices(); ++v) members[part_[v]].push_back(v);
    int64_t moves = 0;
    for (int32_t round = 0; round < h_.vertices(); ++round) {
      int32_t hot = 0;
      for (int32_t w = 1; w < workers; ++w) {
        if (over(w) > over(hot)) hot = w;
      }
      if (over(hot) <= 1) break;
      lightest.clear();
      for (int weight = 0; weight < 2; ++weight) {
        for (int32_t w = 0; w < workers; ++w) order[w] = w;
        const int32_t k = std::min(kLightest, workers);
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
          const double la = weight == 0 ? compute_[a] : static_cast<double>(tokens_[a]);
          const double lb = weight == 0 ? compute_[b] : static_cast<double>(tokens_[b]);
          return la != lb ? la < lb : a < b;
        });
        lightest.insert(lightest.end(), order.begin(), order.begin() + k);
      }
      int32_t best_v = -1, best_to = -1;
      double best_delta = 0;
      for (int32_t v : members[hot]) {
        Prepare(v, /*only_if_gain=*/false);
        for (int32_t b : lightest) Touch(b);
        for (int32_t b : candidates_) {
          if (b == hot || !Fits(v, b)) continue;
          const double delta = Delta(v, b);
          if (best_v < 0 || delta < best_delta) best_delta = delta, best_v = v, best_to = b;
        }
        Clear(v);
      }
      if (best_v < 0) break;
      members[hot].erase(std::find(members[hot].begin(), members[hot].end(), best_v));
      members[best_to].push_back(best_v);
      Move(best_v, best_to, -1);
      ++moves;
    }
    return moves;
  }

 private:
  int32_t Node(int32_t w) const { return node_[w]; }
  // links_.PerByte without its divisions (they dominated the refinement's time).
  double PerByte(int32_t a, int32_t b) const {
    return a == b ? 0 : node_[a] == node_[b] ? 1 : links_.cross_node;
  }

  void Add(int32_t n, int32_t w) {
    for (auto& [worker, count] : reach_[n]) {
      if (worker == w) {
        ++count;
        return;
      }
    }
    reach_[n].push_back({w, 1});
  }
  void Remove(int32_t n, int32_t w) {
    auto& r = reach_[n];
    for (size_t i = 0; i < r.size(); ++i) {
      if (r[i].first == w && --r[i].second == 0) {
        r.erase(r.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
    }
  }
  int32_t Count(int32_t n, int32_t w) const {
    for (const auto& [worker, count] : reach_[n]) {
      if (worker == w) return count;
    }
    return 0;
  }
  void Touch(int32_t w) {
    if (!touched_[w]) touched_[w] = 1, candidates_.push_back(w);
  }

  bool Fits(int32_t v, int32_t b) const {
    return compute_[b] + static_cast<double>(h_.compute[v]) <= limits_.max_compute &&
           tokens_[b] + h_.tokens[v] <= limits_.max_tokens;
  }

  // Fills the scratch state for pricing moves of v (Delta) and the candidates: the workers its
  // nets reach. Returns whether any move of v can gain; if not and `only_if_gain`, stops there
  // (no candidates).
  //
  // For a net n that v reads but does not hold (source on worker P), moving v from A to B
  // changes the cost by R(n) + [B ∉ Λ(n)] · w · PerByte(P, B), where R(n) = −w · PerByte(P, A)
  // if v is n's only pin on A, else 0. Summed over such nets, the second term is
  // Σ w·PerByte(P, B) (in closed form per node and worker of P) minus the part of it from nets
  // that already reach B. Nets v holds are priced in full for each candidate B (their source
  // moves with v).
  //
  // A move can gain only if v is the last pin of a read net on its worker (R(n) < 0), or is the
  // last pin of a net it holds on its worker, or holds a net read on another node (its source
  // may move nearer the readers). Otherwise every net keeps v's worker A and a move to B only
  // adds B to nets, and a held net's cost goes from Σ_p PerByte(A, p) to
  // Σ_p PerByte(B, p) + PerByte(B, A) with every p on A's node: never lower.
  bool Prepare(int32_t v, bool only_if_gain) {
    const int32_t from = part_[v];
    base_ = 0, total_ = 0;
    held_.clear();
    // First the cheap test of whether a move can gain (R(n) and the held nets' reach).
    bool held_may_gain = false;
    for (int64_t i = incidence_first_[v]; i < incidence_first_[v + 1]; ++i) {
      const int32_t n = incidence_[i];
      if (h_.source[n] == v) {
        held_.push_back(n);
        for (const auto& [worker, count] : reach_[n]) {
          if (worker == from ? count == 1 : Node(worker) != Node(from)) held_may_gain = true;
        }
      } else if (reach_[n].size() > 1 && Count(n, from) == 1) {  // (else R(n) = 0)
        base_ -= static_cast<double>(h_.weight[n]) * PerByte(part_[h_.source[n]], from);
      }
    }
    const bool may_gain = base_ != 0 || held_may_gain;
    if (only_if_gain && !may_gain) return false;
    for (int32_t n : held_) {
      for (const auto& [worker, count] : reach_[n]) Touch(worker);
    }
    for (int64_t i = incidence_first_[v]; i < incidence_first_[v + 1]; ++i) {
      const int32_t n = incidence_[i];
      if (h_.source[n] == v) continue;
      const double w = static_cast<double>(h_.weight[n]);
      const int32_t p = part_[h_.source[n]];
      total_ += w;
      part_weight_[p] += w;
      if (node_weight_[Node(p)] == 0) touched_nodes_.push_back(Node(p));
      node_weight_[Node(p)] += w;
      if (reach_[n].size() == 1) continue;  // on v's worker alone: no candidate
      for (const auto& [worker, count] : reach_[n]) {
        penalty_[worker] += w * PerByte(p, worker);
        Touch(worker);
      }
    }
    std::sort(candidates_.begin(), candidates_.end());
    return may_gain;
  }

  // The change in cost if v moved to b (after Prepare(v)).
  double Delta(int32_t v, int32_t b) const {
    const int32_t from = part_[v];
    const double x = links_.cross_node;
    // Σ w·PerByte(P, b) = x·total − (x − 1)·(weight with P on b's node) − (weight with P = b).
    const double all = x * total_ - (x - 1) * node_weight_[Node(b)] - part_weight_[b];
    double delta = base_ + all - penalty_[b];
    for (int32_t n : held_) {
      double before = 0, after = 0;
      for (const auto& [worker, count] : reach_[n]) {
        before += PerByte(from, worker);
        if (count - (worker == from ? 1 : 0) > 0) after += PerByte(b, worker);
      }
      delta += static_cast<double>(h_.weight[n]) * (after - before);
    }
    return delta;
  }

  // Zeroes the scratch state of Prepare(v).
  void Clear(int32_t v) {
    for (int32_t w : candidates_) penalty_[w] = 0, part_weight_[w] = 0, touched_[w] = 0;
    for (int64_t i = incidence_first_[v]; i < incidence_first_[v + 1]; ++i) {
      const int32_t n = incidence_[i];
      if (h_.source[n] != v) part_weight_[part_[h_.source[n]]] = 0;
    }
    for (int32_t node : touched_nodes_) node_weight_[node] = 0;
    candidates_.clear();
    touched_nodes_.clear();
  }

  bool Changed(int32_t v, int32_t since) const {
    for (int64_t i = incidence_first_[v]; i < incidence_first_[v + 1]; ++i) {
      if (changed_[incidence_[i]] >= since) return true;
    }
    return false;
  }

  void Move(int32_t v, int32_t to, int32_t pass) {
    const int32_t from = part_[v];
    for (int64_t i = incidence_first_[v]; i < incidence_first_[v + 1]; ++i) {
      changed_[incidence_[i]] = pass;
      Remove(incidence_[i], from);
      Add(incidence_[i], to);
    }
    compute_[from] -= static_cast<double>(h_.compute[v]);
    compute_[to] += static_cast<double>(h_.compute[v]);
    tokens_[from] -= h_.tokens[v];
    tokens_[to] += h_.tokens[v];
    part_[v] = to;
  }

  const Hypergraph& h_;
  const LinkCosts links_;
  const BalanceLimits limits_;
  std::vector<int32_t>& part_;
  std::vector<int64_t> incidence_first_;
  std::vector<int32_t> incidence_;
  // Per net: (worker, pins there); inline up to a connectivity of 6 (most nets), no pointer chase.
  std::vector<absl::InlinedVector<std::pair<int32_t, int32_t>, 6>> reach_;
  std::vector<int32_t> changed_;
  std::vector<int32_t>
      node_;  // per worker  // per net: the last pass a pin of it moved in, -1 if none
  std::vector<double> compute_;
  std::vector<int64_t> tokens_;
  // Scratch of BestMove, all zero between calls.
  std::vector<double> penalty_, part_weight_, node_weight_;
  std::vector<char> touched_;
  std::vector<int32_t> candidates_, held_, touched_nodes_;
  double base_ = 0, total_ = 0;  // Σ R(n) and Σ w over the nets v reads (Prepare)
};

}  // namespace

void Hypergraph::AddNet(int32_t net_source, int64_t bytes, const std::vector<int32_t>& net_pins) {
  pins.insert(pins.end(), net_pins.begin(), net_pins.end());
  pin_first.push_back(static_cast<int64_t>(pins.size()));
  source.push_back(net_source);
  weight.push_back(bytes);
}

void AddDocumentNets(const Mask& mask, const std::vector<int64_t>& bounds, int32_t first,
                     int64_t kv_bytes_per_token, Hypergraph* h) {
  const int32_t blocks = static_cast<int32_t>(bounds.size()) - 1;
  std::vector<int32_t> readers;
  auto reads = [&](int32_t q, int32_t k) {
    return TileRequired(mask, bounds[q], bounds[q + 1], bounds[k], bounds[k + 1]);
  };
  for (int32_t k = 0; k < blocks; ++k) {
    // Under each of the masks the readers of a block are a run of blocks around it (causal: k and
    // after; sliding window: the next few; prefix-LM: all of them while k is in the prefix).
    int32_t lo = k, hi = k;
    while (lo > 0 && reads(lo - 1, k)) --lo;
    while (hi + 1 < blocks && reads(hi + 1, k)) ++hi;
    readers.clear();
    for (int32_t q = lo; q <= hi; ++q) readers.push_back(first + q);
    if (readers.size() < 2) continue;
    h->AddNet(first + k, kv_bytes_per_token * (bounds[k + 1] - bounds[k]), readers);
  }
}

int64_t SendVolume(const Hypergraph& h, const std::vector<int32_t>& part) {
  int64_t bytes = 0;
  for (int32_t n = 0; n < h.nets(); ++n) {
    bytes += h.weight[n] * static_cast<int64_t>(Reach(h, part, n).size() - 1);
  }
  return bytes;
}

double SendCost(const Hypergraph& h, const std::vector<int32_t>& part, const LinkCosts& links) {
  double cost = 0;
  for (int32_t n = 0; n < h.nets(); ++n) {
    const int32_t from = part[h.source[n]];
    for (int32_t w : Reach(h, part, n)) {
      cost += static_cast<double>(h.weight[n]) * links.PerByte(from, w);
    }
  }
  return cost;
}

int64_t RebalancePartition(const Hypergraph& h, int32_t workers, const LinkCosts& links,
                           const BalanceLimits& limits, std::vector<int32_t>* part) {
  if (workers <= 1) return 0;
  return Refiner(h, workers, links, limits, part).Rebalance();
}

RefineStats RefinePartition(const Hypergraph& h, int32_t workers, const LinkCosts& links,
                            const BalanceLimits& limits, int32_t max_passes, double min_pass_gain,
                            std::vector<int32_t>* part) {
  RefineStats stats;
  if (workers <= 1 || h.nets() == 0) return stats;
  Refiner refiner(h, workers, links, limits, part);
  // After a first full pass, passes revisit only the vertices whose nets changed; when one of
  // those moves nothing, a full pass checks every vertex again (a worker that shed load may now
  // take one that could not move before) and ends the refinement if it moves nothing either.
  bool full = true;
  double cost = min_pass_gain > 0 ? SendCost(h, *part, links) : 0;
  while (stats.passes < max_passes) {
    double gain = 0;
    const int64_t moves = refiner.Pass(stats.passes, full, &gain);
    ++stats.passes;
    stats.moves += moves;
    if (moves == 0 && full) break;
    if (gain < min_pass_gain * cost) break;
    cost -= gain;
    full = moves == 0;
  }
  return stats;
}

}  // namespace fcp
