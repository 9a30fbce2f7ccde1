// dcp: DCP's partitioning of data and computation.
//
// What the paper describes: the attention of a batch as a hypergraph. Blocks of tokens are
// vertices; every KV block is a net over the blocks whose queries read it (mask-aware, so sparse
// masks make sparse nets); a hypergraph partitioner cuts it into devices, hierarchically (nodes,
// then the GPUs of a node), balancing compute and memory and minimising connectivity − 1, which
// is exactly the send-once communication volume; computation (tiles) is placed separately from
// data, so a tile may run where its KV lives.
//
// What this file does (hypergraph.h for the model and its refinement):
//
//   doc A (causal): a0 a1 a2 a3        net(a0) = {a0 a1 a2 a3}, net(a1) = {a1 a2 a3}, ...
//   short documents: bundled whole into vertices of ~1/16 of a worker's tokens (no nets)
//   1. METIS (graph_partition.h): multi-constraint graph partitioning, nodes then GPUs, on the
//      chain of cut sizes (a FULL document's clique) - a fast, approximate start;
//   2. rebalancing on the hypergraph: where METIS left a worker over a limit, the cheapest moves
//      off it (METIS's multi-constraint balance is approximate);
//   3. FM refinement on the hypergraph: moves scored by the exact change in connectivity − 1,
//      each send priced by its link (a cross-node byte costs intra / inter bandwidth of the cost
//      model), under the balance limits: (1 + balance_tolerance) × the mean of attention FLOPs
//      (allowed pairs); tokens as the objective asks (Tolerance below): under the whole step
//      also (1 + balance_tolerance) × the mean, under attention alone only the memory cap if
//      the request has one; never above topology.max_tokens_per_worker.
//
// Where it differs from the paper, and why:
//  * No hypergraph partitioner from scratch. Zoltan's PHG (Debian libtrilinos-zoltan-dev) is the
//    one packaged, and it was rejected: it needs MPI_Init in every process that plans (the
//    gRPC coordinator, and - every program that plans for a job must offer the same strategies,
//    dcp.h - fcp-worker and libfcp.so inside the trainer, next to torch's own process groups);
//    MPI is initialised once per process and Zoltan keeps global state, so concurrent plans of
//    the coordinator's threads would be serialised behind MPI_THREAD_MULTIPLE at best; and it
//    brings Trilinos, Open MPI and PT-Scotch into a service that today needs libmetis alone.
//    Instead METIS's graph partition is refined with exact hypergraph gains. The refinement only
//    takes improving moves (no negative moves and rollback as in full FM), and considers for a
//    vertex only the workers its nets already reach.
//  * Computation is placed after data, not partitioned with it: once blocks have owners, a greedy
//    pass on the cost model moves tiles of q blocks off workers above the mean attention compute
//    to their KV's owner (Q moves there, the partial output comes back; plan.h), keeping the
//    placement only when the full schedule predicts a lower step (dcp_placement.cc). Under GQA a
//    q block costs more bytes per token than a KV block (llama3-8b: Q 8 KiB + O 16 KiB out and
//    back vs K+V 4 KiB; backward dO and dQ vs dKV 4 KiB), so it pays only where compute is
//    imbalanced enough.
//  * Balance is measured in attention FLOPs (allowed pairs) and tokens, as the grid measures it;
//    the linear layers' time follows tokens. Under the attention objective without a memory cap
//    tokens are unconstrained (METIS balances compute alone), as they are for the strategies
//    dcp is compared with there: holding tokens to the tolerance forced ~1.2x their KV bytes
//    (docs/benchmarks.md, seed_targets). The price: one worker may hold many times the mean
//    tokens (7-21x on the grid's causal cells at W = 32-128), which the objective says is free.
//  * Graph size is bounded by coarsening (64 vertices per worker, at least 20000): long
//    documents get fewer, larger blocks, but never blocks above half a worker's mean pairs or
//    tokens. Planning takes tens of milliseconds at W = 64 and about a second at W = 1024
//    (docs/benchmarks.md, "dcp: hypergraph partitioning"); `auto` tries dcp only when its
//    estimated cost fits the time budget. Under the attention objective without a memory cap
//    METIS balances one weight, not two: ~3x faster at W = 64, ~2x at W = 1024.
#include "service/planner/strategies/dcp.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/mask_math.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/dcp_placement.h"
#include "service/planner/strategies/graph_partition.h"
#include "service/planner/strategies/hypergraph.h"
#include "service/planner/strategies/packing.h"

