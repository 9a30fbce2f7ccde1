// The placed schedule's costs (placed_schedule.cc) against a brute-force count: the bytes of every
// transfer of every kind in the materialised plan, per token from the model's shape, equal the
// predicted per-worker and total bytes (inter-node ones too); and its plans pass the validator on
// every mask.
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "service/planner/placed_testing.h"
#include "service/planner/planner.h"
#include "service/planner/validator.h"

namespace fcp {
namespace {

// Bytes per token of a transfer of `kind`, from the shape alone (plan.h, cost_model.h).
int64_t BytesPerToken(const ModelShape& m, TransferKind kind) {
  const int64_t dtype = DTypeBytes(m.dtype), q_row = int64_t{m.num_q_heads} * m.head_dim;
  switch (kind) {
    case TransferKind::kKv:
    case TransferKind::kDkv:
      return 2 * int64_t{m.num_kv_heads} * m.head_dim * dtype;
    case TransferKind::kQ:
      return q_row * dtype;
    case TransferKind::kOut:
      return (q_row + m.num_q_heads) * 4;
    case TransferKind::kDo:
      return q_row * dtype + 2 * int64_t{m.num_q_heads} * 4;
    case TransferKind::kDq:
      return q_row * 4;
  }
  return 0;
}

class PlacedScheduleTest : public ::testing::TestWithParam<int32_t> {};

TEST_P(PlacedScheduleTest, PredictedBytesEqualTheTransfersOfThePlan) {
  RegisterPlacedTestStrategy();
  Batch batch;
  batch.documents = {{3000, Mask::Causal()},
                     {1200, Mask::Full()},
                     {2100, Mask::SlidingWindow(300)},
                     {1700, Mask::PrefixLm(500)},
                     {400, Mask::Causal()}};
  batch.topology.num_workers = GetParam();
  batch.topology.workers_per_node = 2;
  PlanOptions options;
  options.strategy = kPlacedTestStrategy;
  options.block_size = 256;
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(ValidatePlan(batch, options, *plan).ok()) << ValidatePlan(batch, options, *plan);
  const int32_t workers = batch.topology.num_workers;
  std::vector<int64_t> sent(workers, 0), received(workers, 0);
  std::vector<int64_t> of_kind(kTransferKinds, 0);
  int64_t total = 0, inter_node = 0;
  for (const WorkerPlan& w : plan->workers) {
    for (const Transfer& t : w.sends) {
      int64_t tokens = 0;
      for (int32_t b : t.blocks) tokens += plan->blocks[b].tokens();
      const int64_t bytes = tokens * BytesPerToken(batch.model, t.kind);
      sent[w.rank] += bytes;
      received[t.peer] += bytes;
      total += bytes;
      of_kind[static_cast<int>(t.kind)] += bytes;
      if (!batch.topology.SameNode(w.rank, t.peer)) inter_node += bytes;
    }
  }
  for (int kind = 0; kind < kTransferKinds; ++kind) {
    EXPECT_GT(of_kind[kind], 0) << TransferKindName(static_cast<TransferKind>(kind));
  }
  EXPECT_EQ(plan->summary.comm_bytes, total);
  EXPECT_EQ(plan->summary.inter_node_bytes, inter_node);
  for (int32_t r = 0; r < workers; ++r) {
    EXPECT_EQ(plan->costs[r].send_bytes, sent[r]) << "worker " << r;
    EXPECT_EQ(plan->costs[r].recv_bytes, received[r]) << "worker " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Workers, PlacedScheduleTest, ::testing::Values(2, 3, 4, 8));

}  // namespace
}  // namespace fcp
