// Topology awareness: one NIC per GPU is never shared within a round, and fcp keeps heavy KV
// traffic inside nodes (NVLink) where it can.
#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/dcp.h"
#include "service/planner/strategies/test_batches.h"
#include "service/planner/validator.h"

namespace fcp {
namespace {

Plan MustPlan(const Batch& batch, const std::string& strategy, OutputSpec output,
              Objective objective = Objective::kWholeStep) {
  PlanOptions options;
  options.strategy = strategy;
  options.objective = objective;
  absl::StatusOr<Plan> plan = MakePlan(batch, options, output);
  EXPECT_TRUE(plan.ok()) << strategy << ": " << plan.status();
  return plan.ok() ? *std::move(plan) : Plan{};
}

// Every GPU has its own NIC: in each round and direction, at most one inter-node transfer leaves
// it and at most one arrives.
TEST(NicTest, NoNicCarriesTwoTransfersInOneRound) {
  const Batch batch = SkewedBatch(24, 7);
  const Topology& t = batch.topology;
  RegisterDcpPlanner();
  for (const StrategyInfo& s : ListStrategies()) {
    const Plan plan = MustPlan(batch, s.name, OutputSpec::AllRanks());
    for (const WorkerPlan& w : plan.workers) {
      std::map<std::pair<TransferKind, int32_t>, int> sends, recvs;
      for (const Transfer& x : w.sends) {
        if (!t.SameNode(w.rank, x.peer)) {
          EXPECT_EQ(++sends[std::make_pair(x.kind, x.round)], 1) << s.name << " rank " << w.rank;
        }
      }
      for (const Transfer& x : w.recvs) {
        if (!t.SameNode(w.rank, x.peer)) {
          EXPECT_EQ(++recvs[std::make_pair(x.kind, x.round)], 1) << s.name << " rank " << w.rank;
        }
      }
    }
  }
}

// workers_per_node near INT32_MAX (one node holds every worker) is a valid topology: every
// strategy plans it as one node. The node count used to overflow (fuzzing, plan_request_fuzzer).
TEST(TopologyTest, AHugeWorkersPerNodeIsOneNodeForEveryStrategy) {
  Batch batch = SkewedBatch(16, 5);
  batch.topology.workers_per_node = std::numeric_limits<int32_t>::max() - 1;
  RegisterDcpPlanner();
  for (const StrategyInfo& s : ListStrategies()) {
    PlanOptions options;
    options.strategy = s.name;
    const Plan plan = MustPlan(batch, s.name, OutputSpec::AllRanks());
    ASSERT_FALSE(plan.workers.empty()) << s.name;
    EXPECT_EQ(plan.summary.inter_node_bytes, 0) << s.name;
    const absl::Status valid = ValidatePlan(batch, options, plan);
    EXPECT_TRUE(valid.ok()) << s.name << ": " << valid;
  }
}

TEST(TopologyTest, FcpMovesNoMoreBytesAcrossNodesThanRing) {
  for (uint64_t seed : {1, 2, 3}) {
    const Batch batch = SkewedBatch(32, seed);
    const Plan fcp = MustPlan(batch, "fcp", OutputSpec::SummaryOnly());
    const Plan ring = MustPlan(batch, "ring", OutputSpec::SummaryOnly());
    EXPECT_GT(ring.summary.inter_node_bytes, 0);
    EXPECT_LE(fcp.summary.inter_node_bytes, ring.summary.inter_node_bytes) << "seed " << seed;
  }
}

// A document worth a few workers is exchanged over NVLink: grouped gives it a group inside one
// node.
TEST(TopologyTest, GroupedKeepsAMediumLongDocumentInsideOneNode) {
  Batch batch;
  batch.topology.num_workers = 16;
  batch.topology.workers_per_node = 8;
  batch.documents.push_back({8192, Mask::Causal()});  // about three workers' worth
  std::mt19937_64 rng(3);
  for (int64_t left = 16 * 8192 - 8192; left > 0;) {
    const int64_t length = std::min<int64_t>(left, 1500 + static_cast<int64_t>(rng() % 2000));
    batch.documents.push_back({length, Mask::Causal()});
    left -= length;
  }
  // Attention alone: under the default 5% token budget (~400 tokens of slack per worker) some
  // of the 1,500-3,500-token documents are cut, and their pieces may sit on either node.
  const Plan plan = MustPlan(batch, "grouped", OutputSpec::AllRanks(), Objective::kAttention);
  std::set<int32_t> nodes, owners;
  for (const Block& b : plan.blocks) {
    if (b.document == 0) {
      owners.insert(b.owner);
      nodes.insert(batch.topology.NodeOf(b.owner));
    }
  }
  EXPECT_GE(owners.size(), 2u);
  EXPECT_EQ(nodes.size(), 1u) << ::testing::PrintToString(owners);
  EXPECT_EQ(plan.summary.inter_node_bytes, 0);
}

}  // namespace
}  // namespace fcp
