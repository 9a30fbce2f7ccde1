// dcp's placement of computation (dcp_placement.h).
//
// What the paper describes: the hypergraph has computation vertices (tiles) apart from data
// vertices (blocks), and the partitioner places both, so a tile may run where its KV lives, not
// where its queries live, when that balances compute for fewer bytes.
//
// What this file does: dcp first places data (dcp.cc: every tile on its q block's owner); then a
// greedy pass on the cost model moves computation off the workers whose attention compute is
// above the mean. A unit of computation is (q block, remote KV owner B): the tiles of that q
// block on B's KV blocks. Moving it to B costs Q, partial O + LSE, dO + LSE + delta and dQ of the
// q block (CostModel::TransferBytes) and saves its owner the unit's compute; units are taken in
// order of compute saved per byte added, off workers above a target level, onto KV owners that
// stay at or below it. Targets from near the maximum load down to the mean are tried in turn
// (each a full schedule: rounds, the transfers' link times and the timeline), until one predicts
// a higher step than an earlier improvement; the best placement is kept if it beats placing
// nothing.
//
// Where it differs from the paper: no joint partitioning of data and computation vertices (data
// is partitioned first, computation moved after, and only to its KV's owner, where no KV moves);
// the greedy's proxy is forward attention compute, and only the full schedule decides.
#include "service/planner/strategies/dcp_placement.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/status_macros.h"
#include "service/planner/mask_math.h"
#include "service/planner/schedule.h"

namespace fcp {
namespace {

// The load levels tried, as fractions of the way from the mean load to the maximum.
constexpr double kTargets[] = {0.75, 0.5, 0.25, 0.1, 0.0};

// Tiles of one q block on one remote worker's KV blocks: computed by its owner or moved there.
struct Unit {
  int32_t q_block = 0;
  int32_t owner = 0;     // of the q block
  int32_t kv_owner = 0;  // where the unit may move
  double seconds = 0;    // forward compute
  int64_t bytes = 0;     // added by moving it
  std::vector<int32_t> kv_blocks;
};

double StepMs(const PlanContext& ctx, const Schedule& schedule) {
  const PlanSummary& s = schedule.summary();
  return s.predicted_fwd_ms + (ctx.options.include_backward ? s.predicted_bwd_ms : 0);
}

// The units of computation of the unplaced schedule (its tiles by q block owner), ordered by
// compute saved per byte added.
std::vector<Unit> Units(const PlanContext& ctx, const std::vector<Block>& blocks,
                        const std::vector<std::vector<Tile>>& owner_tiles) {
  const CostModel& cost = ctx.cost;
  std::vector<Unit> units;
  absl::flat_hash_map<std::pair<int32_t, int32_t>, size_t> index;  // (q, kv owner) -> unit
  for (int32_t r = 0; r < ctx.batch.topology.num_workers; ++r) {
    for (const Tile& t : owner_tiles[r]) {
      const Block& q = blocks[t.q_block];
      const Block& kv = blocks[t.kv_block];
      if (kv.owner == q.owner) continue;
      auto [it, inserted] = index.try_emplace(std::make_pair(t.q_block, kv.owner), units.size());
      if (inserted) {
        int64_t bytes = 0;
        for (TransferKind k :
             {TransferKind::kQ, TransferKind::kOut, TransferKind::kDo, TransferKind::kDq}) {
          bytes += cost.TransferBytes(k, q.tokens());
        }
        units.push_back({t.q_block, q.owner, kv.owner, 0, bytes, {}});
      }
      Unit& u = units[it->second];
      const int64_t pairs =
          AllowedPairs(ctx.batch.documents[q.document].mask, q.begin, q.end, kv.begin, kv.end);
      u.seconds += cost.TileForwardSeconds(q.tokens(), kv.tokens(), pairs);
      u.kv_blocks.push_back(t.kv_block);
    }
  }
  std::sort(units.begin(), units.end(), [](const Unit& a, const Unit& b) {
    const double da = a.seconds / static_cast<double>(std::max<int64_t>(a.bytes, 1));
    const double db = b.seconds / static_cast<double>(std::max<int64_t>(b.bytes, 1));
    if (da != db) return da > db;
    return std::make_pair(a.q_block, a.kv_owner) < std::make_pair(b.q_block, b.kv_owner);
  });
  return units;
}

// The units moved to bring every worker's load to `target` where the KV owners have room.
std::vector<PlacedTile> MoveTo(const std::vector<Unit>& units, std::vector<double> load,
                               double target) {
  std::vector<PlacedTile> placed;
  for (const Unit& u : units) {
    if (load[u.owner] <= target || load[u.kv_owner] + u.seconds > target) continue;
    load[u.owner] -= u.seconds;
    load[u.kv_owner] += u.seconds;
    for (int32_t kv : u.kv_blocks) placed.push_back({u.q_block, kv, u.kv_owner});
  }
  return placed;
}

}  // namespace

absl::Status PlaceComputation(const PlanContext& ctx, Layout* layout) {
  const int32_t workers = ctx.batch.topology.num_workers;
  if (workers < 2 || layout->kind != Layout::Kind::kDirect) return absl::OkStatus();
  Layout unplaced = *layout;
  unplaced.placed.clear();
  unplaced.schedule.reset();
  ASSIGN_OR_RETURN(std::unique_ptr<Schedule> direct, NewSchedule(ctx.batch, ctx.cost, unplaced));
  const std::vector<Block> blocks = direct->Blocks();
  std::vector<double> load(workers);
  double mean = 0, max = 0;
  for (int32_t w = 0; w < workers; ++w) {
    load[w] = direct->costs()[w].compute_fwd_ms * 1e-3;
    mean += load[w] / workers;
    max = std::max(max, load[w]);
  }
  std::vector<std::vector<Tile>> owner_tiles(workers);
  for (int32_t r = 0; r < workers; ++r) owner_tiles[r] = direct->Slice(r).tiles;
  const std::vector<Unit> units = Units(ctx, blocks, owner_tiles);
  double best_ms = StepMs(ctx, *direct);
  std::shared_ptr<const Schedule> best;
  std::vector<PlacedTile> best_placed;
  size_t last = 0;
  for (double f : kTargets) {  // moving more each time; stop once that stops paying
    std::vector<PlacedTile> placed = MoveTo(units, load, mean + f * (max - mean));
    if (placed.empty() || placed.size() == last) continue;  // nothing new to price
    last = placed.size();
    ASSIGN_OR_RETURN(std::unique_ptr<Schedule> schedule,
                     NewPlacedSchedule(ctx.batch, ctx.cost, blocks, owner_tiles, placed));
    const double ms = StepMs(ctx, *schedule);
    if (ms >= best_ms) {
      if (best != nullptr) break;  // past the best level
      continue;
    }
    best_ms = ms;
    best = std::move(schedule);
    best_placed = std::move(placed);
  }
  if (best != nullptr) {
    layout->placed = std::move(best_placed);
    layout->schedule = std::move(best);
  } else {
    layout->schedule = std::move(direct);  // the unplaced layout's: not scheduled twice
  }
  return absl::OkStatus();
}

}  // namespace fcp
