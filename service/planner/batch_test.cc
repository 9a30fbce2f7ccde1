#include "service/planner/batch.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

Batch ValidBatch() {
  Batch batch;
  batch.documents = {{100, Mask::Causal()},
                     {50, Mask::Full()},
                     {70, Mask::SlidingWindow(16)},
                     {30, Mask::PrefixLm(8)}};
  batch.topology.num_workers = 4;
  return batch;
}

TEST(BatchTest, ValidBatchIsOk) { EXPECT_TRUE(ValidateBatch(ValidBatch()).ok()); }

TEST(BatchTest, TotalTokensSumsDocumentLengths) {
  EXPECT_EQ(ValidBatch().TotalTokens(), 250);
  EXPECT_EQ(Batch().TotalTokens(), 0);
}

// One invalid field per case: the error is InvalidArgument and its message starts with the field.
struct BadField {
  std::string name;
  std::function<void(Batch&)> mutate;
  std::string field;  // the message starts with this
};

class BatchFieldTest : public ::testing::TestWithParam<BadField> {};

TEST_P(BatchFieldTest, ErrorNamesTheField) {
  Batch batch = ValidBatch();
  GetParam().mutate(batch);
  const absl::Status status = ValidateBatch(batch);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), StartsWith(GetParam().field + ": "));
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

INSTANTIATE_TEST_SUITE_P(
    Fields, BatchFieldTest,
    ::testing::Values(
        BadField{"NoDocuments", [](Batch& b) { b.documents.clear(); }, "documents"},
        BadField{"ZeroLength", [](Batch& b) { b.documents[1].length = 0; }, "documents[1].length"},
        BadField{"NegativeLength", [](Batch& b) { b.documents[3].length = -5; },
                 "documents[3].length"},
        BadField{"ZeroWindow", [](Batch& b) { b.documents[2].mask = Mask::SlidingWindow(0); },
                 "documents[2].mask.window"},
        BadField{"NegativePrefix", [](Batch& b) { b.documents[3].mask = Mask::PrefixLm(-1); },
                 "documents[3].mask.prefix"},
        BadField{"UnknownMaskKind",
                 [](Batch& b) { b.documents[0].mask.kind = static_cast<MaskKind>(9); },
                 "documents[0].mask.kind"},
        BadField{"ZeroQHeads", [](Batch& b) { b.model.num_q_heads = 0; }, "model.num_q_heads"},
        BadField{"ZeroKvHeads", [](Batch& b) { b.model.num_kv_heads = 0; }, "model.num_kv_heads"},
        BadField{"HeadsNotGrouped", [](Batch& b) { b.model.num_q_heads = 12; },
                 "model.num_q_heads % model.num_kv_heads"},
        BadField{"ZeroHeadDim", [](Batch& b) { b.model.head_dim = 0; }, "model.head_dim"},
        BadField{"HugeHeadDim", [](Batch& b) { b.model.head_dim = 4096; }, "model.head_dim"},
        BadField{"NegativeLinearFlops", [](Batch& b) { b.model.linear_flops_per_token = -1; },
                 "model.linear_flops_per_token"},
        BadField{"NaNLinearFlops", [](Batch& b) { b.model.linear_flops_per_token = kNaN; },
                 "model.linear_flops_per_token"},
        BadField{"ZeroWorkers", [](Batch& b) { b.topology.num_workers = 0; },
                 "topology.num_workers"},
        BadField{"NegativeWorkers", [](Batch& b) { b.topology.num_workers = -2; },
                 "topology.num_workers"},
        BadField{"ZeroWorkersPerNode", [](Batch& b) { b.topology.workers_per_node = 0; },
                 "topology.workers_per_node"},
        BadField{"ZeroIntraNodeBandwidth", [](Batch& b) { b.topology.intra_node_gbps = 0; },
                 "topology.intra_node_gbps"},
        BadField{"NaNInterNodeBandwidth", [](Batch& b) { b.topology.inter_node_gbps = kNaN; },
                 "topology.inter_node_gbps"},
        BadField{"NegativeTflops", [](Batch& b) { b.topology.attention_tflops = -400; },
                 "topology.attention_tflops"},
        BadField{"DenormalTflops", [](Batch& b) { b.topology.attention_tflops = 3.4e-313; },
                 "topology.attention_tflops"},
        BadField{
            "InfiniteTflops",
            [](Batch& b) { b.topology.attention_tflops = std::numeric_limits<double>::infinity(); },
            "topology.attention_tflops"},
        BadField{"TinyIntraNodeBandwidth", [](Batch& b) { b.topology.intra_node_gbps = 1e-9; },
                 "topology.intra_node_gbps"},
        BadField{"HugeInterNodeBandwidth", [](Batch& b) { b.topology.inter_node_gbps = 1e300; },
                 "topology.inter_node_gbps"},
        BadField{"InfiniteLinearFlops",
                 [](Batch& b) {
                   b.model.linear_flops_per_token = std::numeric_limits<double>::infinity();
                 },
                 "model.linear_flops_per_token"},
        BadField{"NegativeMemoryCap", [](Batch& b) { b.topology.max_tokens_per_worker = -1; },
                 "topology.max_tokens_per_worker"},
        BadField{"MemoryCapBelowTotalTokens",
                 [](Batch& b) { b.topology.max_tokens_per_worker = 62; },  // 4 x 62 < 250
                 "topology.max_tokens_per_worker"},
        BadField{"ZeroHiddenSize", [](Batch& b) { b.model.hidden_size = 0; }, "model.hidden_size"},
        BadField{"HugeHiddenSize", [](Batch& b) { b.model.hidden_size = (1 << 20) + 1; },
                 "model.hidden_size"},
        BadField{"NegativeFfnHiddenSize", [](Batch& b) { b.model.ffn_hidden_size = -1; },
                 "model.ffn_hidden_size"},
        BadField{"UnknownMlpKind", [](Batch& b) { b.model.mlp = static_cast<MlpKind>(7); },
                 "model.mlp"},
        BadField{"ZeroLayers", [](Batch& b) { b.model.num_layers = 0; }, "model.num_layers"},
        BadField{"ShapeOverLinearFlopsLimit",
                 [](Batch& b) {
                   b.model.num_q_heads = 1 << 20;
                   b.model.num_kv_heads = 1 << 20;
                   b.model.head_dim = 1024;
                   b.model.hidden_size = 1 << 20;
                 },
                 "model.hidden_size"},
        BadField{"NegativeActivationMemory",
                 [](Batch& b) { b.topology.activation_memory_bytes = -1; },
                 "topology.activation_memory_bytes"},
        BadField{"ActivationMemoryBelowOneToken",
                 [](Batch& b) { b.topology.activation_memory_bytes = 1000; },
                 "topology.activation_memory_bytes"},
        BadField{"ActivationMemoryBelowTotalTokens",
                 [](Batch& b) {  // 62 tokens per worker: 4 x 62 < 250
                   b.topology.activation_memory_bytes = 62 * ActivationBytesPerToken(b.model);
                 },
                 "topology.activation_memory_bytes"},
        BadField{"NegativeSlack", [](Batch& b) { b.topology.token_slack = -0.01; },
                 "topology.token_slack"},
        BadField{"NaNSlack", [](Batch& b) { b.topology.token_slack = kNaN; },
                 "topology.token_slack"}),
    [](const ::testing::TestParamInfo<BadField>& info) { return info.param.name; });

