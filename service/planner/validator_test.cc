#include "service/planner/validator.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/planner/mask_math.h"
#include "service/planner/planner.h"

namespace fcp {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A hand-made valid plan over 3 workers and 2 documents:
//
//   document 0 (CAUSAL, 12 tokens): b0 [0,4) w0 | b1 [4,8) w1 | b2 [8,12) w2
//   document 1 (FULL, 6 tokens):    b3 [0,3) w2 | b4 [3,6) w0
//
//   round 1: KV  w0 -> w1 {b0}      w2 -> w0 {b3}
//   round 2: KV  w1 -> w2 {b0, b1}  (w1 relays b0, received in round 1)
//   round 3: KV  w0 -> w2 {b4}
//   dKV:     w1 -> w0 {b0} r1, w0 -> w2 {b3} r1, w2 -> w1 {b1} r1, w2 -> w0 {b0, b4} r2
class ValidatorTest : public ::testing::Test {
 protected:
  ValidatorTest() {
    batch_.documents = {{12, Mask::Causal()}, {6, Mask::Full()}};
    batch_.topology.num_workers = 3;
    plan_.documents = batch_.documents;
    plan_.block_size = 64;
    plan_.blocks = {{0, 0, 4, 0}, {0, 4, 8, 1}, {0, 8, 12, 2}, {1, 0, 3, 2}, {1, 3, 6, 0}};
    plan_.summary.rounds = 3;
    plan_.workers.resize(3);
    WorkerPlan& w0 = plan_.workers[0];
    WorkerPlan& w1 = plan_.workers[1];
    WorkerPlan& w2 = plan_.workers[2];
    w0.rank = 0;
    w1.rank = 1;
    w2.rank = 2;
    w0.blocks = {0, 4};
    w1.blocks = {1};
    w2.blocks = {2, 3};
    w0.tiles = {{0, 0, 0}, {4, 4, 0}, {4, 3, 1}};
    w1.tiles = {{1, 1, 0}, {1, 0, 1}};
    w2.tiles = {{2, 2, 0}, {3, 3, 0}, {2, 0, 2}, {2, 1, 2}, {3, 4, 3}};
    AddTransfer(0, 1, 1, {0});
    AddTransfer(2, 0, 1, {3});
    AddTransfer(1, 2, 2, {0, 1});
    AddTransfer(0, 2, 3, {4});
    AddTransfer(1, 0, 1, {0}, TransferKind::kDkv);
    AddTransfer(0, 2, 1, {3}, TransferKind::kDkv);
    AddTransfer(2, 1, 1, {1}, TransferKind::kDkv);
    AddTransfer(2, 0, 2, {0, 4}, TransferKind::kDkv);
  }

  void AddTransfer(int32_t src, int32_t dst, int32_t round, std::vector<int32_t> blocks,
                   TransferKind kind = TransferKind::kKv) {
    plan_.workers[src].sends.push_back({round, dst, blocks, kind});
    plan_.workers[dst].recvs.push_back({round, src, blocks, kind});
  }

  // Validates with the plan id recomputed, so only the mutation under test can fail.
  absl::Status Validate() {
    plan_.plan_id = ComputePlanId(batch_, options_);
    return ValidatePlan(batch_, options_, plan_);
  }

  Batch batch_;
  PlanOptions options_;
  Plan plan_;
};

MATCHER_P2(IsViolation, invariant, text, "") {
  return arg.code() == absl::StatusCode::kFailedPrecondition &&
         ::testing::Value(
             std::string(arg.message()),
             AllOf(HasSubstr(absl::StrCat("invariant ", invariant, " (")), HasSubstr(text)));
}

TEST_F(ValidatorTest, HandMadePlanIsValid) { EXPECT_TRUE(Validate().ok()) << Validate(); }

TEST_F(ValidatorTest, UnusedReceivedBlockMayReturnAZeroPartial) {
  AddTransfer(1, 0, 3, {1});                      // w0 receives b1 without using it ...
  AddTransfer(0, 1, 3, {1}, TransferKind::kDkv);  // ... and returns its (zero) dK/dV.
  EXPECT_TRUE(Validate().ok()) << Validate();
}

TEST_F(ValidatorTest, MissingWorkerSliceIsFailedPrecondition) {
  plan_.workers.erase(plan_.workers.begin() + 1);
  const absl::Status s = Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("slice of rank 1"));
}

