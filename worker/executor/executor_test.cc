// The executor against the oracle: for every strategy (and "placed_test", whose plans compute
// tiles away from their q block's owner: placed_testing.h), mask kind and worker count, the outputs
// and gradients of all ranks (run as threads over the loopback transport) equal single-process
// reference attention over each whole document. Plus refusals: a mismatched plan id, corrupted
// slices (ids, peers, rounds, sizes: each refused before any exchange), a peer on another plan,
// a peer that never answers.
#include "worker/executor/executor.h"

#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/planner/placed_testing.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/dcp.h"
#include "service/planner/validator.h"
#include "worker/transport/loopback_transport.h"
#include "worker/transport/transport_testing.h"
#include "worker/verify/executor_testing.h"
#include "worker/verify/reference_check.h"
#include "worker/verify/step_data.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kSeed = 7;
constexpr int64_t kStep = 1;

// The backends' test batch (worker/verify/executor_testing.h) at head dim 16.
Batch MakeBatch(const Mask& mask, int32_t world, uint64_t seed) {
  return BackendTestBatch(mask, world, /*head_dim=*/16, seed);
}

// Runs every rank's slice as a thread; returns each rank's status and outputs.
struct RankRun {
  absl::Status status;
  LocalOutputs outputs;
  StepStats stats;
};

std::vector<RankRun> RunAll(const Plan& plan, const Batch& batch, absl::Duration timeout,
                            const std::vector<std::string>& expected_ids = {}) {
  const int32_t world = batch.topology.num_workers;
  LoopbackHub hub(world);
  std::vector<RankRun> runs(world);
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      LoopbackTransport transport(&hub, r);
      transport.set_timeout(timeout);
      Executor executor(&transport, ShapeOf(batch), /*threads=*/1);
      const StepInputs in = MakeStepInputs(plan, *plan.FindWorker(r), ShapeOf(batch), kSeed, kStep);
      const std::string expected = expected_ids.empty() ? plan.plan_id : expected_ids[r];
      absl::StatusOr<StepStats> stats =
          executor.Run(plan, expected, kStep, in.View(), &runs[r].outputs);
      runs[r].status = stats.status();
      if (stats.ok()) runs[r].stats = *stats;
      if (!stats.ok()) hub.Abort(r);
    });
  }
  for (std::thread& t : threads) t.join();
  return runs;
}

using Case = std::tuple<std::string, int, int32_t>;  // strategy, mask kind, W

class ExecutorOracleTest : public ::testing::TestWithParam<Case> {};

TEST_P(ExecutorOracleTest, AllRanksEqualSingleProcessAttention) {
  const auto& [strategy, mask_kind, world] = GetParam();
  const Batch batch = MakeBatch(MaskOfKind(mask_kind), world, 100 + world);
  PlanOptions options;
  options.strategy = strategy;
  options.block_size = 64;  // several blocks per long document
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(ValidatePlan(batch, options, *plan).ok());
  if (strategy == kPlacedTestStrategy && world >= 2) {  // the plan really places computation
    int64_t remote_tiles = 0;
    for (const WorkerPlan& w : plan->workers) {
      for (const Tile& t : w.tiles) remote_tiles += plan->blocks[t.q_block].owner != w.rank;
    }
    EXPECT_GT(remote_tiles, 0);
  }
  const std::vector<RankRun> runs = RunAll(*plan, batch, absl::Seconds(60));
  int64_t tokens = 0, sent = 0, received = 0;
  for (int32_t r = 0; r < world; ++r) {
    ASSERT_TRUE(runs[r].status.ok()) << "rank " << r << ": " << runs[r].status;
    absl::StatusOr<ReferenceError> error =
        CompareWithReference(*plan, r, ShapeOf(batch), kSeed, kStep, runs[r].outputs);
    ASSERT_TRUE(error.ok()) << error.status();
    EXPECT_LT(error->Max(), 1e-5) << "rank " << r << ": " << error->ToString();
    tokens += static_cast<int64_t>(runs[r].outputs.lse.size()) / batch.model.num_q_heads;
    sent += runs[r].stats.bytes_sent;
    received += runs[r].stats.bytes_received;
  }
  EXPECT_EQ(tokens, batch.TotalTokens());  // every token checked, on exactly one rank
  EXPECT_EQ(sent, received);
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  static const char* const kMasks[] = {"Causal", "Full", "SlidingWindow", "PrefixLm"};
  return absl::StrCat(std::get<0>(info.param), "_", kMasks[std::get<1>(info.param)], "_W",
                      std::get<2>(info.param));
}