TEST(BatchTest, FirstOffendingFieldIsReported) {
  Batch batch = ValidBatch();
  batch.documents[2].length = 0;
  batch.documents[3].length = 0;
  batch.model.num_q_heads = 0;
  batch.topology.num_workers = 0;
  EXPECT_THAT(std::string(ValidateBatch(batch).message()), StartsWith("documents[2].length: "));
}

TEST(BatchTest, MemoryCapErrorGivesTheNumbers) {
  Batch batch = ValidBatch();
  batch.topology.max_tokens_per_worker = 62;
  const std::string message(ValidateBatch(batch).message());
  EXPECT_THAT(message, HasSubstr("250"));
  EXPECT_THAT(message, HasSubstr("62"));
}

TEST(BatchTest, MemoryCapExactlyFittingIsOk) {
  Batch batch = ValidBatch();
  batch.topology.max_tokens_per_worker = 63;  // 4 x 63 >= 250
  EXPECT_TRUE(ValidateBatch(batch).ok());
  batch.topology.max_tokens_per_worker = 0;  // unlimited
  EXPECT_TRUE(ValidateBatch(batch).ok());
}

TEST(TokenBudgetTest, DefaultIsTheMeanTokensPerWorkerPlusFivePercentRoundedUp) {
  // 250 tokens over 4 workers: 62.5 mean.
  Batch batch = ValidBatch();
  EXPECT_EQ(TokenBudget(batch, Objective::kWholeStep), 66);  // ceil(62.5 x 1.05) = ceil(65.625)
  batch.topology.token_slack = 0;
  EXPECT_EQ(TokenBudget(batch, Objective::kWholeStep), 63);  // never below the mean, rounded up
  batch.topology.token_slack = 0.5;
  EXPECT_EQ(TokenBudget(batch, Objective::kWholeStep), 94);  // ceil(93.75)
}