TEST_F(ValidatorTest, DuplicateWorkerSliceIsFailedPrecondition) {
  plan_.workers[2].rank = 1;
  const absl::Status s = Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("second slice for rank 1"));
}

TEST_F(ValidatorTest, DocumentsDifferingFromTheBatchIsFailedPrecondition) {
  plan_.documents[1].mask = Mask::Causal();
  const absl::Status s = Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("plan.documents"));
}

TEST_F(ValidatorTest, GapInBlocks) {
  plan_.blocks[1].end = 7;
  EXPECT_THAT(Validate(), IsViolation(1, "document 0: tokens [7, 8) are in no block"));
}

TEST_F(ValidatorTest, UncoveredDocumentTail) {
  plan_.blocks[4].end = 5;
  EXPECT_THAT(Validate(), IsViolation(1, "document 1: tokens [5, 6) are in no block"));
}

TEST_F(ValidatorTest, OverlappingBlocks) {
  plan_.blocks[1].end = 9;
  EXPECT_THAT(Validate(), IsViolation(1, "blocks 1 and 2 overlap at tokens [8, 9)"));
}

TEST_F(ValidatorTest, BlockCrossingDocumentEnd) {
  plan_.blocks[2].end = 13;
  EXPECT_THAT(Validate(), IsViolation(1, "block 2 [8, 13) crosses the end of document 0"));
}

TEST_F(ValidatorTest, EmptyBlock) {
  plan_.blocks[2].end = 8;
  EXPECT_THAT(Validate(), IsViolation(1, "block 2 of document 0 has empty range"));
}

TEST_F(ValidatorTest, BlockOwnerOutOfRange) {
  plan_.blocks[1].owner = 3;
  EXPECT_THAT(Validate(), IsViolation(1, "block 1 has owner 3"));
}

TEST_F(ValidatorTest, WorkerListsBlockItDoesNotOwn) {
  plan_.workers[1].blocks.push_back(2);
  EXPECT_THAT(Validate(), IsViolation(1, "worker 1 lists block 2, owned by worker 2"));
}

TEST_F(ValidatorTest, OwnedBlockMissingFromWorkerList) {
  plan_.workers[0].blocks = {0};
  EXPECT_THAT(Validate(), IsViolation(1, "block 4 is missing"));
}

TEST_F(ValidatorTest, MissingTile) {
  plan_.workers[2].tiles.erase(plan_.workers[2].tiles.begin() + 3);  // (b2, b1)
  EXPECT_THAT(Validate(), IsViolation(2, "tile (q_block 2, kv_block 1) of document 0 is required"));
}

TEST_F(ValidatorTest, TileDuplicatedOnTwoWorkers) {
  plan_.workers[0].tiles.push_back({1, 0, 1});
  EXPECT_THAT(Validate(),
              IsViolation(2, "tile (q_block 1, kv_block 0) computed by workers 1 and 0"));
}

TEST_F(ValidatorTest, TileComputedTwiceByOneWorker) {
  plan_.workers[1].tiles.push_back({1, 0, 1});
  EXPECT_THAT(Validate(),
              IsViolation(2, "tile (q_block 1, kv_block 0) computed twice by worker 1"));
}

TEST_F(ValidatorTest, TileWithEmptyMask) {
  plan_.workers[0].tiles.push_back({0, 1, 1});  // keys 4..7 are all after queries 0..3
  EXPECT_THAT(Validate(), IsViolation(2,
                                      "tile (q_block 0, kv_block 1) on worker 0 has no allowed "
                                      "pairs under the mask CAUSAL of document 0"));
}

TEST_F(ValidatorTest, TileOnNonOwner) {
  plan_.workers[1].tiles.pop_back();
  plan_.workers[0].tiles.push_back({1, 0, 1});
  EXPECT_THAT(Validate(), IsViolation(2,
                                      "worker 0 computes tile (q_block 1, kv_block 0) but "
                                      "q_block 1 is owned by worker 1"));
}