std::vector<std::string> AllStrategies() {
  std::vector<std::string> names;
  RegisterDcpPlanner();
  RegisterPlacedTestStrategy();  // tiles computed away from their q block's owner
  for (const StrategyInfo& s : ListStrategies()) names.push_back(s.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(StrategiesMasksWorkers, ExecutorOracleTest,
                         ::testing::Combine(::testing::ValuesIn(AllStrategies()),
                                            ::testing::Values(0, 1, 2, 3),
                                            ::testing::Values(1, 2, 3, 4, 8)),
                         CaseName);

Plan RingPlan(const Batch& batch) {
  PlanOptions options;
  options.strategy = "ring";
  options.block_size = 64;
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *plan;
}

TEST(ExecutorTest, RefusesAPlanIdItDoesNotExpectBeforeAnyExchange) {
  const Batch batch = MakeBatch(Mask::Causal(), 2, 1);
  const Plan plan = RingPlan(batch);
  LoopbackHub hub(2);
  LoopbackTransport transport(&hub, 0);  // rank 1 never runs: an exchange would time out
  transport.set_timeout(absl::Seconds(60));
  Executor executor(&transport, ShapeOf(batch), 1);
  const StepInputs in = MakeStepInputs(plan, *plan.FindWorker(0), ShapeOf(batch), kSeed, kStep);
  LocalOutputs out;
  absl::StatusOr<StepStats> stats = executor.Run(plan, "0123abcd", kStep, in.View(), &out);
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stats.status().message(), HasSubstr("plan id mismatch"));
}

TEST(ExecutorTest, RefusesACorruptedSlice) {
  const Batch batch = MakeBatch(Mask::Causal(), 2, 2);
  Plan plan = RingPlan(batch);
  LoopbackHub hub(2);
  LoopbackTransport transport(&hub, 0);
  Executor executor(&transport, ShapeOf(batch), 1);
  const StepInputs in = MakeStepInputs(plan, *plan.FindWorker(0), ShapeOf(batch), kSeed, kStep);
  LocalOutputs out;
  WorkerPlan& w = plan.workers[0];
  ASSERT_FALSE(w.tiles.empty());
  w.tiles[0].kv_block = static_cast<int32_t>(plan.blocks.size()) + 5;
  absl::StatusOr<StepStats> stats = executor.Run(plan, plan.plan_id, kStep, in.View(), &out);
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stats.status().message(), HasSubstr("kv_block out of range"));

  Plan short_plan = RingPlan(batch);
  StepInputs fewer = in;
  fewer.tokens -= 1;
  stats = executor.Run(short_plan, short_plan.plan_id, kStep, fewer.View(), &out);
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stats.status().message(), HasSubstr("tokens, the input buffers"));
}

TEST(ExecutorTest, APeerOnAnotherPlanIsDetectedAtTheFirstExchange) {
  const Batch batch = MakeBatch(Mask::Causal(), 2, 3);
  Plan plan = RingPlan(batch);
  ASSERT_FALSE(plan.workers[0].recvs.empty());
  // Rank 1 believes in another plan id (same shape, so sizes agree and only the header differs).
  Plan other = plan;
  other.plan_id = "ffff";
  const int32_t world = 2;
  LoopbackHub hub(world);
  std::vector<absl::Status> status(world);
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      LoopbackTransport transport(&hub, r);
      transport.set_timeout(absl::Seconds(30));
      Executor executor(&transport, ShapeOf(batch), 1);
      const Plan& mine = r == 0 ? plan : other;
      const StepInputs in = MakeStepInputs(mine, *mine.FindWorker(r), ShapeOf(batch), kSeed, 1);
      LocalOutputs out;
      status[r] = executor.Run(mine, mine.plan_id, kStep, in.View(), &out).status();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(status[0].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status[0].message(), HasSubstr("peer 1 runs another plan"));
}

TEST(ExecutorTest, APeerThatNeverAnswersFailsTheRoundWithinTheTimeout) {
  const Batch batch = MakeBatch(Mask::Causal(), 2, 4);
  const Plan plan = RingPlan(batch);
  LoopbackHub hub(2);
  LoopbackTransport transport(&hub, 0);
  transport.set_timeout(absl::Milliseconds(300));
  Executor executor(&transport, ShapeOf(batch), 1);
  const StepInputs in = MakeStepInputs(plan, *plan.FindWorker(0), ShapeOf(batch), kSeed, kStep);
  LocalOutputs out;
  const absl::Time start = absl::Now();
  absl::StatusOr<StepStats> stats = executor.Run(plan, plan.plan_id, kStep, in.View(), &out);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kDeadlineExceeded) << stats.status();
  EXPECT_THAT(stats.status().message(), HasSubstr("forward round 1"));
  EXPECT_THAT(stats.status().message(), HasSubstr("rank 1"));  // the silent peer, named
}

