// A Schedule turns a strategy's Layout into everything else a plan holds: the tiles each worker
// computes, the transfers in rounds, and predicted costs; it materialises blocks and worker slices
// only on demand. Summaries never need every tile in memory (a ring over W=1024 workers has 10^9+).
#ifndef FCP_SERVICE_PLANNER_SCHEDULE_H_
#define FCP_SERVICE_PLANNER_SCHEDULE_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "service/planner/batch.h"
#include "service/planner/cost_model.h"
#include "service/planner/layout.h"
#include "service/planner/plan.h"
#include "service/planner/timeline.h"

namespace fcp {

class Schedule {
 public:
  virtual ~Schedule() = default;
  // Per-worker predicted costs, by rank.
  virtual const std::vector<WorkerCost>& costs() const = 0;
  // Summary (planning_ms left 0 for the caller).
  virtual const PlanSummary& summary() const = 0;
  virtual std::vector<Block> Blocks() const = 0;
  // The slice of `rank` (0 <= rank < num_workers). Cost: proportional to that rank's tiles.
  virtual WorkerPlan Slice(int32_t rank) const = 0;
};

// `batch` and `cost` must outlive the schedule. Internal error if the layout is inconsistent
// (blocks not covering documents, owners out of range, groups overlapping...).
absl::StatusOr<std::unique_ptr<Schedule>> NewSchedule(const Batch& batch, const CostModel& cost,
                                                      Layout layout);

// The schedule of `blocks` (a kDirect layout's, in its order) with the tiles `owner_tiles[w]`
// (every required tile of the q blocks worker w owns, as its unplaced schedule's Slice(w) lists
// them) computed where `placed` says (Layout::placed): for a strategy that prices several
// placements of the same blocks (dcp_placement.cc) without scheduling them unplaced each time.
absl::StatusOr<std::unique_ptr<Schedule>> NewPlacedSchedule(
    const Batch& batch, const CostModel& cost, std::vector<Block> blocks,
    const std::vector<std::vector<Tile>>& owner_tiles, const std::vector<PlacedTile>& placed);

// Shared by schedules: per-worker costs and the plan summary from per-round compute, flops,
// tokens and transfers. `tiles` is the total tile count.
struct CostInputs {
  RoundCompute compute;                // seconds per (worker, round)
  std::vector<double> fwd_pairs;       // per worker, allowed pairs computed
  std::vector<int64_t> tokens;         // per worker
  std::vector<TimedTransfer> kv, dkv;  // forward (KV and Q) and backward (dKV) transfers
  // dkv left empty: the backward's transfers are kv's reversed (SimulateMirroredTimeline).
  bool dkv_mirrors_kv = false;
  PhaseTransfers phases;  // placed computation's Out, dO and dQ (timeline.h)
  int64_t tiles = 0;
};
void SummarizeCosts(const CostModel& cost, CostInputs inputs, std::vector<WorkerCost>* costs,
                    PlanSummary* summary);

// Orders a worker's tiles for execution (round, then q-block, then kv-block) and its transfers
// (kind, round).
void SortSlice(WorkerPlan* slice);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_SCHEDULE_H_