TEST_F(ValidatorTest, TileAcrossDocuments) {
  plan_.workers[0].tiles.push_back({4, 0, 1});
  EXPECT_THAT(Validate(), IsViolation(2, "pairs documents 1 and 0"));
}

TEST_F(ValidatorTest, TileWithOutOfRangeBlock) {
  plan_.workers[0].tiles.push_back({0, 5, 1});
  EXPECT_THAT(Validate(), IsViolation(2, "refers to a block outside [0, 5)"));
}

TEST_F(ValidatorTest, TilesOutOfRoundOrder) {
  std::swap(plan_.workers[1].tiles[0], plan_.workers[1].tiles[1]);
  EXPECT_THAT(Validate(), IsViolation(2, "non-decreasing round order"));
}

TEST_F(ValidatorTest, KvUsedBeforeItsRecvRound) {
  plan_.workers[1].tiles = {{1, 0, 0}, {1, 1, 0}};
  EXPECT_THAT(Validate(), IsViolation(3,
                                      "worker 1 tile (q_block 1, kv_block 0) in round 0 uses "
                                      "kv_block 0, which arrives in round 1"));
}

TEST_F(ValidatorTest, KvUsedButNeverReceived) {
  // Drop the round 3 transfer of b4 to w2 (both ends).
  plan_.workers[0].sends.erase(plan_.workers[0].sends.begin() + 1);
  plan_.workers[2].recvs.erase(plan_.workers[2].recvs.begin() + 1);
  EXPECT_THAT(Validate(), IsViolation(3, "needs kv_block 4, which it never receives"));
}

TEST_F(ValidatorTest, NegativeTileRound) {
  plan_.workers[0].tiles[0].round = -1;
  EXPECT_THAT(Validate(), IsViolation(3, "has round -1"));
}

TEST_F(ValidatorTest, TileAfterTheLastRound) {
  plan_.workers[2].tiles.back().round = 4;
  EXPECT_THAT(Validate(), IsViolation(3, "has round 4, outside rounds 0..3"));
}

TEST_F(ValidatorTest, RecvWithoutMatchingSend) {
  plan_.workers[1].recvs.push_back({2, 2, {2}, TransferKind::kKv});
  EXPECT_THAT(Validate(), IsViolation(3,
                                      "KV transfer worker 2 -> worker 1 in round 2 (blocks 2) "
                                      "is received but has no matching send"));
}

TEST_F(ValidatorTest, SendWithoutMatchingRecv) {
  plan_.workers[1].sends.push_back({3, 0, {1}, TransferKind::kKv});  // w0 does not expect it
  EXPECT_THAT(Validate(), IsViolation(3,
                                      "KV transfer worker 1 -> worker 0 in round 3 (blocks 1) "
                                      "is sent but has no matching recv at worker 0"));
}

TEST_F(ValidatorTest, RecvWithDifferentBlocksThanSend) {
  plan_.workers[2].recvs[0].blocks = {1, 0};  // w1 sends {0, 1}
  EXPECT_THAT(Validate(), IsViolation(3, "has no matching"));
}

TEST_F(ValidatorTest, SendOfBlockSenderDoesNotHold) {
  plan_.workers[1].sends[0].blocks = {0, 1, 4};
  plan_.workers[2].recvs[0].blocks = {0, 1, 4};
  EXPECT_THAT(Validate(), IsViolation(3, "worker 1 does not hold block 4 yet (never received)"));
}

TEST_F(ValidatorTest, RelayInTheRoundTheBlockArrives) {
  // w1 forwards b0 in round 1, the round it receives it: not held yet.
  plan_.workers[1].sends[0].round = 1;
  plan_.workers[2].recvs[0].round = 1;
  EXPECT_THAT(Validate(),
              IsViolation(3, "worker 1 does not hold block 0 yet (received in round 1)"));
}

TEST_F(ValidatorTest, MissingDkv) {
  plan_.workers[2].sends.erase(plan_.workers[2].sends.begin() + 1);  // dKV {b1} to w1
  plan_.workers[1].recvs.pop_back();
  EXPECT_THAT(Validate(), IsViolation(3,
                                      "worker 2 uses kv_block 1 but sends no dKV of it to its "
                                      "owner, worker 1"));
}