TEST(TokenBudgetTest, ExplicitLimitsTakePrecedenceInOrder) {
  Batch batch = ValidBatch();
  batch.topology.activation_memory_bytes = 100 * ActivationBytesPerToken(batch.model) + 7;
  EXPECT_EQ(TokenBudget(batch, Objective::kWholeStep), 100);  // whole tokens that fit
  EXPECT_EQ(TokenBudget(batch, Objective::kAttention), 100);  // a memory limit is one for both
  batch.topology.max_tokens_per_worker = 80;
  EXPECT_EQ(TokenBudget(batch, Objective::kWholeStep), 80);
  EXPECT_EQ(TokenBudget(batch, Objective::kAttention), 80);
}

TEST(TokenBudgetTest, AttentionAloneHasNoBudgetUnlessOneIsGiven) {
  EXPECT_EQ(TokenBudget(ValidBatch(), Objective::kAttention), 0);
}

TEST(BatchTest, ActivationMemoryErrorGivesTheNumbers) {
  Batch batch = ValidBatch();
  batch.topology.activation_memory_bytes = 62 * ActivationBytesPerToken(batch.model);
  const std::string message(ValidateBatch(batch).message());
  EXPECT_THAT(message, HasSubstr("250"));
  EXPECT_THAT(message, HasSubstr("62 tokens each"));
  batch.topology.max_tokens_per_worker = 63;  // takes precedence, and fits
  EXPECT_TRUE(ValidateBatch(batch).ok()) << ValidateBatch(batch);
}

TEST(BatchTest, MaskParametersOfOtherKindsAreIgnored) {
  Batch batch = ValidBatch();
  batch.documents[0].mask.window = -3;  // a causal mask has no window
  batch.documents[1].mask.prefix = -3;  // a full mask has no prefix
  EXPECT_TRUE(ValidateBatch(batch).ok());
}

TEST(BatchTest, EdgeValuesAreAccepted) {
  Batch batch = ValidBatch();
  batch.documents = {{1, Mask::SlidingWindow(1)}, {1, Mask::PrefixLm(0)}};
  batch.model.num_q_heads = 1;
  batch.model.num_kv_heads = 1;
  batch.model.head_dim = 1024;
  batch.topology.num_workers = 1;
  batch.topology.workers_per_node = 1;
  EXPECT_TRUE(ValidateBatch(batch).ok()) << ValidateBatch(batch);
}

TEST(MaskTest, Names) {
  EXPECT_EQ(MaskKindName(MaskKind::kCausal), "CAUSAL");
  EXPECT_EQ(MaskKindName(MaskKind::kFull), "FULL");
  EXPECT_EQ(MaskKindName(MaskKind::kSlidingWindow), "SLIDING_WINDOW");
  EXPECT_EQ(MaskKindName(MaskKind::kPrefixLm), "PREFIX_LM");
  EXPECT_EQ(MaskToString(Mask::Causal()), "CAUSAL");
  EXPECT_EQ(MaskToString(Mask::Full()), "FULL");
  EXPECT_EQ(MaskToString(Mask::SlidingWindow(512)), "SLIDING_WINDOW(512)");
  EXPECT_EQ(MaskToString(Mask::PrefixLm(0)), "PREFIX_LM(0)");
}

TEST(MaskTest, Equality) {
  EXPECT_EQ(Mask::SlidingWindow(4), Mask::SlidingWindow(4));
  EXPECT_FALSE(Mask::SlidingWindow(4) == Mask::SlidingWindow(5));
  EXPECT_FALSE(Mask::Causal() == Mask::PrefixLm(0));
}

TEST(TopologyTest, NodesGroupConsecutiveRanks) {
  Topology topology;
  topology.workers_per_node = 8;
  EXPECT_EQ(topology.NodeOf(0), 0);
  EXPECT_EQ(topology.NodeOf(7), 0);
  EXPECT_EQ(topology.NodeOf(8), 1);
  EXPECT_TRUE(topology.SameNode(8, 15));
  EXPECT_FALSE(topology.SameNode(7, 8));
}

}  // namespace
}  // namespace fcp
