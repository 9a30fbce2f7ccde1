// The plan: where every block of tokens lives, which tiles each worker computes in which order,
// and which KV blocks move between which workers in which round (DESIGN §3).
//
// A block's id is its index in `Plan::blocks`. Round 0 means "local data only"; a tile with round
// r >= 1 runs once round r's transfers have arrived. Forward KV transfers run in increasing round
// order; backward dKV transfers carry the same round numbers and run in decreasing round order
// (a worker sends the dK/dV partials of round r once it has recomputed round r's tiles).
//
// Computation placed away from data (DCP): a tile is computed by the worker whose slice lists it,
// usually its q block's owner; another worker C may compute tiles of a q block it receives by kQ.
// One pass's phases, each a sequence of rounds 1..rounds (a round's transfers run together):
//   forward:  KV and Q in the forward rounds (a round's tiles wait for both); then the return
//             phase, kOut in increasing rounds: C's partial (O, LSE) of each remote q block, which
//             the owner merges by LSE into its own;
//   backward: first kDo in increasing rounds: the owner's dO, final LSE and delta rows for C; then
//             the backward rounds (dKV) in decreasing order; then kDq in increasing rounds: C's
//             partial dQ, which the owner adds to its own.
#ifndef FCP_SERVICE_PLANNER_PLAN_H_
#define FCP_SERVICE_PLANNER_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "service/planner/batch.h"

namespace fcp {

struct Block {
  int32_t document = 0;
  int64_t begin = 0;  // token range [begin, end) within the document
  int64_t end = 0;
  int32_t owner = 0;  // worker holding the block's Q, K, V, output and gradients
  int64_t tokens() const { return end - begin; }
  bool operator==(const Block& o) const {
    return document == o.document && begin == o.begin && end == o.end && owner == o.owner;
  }
};

struct Tile {
  int32_t q_block = 0;
  int32_t kv_block = 0;
  int32_t round = 0;
  bool operator==(const Tile& o) const {
    return q_block == o.q_block && kv_block == o.kv_block && round == o.round;
  }
};

enum class TransferKind : uint8_t {
  kKv = 0,   // forward: K and V of the blocks
  kDkv = 1,  // backward: dK and dV partials of the blocks, summed by the receiver
  kQ = 2,    // forward: Q rows of q blocks, owner -> the worker computing some of their tiles
  kOut = 3,  // forward return phase: partial O (fp32) + LSE of q blocks, back to the owner
  kDo = 4,   // backward, before its rounds: dO rows + final LSE + delta of q blocks, owner -> C
  kDq = 5,   // backward return phase: partial dQ (fp32) of q blocks, back to the owner (summed)
};
inline constexpr int kTransferKinds = 6;
// "KV", "dKV", "Q", "Out", "dO", "dQ".
const char* TransferKindName(TransferKind kind);

struct Transfer {
  int32_t round = 0;
  int32_t peer = 0;
  std::vector<int32_t> blocks;
  TransferKind kind = TransferKind::kKv;
  bool operator==(const Transfer& o) const {
    return round == o.round && peer == o.peer && blocks == o.blocks && kind == o.kind;
  }
};

// Predicted cost of one worker (every worker has one, whether or not its slice is materialised).
struct WorkerCost {
  double fwd_flops = 0;
  double bwd_flops = 0;
  int64_t tokens = 0;
  int64_t send_bytes = 0;  // every transfer kind, forward and backward
  int64_t recv_bytes = 0;
  double compute_fwd_ms = 0;    // attention compute alone
  double attention_fwd_ms = 0;  // attention pipeline: compute and the transfers it could not hide
  double attention_bwd_ms = 0;
  double fwd_ms = 0;  // the whole layer: linear layers (by tokens) + the attention pipeline
  double bwd_ms = 0;
};

// One worker's part of the plan.
struct WorkerPlan {
  int32_t rank = 0;
  std::vector<int32_t> blocks;  // local order = the token permutation the data loader applies
  std::vector<Tile> tiles;      // execution order (non-decreasing round); q blocks owned or kQ
  std::vector<Transfer> sends;  // by (kind, round)
  std::vector<Transfer> recvs;
  WorkerCost predicted;
};

struct PlanSummary {
  double compute_imbalance = 1;       // max / mean forward attention FLOPs over workers
  double token_imbalance = 1;         // max / mean tokens
  int64_t comm_bytes = 0;             // bytes of every transfer kind, all workers
  int64_t max_worker_comm_bytes = 0;  // max over workers of bytes sent + received
  int64_t inter_node_bytes = 0;
  int32_t rounds = 0;  // forward rounds (backward uses the same number)
  // The step under the plan's objective (whole layer by default): the slowest worker's.
  double predicted_fwd_ms = 0;
  double predicted_bwd_ms = 0;
  double attention_fwd_ms = 0;  // the attention pipeline alone: the slowest worker's
  double attention_bwd_ms = 0;
  // The perfect-balance bound: the mean worker's linear + attention compute, nothing exposed.
  double balanced_fwd_ms = 0;
  double balanced_bwd_ms = 0;
  int64_t max_tokens_per_worker = 0;
  int64_t token_budget = 0;  // the cap the plan was made under (0 = none)
  std::string model;         // ModelShape::name
  double planning_ms = 0;
  int64_t tiles = 0;  // total tiles over all workers
  double total_fwd_flops = 0;
};

struct Plan {
  std::string plan_id;             // hash of the planning inputs + planner version, hex
  std::string strategy;            // the strategy that made the layout
  std::string requested_strategy;  // what the request asked for ("auto" picks `strategy`)
  int64_t block_size = 0;          // the largest block of this plan (tokens)
  std::vector<Document> documents;
  std::vector<Block> blocks;
  std::vector<WorkerPlan> workers;  // only the requested ranks, ascending rank
  std::vector<WorkerCost> costs;    // every worker, by rank
  PlanSummary summary;

  // Predicted step time: forward + backward (forward only if backward is excluded).
  double PredictedStepMs(bool include_backward = true) const {
    return summary.predicted_fwd_ms + (include_backward ? summary.predicted_bwd_ms : 0);
  }
  const WorkerPlan* FindWorker(int32_t rank) const;
};

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_PLAN_H_