TEST_F(ValidatorTest, DkvAfterFirstUse) {
  // b3 is first used by w0 in round 1; its dKV may not go back in round 2 (after, backward).
  plan_.workers[0].sends.back().round = 2;
  plan_.workers[2].recvs.back().round = 2;
  EXPECT_THAT(Validate(), IsViolation(3,
                                      "sends the dKV of kv_block 3 in round 2, after its "
                                      "first use in round 1"));
}

TEST_F(ValidatorTest, DkvToNonOwner) {
  // w2 returns b0 (owned by w0) to w1, which relayed it.
  plan_.workers[2].sends[1].blocks = {1, 0};
  plan_.workers[1].recvs.back().blocks = {1, 0};
  plan_.workers[2].sends[2].blocks = {4};
  plan_.workers[0].recvs[2].blocks = {4};
  EXPECT_THAT(Validate(), IsViolation(3, "block 0 is owned by worker 0"));
}

TEST_F(ValidatorTest, DkvOfBlockNeverReceived) {
  plan_.workers[1].sends[1].blocks = {0, 2};
  plan_.workers[0].recvs[1].blocks = {0, 2};
  EXPECT_THAT(Validate(), IsViolation(3, "worker 1 never received block 2 as KV"));
}

TEST_F(ValidatorTest, DkvInRoundZero) {
  plan_.workers[1].sends[1].round = 0;
  plan_.workers[0].recvs[1].round = 0;
  EXPECT_THAT(Validate(), IsViolation(3, "dKV rounds start at 1"));
}

TEST_F(ValidatorTest, TransferToItself) {
  plan_.workers[0].sends[0].peer = 0;
  EXPECT_THAT(Validate(), IsViolation(3, "worker 0 has a send in round 1 with peer 0"));
}

TEST_F(ValidatorTest, TransferNamingABlockTwice) {
  plan_.workers[1].sends[0].blocks = {0, 1, 0};
  EXPECT_THAT(Validate(), IsViolation(3, "names block 0 twice"));
}

TEST_F(ValidatorTest, TwoSendsInOneRound) {
  // w0 sends b4 to w2 in round 1, while it also sends b0 to w1.
  plan_.workers[0].sends[1].round = 1;
  plan_.workers[2].recvs[1].round = 1;
  EXPECT_THAT(Validate(), IsViolation(4, "worker 0 sends KV in round 1 twice (workers 1 and 2)"));
}

TEST_F(ValidatorTest, TwoRecvsInOneRound) {
  // w2 receives b4 from w0 in round 2, while it also receives from w1.
  plan_.workers[0].sends[1].round = 2;
  plan_.workers[2].recvs[1].round = 2;
  EXPECT_THAT(Validate(),
              IsViolation(4, "worker 2 receives KV in round 2 twice (workers 0 and 1)"));
}

TEST_F(ValidatorTest, TransferAfterTheLastRound) {
  AddTransfer(1, 0, 4, {1});  // w0 never uses b1, so only the round is wrong
  EXPECT_THAT(Validate(), IsViolation(4, "worker 0 receives KV in round 4, outside rounds 1..3"));
}

TEST_F(ValidatorTest, TransferInRoundZero) {
  // w0 receives b3 in round 0; w0's use in round 1 and dKV in round 1 stay valid.
  plan_.workers[2].sends[0].round = 0;
  plan_.workers[0].recvs[0].round = 0;
  EXPECT_THAT(Validate(), IsViolation(4, "worker 0 receives KV in round 0"));
}