namespace fcp {
namespace {

// Vertices (+ clique edges) the long documents' blocks may add to the graph, at least; bounds
// METIS's and the refinement's time (kVerticesPerWorker × W where that is more).
constexpr double kMaxGraph = 20000;
constexpr double kVerticesPerWorker = 64;
// Smallest block for long documents cut finer than the block size, tokens.
constexpr int64_t kMinBlock = 256;
constexpr double kMetisMsPerWorker = 1.5;  // measured METIS planning cost, rounded up
constexpr double kBudgetShare = 0.25;      // of auto's time budget dcp may take at most
constexpr int32_t kRefinePasses = 8;       // FM passes over METIS's partition, at most
constexpr double kMinPassGain = 0.01;      // stop after a pass that saved less (of the cost)

struct Piece {
  int32_t document;
  int64_t begin, end;
  int32_t vertex;
};

class DcpPlanner final : public Planner {
 public:
  absl::string_view name() const override { return "dcp"; }
  absl::string_view description() const override {
    return "DCP: blocks and their KV nets as a hypergraph; METIS's multi-constraint partition "
           "refined by exact connectivity-1 moves (attention FLOPs and tokens balanced, "
           "cross-node bytes priced by link speed), across nodes then GPUs";
  }

  // auto: tried after the packers (it has not won a cell of the comparison grid,
  // docs/benchmarks.md), before ring.
  int auto_order() const override { return 60; }
  // A balanced plan's transfers, and METIS + refinement: ~1.5 ms per worker, counted
  // 1 / kBudgetShare times, since its partitioning costs 10-100x the packers' and must not slow
  // every plan: dcp is tried only while it fits a quarter of the budget (W <= 33 at the default
  // 200 ms).
  PlanningCost EstimatePlanningCost(const PlanContext& ctx) const override {
    PlanningCost cost = Planner::EstimatePlanningCost(ctx);
    cost.ms = kMetisMsPerWorker * ctx.batch.topology.num_workers / kBudgetShare;
    return cost;
  }