TEST(ExchangeTagTest, DistinctForStepsDirectionsAndRounds) {
  EXPECT_NE(ExchangeTag(1, TransferKind::kKv, 1), ExchangeTag(2, TransferKind::kKv, 1));
  EXPECT_NE(ExchangeTag(1, TransferKind::kKv, 1), ExchangeTag(1, TransferKind::kDkv, 1));
  for (TransferKind kind : {TransferKind::kDkv, TransferKind::kOut, TransferKind::kDo,
                            TransferKind::kDq}) {  // the phases of placed computation
    EXPECT_NE(ExchangeTag(1, TransferKind::kKv, kMaxRounds - 1), ExchangeTag(1, kind, 1));
    EXPECT_NE(ExchangeTag(1, kind, kMaxRounds - 1), GatherTag(1));
    EXPECT_LT(ExchangeTag((1 << 24) - 1, kind, kMaxRounds, 0xFFFF), uint64_t{1} << 60);
  }
  EXPECT_NE(ExchangeTag(1, TransferKind::kKv, 1), ExchangeTag(1, TransferKind::kKv, 2));
  EXPECT_NE(GatherTag(1), ExchangeTag(1, TransferKind::kDkv, kMaxRounds - 1));
}

// Placed computation over gloo (TCP between the ranks' own contexts): every mask, outputs and
// gradients equal single-process attention.
class PlacedOverGlooTest : public ::testing::TestWithParam<int> {};

TEST_P(PlacedOverGlooTest, AllRanksEqualSingleProcessAttention) {
  RegisterPlacedTestStrategy();
  const int32_t world = 3;
  const Batch batch = MakeBatch(MaskOfKind(GetParam()), world, 300 + GetParam());
  PlanOptions options;
  options.strategy = kPlacedTestStrategy;
  options.block_size = 64;
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(ValidatePlan(batch, options, *plan).ok()) << ValidatePlan(batch, options, *plan);
  absl::StatusOr<std::unique_ptr<LocalRanks>> ranks =
      LocalRanks::Make("gloo", world, absl::Seconds(60));
  ASSERT_TRUE(ranks.ok()) << ranks.status();
  std::vector<LocalOutputs> outputs(world);
  const std::vector<absl::Status> status = (*ranks)->Run([&](Transport& transport) {
    const int32_t r = transport.rank();
    Executor executor(&transport, ShapeOf(batch), /*threads=*/1);
    const StepInputs in = MakeStepInputs(*plan, *plan->FindWorker(r), ShapeOf(batch), kSeed, kStep);
    return executor.Run(*plan, plan->plan_id, kStep, in.View(), &outputs[r]).status();
  });
  for (int32_t r = 0; r < world; ++r) {
    ASSERT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];
    absl::StatusOr<ReferenceError> error =
        CompareWithReference(*plan, r, ShapeOf(batch), kSeed, kStep, outputs[r]);
    ASSERT_TRUE(error.ok()) << error.status();
    EXPECT_LT(error->Max(), 1e-5) << "rank " << r << ": " << error->ToString();
  }
}

INSTANTIATE_TEST_SUITE_P(Masks, PlacedOverGlooTest, ::testing::Values(0, 1, 2, 3));

// A slice corrupted one way: every one is refused (FailedPrecondition naming the problem) before
// any exchange: rank 1 never runs, so an exchange would end in a timeout, not a refusal.
struct Corruption {
  std::string name;
  void (*corrupt)(Plan& plan, StepInputs& in);
  std::string message;
};

int32_t FirstBlockOf(const Plan& plan, int32_t owner) {
  for (size_t b = 0; b < plan.blocks.size(); ++b) {
    if (plan.blocks[b].owner == owner) return static_cast<int32_t>(b);
  }
  return -1;
}

// Rank 0's first tile whose KV block is received, not local.
Tile& FirstRemoteTile(Plan& plan) {
  WorkerPlan& w = plan.workers[0];
  for (Tile& t : w.tiles) {
    if (plan.blocks[t.kv_block].owner != 0) return t;
  }
  return w.tiles.front();
}

