// The dcp strategy's hypergraph of data dependencies and its refinement (hypergraph.cc).
//
// Vertices are blocks of tokens (or bundles of whole short documents), weighted by their attention
// compute and their tokens. Each KV block is a net: its pins are the blocks whose queries read it
// (mask-aware), its source the block that holds it, its weight the KV block's bytes. Under a
// partition of the vertices into workers, the source's worker sends the KV block once to every
// other worker holding a pin, so the exact send-once volume of a net is
//
//   weight × (λ − 1)        λ = the number of workers among its pins (its connectivity)
//
// and, node-aware, each of those sends is priced by its link (LinkCosts: 1 per byte within a
// node, intra/inter bandwidth ratio across nodes). A graph's edge cut over-counts this whenever a
// net's pins span several workers: blocks x0 x1 x2 of a causal document on A, B, A cut the chain
// twice, charged |x0| + (|x0| + |x1|), while x0 goes to B once and x1 to A once, |x0| + |x1|.
// That is why dcp refines METIS's graph partition with these exact gains.
//
// RebalancePartition first repairs the balance METIS may leave (its cheapest moves may raise the
// cost). RefinePartition then makes passes of FM moves: every vertex in turn moves to the worker
// with the largest positive gain in this objective among the workers its nets already reach, if the
// move keeps that worker within the balance limits. Gains are exact (not an approximation of λ −
// 1), so a pass never increases the objective, and no move takes a worker over a limit. Unlike
// classic Fiduccia–Mattheyses it takes no negative-gain moves to climb out of local minima (no
// rollback): every applied move is an improvement. Deterministic: vertices in id order, ties to
// the lowest worker, no clock and no randomness.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_HYPERGRAPH_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_HYPERGRAPH_H_

#include <cstdint>
#include <vector>

#include "service/planner/batch.h"

namespace fcp {

struct Hypergraph {
  std::vector<int64_t> compute;  // per vertex, any unit
  std::vector<int64_t> tokens;   // per vertex
  // Net n: pins[pin_first[n] .. pin_first[n + 1]) (distinct vertices, the source among them),
  // source[n] the vertex holding the data, weight[n] its bytes.
  std::vector<int64_t> pin_first{0};
  std::vector<int32_t> pins;
  std::vector<int32_t> source;
  std::vector<int64_t> weight;

  int32_t vertices() const { return static_cast<int32_t>(compute.size()); }
  int32_t nets() const { return static_cast<int32_t>(source.size()); }
  int32_t AddVertex(int64_t vertex_compute, int64_t vertex_tokens) {
    compute.push_back(vertex_compute);
    tokens.push_back(vertex_tokens);
    return vertices() - 1;
  }
  // A net over `net_pins` (must contain `net_source`).
  void AddNet(int32_t net_source, int64_t bytes, const std::vector<int32_t>& net_pins);
};

// The nets of one document cut at `bounds` ([0, b1, ..., length]) whose blocks are the vertices
// first, first + 1, ...: block i's KV (kv_bytes_per_token × its tokens) is read by every block j
// with a required tile (j, i) under `mask` (mask_math.h: causal, full, sliding window, prefix-LM).
// Nets read by their own block only are left out (they never cost a send).
void AddDocumentNets(const Mask& mask, const std::vector<int64_t>& bounds, int32_t first,
                     int64_t kv_bytes_per_token, Hypergraph* h);

// The price of one byte sent from worker a to worker b: 0 to itself, 1 within a node,
// `cross_node` between nodes (workers a / workers_per_node and b / workers_per_node differ).
struct LinkCosts {
  int32_t workers_per_node = 1 << 30;
  double cross_node = 1;
  double PerByte(int32_t a, int32_t b) const {
    if (a == b) return 0;
    return a / workers_per_node == b / workers_per_node ? 1 : cross_node;
  }
};

// Σ over nets of weight × (λ − 1): the bytes sent, each KV block once to each worker that reads it.
int64_t SendVolume(const Hypergraph& h, const std::vector<int32_t>& part);
// The same sends priced by their links: Σ over nets, over the workers p ≠ q in Λ(net), of
// weight × links.PerByte(q, p), q the source's worker. The objective RefinePartition lowers.
double SendCost(const Hypergraph& h, const std::vector<int32_t>& part, const LinkCosts& links);

// A worker may hold at most this much (both weights).
struct BalanceLimits {
  double max_compute = 0;
  int64_t max_tokens = 0;
};

struct RefineStats {
  int32_t passes = 0;
  int64_t moves = 0;
};

// Brings workers over a limit within it where single moves allow: each step moves one vertex
// off the most loaded worker (by load / limit), the one whose move raises SendCost least, onto a
// worker it fits (the workers its nets reach and the 4 lightest in each weight). Returns the
// moves. The repair METIS's partition may need before refinement (it may raise the cost).
int64_t RebalancePartition(const Hypergraph& h, int32_t workers, const LinkCosts& links,
                           const BalanceLimits& limits, std::vector<int32_t>* part);

// Up to `max_passes` passes of improving moves on `part` (each vertex's worker in [0, workers)).
// The first pass visits every vertex, later ones only those whose nets changed since the
// previous pass began, and a pass that moves nothing is followed by a full one, which ends the
// refinement if it moves nothing either (converged: no considered move gains). Also stops after
// a pass that lowered SendCost by less than `min_pass_gain` × its cost before (0: never). A
// worker still over a limit stays allowed to shed load, never to take more.
RefineStats RefinePartition(const Hypergraph& h, int32_t workers, const LinkCosts& links,
                            const BalanceLimits& limits, int32_t max_passes, double min_pass_gain,
                            std::vector<int32_t>* part);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_HYPERGRAPH_H_
