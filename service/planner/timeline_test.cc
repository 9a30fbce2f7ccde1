// The timeline's transfer overlap (CostParams::transfer_overlap): 1 hides a transfer behind the
// compute it overlaps (a GPU), 0 adds its whole time to both ranks (the CPU executor), and the
// values between interpolate the two.
#include "service/planner/timeline.h"

#include <random>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace fcp {
namespace {

// Two workers on one node, 1 GB/s and no latency: a transfer of `bytes` takes bytes * 1e-9 s.
CostModel TwoWorkers(double overlap) {
  Topology topology;
  topology.num_workers = 2;
  topology.intra_node_gbps = 1;
  CostParams params;
  params.transfer_latency_us = 0;
  params.transfer_overlap = overlap;
  return CostModel(ModelShape(), topology, params, Objective::kAttention);
}

// Worker 1 sends worker 0 its keys for round 1 (0.1 s) while worker 0 computes round 0 (0.3 s);
// round 1 takes 0.2 s on worker 0. Backward: worker 0 recomputes round 1 (0.2 s), then sends the
// partials back (`partial_bytes`; 0.1 s by default), then round 0 (0.3 s).
Timeline Simulate(double overlap, int64_t partial_bytes = 100'000'000) {
  RoundCompute compute(2, 1);
  compute.fwd(0, 0) = 0.3;
  compute.fwd(0, 1) = 0.2;
  compute.bwd(0, 0) = 0.3;
  compute.bwd(0, 1) = 0.2;
  const std::vector<TimedTransfer> kv = {{1, 1, 0, 100'000'000}};
  const std::vector<TimedTransfer> dkv = {{1, 0, 1, partial_bytes}};
  return SimulateTimeline(TwoWorkers(overlap), compute, kv, dkv, {});
}

TEST(TimelineTest, FullOverlapHidesATransferShorterThanTheCompute) {
  const Timeline t = Simulate(1);
  EXPECT_DOUBLE_EQ(t.fwd_seconds[0], 0.5);  // the keys arrived at 0.1, round 1 starts at 0.3
  EXPECT_DOUBLE_EQ(t.fwd_seconds[1], 0.1);  // its send
  EXPECT_DOUBLE_EQ(t.bwd_seconds[0], 0.5);
  EXPECT_DOUBLE_EQ(t.bwd_seconds[1], 0.3);  // the partials arrive at 0.2 + 0.1
}

// The backward's transfers are priced on their own bytes, not the forward's (the two lists
// usually mirror each other, and then share their times).
TEST(TimelineTest, PartialsLargerThanTheKeysTakeTheirOwnTime) {
  const Timeline t = Simulate(1, 300'000'000);
  EXPECT_DOUBLE_EQ(t.fwd_seconds[1], 0.1);
  EXPECT_DOUBLE_EQ(t.bwd_seconds[1], 0.2 + 0.3);  // sent at 0.2, 0.3 s on the link
  EXPECT_DOUBLE_EQ(t.bwd_seconds[0], 0.5);        // its link is busy until 0.5 as well
}

TEST(TimelineTest, NoOverlapAddsEveryTransferToBothRanks) {
  const Timeline t = Simulate(0);
  EXPECT_DOUBLE_EQ(t.fwd_seconds[0], 0.5 + 0.1);
  EXPECT_DOUBLE_EQ(t.fwd_seconds[1], 0.1);
  EXPECT_DOUBLE_EQ(t.bwd_seconds[0], 0.5 + 0.1);
  EXPECT_DOUBLE_EQ(t.bwd_seconds[1], 0.2 + 0.1);  // sent once worker 0 has recomputed round 1
}

TEST(TimelineTest, PartialOverlapAddsTheRest) {
  const Timeline t = Simulate(0.25);
  EXPECT_NEAR(t.fwd_seconds[0], 0.5 + 0.075, 1e-12);
  EXPECT_NEAR(t.bwd_seconds[0], 0.5 + 0.075, 1e-12);
  EXPECT_NEAR(t.bwd_seconds[1], 0.2 + 0.025 + 0.075, 1e-12);
}

TEST(TimelineTest, OverlapIsACostParameter) {
  CostParams params;
  EXPECT_EQ(params.transfer_overlap, 1);  // the default: every plan made before it existed
  params.transfer_overlap = 1.5;
  EXPECT_FALSE(ValidateCostParams(params).ok());
  absl::StatusOr<CostParams> parsed = ParseCostParams("transfer_overlap = 0.25\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->transfer_overlap, 0.25);
  EXPECT_FALSE(ParseCostParams("transfer_overlap = 2\n").ok());
}

// Placed computation's phases (timeline.h): worker 1 computes worker 0's tiles (0.4 s; worker 0
// its own 0.1 s), returns the partial output (0.1 s) once both are done; backward: the dO phase
// (0.2 s) comes first, on both ranks, then each one's tiles, then the dQ return phase (0.1 s).
TEST(TimelineTest, PlacedComputationPhasesFollowAndPrecedeTheRounds) {
  RoundCompute compute(2, 1);
  compute.fwd(0, 0) = 0.1;
  compute.fwd(1, 0) = 0.4;
  compute.bwd(0, 0) = 0.1;
  compute.bwd(1, 0) = 0.4;
  PhaseTransfers phases;
  phases.out = {{1, 1, 0, 100'000'000}};
  phases.d_o = {{1, 0, 1, 200'000'000}};
  phases.dq = {{1, 1, 0, 100'000'000}};
  const Timeline t = SimulateTimeline(TwoWorkers(1), compute, {}, {}, {}, phases);
  EXPECT_DOUBLE_EQ(t.fwd_seconds[0], 0.5);  // the partial leaves worker 1 at 0.4
  EXPECT_DOUBLE_EQ(t.fwd_seconds[1], 0.5);
  EXPECT_DOUBLE_EQ(t.bwd_seconds[0], 0.7);  // dO until 0.2; worker 1's tiles until 0.6; dQ
  EXPECT_DOUBLE_EQ(t.bwd_seconds[1], 0.7);
  const Timeline serial = SimulateTimeline(TwoWorkers(0), compute, {}, {}, {}, phases);
  EXPECT_DOUBLE_EQ(serial.fwd_seconds[0], 0.4 + 0.1);  // worker 1 done at 0.4, then the transfer
  EXPECT_DOUBLE_EQ(serial.bwd_seconds[1], 0.4 + 0.2 + 0.1);
}

// Many workers, rounds in which each receives at most once (a direct schedule's): compute in
// round 0 and in most rounds a transfer arrives (not all: a sparse row may lack a transfer's
// round, whose partials then leave once the later rounds are recomputed). The sparse form (only
// those rounds) and the mirrored backward (no list of partials) give the dense form's timeline bit
// for bit.
TEST(TimelineTest, SparseComputeAndMirroredPartialsMatchTheDenseForm) {
  const int32_t workers = 12, rounds = 5;
  Topology topology;
  topology.num_workers = workers;
  topology.workers_per_node = 4;
  CostParams params;
  params.transfer_overlap = 0.7;
  const CostModel cost(ModelShape(), topology, params, Objective::kWholeStep);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> seconds(1e-4, 1e-2);
  RoundCompute dense(workers, rounds);
  std::vector<TimedTransfer> kv, dkv;
  std::vector<std::vector<std::pair<int32_t, double>>> rows(workers);  // (round, fwd) by worker
  for (int32_t w = 0; w < workers; ++w) {
    dense.fwd(w, 0) = seconds(rng);
    rows[w].push_back({0, dense.fwd(w, 0)});
  }
  for (int32_t r = 1; r <= rounds; ++r) {
    for (int32_t dst = 0; dst < workers; ++dst) {
      if (rng() % 3 == 0) continue;
      const int32_t src = (dst + r) % workers;  // a matching: one sender per receiver
      const int64_t bytes = static_cast<int64_t>(rng() % 1000 + 1) << 20;
      kv.push_back({r, src, dst, bytes});
      dkv.push_back({r, dst, src, bytes});
      if (rng() % 4 == 0) continue;  // data that no tile of this round waits for
      dense.fwd(dst, r) = seconds(rng);
      rows[dst].push_back({r, dense.fwd(dst, r)});
    }
  }
  std::vector<int32_t> row_first = {0};
  RoundCompute::Rounds round;
  RoundCompute::Seconds fwd, bwd;
  for (int32_t w = 0; w < workers; ++w) {
    for (const auto& [r, f] : rows[w]) {
      dense.bwd(w, r) = 2.5 * f;
      round.push_back(r);
      fwd.push_back(f);
      bwd.push_back(2.5 * f);
    }
    row_first.push_back(static_cast<int32_t>(round.size()));
  }
  const RoundCompute sparse(rounds, row_first, round, fwd, bwd);
  std::vector<double> extra(workers);
  for (double& e : extra) e = seconds(rng);
  const Timeline expected = SimulateTimeline(cost, dense, kv, dkv, extra);
  for (const Timeline& t : {SimulateTimeline(cost, sparse, kv, dkv, extra),
                            SimulateMirroredTimeline(cost, sparse, kv, extra),
                            SimulateMirroredTimeline(cost, dense, kv, extra)}) {
    EXPECT_EQ(t.fwd_seconds, expected.fwd_seconds);
    EXPECT_EQ(t.bwd_seconds, expected.bwd_seconds);
  }
  for (int32_t w = 0; w < workers; ++w) {
    EXPECT_EQ(sparse.FwdTotal(w), dense.FwdTotal(w));
    EXPECT_EQ(sparse.BwdTotal(w), dense.BwdTotal(w));
  }
}

}  // namespace
}  // namespace fcp
