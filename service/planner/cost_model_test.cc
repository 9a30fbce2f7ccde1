#include "service/planner/cost_model.h"

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/planner/mask_math.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

void ExpectSameParams(const CostParams& a, const CostParams& b) {
  EXPECT_DOUBLE_EQ(a.transfer_latency_us, b.transfer_latency_us);
  EXPECT_DOUBLE_EQ(a.tile_q_half_tokens, b.tile_q_half_tokens);
  EXPECT_DOUBLE_EQ(a.tile_kv_half_tokens, b.tile_kv_half_tokens);
  EXPECT_DOUBLE_EQ(a.tile_overhead_us, b.tile_overhead_us);
  EXPECT_DOUBLE_EQ(a.backward_efficiency, b.backward_efficiency);
  EXPECT_DOUBLE_EQ(a.gemm_tflops, b.gemm_tflops);
}

TEST(ParseCostParamsTest, EmptyTextGivesDefaults) {
  absl::StatusOr<CostParams> params = ParseCostParams("");
  ASSERT_TRUE(params.ok()) << params.status();
  ExpectSameParams(*params, CostParams());
}

TEST(ParseCostParamsTest, OverridesOnlyTheKeysGiven) {
  absl::StatusOr<CostParams> params =
      ParseCostParams("transfer_latency_us = 12.5\ntile_kv_half_tokens=64\n");
  ASSERT_TRUE(params.ok()) << params.status();
  CostParams expected;
  expected.transfer_latency_us = 12.5;
  expected.tile_kv_half_tokens = 64;
  ExpectSameParams(*params, expected);
}

TEST(ParseCostParamsTest, CommentsBlankLinesAndWhitespaceAreIgnored) {
  absl::StatusOr<CostParams> params = ParseCostParams(
      "# calibration of an H100 node, measured 2024-06\n"
      "\n"
      "   tile_q_half_tokens   =   48   # from the tile sweep\n"
      "\t\n"
      "backward_efficiency = 0.6\n"
      "tile_overhead_us = 3");  // no trailing newline
  ASSERT_TRUE(params.ok()) << params.status();
  CostParams expected;
  expected.tile_q_half_tokens = 48;
  expected.backward_efficiency = 0.6;
  expected.tile_overhead_us = 3;
  ExpectSameParams(*params, expected);
}

TEST(ParseCostParamsTest, LaterLinesOverrideEarlierOnes) {
  absl::StatusOr<CostParams> params =
      ParseCostParams("transfer_latency_us = 5\ntransfer_latency_us = 7\n");
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_DOUBLE_EQ(params->transfer_latency_us, 7);
}

