// Schedule of a kDirect layout: the owner of a q-block computes its tiles; each remote KV block a
// worker needs is sent once, straight from its owner; all blocks from one owner to one receiver
// travel as one transfer, and transfers are put in rounds by bipartite edge colouring. The dK/dV
// partials go back along the same edges, in the same round numbers, in reverse round order.
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/mask_math.h"
#include "service/planner/round_scheduler.h"
#include "service/planner/schedule.h"

namespace fcp {
namespace {

class DirectSchedule final : public Schedule {
 public:
  DirectSchedule(const Batch& batch, const CostModel& cost, Layout layout)
      : batch_(batch), cost_(cost), blocks_(std::move(layout.blocks)) {}

  absl::Status Build() {
    if (absl::Status s = IndexBlocks(); !s.ok()) return s;
    BuildTransfers();
    ComputeCosts();
    return absl::OkStatus();
  }

  const std::vector<WorkerCost>& costs() const override { return costs_; }
  const PlanSummary& summary() const override { return summary_; }
  std::vector<Block> Blocks() const override { return blocks_; }
  WorkerPlan Slice(int32_t rank) const override;

 private:
  struct TileRecord {
    int32_t q, kv;
    int32_t transfer;  // index into transfers_, or -1 if the kv block is local
    int64_t pairs;
  };
  // All KV blocks from one owner to one receiver; its blocks are
  // transfer_blocks_[first_block, end_block).
  struct PairTransfer {
    int32_t src, dst, round;
    int32_t first_block, end_block;
    int64_t tokens;
  };
  std::vector<int32_t> TransferBlocks(const PairTransfer& t) const {
    return {transfer_blocks_.begin() + t.first_block, transfer_blocks_.begin() + t.end_block};
  }

  absl::Status IndexBlocks();
  // Calls fn(q, kv, pairs) for every required tile of document d.
  template <typename Fn>
  void ForEachTile(int32_t d, int32_t q, Fn fn) const;
  void BuildTransfers();
  void ComputeCosts();
  // 0 if the kv block is local to the q-block's owner, else the round its transfer arrives.
  int32_t TileRound(int32_t q, int32_t kv) const;

