#include "service/planner/placed_testing.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "common/status_macros.h"
#include "service/planner/schedule.h"

namespace fcp {
namespace {

class PlacedTestPlanner final : public Planner {
 public:
  absl::string_view name() const override { return kPlacedTestStrategy; }
  absl::string_view description() const override {
    return "tests only: fcp's layout with many tiles computed away from their q block's owner";
  }
  absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const override {
    ASSIGN_OR_RETURN(std::unique_ptr<Planner> fcp, NewPlanner("fcp"));
    ASSIGN_OR_RETURN(Layout layout, fcp->MakeLayout(ctx));
    if (layout.kind != Layout::Kind::kDirect) return layout;
    if (layout.blocks.empty() && layout.schedule != nullptr) {
      layout.blocks = layout.schedule->Blocks();
    }
    RETURN_IF_ERROR(PlaceTilesForTest(ctx, &layout));
    layout.strategy = kPlacedTestStrategy;
    return layout;
  }
};

std::unique_ptr<Planner> NewPlacedTestPlanner() { return std::make_unique<PlacedTestPlanner>(); }

}  // namespace

void RegisterPlacedTestStrategy() { RegisterStrategy(&NewPlacedTestPlanner); }

absl::Status PlaceTilesForTest(const PlanContext& ctx, Layout* layout) {
  const int32_t workers = ctx.batch.topology.num_workers;
  layout->placed.clear();
  layout->schedule.reset();
  if (workers < 2) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::unique_ptr<Schedule> direct, NewSchedule(ctx.batch, ctx.cost, *layout));
  const std::vector<Block>& blocks = layout->blocks;
  for (int32_t r = 0; r < workers; ++r) {
    for (const Tile& t : direct->Slice(r).tiles) {
      const int32_t q_owner = blocks[t.q_block].owner, kv_owner = blocks[t.kv_block].owner;
      const int32_t key = t.q_block + 2 * t.kv_block;
      int32_t worker = q_owner;
      if (q_owner != kv_owner) {
        const int32_t third = (std::max(q_owner, kv_owner) + 1) % workers;
        worker = key % 3 == 1 ? kv_owner : key % 3 == 2 && third != q_owner ? third : q_owner;
      } else if (key % 5 == 0) {
        worker = (q_owner + 1) % workers;
      }
      if (worker != q_owner) layout->placed.push_back({t.q_block, t.kv_block, worker});
    }
  }
  return absl::OkStatus();
}

}  // namespace fcp
