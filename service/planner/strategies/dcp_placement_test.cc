// dcp's placement of computation (dcp_placement.h): it moves tiles to their KV's owner where a
// worker's attention compute stands out and the full schedule then predicts a lower step; it
// never keeps a placement that predicts no gain; dcp's plans with placed tiles pass the validator.
#include "service/planner/strategies/dcp_placement.h"

#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "service/planner/schedule.h"
#include "service/planner/strategies/dcp.h"
#include "service/planner/strategies/test_batches.h"
#include "service/planner/validator.h"

namespace fcp {
namespace {

double StepMs(const PlanSummary& s, bool include_backward) {
  return s.predicted_fwd_ms + (include_backward ? s.predicted_bwd_ms : 0);
}

// Two workers, one long FULL document of 8 blocks: worker 0 owns 6 of them, so it computes 3x
// worker 1's tiles; slow attention makes moving its tiles on worker 1's KV there worth the bytes.
TEST(DcpPlacementTest, MovesTilesOffTheBusiestWorkerToTheirKvOwner) {
  Batch batch;
  batch.documents = {{8 * 4096, Mask::Full()}};
  batch.topology.num_workers = 2;
  batch.topology.attention_tflops = 5;
  PlanOptions options;
  options.objective = Objective::kAttention;
  const CostModel cost(batch.model, batch.topology, options.cost, options.objective);
  const PlanContext ctx{batch, options, cost, absl::InfiniteFuture()};
  Layout layout;
  for (int32_t b = 0; b < 8; ++b)
    layout.blocks.push_back({0, b * 4096, (b + 1) * 4096, b < 6 ? 0 : 1});
  absl::StatusOr<std::unique_ptr<Schedule>> unplaced = NewSchedule(batch, cost, layout);
  ASSERT_TRUE(unplaced.ok()) << unplaced.status();
  ASSERT_TRUE(PlaceComputation(ctx, &layout).ok());
  ASSERT_FALSE(layout.placed.empty());
  ASSERT_NE(layout.schedule, nullptr);
  for (const PlacedTile& p : layout.placed) {
    EXPECT_EQ(layout.blocks[p.q_block].owner, 0);
    EXPECT_EQ(p.worker, 1);  // its KV's owner
    EXPECT_EQ(layout.blocks[p.kv_block].owner, 1);
  }
  EXPECT_LT(StepMs(layout.schedule->summary(), true), StepMs((*unplaced)->summary(), true));
  EXPECT_LT(layout.schedule->costs()[0].compute_fwd_ms, (*unplaced)->costs()[0].compute_fwd_ms);
}

// Balanced compute: nothing to gain, no tile moves; the layout keeps the unplaced schedule it was
// priced with (every tile on its q block's owner).
TEST(DcpPlacementTest, LeavesABalancedLayoutAlone) {
  Batch batch;
  batch.documents = {{4096, Mask::Causal()}, {4096, Mask::Causal()}};
  batch.topology.num_workers = 2;
  PlanOptions options;
  const CostModel cost(batch.model, batch.topology, options.cost, options.objective);
  const PlanContext ctx{batch, options, cost, absl::InfiniteFuture()};
  Layout layout;
  layout.blocks = {{0, 0, 4096, 0}, {1, 0, 4096, 1}};
  ASSERT_TRUE(PlaceComputation(ctx, &layout).ok());
  EXPECT_TRUE(layout.placed.empty());
  ASSERT_NE(layout.schedule, nullptr);
  const std::vector<Block> blocks = layout.schedule->Blocks();
  for (int32_t w = 0; w < 2; ++w) {
    for (const Tile& t : layout.schedule->Slice(w).tiles) {
      EXPECT_EQ(blocks[t.q_block].owner, w)
          << "tile (" << t.q_block << ", " << t.kv_block << ") moved off its q block's owner";
    }
  }
}

// dcp on skewed batches, both objectives, forward only or not: plans validate, and a plan with
// placed tiles predicts a lower step than the same blocks without them.
TEST(DcpPlacementTest, DcpPlansWithPlacedTilesAreValidAndFaster) {
  RegisterDcpPlanner();
  int placed_plans = 0;
  for (uint64_t seed : {1, 2, 3}) {
    for (Objective objective : {Objective::kWholeStep, Objective::kAttention}) {
      for (bool backward : {true, false}) {
        SkewedShape shape;
        shape.long_one_in = 6;
        Batch batch = SkewedBatch(16, seed, shape);
        batch.topology.workers_per_node = 4;
        PlanOptions options;
        options.strategy = "dcp";
        options.objective = objective;
        options.include_backward = backward;
        absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
        ASSERT_TRUE(plan.ok()) << plan.status();
        ASSERT_TRUE(ValidatePlan(batch, options, *plan).ok())
            << ValidatePlan(batch, options, *plan);
        bool placed = false;
        for (const WorkerPlan& w : plan->workers) {
          for (const Tile& t : w.tiles) placed |= plan->blocks[t.q_block].owner != w.rank;
        }
        if (!placed) continue;
        ++placed_plans;
        const Batch resolved = ResolveBatch(batch, objective);
        const CostModel cost(resolved.model, resolved.topology, options.cost, objective);
        Layout blocks_only;
        blocks_only.blocks = plan->blocks;
        absl::StatusOr<std::unique_ptr<Schedule>> unplaced =
            NewSchedule(resolved, cost, blocks_only);
        ASSERT_TRUE(unplaced.ok()) << unplaced.status();
        EXPECT_LT(StepMs(plan->summary, backward), StepMs((*unplaced)->summary(), backward));
      }
    }
  }
  RecordProperty("placed_plans", placed_plans);
  EXPECT_GT(placed_plans, 0);  // the batches exercise placement
}

}  // namespace
}  // namespace fcp
