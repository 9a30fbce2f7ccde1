#include "service/planner/strategies/graph_partition.h"

#include <metis.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "service/planner/strategies/metis_library.h"

namespace fcp {
namespace {

constexpr idx_t kSeed = 1;
// Weight sums METIS may form without overflowing idx_t (32-bit here).
constexpr double kWeightRange = 1 << 28;

ABSL_CONST_INIT absl::Mutex metis_mutex(absl::kConstInit);

// The subgraph on `vertices` (ascending) in METIS's arrays, weights scaled into idx_t: compute,
// and tokens where they are balanced (`ubvec`: 1 + each constraint's tolerance).
struct MetisGraph {
  std::vector<idx_t> xadj{0}, adjncy, adjwgt, vwgt;
  std::vector<real_t> ubvec;
  idx_t vertices() const { return static_cast<idx_t>(xadj.size()) - 1; }
  idx_t constraints() const { return static_cast<idx_t>(ubvec.size()); }
};

// The tolerance of each of the two METIS levels (nodes, then GPUs): (1 + level)^2 = 1 + tolerance.
double LevelTolerance(double tolerance) { return std::sqrt(1 + tolerance) - 1; }

MetisGraph ToMetis(const WeightedGraph& g, const std::vector<int32_t>& vertices,
                   const BalanceTolerance& tolerance) {
  std::vector<int32_t> local(g.vertices(), -1);
  for (size_t i = 0; i < vertices.size(); ++i) local[vertices[i]] = static_cast<int32_t>(i);
  double compute = 0, tokens = 0, edges = 0;
  for (int32_t v : vertices) {
    compute += static_cast<double>(g.compute[v]);
    tokens += static_cast<double>(g.tokens[v]);
    for (int64_t i = g.offsets[v]; i < g.offsets[v + 1]; ++i) {
      edges += static_cast<double>(g.edge_weight[i]);
    }
  }
  auto scaled = [](int64_t w, double total) -> idx_t {
    if (w <= 0) return 0;
    const double s = total > kWeightRange ? kWeightRange / total : 1.0;
    return std::max<idx_t>(1, static_cast<idx_t>(std::llround(static_cast<double>(w) * s)));
  };
  MetisGraph m;
  const bool balance_tokens = std::isfinite(tolerance.tokens);
  m.ubvec.push_back(static_cast<real_t>(1 + LevelTolerance(tolerance.compute)));
  if (balance_tokens) m.ubvec.push_back(static_cast<real_t>(1 + LevelTolerance(tolerance.tokens)));
  m.vwgt.reserve(m.ubvec.size() * vertices.size());
  for (int32_t v : vertices) {
    m.vwgt.push_back(scaled(g.compute[v], compute));
    if (balance_tokens) m.vwgt.push_back(scaled(g.tokens[v], tokens));
    for (int64_t i = g.offsets[v]; i < g.offsets[v + 1]; ++i) {
      const int32_t u = local[g.adjacency[i]];
      if (u < 0) continue;  // the other end is outside this subgraph
      m.adjncy.push_back(u);
      m.adjwgt.push_back(scaled(g.edge_weight[i], edges));
    }
    m.xadj.push_back(static_cast<idx_t>(m.adjncy.size()));
  }
  return m;
}

// Part of each vertex of `m` among `parts` parts whose target shares are `shares` (sum 1).
absl::StatusOr<std::vector<idx_t>> Partition(MetisGraph& m, const std::vector<double>& shares) {
  idx_t nvtxs = m.vertices();
  idx_t nparts = static_cast<idx_t>(shares.size());
  std::vector<idx_t> part(nvtxs, 0);
  if (nparts <= 1 || nvtxs == 0) return part;
  if (nvtxs <= nparts) {  // one vertex per part: nothing to balance
    std::iota(part.begin(), part.end(), 0);
    return part;
  }
  idx_t ncon = m.constraints();
  std::vector<real_t> tpwgts(ncon * nparts);
  for (idx_t p = 0; p < nparts; ++p) {
    for (idx_t c = 0; c < ncon; ++c) tpwgts[p * ncon + c] = shares[p];
  }
  absl::StatusOr<const MetisLibrary*> metis = LoadMetis();
  if (!metis.ok()) return metis.status();
  idx_t options[METIS_NOPTIONS];
  (*metis)->set_default_options(options);
  options[METIS_OPTION_SEED] = kSeed;
  options[METIS_OPTION_NUMBERING] = 0;
  idx_t objval = 0;
  int status;
  {
    absl::MutexLock lock(&metis_mutex);
    status =
        (*metis)->part_graph_recursive(&nvtxs, &ncon, m.xadj.data(), m.adjncy.data(), m.vwgt.data(),
                                       /*vsize=*/nullptr, m.adjwgt.data(), &nparts, tpwgts.data(),
                                       m.ubvec.data(), options, &objval, part.data());
  }
  if (status != METIS_OK) {
    return absl::InternalError(absl::StrCat("dcp: METIS_PartGraphRecursive failed (", status,
                                            ") on ", nvtxs, " vertices, ", nparts, " parts"));
  }
  return part;
}

// Moves vertices off the most loaded worker (by the larger of compute / its limit and tokens / its
// limit, a limit being (1 + tolerance) × the mean) while one lowers its load without making
// another worker worse than it was: METIS's balance is approximate on multi-constraint graphs,
// and the node level leaves its own error.
void RepairBalance(const WeightedGraph& g, const Topology& t, const BalanceTolerance& tolerance,
                   std::vector<int32_t>* worker) {
  const int32_t workers = t.num_workers;
  std::vector<double> compute(workers, 0), tokens(workers, 0);
  std::vector<std::vector<int32_t>> members(workers);
  double sum_c = 0, sum_t = 0;
  for (int32_t v = 0; v < g.vertices(); ++v) {
    const int32_t w = (*worker)[v];
    compute[w] += static_cast<double>(g.compute[v]);
    tokens[w] += static_cast<double>(g.tokens[v]);
    members[w].push_back(v);
    sum_c += static_cast<double>(g.compute[v]);
    sum_t += static_cast<double>(g.tokens[v]);
  }
  // An infinite tolerance gives tokens an infinite limit: they never count.
  const double limit_c = std::max(sum_c / workers, 1e-9) * (1 + tolerance.compute);
  const double limit_t = std::max(sum_t / workers, 1e-9) * (1 + tolerance.tokens);
  auto score = [&](double c, double tk) { return std::max(c / limit_c, tk / limit_t); };
  // Targets: the few workers lowest in compute and the few lowest in tokens (a vertex heavy in
  // one weight fits best beside a worker light in it).
  constexpr int kTargets = 4;
  std::vector<int32_t> by_compute(workers), by_tokens(workers), targets;
  for (int iteration = 0; iteration < 4 * workers; ++iteration) {
    int32_t hot = 0;
    for (int32_t w = 1; w < workers; ++w) {
      if (score(compute[w], tokens[w]) > score(compute[hot], tokens[hot])) hot = w;
    }
    const double before = score(compute[hot], tokens[hot]);
    if (before <= 1) return;
    std::iota(by_compute.begin(), by_compute.end(), 0);
    std::iota(by_tokens.begin(), by_tokens.end(), 0);
    const int k = std::min(kTargets, workers);
    std::partial_sort(by_compute.begin(), by_compute.begin() + k, by_compute.end(),
                      [&](int32_t a, int32_t b) {
                        return compute[a] != compute[b] ? compute[a] < compute[b] : a < b;
                      });
    std::partial_sort(by_tokens.begin(), by_tokens.begin() + k, by_tokens.end(),
                      [&](int32_t a, int32_t b) {
                        return tokens[a] != tokens[b] ? tokens[a] < tokens[b] : a < b;
                      });
    targets.assign(by_compute.begin(), by_compute.begin() + k);
    targets.insert(targets.end(), by_tokens.begin(), by_tokens.begin() + k);
    // The best move of one vertex, or swap of two, between hot and a target.
    double best = before;
    int32_t move = -1, swap = -1, to = -1;
    for (size_t i = 0; i < members[hot].size(); ++i) {
      const int32_t v = members[hot][i];
      const double c = static_cast<double>(g.compute[v]), tk = static_cast<double>(g.tokens[v]);
      for (int32_t t : targets) {
        if (t == hot) continue;
        const double after = std::max(score(compute[hot] - c, tokens[hot] - tk),
                                      score(compute[t] + c, tokens[t] + tk));
        if (after < best - 1e-12) best = after, move = static_cast<int32_t>(i), swap = -1, to = t;
        for (size_t j = 0; j < members[t].size(); ++j) {
          const int32_t u = members[t][j];
          const double dc = c - static_cast<double>(g.compute[u]);
          const double dt = tk - static_cast<double>(g.tokens[u]);
          const double swapped = std::max(score(compute[hot] - dc, tokens[hot] - dt),
                                          score(compute[t] + dc, tokens[t] + dt));
          if (swapped < best - 1e-12) {
            best = swapped, move = static_cast<int32_t>(i), swap = static_cast<int32_t>(j), to = t;
          }
        }
      }
    }
    if (move < 0) return;
    auto transfer = [&](int32_t from, size_t index, int32_t into) {
      const int32_t v = members[from][index];
      members[from].erase(members[from].begin() + index);
      members[into].push_back(v);
      compute[from] -= static_cast<double>(g.compute[v]);
      tokens[from] -= static_cast<double>(g.tokens[v]);
      compute[into] += static_cast<double>(g.compute[v]);
      tokens[into] += static_cast<double>(g.tokens[v]);
      (*worker)[v] = into;
    };
    if (swap >= 0) transfer(to, swap, hot);  // first: `move` indexes hot's list before it grows
    transfer(hot, move, to);
  }
}

}  // namespace

WeightedGraph GraphBuilder::Finish() {
  const int32_t n = graph_.vertices();
  std::vector<int64_t> degree(n + 1, 0);
  for (const Edge& e : edges_) {
    ++degree[e.u + 1];
    ++degree[e.v + 1];
  }
  for (int32_t v = 0; v < n; ++v) degree[v + 1] += degree[v];
  graph_.offsets = degree;
  graph_.adjacency.resize(2 * edges_.size());
  graph_.edge_weight.resize(2 * edges_.size());
  for (const Edge& e : edges_) {  // in edge order: rows come out deterministic
    graph_.adjacency[degree[e.u]] = e.v;
    graph_.edge_weight[degree[e.u]++] = e.weight;
    graph_.adjacency[degree[e.v]] = e.u;
    graph_.edge_weight[degree[e.v]++] = e.weight;
  }
  edges_.clear();
  return std::move(graph_);
}

absl::StatusOr<std::vector<int32_t>> PartitionOntoWorkers(const WeightedGraph& graph,
                                                          const Topology& topology,
                                                          const BalanceTolerance& tolerance) {
  const int32_t workers = topology.num_workers;
  const int32_t per_node = std::clamp(topology.workers_per_node, 1, workers);
  const int32_t nodes = workers / per_node + (workers % per_node != 0 ? 1 : 0);
  auto node_size = [&](int32_t n) { return std::min(per_node, workers - n * per_node); };
  std::vector<int32_t> all(graph.vertices());
  std::iota(all.begin(), all.end(), 0);
  std::vector<idx_t> node_of(graph.vertices(), 0);
  if (nodes > 1) {
    MetisGraph m = ToMetis(graph, all, tolerance);
    std::vector<double> shares(nodes);
    for (int32_t n = 0; n < nodes; ++n) shares[n] = static_cast<double>(node_size(n)) / workers;
    absl::StatusOr<std::vector<idx_t>> parts = Partition(m, shares);
    if (!parts.ok()) return parts.status();
    node_of = *std::move(parts);
  }
  std::vector<std::vector<int32_t>> in_node(nodes);
  for (int32_t v = 0; v < graph.vertices(); ++v) in_node[node_of[v]].push_back(v);
  std::vector<int32_t> worker(graph.vertices(), 0);
  for (int32_t n = 0; n < nodes; ++n) {
    MetisGraph m = ToMetis(graph, in_node[n], tolerance);
    const std::vector<double> shares(node_size(n), 1.0 / node_size(n));
    absl::StatusOr<std::vector<idx_t>> parts = Partition(m, shares);
    if (!parts.ok()) return parts.status();
    for (size_t i = 0; i < in_node[n].size(); ++i) {
      worker[in_node[n][i]] = n * per_node + static_cast<int32_t>((*parts)[i]);
    }
  }
  RepairBalance(graph, topology, tolerance, &worker);
  return worker;
}

}  // namespace fcp