std::vector<Corruption> Corruptions() {
  return {
      {"BlockIdOutOfRange",
       [](Plan& p, StepInputs&) {
         p.workers[0].blocks[0] = static_cast<int32_t>(p.blocks.size()) + 3;
       },
       "out of range"},
      {"NegativeBlockId", [](Plan& p, StepInputs&) { p.workers[0].blocks[0] = -1; },
       "block id -1 out of range"},
      {"BlockOfAnotherRank",
       [](Plan& p, StepInputs&) { p.workers[0].blocks[0] = FirstBlockOf(p, 1); }, "owned by 1"},
      {"BlockPastItsDocument",
       [](Plan& p, StepInputs&) {
         Block& b = p.blocks[p.workers[0].blocks[0]];
         b.end = p.documents[b.document].length + 10;
       },
       "is not a token range of a document"},
      {"BlockListedTwice",
       [](Plan& p, StepInputs&) { p.workers[0].blocks.push_back(p.workers[0].blocks[0]); },
       "twice"},
      {"BuffersLargerThanTheSlice", [](Plan&, StepInputs& in) { in.tokens += 64; },
       "tokens, the input buffers"},
      {"BlockSizesChanged", [](Plan& p, StepInputs&) { p.blocks[p.workers[0].blocks[0]].end -= 1; },
       "tokens, the input buffers"},
      {"PeerOutOfRange", [](Plan& p, StepInputs&) { p.workers[0].recvs[0].peer = 7; },
       "bad peer or round"},
      {"PeerIsItself", [](Plan& p, StepInputs&) { p.workers[0].sends[0].peer = 0; },
       "bad peer or round"},
      {"RoundOutOfRange", [](Plan& p, StepInputs&) { p.workers[0].recvs[0].round = 0; },
       "bad peer or round"},
      {"ReceivedBlockIdOutOfRange",
       [](Plan& p, StepInputs&) { p.workers[0].recvs[0].blocks[0] = 1 << 20; }, "out of range"},
      {"SendsABlockItDoesNotHold",
       [](Plan& p, StepInputs&) {
         p.workers[0].sends[0].blocks[0] = FirstBlockOf(p, 1);
         p.workers[0].recvs.clear();  // so that block is never received either
       },
       "is not this rank's to send"},
      {"TileOfARemoteQueryBlock",
       [](Plan& p, StepInputs&) { p.workers[0].tiles[0].q_block = FirstBlockOf(p, 1); },
       "q_block is neither local nor received by round"},
      {"TileKvBlockOutOfRange", [](Plan& p, StepInputs&) { p.workers[0].tiles[0].kv_block = -5; },
       "kv_block out of range"},
      {"TileBeforeItsKvArrives", [](Plan& p, StepInputs&) { FirstRemoteTile(p).round = 0; },
       "neither local nor received by round 0"},
      {"TileAcrossDocuments",
       [](Plan& p, StepInputs&) {
         Tile& t = p.workers[0].tiles[0];
         for (int32_t b = 0; b < static_cast<int32_t>(p.blocks.size()); ++b) {
           if (p.blocks[b].document != p.blocks[t.q_block].document) t.kv_block = b;
         }
       },
       "blocks of different documents"},
      {"PlanForAnotherWorldSize", [](Plan& p, StepInputs&) { p.costs.pop_back(); },
       "the plan is for 1 workers, the job has 2"},
      {"NoSliceForThisRank", [](Plan& p, StepInputs&) { p.workers[0].rank = 5; },
       "holds no slice for this rank"},
  };
}

class ExecutorCorruptionTest : public ::testing::TestWithParam<Corruption> {};

TEST_P(ExecutorCorruptionTest, IsRefusedBeforeAnyExchange) {
  const Batch batch = MakeBatch(Mask::Causal(), 2, 2);
  Plan plan = RingPlan(batch);
  ASSERT_FALSE(plan.workers[0].recvs.empty());
  ASSERT_FALSE(plan.workers[0].sends.empty());
  StepInputs in = MakeStepInputs(plan, *plan.FindWorker(0), ShapeOf(batch), kSeed, kStep);
  GetParam().corrupt(plan, in);
  LoopbackHub hub(2);
  LoopbackTransport transport(&hub, 0);
  transport.set_timeout(absl::Seconds(30));
  Executor executor(&transport, ShapeOf(batch), 1);
  LocalOutputs out;
  const absl::Time start = absl::Now();
  absl::StatusOr<StepStats> stats = executor.Run(plan, plan.plan_id, kStep, in.View(), &out);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition) << stats.status();
  EXPECT_THAT(stats.status().message(), HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(Cases, ExecutorCorruptionTest, ::testing::ValuesIn(Corruptions()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace fcp
