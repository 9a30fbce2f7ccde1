// Multi-constraint graph partitioning for the dcp strategy, over METIS (libmetis): vertices carry
// two weights (compute, tokens), edges the bytes that move if their ends land on different
// workers. Partitioned hierarchically, as the cluster is wired:
//
//   level 1: vertices → nodes        (cut edges here are InfiniBand traffic: the costly ones)
//   level 2: each node's vertices → its GPUs   (cut edges here travel over NVLink)
//
// then repaired so that no worker exceeds (1 + its tolerance) × the mean in either weight where
// single vertices allow it. A weight whose tolerance is infinite is not balanced at all (METIS sees
// the compute weight alone): dcp's tokens under the attention objective without a memory cap.
// Deterministic (METIS with a fixed seed, drawing from a rand() of its own: metis_library.h) and
// thread-safe (METIS calls are serialised: its error handling and its rand() keep process-global
// state).
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_GRAPH_PARTITION_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_GRAPH_PARTITION_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "service/planner/batch.h"

namespace fcp {

// An undirected graph in compressed sparse rows: the neighbours of vertex v are
// adjacency[offsets[v] .. offsets[v + 1]), each edge listed from both ends with the same weight.
struct WeightedGraph {
  std::vector<int64_t> offsets{0};
  std::vector<int32_t> adjacency;
  std::vector<int64_t> edge_weight;
  std::vector<int64_t> compute;  // per vertex, any unit (scaled internally)
  std::vector<int64_t> tokens;   // per vertex
  int32_t vertices() const { return static_cast<int32_t>(compute.size()); }
};

// Builds a WeightedGraph from vertices and edges added in any order.
class GraphBuilder {
 public:
  int32_t AddVertex(int64_t compute, int64_t tokens) {
    graph_.compute.push_back(compute);
    graph_.tokens.push_back(tokens);
    return graph_.vertices() - 1;
  }
  void AddWeights(int32_t v, int64_t compute, int64_t tokens) {
    graph_.compute[v] += compute;
    graph_.tokens[v] += tokens;
  }
  const WeightedGraph& graph() const { return graph_; }
  void AddEdge(int32_t u, int32_t v, int64_t weight) { edges_.push_back({u, v, weight}); }
  WeightedGraph Finish();

 private:
  struct Edge {
    int32_t u, v;
    int64_t weight;
  };
  WeightedGraph graph_;
  std::vector<Edge> edges_;
};

// The allowed max/mean - 1 of each weight (each split between the two levels); infinity: that
// weight is unconstrained.
struct BalanceTolerance {
  double compute = 0.05;
  double tokens = 0.05;
};

// The worker of every vertex. Internal error if METIS fails, Unavailable if it cannot be loaded.
absl::StatusOr<std::vector<int32_t>> PartitionOntoWorkers(const WeightedGraph& graph,
                                                          const Topology& topology,
                                                          const BalanceTolerance& tolerance);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_GRAPH_PARTITION_H_
