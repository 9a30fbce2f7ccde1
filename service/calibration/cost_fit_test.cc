#include "service/calibration/cost_fit.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/calibration/calibration_testing.h"
#include "service/calibration/plan_measurement.h"
#include "service/planner/mask_math.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/test_batches.h"

namespace fcp::calibration {
namespace {

using testing::GroundTruth;
using ::testing::HasSubstr;
using testing::SyntheticReports;

std::vector<RankStepMeasurement> Window(const GroundTruth& truth, double noise, int steps = 8,
                                        int ranks = 16) {
  std::vector<RankStepMeasurement> all;
  for (int s = 1; s <= steps; ++s) {
    for (RankStepMeasurement& m : SyntheticReports(truth, s, ranks, noise, /*seed=*/1)) {
      all.push_back(std::move(m));
    }
  }
  return all;
}

void ExpectRecovered(const Calibration& c, const GroundTruth& truth, double tolerance) {
  EXPECT_NEAR(c.params.attention_tflops, truth.attention_tflops,
              tolerance * truth.attention_tflops);
  EXPECT_NEAR(c.params.backward_efficiency, truth.backward_efficiency,
              tolerance * truth.backward_efficiency);
  EXPECT_NEAR(c.params.tile_overhead_us, truth.tile_overhead_us,
              tolerance * truth.tile_overhead_us);
  EXPECT_NEAR(c.params.transfer_latency_us, truth.transfer_latency_us,
              tolerance * truth.transfer_latency_us);
  EXPECT_NEAR(c.params.intra_node_gbps, truth.intra_node_gbps, tolerance * truth.intra_node_gbps);
  EXPECT_NEAR(c.linear_tflops, truth.linear_tflops, tolerance * truth.linear_tflops);
  EXPECT_EQ(c.params.tile_q_half_tokens, truth.q_half);
  EXPECT_EQ(c.params.tile_kv_half_tokens, truth.kv_half);
}

TEST(CostFitTest, RecoversGroundTruthWithinFivePercent) {
  const GroundTruth truth;
  absl::StatusOr<Calibration> fit = FitCalibration(Window(truth, /*noise=*/0.01), CostParams());
  ASSERT_TRUE(fit.ok()) << fit.status();
  ExpectRecovered(*fit, truth, 0.05);
  EXPECT_EQ(fit->first_step, 1);
  EXPECT_EQ(fit->last_step, 8);
  EXPECT_EQ(fit->reports, 128);
  EXPECT_THAT(fit->fitted, ::testing::Contains("attention_tflops"));
  // The transfers were measured inside the passes: the job is planned without overlap.
  EXPECT_THAT(fit->fitted, ::testing::Contains("transfer_overlap"));
  EXPECT_EQ(fit->params.transfer_overlap, 0);
  // The linear layers are planned at their fitted rate.
  EXPECT_DOUBLE_EQ(PlanningParams(*fit).gemm_tflops, fit->linear_tflops / fit->step_scale);
}

TEST(CostFitTest, RecoversAnotherMachine) {
  GroundTruth truth;
  truth.attention_tflops = 450;
  truth.backward_efficiency = 0.8;
  truth.q_half = 128;
  truth.kv_half = 128;
  truth.tile_overhead_us = 5;
  truth.transfer_latency_us = 20;
  truth.intra_node_gbps = 150;
  truth.linear_tflops = 700;
  absl::StatusOr<Calibration> fit = FitCalibration(Window(truth, 0.01), CostParams());
  ASSERT_TRUE(fit.ok()) << fit.status();
  ExpectRecovered(*fit, truth, 0.05);
}

TEST(CostFitTest, OutliersAndGarbageHaveBoundedInfluence) {
  const GroundTruth truth;
  std::vector<RankStepMeasurement> reports = Window(truth, 0.01);
  // One report in ten is 10x too slow (a preempted rank), one more claims a near-zero time.
  for (size_t i = 0; i < reports.size(); i += 10) {
    reports[i].forward_seconds *= 10;
    reports[i].backward_seconds *= 10;
    if (i + 1 < reports.size()) {
      reports[i + 1].forward_seconds = 1e-9;
      reports[i + 1].backward_seconds = 1e-9;
    }
  }
  absl::StatusOr<Calibration> fit = FitCalibration(reports, CostParams());
  ASSERT_TRUE(fit.ok()) << fit.status();
  ExpectRecovered(*fit, truth, 0.05);
}

TEST(CostFitTest, ParametersWithoutInformationKeepThePrior) {
  GroundTruth truth;
  std::vector<RankStepMeasurement> reports = Window(truth, 0);
  for (RankStepMeasurement& m : reports) {
    // No transfers, no linear layers: recompute the times without them.
    m.forward_seconds -= m.transfers / 2.0 * truth.transfer_latency_us * 1e-6 +
                         m.intra_node_bytes / 2.0 / (truth.intra_node_gbps * 1e9);
    m.backward_seconds -= m.transfers / 2.0 * truth.transfer_latency_us * 1e-6 +
                          m.intra_node_bytes / 2.0 / (truth.intra_node_gbps * 1e9);
    m.transfers = 0;
    m.intra_node_bytes = 0;
    m.linear_flops = 0;
  }
  CostParams prior;
  prior.transfer_latency_us = 77;
  absl::StatusOr<Calibration> fit = FitCalibration(reports, prior);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->params.transfer_latency_us, 77);
  EXPECT_EQ(fit->params.intra_node_gbps, 0);  // 0: the request's topology rate stays
  EXPECT_EQ(fit->linear_tflops, 0);
  EXPECT_EQ(fit->params.transfer_overlap, 1);  // no transfers measured: the prior's overlap
  EXPECT_THAT(fit->fitted, ::testing::Not(::testing::Contains("transfer_overlap")));
  EXPECT_EQ(PlanningParams(*fit).gemm_tflops, prior.gemm_tflops);
  EXPECT_NEAR(fit->params.attention_tflops, truth.attention_tflops, 0.01 * truth.attention_tflops);
}

TEST(CostFitTest, TooFewReportsAndBadShapesAreErrors) {
  EXPECT_TRUE(absl::IsFailedPrecondition(FitCalibration({}, CostParams()).status()));
  std::vector<RankStepMeasurement> reports = Window(GroundTruth(), 0, 1, 2);
  reports[1].tile_shapes[0].q_len = 0;
  EXPECT_THAT(FitCalibration(reports, CostParams()).status().message(),
              HasSubstr("reports[1].tile_shapes"));
}

TEST(CostFitTest, StragglersScaleThePlannedTimesNotTheRankFit) {
  const GroundTruth truth;
  absl::StatusOr<Calibration> exact = FitCalibration(Window(truth, 0), CostParams());
  ASSERT_TRUE(exact.ok()) << exact.status();
  EXPECT_NEAR(exact->step_scale, 1, 1e-6);
  // Every step, its slowest rank runs 40% slower still: the step takes as long as it does.
  std::vector<RankStepMeasurement> reports = Window(truth, 0);
  for (size_t first = 0; first < reports.size(); first += 16) {
    RankStepMeasurement* slowest = &reports[first];
    for (size_t i = first; i < first + 16; ++i) {
      const RankStepMeasurement& m = reports[i];
      if (m.forward_seconds + m.backward_seconds >
          slowest->forward_seconds + slowest->backward_seconds) {
        slowest = &reports[i];
      }
    }
    slowest->forward_seconds *= 1.4;
    slowest->backward_seconds *= 1.4;
  }
  absl::StatusOr<Calibration> fit = FitCalibration(reports, CostParams());
  ASSERT_TRUE(fit.ok()) << fit.status();
  ExpectRecovered(*fit, truth, 0.05);  // the per-rank model is the typical rank's
  EXPECT_NEAR(fit->step_scale, 1.4, 0.03);
  const CostParams planned = PlanningParams(*fit);
  EXPECT_DOUBLE_EQ(planned.attention_tflops, fit->params.attention_tflops / fit->step_scale);
  EXPECT_DOUBLE_EQ(planned.transfer_latency_us, fit->params.transfer_latency_us * fit->step_scale);
  EXPECT_EQ(planned.backward_efficiency, fit->params.backward_efficiency);
}

// A machine slower than the planner's least rate (a sanitizer build on a busy CPU): the fit clamps
// its rates to the floor, and the straggle scale must not push the planned rates below it, or
// every plan of the job would be refused (seen under ASan: "rate 0.000999731: must be 0 or in
// [0.001, 1e6]").
TEST(CostFitTest, PlannedRatesStayValidOnAMachineSlowerThanTheLeastRate) {
  Calibration fit;
  fit.params.attention_tflops = kMinRate;
  fit.params.intra_node_gbps = kMinRate;
  fit.params.inter_node_gbps = 0;  // not measured: stays 0
  fit.params.transfer_latency_us = 9e5;
  fit.linear_tflops = kMinGemmTflops;
  fit.step_scale = 4;
  const CostParams planned = PlanningParams(fit);
  EXPECT_TRUE(ValidateCostParams(planned).ok()) << ValidateCostParams(planned);
  EXPECT_EQ(planned.attention_tflops, kMinRate);
  EXPECT_EQ(planned.intra_node_gbps, kMinRate);
  EXPECT_EQ(planned.inter_node_gbps, 0);
  EXPECT_EQ(planned.transfer_latency_us, 1e6);
  EXPECT_EQ(planned.gemm_tflops, kMinGemmTflops);
}

TEST(CostFitTest, ExportedFileParsesBack) {
  absl::StatusOr<Calibration> fit = FitCalibration(Window(GroundTruth(), 0.01), CostParams());
  ASSERT_TRUE(fit.ok()) << fit.status();
  const std::string file = CalibrationToFile(*fit);
  EXPECT_THAT(file, HasSubstr("# fcp cost-model calibration fitted from steps 1..8"));
  absl::StatusOr<CostParams> parsed = ParseCostParams(file);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << file;
  const CostParams planned = PlanningParams(*fit);
  EXPECT_NEAR(parsed->attention_tflops, planned.attention_tflops, 1e-5 * planned.attention_tflops);
  EXPECT_EQ(parsed->tile_q_half_tokens, fit->params.tile_q_half_tokens);
}

// The CPU: a rank's pass lasts its tiles' compute plus its transfers (Gloo's copies take the
// cores the attention threads compute on). Times of `plan`'s rank `rank` under `truth`.
RankStepMeasurement SerialMeasurement(const Plan& plan, const CostModel& cost, int32_t rank,
                                      int64_t step, const GroundTruth& truth) {
  RankStepMeasurement m = *MeasurementOfPlan(plan, cost, rank, step);
  double compute = 0, tiles = 0;
  for (const TileShape& t : m.tile_shapes) {
    compute += t.fwd_flops / (truth.attention_tflops * 1e12);  // q_half = kv_half = 0
    tiles += static_cast<double>(t.tiles);
  }
  const double pass = tiles * truth.tile_overhead_us * 1e-6 +
                      m.transfers / 2.0 * truth.transfer_latency_us * 1e-6 +
                      m.intra_node_bytes / 2.0 / (truth.intra_node_gbps * 1e9);
  m.forward_seconds = compute + pass;
  m.backward_seconds = compute * kBackwardFlopsRatio / truth.backward_efficiency + pass;
  return m;
}

class SerialStepTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SerialStepTest, PlansPredictTheStepsTheyWereFittedOn) {
  GroundTruth truth;  // a CPU: slow attention, loopback TCP
  truth.attention_tflops = 0.01;
  truth.backward_efficiency = 2;
  truth.q_half = truth.kv_half = 0;
  truth.tile_overhead_us = 150;
  truth.transfer_latency_us = 400;
  truth.intra_node_gbps = 0.2;
  SkewedShape shape;
  shape.tokens_per_worker = 2048;
  shape.long_min = 1024;
  shape.long_span = 3072;
  auto batch_of = [&](int64_t step) {
    Batch batch = SkewedBatch(4, static_cast<uint64_t>(step), shape);
    batch.model.num_q_heads = 4;
    batch.model.num_kv_heads = 2;
    batch.model.head_dim = 32;
    return batch;
  };
  PlanOptions options;
  options.strategy = GetParam();
  options.objective = Objective::kAttention;
  // per_doc's automatic shards (two automatic blocks, 1024 tokens here) keep most of these short
  // documents whole; shards of 512 tokens spread them, so that its steps move data.
  if (options.strategy == "per_doc") options.block_size = 512;
  std::vector<RankStepMeasurement> reports;
  // The fitted steps are planned knowing the CPU's attention rate (as a job's first steps would be
  // with --attention-tflops), so that strategies which weigh sharding against its transfers
  // (flashcp, flexdeg) shard here too and the fit sees transfers.
  PlanOptions fitting = options;
  fitting.cost.attention_tflops = truth.attention_tflops;
  for (int64_t step = 1; step <= 8; ++step) {
    Batch batch = batch_of(step);
    CostParams params = fitting.cost;
    ApplyRateOverrides(&params, &batch.topology);
    PlanOptions planned = fitting;
    planned.cost = params;
    absl::StatusOr<Plan> plan = MakePlan(batch, planned, OutputSpec::AllRanks());
    ASSERT_TRUE(plan.ok()) << plan.status();
    const CostModel cost(batch.model, batch.topology, planned.cost, planned.objective);
    for (int32_t r = 0; r < 4; ++r)
      reports.push_back(SerialMeasurement(*plan, cost, r, step, truth));
  }
  absl::StatusOr<Calibration> fit = FitCalibration(reports, CostParams());
  ASSERT_TRUE(fit.ok()) << fit.status();