// Placed computation (plan.h): tile (b2, b0) moves from w2 (b2's owner) to w0 (b0's owner), so
// b2's Q goes w2 -> w0 in round 1 (with w2's KV to w0), its partial output, dO and dQ travel in
// their phases' round 1. w2 still receives b0 (now unused) and returns its zero dK/dV.
class PlacedValidatorTest : public ValidatorTest {
 protected:
  PlacedValidatorTest() {
    std::vector<Tile>& w2 = plan_.workers[2].tiles;
    w2.erase(std::find(w2.begin(), w2.end(), Tile{2, 0, 2}));
    plan_.workers[0].tiles.push_back({2, 0, 1});
    AddTransfer(2, 0, 1, {2}, TransferKind::kQ);
    AddTransfer(0, 2, 1, {2}, TransferKind::kOut);
    AddTransfer(2, 0, 1, {2}, TransferKind::kDo);
    AddTransfer(0, 2, 1, {2}, TransferKind::kDq);
  }
  // Removes the transfer of `kind` from src's sends and dst's recvs.
  void DropTransfer(int32_t src, int32_t dst, TransferKind kind) {
    for (auto* list : {&plan_.workers[src].sends, &plan_.workers[dst].recvs}) {
      list->erase(std::remove_if(list->begin(), list->end(),
                                 [&](const Transfer& t) { return t.kind == kind; }),
                  list->end());
    }
  }
};

TEST_F(PlacedValidatorTest, TileOnTheKvOwnerIsValid) { EXPECT_TRUE(Validate().ok()) << Validate(); }

TEST_F(PlacedValidatorTest, TileWhoseQIsNeverReceived) {
  DropTransfer(2, 0, TransferKind::kQ);
  EXPECT_THAT(Validate(), IsViolation(2,
                                      "worker 0 computes tile (q_block 2, kv_block 0) but q_block "
                                      "2 is owned by worker 2 and never received by kQ"));
}

TEST_F(PlacedValidatorTest, TileBeforeItsQArrives) {
  for (auto* list : {&plan_.workers[2].sends, &plan_.workers[0].recvs}) {
    for (Transfer& t : *list) {
      if (t.kind == TransferKind::kQ) t.round = 2;
    }
  }
  EXPECT_THAT(Validate(), IsViolation(2,
                                      "worker 0 tile (q_block 2, kv_block 0) in round 1 uses "
                                      "q_block 2, which arrives by kQ in round 2"));
}

TEST_F(PlacedValidatorTest, EveryRemoteQBlockHasItsOutDoAndDqOnce) {
  struct Missing {
    TransferKind kind;
    int32_t src, dst;
    const char* what;
  };
  for (const Missing& m : {Missing{TransferKind::kOut, 0, 2, "sends no Out of it to"},
                           Missing{TransferKind::kDo, 2, 0, "receives no dO of it from"},
                           Missing{TransferKind::kDq, 0, 2, "sends no dQ of it to"}}) {
    const Plan placed = plan_;
    DropTransfer(m.src, m.dst, m.kind);
    EXPECT_THAT(Validate(), IsViolation(3, absl::StrCat("worker 0 computes tiles of q_block 2 but ",
                                                        m.what, " its owner, worker 2")));
    plan_ = placed;
  }
}

TEST_F(PlacedValidatorTest, OutOfABlockItDoesNotCompute) {
  AddTransfer(0, 1, 2, {1}, TransferKind::kOut);
  EXPECT_THAT(Validate(), IsViolation(3, "worker 0 computes no tile of q_block 1"));
}

TEST_F(PlacedValidatorTest, OutReturnedTwice) {
  AddTransfer(0, 2, 2, {2}, TransferKind::kOut);
  EXPECT_THAT(Validate(), IsViolation(3, "worker 0 sends the Out of block 2 twice"));
}

TEST_F(PlacedValidatorTest, QSentByANonOwner) {
  AddTransfer(1, 0, 3, {2}, TransferKind::kQ);
  EXPECT_THAT(Validate(), IsViolation(3, "block 2 is owned by worker 2, not 1"));
}

TEST_F(PlacedValidatorTest, KvAndQToTwoPeersInOneRound) {
  AddTransfer(0, 2, 1, {0}, TransferKind::kQ);  // w0 also sends b0's KV to w1 in round 1
  EXPECT_THAT(Validate(), IsViolation(4,
                                      "worker 0 sends KV and Q in round 1 to workers 1 and 2; at "
                                      "most one peer a round"));
}

TEST_F(PlacedValidatorTest, ReturnPhaseAfterTheLastRound) {
  DropTransfer(0, 2, TransferKind::kOut);
  AddTransfer(0, 2, 4, {2}, TransferKind::kOut);
  EXPECT_THAT(Validate(), IsViolation(4, "worker 0 sends Out in round 4, outside rounds 1..3"));
}