  const Batch& batch_;
  const CostModel& cost_;
  std::vector<Block> blocks_;
  std::vector<int32_t> doc_first_;           // blocks of document d: [doc_first_[d], [d+1])
  std::vector<std::vector<int32_t>> owned_;  // per worker, block ids in id order
  std::vector<TileRecord> tiles_;  // every required tile, by q-block (freed after costing)
  std::vector<PairTransfer> transfers_;
  std::vector<int32_t> transfer_blocks_;
  // Per receiver: (sender, index into transfers_), sorted by sender.
  std::vector<std::vector<std::pair<int32_t, int32_t>>> incoming_;
  std::vector<std::vector<int32_t>> transfers_of_;  // per worker, transfers it sends or receives
  std::vector<WorkerCost> costs_;
  PlanSummary summary_;
};

absl::Status DirectSchedule::IndexBlocks() {
  const int32_t workers = batch_.topology.num_workers;
  const int32_t docs = static_cast<int32_t>(batch_.documents.size());
  doc_first_.assign(docs + 1, 0);
  owned_.assign(workers, {});
  int32_t d = 0;
  int64_t next = 0;
  for (int32_t b = 0; b < static_cast<int32_t>(blocks_.size()); ++b) {
    const Block& block = blocks_[b];
    if (block.document == d + 1 && next == batch_.documents[d].length) {
      doc_first_[++d] = b;
      next = 0;
    }
    if (block.document != d || block.begin != next || block.end <= block.begin ||
        block.end > batch_.documents[d].length || block.owner < 0 || block.owner >= workers) {
      return absl::InternalError(absl::StrCat("layout block ", b, " (document ", block.document,
                                              ", [", block.begin, ", ", block.end, "), owner ",
                                              block.owner, ") breaks the block order"));
    }
    next = block.end;
    owned_[block.owner].push_back(b);
  }
  if (d != docs - 1 || next != batch_.documents[d].length) {
    return absl::InternalError("layout blocks do not cover every document");
  }
  doc_first_[docs] = static_cast<int32_t>(blocks_.size());
  return absl::OkStatus();
}

template <typename Fn>
void DirectSchedule::ForEachTile(int32_t d, int32_t q, Fn fn) const {
  const Mask& mask = batch_.documents[d].mask;
  const Block& qb = blocks_[q];
  // Beyond the diagonal only PREFIX_LM (prefix columns) and FULL have pairs.
  const bool lower_only = mask.kind == MaskKind::kCausal || mask.kind == MaskKind::kSlidingWindow;
  for (int32_t kv = doc_first_[d]; kv < doc_first_[d + 1]; ++kv) {
    const Block& kb = blocks_[kv];
    if (lower_only && kb.begin >= qb.end) break;
    const int64_t pairs = AllowedPairs(mask, qb.begin, qb.end, kb.begin, kb.end);
    if (pairs > 0) fn(kv, pairs);
  }
}

void DirectSchedule::BuildTransfers() {
  const int32_t workers = batch_.topology.num_workers;
  // Every required tile, enumerated in block order (documents and their masks read
  // sequentially), then grouped by receiver (the q-block's owner) with a counting sort that keeps
  // block order within each receiver.
  std::vector<TileRecord> by_block;
  by_block.reserve(blocks_.size() * 2);
  std::vector<int32_t> start(workers + 1, 0);
  const int32_t docs = static_cast<int32_t>(batch_.documents.size());
  for (int32_t d = 0; d < docs; ++d) {
    for (int32_t q = doc_first_[d]; q < doc_first_[d + 1]; ++q) {
      const size_t before = by_block.size();
      ForEachTile(d, q, [&](int32_t kv, int64_t pairs) { by_block.push_back({q, kv, -1, pairs}); });
      start[blocks_[q].owner + 1] += static_cast<int32_t>(by_block.size() - before);
    }
  }
  for (int32_t w = 0; w < workers; ++w) start[w + 1] += start[w];
  tiles_.resize(by_block.size());
  {
    std::vector<int32_t> next(start.begin(), start.end() - 1);
    for (const TileRecord& t : by_block) tiles_[next[blocks_[t.q].owner]++] = t;
  }
  by_block = {};
  // Per receiver: the remote KV blocks its tiles need, each once, grouped by owner.
  std::vector<int32_t> stamp(blocks_.size(), -1);   // the last receiver that asked for a block
  std::vector<int32_t> transfer_from(workers, -1);  // for the current receiver, by sender
  std::vector<std::pair<int32_t, int32_t>> wanted;  // (src, kv) for the current receiver
  std::vector<Edge> edges;
  incoming_.assign(workers, {});
  for (int32_t dst = 0; dst < workers; ++dst) {
    wanted.clear();
    for (int32_t i = start[dst]; i < start[dst + 1]; ++i) {
      const int32_t kv = tiles_[i].kv;
      const int32_t src = blocks_[kv].owner;
      if (src != dst && stamp[kv] != dst) {
        stamp[kv] = dst;
        wanted.emplace_back(src, kv);
      }
    }
    std::sort(wanted.begin(), wanted.end());
    for (size_t i = 0; i < wanted.size();) {
      PairTransfer t{wanted[i].first, dst, 0, static_cast<int32_t>(transfer_blocks_.size()), 0, 0};
      for (; i < wanted.size() && wanted[i].first == t.src; ++i) {
        transfer_blocks_.push_back(wanted[i].second);
        t.tokens += blocks_[wanted[i].second].tokens();
      }
      t.end_block = static_cast<int32_t>(transfer_blocks_.size());
      edges.push_back({t.src, t.dst, cost_.KvBytes(t.tokens)});
      transfer_from[t.src] = static_cast<int32_t>(transfers_.size());
      incoming_[dst].push_back({t.src, static_cast<int32_t>(transfers_.size())});
      transfers_.push_back(t);
    }
    for (int32_t i = start[dst]; i < start[dst + 1]; ++i) {
      const int32_t src = blocks_[tiles_[i].kv].owner;
      if (src != dst) tiles_[i].transfer = transfer_from[src];
    }
  }
  const std::vector<int32_t> rounds = ScheduleRounds(edges, workers);
  transfers_of_.assign(workers, {});
  for (size_t i = 0; i < transfers_.size(); ++i) {
    transfers_[i].round = rounds[i];
    summary_.rounds = std::max(summary_.rounds, rounds[i]);
    transfers_of_[transfers_[i].src].push_back(static_cast<int32_t>(i));
    transfers_of_[transfers_[i].dst].push_back(static_cast<int32_t>(i));
  }
}

int32_t DirectSchedule::TileRound(int32_t q, int32_t kv) const {
  const int32_t src = blocks_[kv].owner, dst = blocks_[q].owner;
  if (src == dst) return 0;
  const auto& in = incoming_[dst];
  const auto it = std::lower_bound(in.begin(), in.end(), std::make_pair(src, int32_t{0}));
  return transfers_[it->second].round;
}

void DirectSchedule::ComputeCosts() {
  const int32_t workers = batch_.topology.num_workers;
  CostInputs in;
  in.compute = RoundCompute(workers, summary_.rounds);
  in.fwd_pairs.assign(workers, 0);
  in.tokens.assign(workers, 0);
  for (const Block& b : blocks_) in.tokens[b.owner] += b.tokens();
  for (const TileRecord& t : tiles_) {
    const Block& qb = blocks_[t.q];
    const int32_t w = qb.owner;
    const int32_t round = t.transfer < 0 ? 0 : transfers_[t.transfer].round;
    const int64_t kv_len = blocks_[t.kv].tokens();
    const double fwd = cost_.TileForwardSeconds(qb.tokens(), kv_len, t.pairs);
    in.compute.fwd(w, round) += fwd;
    in.compute.bwd(w, round) += cost_.BackwardFromForward(fwd);
    in.fwd_pairs[w] += static_cast<double>(t.pairs);
  }
  in.tiles = static_cast<int64_t>(tiles_.size());
  tiles_ = {};
  for (const PairTransfer& t : transfers_) {
    const int64_t bytes = cost_.KvBytes(t.tokens);
    in.kv.push_back({t.round, t.src, t.dst, bytes});
    in.dkv.push_back({t.round, t.dst, t.src, bytes});
  }
  SummarizeCosts(cost_, std::move(in), &costs_, &summary_);
}

WorkerPlan DirectSchedule::Slice(int32_t rank) const {
  WorkerPlan slice;
  slice.rank = rank;
  slice.blocks = owned_[rank];
  slice.predicted = costs_[rank];
  for (int32_t q : owned_[rank]) {
    ForEachTile(blocks_[q].document, q, [&](int32_t kv, int64_t) {
      slice.tiles.push_back({q, kv, TileRound(q, kv)});
    });
  }
  for (int32_t i : transfers_of_[rank]) {
    const PairTransfer& t = transfers_[i];
    if (t.src == rank) {
      slice.sends.push_back({t.round, t.dst, TransferBlocks(t), TransferKind::kKv});
      slice.recvs.push_back({t.round, t.dst, TransferBlocks(t), TransferKind::kDkv});
    } else {
      slice.recvs.push_back({t.round, t.src, TransferBlocks(t), TransferKind::kKv});
      slice.sends.push_back({t.round, t.src, TransferBlocks(t), TransferKind::kDkv});
    }
  }
  SortSlice(&slice);
  return slice;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Schedule>> NewDirectSchedule(const Batch& batch,
                                                            const CostModel& cost, Layout layout) {
  auto schedule = std::make_unique<DirectSchedule>(batch, cost, std::move(layout));
  if (absl::Status s = schedule->Build(); !s.ok()) return s;
  return std::unique_ptr<Schedule>(std::move(schedule));
}

}  // namespace fcp