  // The mean worker of any plan of its blocks: every block's queries against their document at
  // the efficiency of the largest tile they could form, no tile overhead, and their tokens'
  // linear layers (QueryRangeLowerBoundSeconds), over the workers. The plan computes every tile
  // of its blocks somewhere (placement moves tiles whole; FitTokenBudget only cuts blocks, and a
  // shorter q range is no more efficient), and its step is at least its mean worker's compute.
  // Its blocks are cut finer than the packers' (down to kMinBlock), so at W = 8-32 on wikipedia
  // this is above the other strategies' plans and auto skips the partitioning. O(documents).
  double LowerBoundMs(const PlanContext& ctx) const override {
    const Batch& batch = ctx.batch;
    if (batch.topology.num_workers <= 0 || batch.documents.empty()) return 0;
    const std::vector<int64_t> count = BlockCounts(ctx);
    double total = 0;
    std::vector<int64_t> bounds;
    for (size_t d = 0; d < batch.documents.size(); ++d) {
      const Document& doc = batch.documents[d];
      bounds = SplitEvenly(doc.length, (doc.length + count[d] - 1) / count[d]);
      for (size_t i = 0; i + 1 < bounds.size(); ++i) {
        total += QueryRangeLowerBoundSeconds(ctx.cost, doc, bounds[i], bounds[i + 1],
                                             ctx.options.include_backward);
      }
    }
    return total / batch.topology.num_workers * 1e3;
  }

  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    std::vector<Piece> pieces;
    WeightedGraph graph;
    Hypergraph hypergraph;
    BuildGraphs(ctx, &pieces, &graph, &hypergraph);
    const Topology& topology = ctx.batch.topology;
    const BalanceTolerance tolerance = Tolerance(ctx);
    absl::StatusOr<std::vector<int32_t>> worker = PartitionOntoWorkers(graph, topology, tolerance);
    if (!worker.ok()) return worker.status();
    const LinkCosts links = Links(ctx);
    const BalanceLimits limits = Limits(hypergraph, topology, tolerance);
    RebalancePartition(hypergraph, topology.num_workers, links, limits, &*worker);
    RefinePartition(hypergraph, topology.num_workers, links, limits, kRefinePasses, kMinPassGain,
                    &*worker);
    Layout layout;
    layout.kind = Layout::Kind::kDirect;
    layout.strategy = "dcp";
    layout.blocks.reserve(pieces.size());
    for (const Piece& p : pieces) {
      layout.blocks.push_back({p.document, p.begin, p.end, (*worker)[p.vertex]});
      layout.block_size = std::max(layout.block_size, p.end - p.begin);
    }
    // METIS balances tokens within the tolerance, not under the budget: cut what is over it.
    const int64_t cap = TokenCap(ctx.batch.topology);
    if (absl::Status s = FitTokenBudget(ctx.batch.topology.num_workers, cap, &layout.blocks);
        !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("dcp: ", s.message()));
    }
    if (ctx.options.block_size > 0) layout.block_size = ctx.options.block_size;
    // Computation apart from data, where it lowers the predicted step (dcp_placement.h).
    if (absl::Status s = PlaceComputation(ctx, &layout); !s.ok()) return s;
    return layout;
  }

