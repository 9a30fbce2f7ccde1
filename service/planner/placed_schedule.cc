// Schedule of a kDirect layout with placed computation (Layout::placed, DCP's placement of
// computation apart from data; plan.h describes the transfer kinds and phases). A tile is
// computed by its placed worker C, or else by its q block's owner. C needs the tile's KV block
// (from its owner, unless C owns it) and its Q block (from its owner, unless C owns it); each
// remote block is sent to C once. Everything one worker sends another in the forward rounds (KV
// and Q blocks) travels as one transfer, and those transfers are put in rounds by bipartite edge
// colouring (round_scheduler.h), as direct_schedule.cc does. A tile's round is the later of its
// KV's and its Q's arrival (0 when both are local). The other kinds reuse their pair's round:
// dKV reverses the KV part (backward rounds), Out and dQ reverse the Q part (the return phases),
// dO repeats it (the backward's first phase); since each forward round is a matching (every
// worker sends to <= 1 peer and receives from <= 1), so is each round of every other phase.
//
// The required tiles come from the unplaced layout's schedule (direct_schedule.cc enumerates
// them), so both agree on what the masks require; placing costs one more schedule than the
// direct layout alone (a caller that has it passes its tiles: schedule.h).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/planner/mask_math.h"
#include "service/planner/round_scheduler.h"
#include "service/planner/schedule.h"

namespace fcp {

absl::StatusOr<std::unique_ptr<Schedule>> NewDirectSchedule(const Batch& batch,
                                                            const CostModel& cost, Layout layout);

namespace {

// What `src` sends `dst` in one forward round: KV blocks and Q blocks (ids ascending).
struct PairBlocks {
  int32_t src = 0;
  int32_t dst = 0;
  int32_t round = 0;
  std::vector<int32_t> kv, q;
  int64_t kv_tokens = 0, q_tokens = 0;
};

class PlacedSchedule final : public Schedule {
 public:
  PlacedSchedule(const Batch& batch, const CostModel& cost) : batch_(batch), cost_(cost) {}

  absl::Status Build(Layout layout);
  absl::Status Build(std::vector<Block> blocks, const std::vector<std::vector<Tile>>& owner_tiles,
                     const std::vector<PlacedTile>& placed);

  const std::vector<WorkerCost>& costs() const override { return costs_; }
  const PlanSummary& summary() const override { return summary_; }
  std::vector<Block> Blocks() const override { return blocks_; }
  WorkerPlan Slice(int32_t rank) const override;

 private:
  // Every tile on the worker that computes it (rounds 0 until the pairs are scheduled).
  absl::Status PlaceTiles(const std::vector<std::vector<Tile>>& owner_tiles,
                          const std::vector<PlacedTile>& placed);
  // The forward pairs (KV and Q each computing worker needs), sorted by (dst, src), in rounds.
  void BuildPairs();
  void BuildCosts();