  // Step 9 planned with the fit: each rank's predicted attention time is its measured one.
  auto predicted_vs_measured = [&](const CostParams& params) {
    Batch batch = batch_of(9);
    PlanOptions planned = options;
    planned.cost = params;
    ApplyRateOverrides(&planned.cost, &batch.topology);
    absl::StatusOr<Plan> plan = MakePlan(batch, planned, OutputSpec::AllRanks());
    EXPECT_TRUE(plan.ok()) << plan.status();
    const CostModel cost(batch.model, batch.topology, planned.cost, planned.objective);
    double worst = 0;  // the largest |predicted - measured| / measured over the ranks
    for (int32_t r = 0; r < 4 && plan.ok(); ++r) {
      const RankStepMeasurement m = SerialMeasurement(*plan, cost, r, 9, truth);
      const auto [fwd, bwd] = AttentionSeconds(plan->costs[r], cost);
      const double measured = m.forward_seconds + m.backward_seconds;
      worst = std::max(worst, std::abs(fwd + bwd - measured) / measured);
    }
    return worst;
  };
  EXPECT_LT(predicted_vs_measured(PlanningParams(*fit)), 0.02);
  // The same rates with the transfers hidden behind compute (the timeline before the fit set
  // transfer_overlap) predict some rank short of what it measures.
  CostParams overlapped = PlanningParams(*fit);
  overlapped.transfer_overlap = 1;
  EXPECT_GT(predicted_vs_measured(overlapped), 0.02);
}

// Strategies that move data every step (the ring schedule and the direct one).
INSTANTIATE_TEST_SUITE_P(Strategies, SerialStepTest,
                         ::testing::Values("ring", "fcp", "per_doc", "flashcp", "flexdeg"));

}  // namespace
}  // namespace fcp::calibration