 private:
  // Blocks per document: the block size's worth, in automatic mode more (down to kMinBlock)
  // while the last block alone would carry more than the balance tolerance allows of a worker's
  // mean work, then fewer again for the largest documents until the graph fits kMaxGraph, but
  // never so few that a block carries more than half a worker's mean pairs or tokens (below that
  // no partition is balanced: at W = 1024 the cap alone left 128K documents whole, imbalance 5.5).
  static std::vector<int64_t> BlockCounts(const PlanContext& ctx) {
    const Batch& batch = ctx.batch;
    const int64_t block = RequestedBlockSize(ctx);
    const bool automatic = ctx.options.block_size == 0;
    double total_pairs = 0;
    for (const Document& doc : batch.documents) {
      total_pairs += static_cast<double>(AllowedPairs(doc.mask, 0, doc.length, 0, doc.length));
    }
    const double block_pairs_limit =
        ctx.options.balance_tolerance * total_pairs / batch.topology.num_workers;
    // The fewest blocks balance can live with: none above half a worker's mean pairs or tokens.
    const double least_pairs = 0.5 * total_pairs / batch.topology.num_workers;
    const int64_t least_tokens = batch.TotalTokens() / batch.topology.num_workers / 2;
    std::vector<int64_t> count(batch.documents.size()), least(batch.documents.size());
    for (size_t d = 0; d < batch.documents.size(); ++d) {
      const Document& doc = batch.documents[d];
      auto blocks_while = [&](auto too_big) {
        int64_t b = block;
        while (automatic && b > kMinBlock && doc.length > b && too_big(b)) {
          b = std::max(kMinBlock, b / 2);
        }
        return (doc.length + b - 1) / b;
      };
      auto last_pairs = [&](int64_t b) {
        return static_cast<double>(
            AllowedPairs(doc.mask, doc.length - b, doc.length, 0, doc.length));
      };
      count[d] = blocks_while([&](int64_t b) { return last_pairs(b) > block_pairs_limit; });
      least[d] =
          blocks_while([&](int64_t b) { return last_pairs(b) > least_pairs || b > least_tokens; });
      count[d] = std::max(count[d], least[d]);
    }
    if (!automatic) return count;
    // The largest cap on blocks per document that keeps the graph within budget: a vertex per
    // block (a FULL document's blocks also form a clique of edges).
    auto size = [&](int64_t cap) {
      double cost = 0;
      for (size_t d = 0; d < count.size(); ++d) {
        const double n = static_cast<double>(std::max(least[d], std::min(count[d], cap)));
        if (n > 1) cost += n + (batch.documents[d].mask.kind == MaskKind::kFull ? n * n / 2 : 0);
      }
      return cost;
    };
    int64_t lo = 1, hi = *std::max_element(count.begin(), count.end());
    while (lo < hi) {
      const int64_t mid = (lo + hi + 1) / 2;
      if (size(mid) <= std::max(kMaxGraph, kVerticesPerWorker * batch.topology.num_workers)) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    for (size_t d = 0; d < count.size(); ++d) count[d] = std::max(least[d], std::min(count[d], lo));
    return count;
  }

  // The blocks as graph vertices (for METIS) and the same vertices with their KV nets (for the
  // refinement): vertex weights are attention seconds and tokens.
  static void BuildGraphs(const PlanContext& ctx, std::vector<Piece>* pieces, WeightedGraph* g,
                          Hypergraph* h) {
    const Batch& batch = ctx.batch;
    const std::vector<int64_t> count = BlockCounts(ctx);
    const int64_t bundle_tokens =
        std::max<int64_t>(1, batch.TotalTokens() / batch.topology.num_workers / 16);
    GraphBuilder builder;
    std::vector<int64_t> bounds;
    int32_t bundle = -1;  // the bundle being filled, if any
    auto add_vertex = [&](int64_t compute, int64_t tokens) {
      h->AddVertex(compute, tokens);
      return builder.AddVertex(compute, tokens);
    };
    for (int32_t d = 0; d < static_cast<int32_t>(batch.documents.size()); ++d) {
      const Document& doc = batch.documents[d];
      bounds = SplitEvenly(doc.length, (doc.length + count[d] - 1) / count[d]);
      const int32_t n = static_cast<int32_t>(bounds.size()) - 1;
      auto compute = [&](int32_t i) {
        return AllowedPairs(doc.mask, bounds[i], bounds[i + 1], 0, doc.length);
      };
      if (n == 1) {  // a whole short document: into the open bundle
        if (bundle < 0 || builder.graph().tokens[bundle] >= bundle_tokens) {
          const int32_t next = add_vertex(0, 0);
          // Bundles have no KV edges; a weight-1 chain lets METIS's matching coarsen them (an
          // isolated vertex is never matched, and a coarsest graph of thousands of them makes
          // its initial partitioning slow). Cutting the chain costs nothing that matters.
          if (bundle >= 0) builder.AddEdge(bundle, next, 1);
          bundle = next;
        }
        builder.AddWeights(bundle, compute(0), doc.length);
        h->compute[bundle] += compute(0);
        h->tokens[bundle] += doc.length;
        pieces->push_back({d, 0, doc.length, bundle});
        continue;
      }
      const int32_t first = builder.graph().vertices();
      for (int32_t i = 0; i < n; ++i) {
        add_vertex(compute(i), bounds[i + 1] - bounds[i]);
        pieces->push_back({d, bounds[i], bounds[i + 1], first + i});
      }
      AddDocumentNets(doc.mask, bounds, first, ctx.cost.kv_bytes_per_token(), h);
      if (doc.mask.kind == MaskKind::kFull) {  // every block needs every other: a clique
        for (int32_t i = 0; i < n; ++i) {
          for (int32_t j = i + 1; j < n; ++j) {
            builder.AddEdge(first + i, first + j,
                            (bounds[i + 1] - bounds[i]) + (bounds[j + 1] - bounds[j]));
          }
        }
        continue;
      }
      for (int32_t i = 0; i + 1 < n; ++i) {
        builder.AddEdge(first + i, first + i + 1,
                        std::max<int64_t>(1, CutTokens(doc.mask, bounds[i + 1])));
      }
    }
    *g = builder.Finish();
  }

  // Sends priced by the cost model's links: a byte across nodes costs intra / inter bandwidth.
  static LinkCosts Links(const PlanContext& ctx) {
    const Topology& t = ctx.batch.topology;
    LinkCosts links;
    links.workers_per_node = std::max(1, t.workers_per_node);
    if (t.num_workers > links.workers_per_node) {
      links.cross_node = ctx.cost.LinkBytesPerSecond(0, 1 % links.workers_per_node) /
                         ctx.cost.LinkBytesPerSecond(0, links.workers_per_node);
    }
    return links;
  }

  // What the request asks of the partition. Attention compute: balance_tolerance. Tokens: under
  // the whole-step objective they are work too (the linear layers' time follows them), so
  // balance_tolerance, and never above the token budget (ResolveBatch's max_tokens_per_worker);
  // under the attention objective they cost nothing, so only a memory cap (the topology's
  // max_tokens_per_worker, or activation memory) limits them, and without one they are free -
  // the freedom the other strategies take (a worker of short documents holds more tokens to
  // carry its share of attention).
  static BalanceTolerance Tolerance(const PlanContext& ctx) {
    const Batch& batch = ctx.batch;
    BalanceTolerance tolerance;
    tolerance.compute = ctx.options.balance_tolerance;
    tolerance.tokens = ctx.options.objective == Objective::kWholeStep
                           ? ctx.options.balance_tolerance
                           : std::numeric_limits<double>::infinity();
    const int64_t budget = batch.topology.max_tokens_per_worker;
    const double mean = static_cast<double>(batch.TotalTokens()) / batch.topology.num_workers;
    if (budget > 0 && mean > 0) {
      // (at least balance_tolerance's least: a budget below the mean fails FitTokenBudget)
      tolerance.tokens =
          std::min(tolerance.tokens, std::max(0.001, static_cast<double>(budget) / mean - 1));
    }
    return tolerance;
  }

  // The refinement's balance: (1 + tolerance) × the mean in attention compute and in tokens
  // (unlimited where the tokens' tolerance is), and never above the token budget.
  static BalanceLimits Limits(const Hypergraph& h, const Topology& t,
                              const BalanceTolerance& tolerance) {
    double compute = 0, tokens = 0;
    for (int64_t c : h.compute) compute += static_cast<double>(c);
    for (int64_t n : h.tokens) tokens += static_cast<double>(n);
    BalanceLimits limits;
    limits.max_compute = compute / t.num_workers * (1 + tolerance.compute);
    limits.max_tokens = TokenCap(t);
    if (std::isfinite(tolerance.tokens)) {
      limits.max_tokens = std::min(
          limits.max_tokens, static_cast<int64_t>(tokens / t.num_workers * (1 + tolerance.tokens)));
    }
    return limits;
  }

  // KV tokens that cross a cut of a document at position x between blocks, if the two sides go
  // to different workers: the later side needs the earlier tokens it attends to (causal: all of
  // them; sliding window: the last window - 1), and inside a PREFIX_LM prefix the earlier side
  // also needs the prefix tokens after x. Exact for documents split into contiguous ranges.
  static int64_t CutTokens(const Mask& mask, int64_t x) {
    switch (mask.kind) {
      case MaskKind::kSlidingWindow:
        return std::min(x, mask.window - 1);
      case MaskKind::kPrefixLm:
        return x + std::max<int64_t>(0, mask.prefix - x);
      default:
        return x;
    }
  }

  static int64_t Nanoseconds(double seconds) {
    return std::max<int64_t>(1, static_cast<int64_t>(std::llround(seconds * 1e9)));
  }
};

}  // namespace

std::unique_ptr<Planner> NewDcpPlanner() { return std::make_unique<DcpPlanner>(); }

}  // namespace fcp