TEST_F(ValidatorTest, MemoryCapExceeded) {
  batch_.topology.max_tokens_per_worker = 6;  // w0 and w2 hold 7 tokens each
  EXPECT_THAT(Validate(), IsViolation(5, "worker 0 holds 7 tokens, over the token budget of 6"));
}

TEST_F(ValidatorTest, MemoryCapMet) {
  batch_.topology.max_tokens_per_worker = 7;
  EXPECT_TRUE(Validate().ok()) << Validate();
}

TEST_F(ValidatorTest, WrongPlanId) {
  plan_.plan_id = "deadbeef";
  EXPECT_THAT(ValidatePlan(batch_, options_, plan_), IsViolation(5, "plan id 'deadbeef'"));
}

TEST_F(ValidatorTest, PlanIdOfOtherOptions) {
  plan_.plan_id = ComputePlanId(batch_, options_);
  PlanOptions other = options_;
  other.strategy = "ring";
  if (ComputePlanId(batch_, other) == plan_.plan_id) GTEST_SKIP() << "id ignores the strategy";
  EXPECT_THAT(ValidatePlan(batch_, other, plan_), IsViolation(5, "does not match"));
}

// Every mask kind on a document cut into many blocks owned round-robin: the validator accepts
// exactly the tiles the mask requires and nothing else.
class ValidatorMaskTest : public ::testing::TestWithParam<Mask> {};

TEST_P(ValidatorMaskTest, SingleWorkerPlanWithEveryRequiredTile) {
  Batch batch;
  batch.documents = {{40, GetParam()}};
  batch.topology.num_workers = 1;
  Plan plan;
  plan.documents = batch.documents;
  plan.workers.resize(1);
  // Blocks listed out of token order, to check the validator does not assume it.
  const std::vector<int64_t> cuts = {0, 3, 9, 10, 17, 30, 40};
  for (size_t i = cuts.size() - 1; i > 0; --i) {
    plan.workers[0].blocks.push_back(static_cast<int32_t>(plan.blocks.size()));
    plan.blocks.push_back({0, cuts[i - 1], cuts[i], 0});
  }
  int32_t missing = -1;
  for (int32_t q = 0; q < static_cast<int32_t>(plan.blocks.size()); ++q) {
    for (int32_t kv = 0; kv < static_cast<int32_t>(plan.blocks.size()); ++kv) {
      const Block& a = plan.blocks[q];
      const Block& b = plan.blocks[kv];
      if (TileRequired(GetParam(), a.begin, a.end, b.begin, b.end)) {
        plan.workers[0].tiles.push_back({q, kv, 0});
      } else if (missing < 0) {
        missing = q * 100 + kv;
      }
    }
  }
  const PlanOptions options;
  plan.plan_id = ComputePlanId(batch, options);
  EXPECT_TRUE(ValidatePlan(batch, options, plan).ok()) << ValidatePlan(batch, options, plan);

  Plan dropped = plan;
  dropped.workers[0].tiles.erase(dropped.workers[0].tiles.begin() + 2);
  EXPECT_THAT(ValidatePlan(batch, options, dropped), IsViolation(2, "computed by no worker"));
  if (missing >= 0) {
    Plan extra = plan;
    extra.workers[0].tiles.push_back({missing / 100, missing % 100, 0});
    EXPECT_THAT(ValidatePlan(batch, options, extra), IsViolation(2, "has no allowed pairs"));
  }
}

INSTANTIATE_TEST_SUITE_P(AllMasks, ValidatorMaskTest,
                         ::testing::Values(Mask::Causal(), Mask::Full(), Mask::SlidingWindow(1),
                                           Mask::SlidingWindow(8), Mask::PrefixLm(0),
                                           Mask::PrefixLm(12)),
                         [](const ::testing::TestParamInfo<Mask>& info) {
                           std::string name = MaskToString(info.param);
                           for (char& c : name) {
                             if (c == '(' || c == ')') c = '_';
                           }
                           return absl::StrCat(name, info.index);
                         });

}  // namespace
}  // namespace fcp
