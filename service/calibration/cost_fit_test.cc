#include "service/calibration/cost_fit.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/calibration/calibration_testing.h"

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

}  // namespace
}  // namespace fcp::calibration