  const Batch& batch_;
  const CostModel& cost_;
  std::vector<Block> blocks_;
  std::vector<std::vector<Tile>> tiles_;  // by computing worker
  std::vector<PairBlocks> pairs_;
  std::vector<std::vector<int32_t>> owned_;     // by worker: its blocks, ascending
  std::vector<std::vector<int32_t>> pairs_of_;  // by worker: the pairs it sends or receives in
  std::vector<WorkerCost> costs_;
  PlanSummary summary_;
};

absl::Status PlacedSchedule::Build(Layout layout) {
  std::vector<PlacedTile> placed = std::move(layout.placed);
  layout.placed.clear();
  layout.schedule.reset();
  ASSIGN_OR_RETURN(std::unique_ptr<Schedule> direct,
                   NewDirectSchedule(batch_, cost_, std::move(layout)));
  std::vector<std::vector<Tile>> owner_tiles(batch_.topology.num_workers);
  for (int32_t r = 0; r < batch_.topology.num_workers; ++r) owner_tiles[r] = direct->Slice(r).tiles;
  return Build(direct->Blocks(), owner_tiles, placed);
}

absl::Status PlacedSchedule::Build(std::vector<Block> blocks,
                                   const std::vector<std::vector<Tile>>& owner_tiles,
                                   const std::vector<PlacedTile>& placed) {
  blocks_ = std::move(blocks);
  RETURN_IF_ERROR(PlaceTiles(owner_tiles, placed));
  BuildPairs();
  BuildCosts();
  owned_.assign(batch_.topology.num_workers, {});
  for (int32_t b = 0; b < static_cast<int32_t>(blocks_.size()); ++b) {
    owned_[blocks_[b].owner].push_back(b);
  }
  pairs_of_.assign(batch_.topology.num_workers, {});
  for (int32_t i = 0; i < static_cast<int32_t>(pairs_.size()); ++i) {
    pairs_of_[pairs_[i].src].push_back(i);
    pairs_of_[pairs_[i].dst].push_back(i);
  }
  return absl::OkStatus();
}

absl::Status PlacedSchedule::PlaceTiles(const std::vector<std::vector<Tile>>& owner_tiles,
                                        const std::vector<PlacedTile>& placed) {
  const int32_t workers = batch_.topology.num_workers;
  const int64_t num_blocks = static_cast<int64_t>(blocks_.size());
  // Placed tiles by (q, kv); those of q block q: sorted[first[q] .. first[q + 1]).
  std::vector<PlacedTile> sorted = placed;
  std::vector<int32_t> first(num_blocks + 1, 0);
  for (const PlacedTile& p : sorted) {
    if (p.q_block < 0 || p.q_block >= num_blocks || p.kv_block < 0 || p.kv_block >= num_blocks ||
        p.worker < 0 || p.worker >= workers) {
      return absl::InternalError(absl::StrCat("placed tile (q_block ", p.q_block, ", kv_block ",
                                              p.kv_block, ") on worker ", p.worker,
                                              ": out of range"));
    }
    ++first[p.q_block + 1];
  }
  for (int64_t b = 0; b < num_blocks; ++b) first[b + 1] += first[b];
  const auto key = [](const PlacedTile& p) { return std::make_pair(p.q_block, p.kv_block); };
  std::sort(sorted.begin(), sorted.end(),
            [&](const PlacedTile& a, const PlacedTile& b) { return key(a) < key(b); });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (key(sorted[i]) == key(sorted[i - 1])) {
      return absl::InternalError(absl::StrCat("placed tile (q_block ", sorted[i].q_block,
                                              ", kv_block ", sorted[i].kv_block, ") placed twice"));
    }
  }
  tiles_.assign(workers, {});
  size_t found = 0;
  for (int32_t r = 0; r < workers; ++r) {
    for (const Tile& t : owner_tiles[r]) {
      int32_t computer = r;
      for (int32_t i = first[t.q_block]; i < first[t.q_block + 1]; ++i) {
        if (sorted[i].kv_block == t.kv_block) {
          computer = sorted[i].worker;
          ++found;
          break;
        }
      }
      tiles_[computer].push_back({t.q_block, t.kv_block, 0});
    }
  }
  if (found != sorted.size()) {
    return absl::InternalError("a placed tile is not required by its document's mask");
  }
  return absl::OkStatus();
}

void PlacedSchedule::BuildPairs() {
  const int32_t workers = batch_.topology.num_workers;
  // (dst, src, is_q, block): each block a worker needs from another, once; in that order.
  std::vector<std::tuple<int32_t, int32_t, bool, int32_t>> needs, mine;
  std::vector<int32_t> kv_stamp(blocks_.size(), -1), q_stamp(blocks_.size(), -1);
  for (int32_t c = 0; c < workers; ++c) {
    mine.clear();
    for (const Tile& t : tiles_[c]) {
      for (const auto& [b, is_q] : {std::make_pair(t.kv_block, false), {t.q_block, true}}) {
        int32_t& stamp = is_q ? q_stamp[b] : kv_stamp[b];
        if (blocks_[b].owner == c || stamp == c) continue;
        stamp = c;
        mine.emplace_back(c, blocks_[b].owner, is_q, b);
      }
    }
    std::sort(mine.begin(), mine.end());
    needs.insert(needs.end(), mine.begin(), mine.end());
  }
  std::vector<Edge> edges;
  for (const auto& [dst, src, is_q, block] : needs) {
    if (pairs_.empty() || pairs_.back().dst != dst || pairs_.back().src != src) {
      pairs_.push_back(PairBlocks{src, dst});
    }
    PairBlocks& p = pairs_.back();
    (is_q ? p.q : p.kv).push_back(block);
    (is_q ? p.q_tokens : p.kv_tokens) += blocks_[block].tokens();
  }
  for (const PairBlocks& p : pairs_) {
    edges.push_back(
        {p.src, p.dst,
         cost_.KvBytes(p.kv_tokens) + cost_.TransferBytes(TransferKind::kQ, p.q_tokens)});
  }
  const std::vector<int32_t> rounds = ScheduleRounds(edges, workers);
  for (size_t i = 0; i < pairs_.size(); ++i) pairs_[i].round = rounds[i];
  // Per computing worker c, the round of each sender's transfer to c (pairs_ are by dst).
  std::vector<int32_t> round_from(workers, 0);
  size_t i = 0;
  for (int32_t c = 0; c < workers; ++c) {
    const size_t begin = i;
    for (; i < pairs_.size() && pairs_[i].dst == c; ++i)
      round_from[pairs_[i].src] = pairs_[i].round;
    for (Tile& t : tiles_[c]) {
      const int32_t kv_owner = blocks_[t.kv_block].owner, q_owner = blocks_[t.q_block].owner;
      t.round = std::max(kv_owner == c ? 0 : round_from[kv_owner],
                         q_owner == c ? 0 : round_from[q_owner]);
    }
    for (size_t j = begin; j < i; ++j) round_from[pairs_[j].src] = 0;
  }
}

void PlacedSchedule::BuildCosts() {
  const int32_t workers = batch_.topology.num_workers;
  CostInputs in;
  in.fwd_pairs.assign(workers, 0);
  in.tokens.assign(workers, 0);
  for (const Block& b : blocks_) in.tokens[b.owner] += b.tokens();
  int32_t rounds = 0;
  for (const PairBlocks& p : pairs_) rounds = std::max(rounds, p.round);
  in.compute = RoundCompute(workers, rounds);
  for (int32_t c = 0; c < workers; ++c) {
    for (const Tile& t : tiles_[c]) {
      const Block& q = blocks_[t.q_block];
      const Block& kv = blocks_[t.kv_block];
      const int64_t pairs =
          AllowedPairs(batch_.documents[q.document].mask, q.begin, q.end, kv.begin, kv.end);
      const double fwd = cost_.TileForwardSeconds(q.tokens(), kv.tokens(), pairs);
      in.compute.fwd(c, t.round) += fwd;
      in.compute.bwd(c, t.round) += cost_.BackwardFromForward(fwd);
      in.fwd_pairs[c] += static_cast<double>(pairs);
      ++in.tiles;
    }
  }
  for (const PairBlocks& p : pairs_) {
    const int64_t kv_bytes = cost_.KvBytes(p.kv_tokens);
    in.kv.push_back(
        {p.round, p.src, p.dst, kv_bytes + cost_.TransferBytes(TransferKind::kQ, p.q_tokens)});
    if (!p.kv.empty()) in.dkv.push_back({p.round, p.dst, p.src, kv_bytes});
    if (p.q.empty()) continue;
    in.phases.out.push_back(
        {p.round, p.dst, p.src, cost_.TransferBytes(TransferKind::kOut, p.q_tokens)});
    in.phases.d_o.push_back(
        {p.round, p.src, p.dst, cost_.TransferBytes(TransferKind::kDo, p.q_tokens)});
    in.phases.dq.push_back(
        {p.round, p.dst, p.src, cost_.TransferBytes(TransferKind::kDq, p.q_tokens)});
  }
  SummarizeCosts(cost_, std::move(in), &costs_, &summary_);
}

WorkerPlan PlacedSchedule::Slice(int32_t rank) const {
  WorkerPlan slice;
  slice.rank = rank;
  slice.blocks = owned_[rank];
  slice.tiles = tiles_[rank];
  slice.predicted = costs_[rank];
  for (int32_t i : pairs_of_[rank]) {
    const PairBlocks& p = pairs_[i];
    const bool sender = p.src == rank;  // of the forward rounds: the blocks' owner
    const int32_t peer = sender ? p.dst : p.src;
    auto& out = sender ? slice.sends : slice.recvs;  // owner -> computing worker
    auto& back = sender ? slice.recvs : slice.sends;
    if (!p.kv.empty()) {
      out.push_back({p.round, peer, p.kv, TransferKind::kKv});
      back.push_back({p.round, peer, p.kv, TransferKind::kDkv});
    }
    if (!p.q.empty()) {
      out.push_back({p.round, peer, p.q, TransferKind::kQ});
      back.push_back({p.round, peer, p.q, TransferKind::kOut});
      out.push_back({p.round, peer, p.q, TransferKind::kDo});
      back.push_back({p.round, peer, p.q, TransferKind::kDq});
    }
  }
  SortSlice(&slice);
  return slice;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Schedule>> NewPlacedSchedule(const Batch& batch,
                                                            const CostModel& cost, Layout layout) {
  auto schedule = std::make_unique<PlacedSchedule>(batch, cost);
  RETURN_IF_ERROR(schedule->Build(std::move(layout)));
  return std::unique_ptr<Schedule>(std::move(schedule));
}

absl::StatusOr<std::unique_ptr<Schedule>> NewPlacedSchedule(
    const Batch& batch, const CostModel& cost, std::vector<Block> blocks,
    const std::vector<std::vector<Tile>>& owner_tiles, const std::vector<PlacedTile>& placed) {
  auto schedule = std::make_unique<PlacedSchedule>(batch, cost);
  RETURN_IF_ERROR(schedule->Build(std::move(blocks), owner_tiles, placed));
  return std::unique_ptr<Schedule>(std::move(schedule));
}

}  // namespace fcp