TEST(ParseCostParamsTest, UnknownKeyNamesTheLine) {
  absl::StatusOr<CostParams> params =
      ParseCostParams("# header\ntile_q_half_tokens = 32\nlatency_us = 3\n");
  ASSERT_FALSE(params.ok());
  EXPECT_EQ(params.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(params.status().message(), HasSubstr("line 3"));
  EXPECT_THAT(params.status().message(), HasSubstr("latency_us"));
}

TEST(ParseCostParamsTest, BadNumberNamesTheLine) {
  for (const char* text : {"\ntile_overhead_us = fast\n", "\ntile_overhead_us = 1.5us\n",
                           "\ntile_overhead_us =\n", "\ntile_overhead_us = -1\n"}) {
    absl::StatusOr<CostParams> params = ParseCostParams(text);
    ASSERT_FALSE(params.ok()) << text;
    EXPECT_EQ(params.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(params.status().message(), HasSubstr("line 2")) << text;
    EXPECT_THAT(params.status().message(), HasSubstr("tile_overhead_us")) << text;
  }
}

TEST(ParseCostParamsTest, LineWithoutValueNamesTheLine) {
  absl::StatusOr<CostParams> params = ParseCostParams("tile_q_half_tokens = 1\njust words\n");
  ASSERT_FALSE(params.ok());
  EXPECT_EQ(params.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(params.status().message(), HasSubstr("line 2"));
}

TEST(ParseCostParamsTest, ZeroBackwardEfficiencyIsRejected) {
  absl::StatusOr<CostParams> params = ParseCostParams("backward_efficiency = 0\n");
  ASSERT_FALSE(params.ok());
  EXPECT_EQ(params.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(params.status().message(), HasSubstr("backward_efficiency"));
}

TEST(ParseCostParamsTest, InfiniteAndNaNValuesAreRejectedNamingTheLine) {
  for (const char* text : {"transfer_latency_us = inf\n", "# c\ntile_kv_half_tokens = nan\n",
                           "tile_overhead_us = 1e999\n"}) {
    absl::StatusOr<CostParams> params = ParseCostParams(text);
    ASSERT_FALSE(params.ok()) << text;
    EXPECT_EQ(params.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(params.status().message(), HasSubstr("finite")) << text;
  }
  EXPECT_THAT(ParseCostParams("# c\ntile_kv_half_tokens = nan\n").status().message(),
              HasSubstr("line 2"));
}

TEST(ParseCostParamsTest, BackwardEfficiencyNearZeroIsRejected) {
  absl::StatusOr<CostParams> params = ParseCostParams("backward_efficiency = 1e-300\n");
  ASSERT_FALSE(params.ok());
  EXPECT_THAT(params.status().message(), HasSubstr("backward_efficiency must be >= 0.01"));
  EXPECT_TRUE(ParseCostParams("backward_efficiency = 0.01\n").ok());
}

TEST(ParseCostParamsTest, RateOverridesAreZeroOrValidRatesAndMoveIntoTheTopology) {
  absl::StatusOr<CostParams> params =
      ParseCostParams("attention_tflops = 0.02\nintra_node_gbps = 3\ninter_node_gbps = 0\n");
  ASSERT_TRUE(params.ok()) << params.status();
  Topology topology;
  topology.inter_node_gbps = 45;
  ApplyRateOverrides(&*params, &topology);
  EXPECT_EQ(topology.attention_tflops, 0.02);
  EXPECT_EQ(topology.intra_node_gbps, 3);
  EXPECT_EQ(topology.inter_node_gbps, 45);  // 0: the topology's rate stays
  EXPECT_EQ(params->attention_tflops, 0);   // moved, so the plan id hashes it once
  EXPECT_THAT(ParseCostParams("\nattention_tflops = 1e-9\n").status().message(),
              HasSubstr("line 2: attention_tflops: 1e-09 must be 0 or in [0.001, 1e6]"));
  CostParams bad;
  bad.intra_node_gbps = 1e9;
  EXPECT_THAT(ValidateCostParams(bad).message(), HasSubstr("must be 0 or in [0.001, 1e6]"));
  bad = CostParams();
  bad.tile_overhead_us = -1;
  EXPECT_THAT(ValidateCostParams(bad).message(), HasSubstr("tile_overhead_us: -1"));
  EXPECT_TRUE(ValidateCostParams(CostParams()).ok());
}

TEST(ParseCostParamsTest, ToStringRoundTrips) {
  CostParams params;
  params.transfer_latency_us = 17.25;
  params.tile_q_half_tokens = 40;
  params.tile_kv_half_tokens = 24;
  params.tile_overhead_us = 1.5;
  params.backward_efficiency = 0.8;
  absl::StatusOr<CostParams> parsed = ParseCostParams(CostParamsToString(params));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSameParams(*parsed, params);
}

class CostModelTest : public ::testing::Test {
 protected:
  CostModelTest() {
    model_.num_q_heads = 32;
    model_.num_kv_heads = 8;
    model_.head_dim = 128;
    model_.dtype = DType::kBf16;
    topology_.num_workers = 16;
    topology_.workers_per_node = 8;
    topology_.intra_node_gbps = 150;
    topology_.inter_node_gbps = 45;
    topology_.attention_tflops = 400;
  }
  CostModel Model() const { return CostModel(model_, topology_, params_); }

  ModelShape model_;
  Topology topology_;
  CostParams params_;
};

TEST_F(CostModelTest, EfficiencyIsBelowOneAndGrowsWithTileSize) {
  const CostModel cost = Model();
  const int64_t sizes[] = {1, 16, 32, 64, 128, 256, 1024, 8192, 1 << 20};
  for (int64_t q : sizes) {
    for (int64_t k : sizes) {
      const double e = cost.Efficiency(q, k);
      EXPECT_GT(e, 0) << q << "x" << k;
      EXPECT_LT(e, 1) << q << "x" << k;
      EXPECT_LT(e, cost.Efficiency(2 * q, k)) << q << "x" << k;
      EXPECT_LT(e, cost.Efficiency(q, 2 * k)) << q << "x" << k;
    }
  }
  // Half efficiency in each dimension at the half-efficiency lengths.
  EXPECT_DOUBLE_EQ(cost.Efficiency(32, 32), 0.25);
  EXPECT_NEAR(cost.Efficiency(1 << 20, 1 << 20), 1, 1e-4);
}

TEST_F(CostModelTest, EfficiencyFollowsTheCalibration) {
  params_.tile_q_half_tokens = 128;
  params_.tile_kv_half_tokens = 64;
  EXPECT_DOUBLE_EQ(Model().Efficiency(128, 64), 0.25);
  EXPECT_DOUBLE_EQ(Model().Efficiency(384, 192), 0.75 * 0.75);
}

TEST_F(CostModelTest, TileSecondsAreFlopsOverEffectiveThroughput) {
  params_.tile_overhead_us = 2;
  const CostModel cost = Model();
  const int64_t pairs = 64 * 65 / 2;  // a causal diagonal tile of 64 tokens
  const double flops = ForwardFlops(model_, pairs);
  const double forward = flops / (400e12 * cost.Efficiency(64, 64)) + 2e-6;
  EXPECT_DOUBLE_EQ(cost.TileForwardSeconds(64, 64, pairs), forward);
  EXPECT_DOUBLE_EQ(cost.SecondsPerPair(64, 64), ForwardFlops(model_, 1) / (400e12 * (4.0 / 9)));
  EXPECT_DOUBLE_EQ(cost.BackwardFactor(), 2.5 / 0.75);
  EXPECT_DOUBLE_EQ(cost.TileBackwardSeconds(64, 64, pairs),
                   flops * (2.5 / 0.75) / (400e12 * cost.Efficiency(64, 64)) + 2e-6);
  EXPECT_EQ(cost.TileForwardSeconds(64, 64, 0), 0);
  EXPECT_EQ(cost.TileBackwardSeconds(64, 64, 0), 0);
}

TEST_F(CostModelTest, KvBytesFormula) {
  // 2 (K and V) x 8 kv heads x 128 dims x 2 bytes (bf16) = 4096 bytes per token.
  EXPECT_EQ(Model().kv_bytes_per_token(), 4096);
  EXPECT_EQ(Model().KvBytes(1000), 4096000);
  EXPECT_EQ(Model().KvBytes(0), 0);
  model_.dtype = DType::kFp32;
  model_.num_kv_heads = 4;
  model_.head_dim = 64;
  EXPECT_EQ(Model().KvBytes(3), 2 * 4 * 64 * 4 * 3);
}

TEST_F(CostModelTest, LinkIsIntraNodeWithinANodeOnly) {
  const CostModel cost = Model();
  EXPECT_DOUBLE_EQ(cost.LinkBytesPerSecond(0, 7), 150e9);
  EXPECT_DOUBLE_EQ(cost.LinkBytesPerSecond(7, 0), 150e9);
  EXPECT_DOUBLE_EQ(cost.LinkBytesPerSecond(8, 15), 150e9);
  EXPECT_DOUBLE_EQ(cost.LinkBytesPerSecond(7, 8), 45e9);
  EXPECT_DOUBLE_EQ(cost.LinkBytesPerSecond(0, 15), 45e9);
}

TEST_F(CostModelTest, TransferSecondsIsLatencyPlusBytesOverBandwidth) {
  params_.transfer_latency_us = 20;
  const CostModel cost = Model();
  const int64_t bytes = 64 << 20;
  EXPECT_DOUBLE_EQ(cost.TransferSeconds(0, 1, bytes), 20e-6 + bytes / 150e9);
  EXPECT_DOUBLE_EQ(cost.TransferSeconds(0, 8, bytes), 20e-6 + bytes / 45e9);
  EXPECT_GT(cost.TransferSeconds(0, 8, bytes), cost.TransferSeconds(0, 1, bytes));
  EXPECT_EQ(cost.TransferSeconds(0, 1, 0), 0);  // nothing moved, no latency paid
  // The same from whether the ranks share a node (for callers with a node table).
  EXPECT_EQ(cost.LinkTransferSeconds(true, bytes), cost.TransferSeconds(0, 1, bytes));
  EXPECT_EQ(cost.LinkTransferSeconds(false, bytes), cost.TransferSeconds(0, 8, bytes));
  EXPECT_EQ(cost.LinkTransferSeconds(false, 0), 0);
}

TEST_F(CostModelTest, TokenSecondsPriceTheDefaultModelsLinearLayersAtTheGemmRate) {
  // Llama-3-8B: 436.2 MFLOP per token forward, at the default 600 TFLOP/s.
  EXPECT_DOUBLE_EQ(Model().TokenSeconds(1000), LinearFlopsPerToken(model_) * 1000 / 600e12);
  EXPECT_NEAR(Model().TokenSeconds(1000), 436.2e6 * 1000 / 600e12, 1e-3 * 436.2e6 * 1000 / 600e12);
  params_.gemm_tflops = 300;
  EXPECT_DOUBLE_EQ(Model().TokenSeconds(1000), LinearFlopsPerToken(model_) * 1000 / 300e12);
}

TEST_F(CostModelTest, AnExplicitLinearFlopsPerTokenOverridesTheShape) {
  model_.linear_flops_per_token = 4e9;
  EXPECT_DOUBLE_EQ(Model().TokenSeconds(1000), 4e9 * 1000 / 600e12);
}

TEST_F(CostModelTest, TheAttentionObjectiveLeavesTheLinearLayersOut) {
  const CostModel cost(model_, topology_, params_, Objective::kAttention);
  EXPECT_EQ(cost.TokenSeconds(1000), 0);
  EXPECT_EQ(cost.objective(), Objective::kAttention);
  // Attention itself is priced the same under both objectives.
  EXPECT_DOUBLE_EQ(cost.TileForwardSeconds(512, 512, 1000),
                   Model().TileForwardSeconds(512, 512, 1000));
}

TEST(ParseCostParamsTest, GemmTflopsIsCalibrationDataInItsRange) {
  absl::StatusOr<CostParams> params = ParseCostParams("gemm_tflops = 750");
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_DOUBLE_EQ(params->gemm_tflops, 750);
  EXPECT_THAT(ParseCostParams("gemm_tflops = 0").status().message(), HasSubstr("gemm_tflops"));
  EXPECT_THAT(ParseCostParams("gemm_tflops = 1e-300").status().message(), HasSubstr("gemm_tflops"));
}

TEST_F(CostModelTest, KeepsItsInputs) {
  params_.transfer_latency_us = 33;
  const CostModel cost = Model();
  EXPECT_EQ(cost.model().num_q_heads, 32);
  EXPECT_EQ(cost.topology().workers_per_node, 8);
  EXPECT_DOUBLE_EQ(cost.params().transfer_latency_us, 33);
}

TEST_F(CostModelTest, DenseTilesCostTheSumOfTheirTiles) {
  params_.tile_overhead_us = 3;
  const CostModel cost = Model();
  const int64_t q = 700, kv[] = {64, 300, 1000};
  double fwd = 0, bwd = 0;
  for (int64_t k : kv) {
    fwd += cost.TileForwardSeconds(q, k, q * k);
    bwd += cost.TileBackwardSeconds(q, k, q * k);
  }
  const double dense = cost.DenseTilesForwardSeconds(q, 64 + 300 + 1000, 3);
  EXPECT_NEAR(dense, fwd, 1e-12 * fwd);
  EXPECT_NEAR(cost.BackwardFromForward(dense, 3), bwd, 1e-12 * bwd);
  EXPECT_EQ(cost.DenseTilesForwardSeconds(q, 0, 0), 0);
}

}  // namespace
}  // namespace fcp
