// PlanningService's closed loop: step reports in, per-job calibrated plans out.
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/plan_convert.h"
#include "proto/report_convert.h"
#include "service/calibration/calibration_testing.h"
#include "service/metrics_testing.h"
#include "service/planning_service.h"
#include "service/test_requests.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

// Reports of steps first..last of `job` from a slow machine (far from the default cost model).
std::vector<v1::StepReport> Reports(const std::string& job, int64_t first, int64_t last,
                                    double attention_tflops = 0.01, double linear_tflops = 0.05) {
  calibration::testing::GroundTruth truth;
  truth.attention_tflops = attention_tflops;
  truth.linear_tflops = linear_tflops;
  std::vector<v1::StepReport> out;
  for (int64_t s = first; s <= last; ++s) {
    for (const auto& m : calibration::testing::SyntheticReports(truth, s, 4, 0.01, 1)) {
      v1::StepReport r;
      MeasurementToProto(m, &r);
      r.set_job_id(job);
      out.push_back(r);
    }
  }
  return out;
}

v1::PlanResponse Plan(PlanningService& service, const std::string& job, int64_t step) {
  v1::PlanRequest request = TestRequest(4, /*seed=*/7, 2048, job, step);
  request.add_ranks(0);
  absl::StatusOr<PlanReply> reply = service.PlanBatchAndWait(request);
  EXPECT_TRUE(reply.ok()) << reply.status();
  v1::PlanResponse response;
  if (reply.ok()) EXPECT_TRUE(response.ParseFromString(reply->Encode().Flatten()));
  return response;
}

class CalibrationServiceTest : public ::testing::Test {
 protected:
  CalibrationServiceTest() : metrics_(registry_, 8) {}
  std::unique_ptr<PlanningService> NewService() {
    return std::make_unique<PlanningService>(PlanningServiceOptions(), &metrics_);
  }
  double Metric(const std::string& series) {
    return MetricValue(Exposition(registry_), series).value_or(-1);
  }
  prometheus::Registry registry_;
  CoordinatorMetrics metrics_;
};

TEST_F(CalibrationServiceTest, AJobsReportsCalibrateItsLaterPlans) {
  std::unique_ptr<PlanningService> service = NewService();
  const v1::PlanResponse before = Plan(*service, "a", 5);
  EXPECT_FALSE(before.has_calibration());
  for (const v1::StepReport& r : Reports("a", 1, 3)) ASSERT_TRUE(service->ReportStep(r).ok());
  const v1::PlanResponse after = Plan(*service, "a", 5);
  ASSERT_TRUE(after.has_calibration());
  EXPECT_EQ(after.calibration().last_step(), 3);
  EXPECT_NEAR(after.calibration().attention_tflops(), 0.01, 0.001);
  EXPECT_NE(after.plan().plan_id(), before.plan().plan_id());
  // The predicted step follows the measured machine, not the default H100-class rates.
  EXPECT_GT(after.plan().summary().predicted_fwd_ms(),
            100 * before.plan().summary().predicted_fwd_ms());

  // The id is the planner's id of the request under the calibration the response names.
  v1::PlanRequest request = TestRequest(4, 7, 2048, "a", 5);
  Batch batch = *BatchFromProto(request);
  PlanOptions options = *OptionsFromProto(request.options(), PlanningServiceOptions().defaults);
  ASSERT_TRUE(ApplyPlanCalibration(after.calibration(), &batch, &options).ok());
  EXPECT_EQ(ComputePlanId(batch, options), after.plan().plan_id());
}

TEST_F(CalibrationServiceTest, ReplicasWithTheSameReportsGiveTheSamePlan) {
  std::unique_ptr<PlanningService> one = NewService(), two = NewService();
  std::vector<v1::StepReport> reports = Reports("a", 1, 4);
  for (const v1::StepReport& r : reports) ASSERT_TRUE(one->ReportStep(r).ok());
  for (auto it = reports.rbegin(); it != reports.rend(); ++it) {
    ASSERT_TRUE(two->ReportStep(*it).ok());
  }
  v1::PlanResponse a = Plan(*one, "a", 6), b = Plan(*two, "a", 6);
  ASSERT_TRUE(a.has_calibration());
  EXPECT_EQ(a.plan().plan_id(), b.plan().plan_id());
  // Everything but the planner's own wall time.
  a.mutable_plan()->mutable_summary()->clear_planning_ms();
  b.mutable_plan()->mutable_summary()->clear_planning_ms();
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
}

TEST_F(CalibrationServiceTest, AJobsReportsNeverChangeAnotherJobsPlans) {
  std::unique_ptr<PlanningService> quiet = NewService(), busy = NewService();
  for (const v1::StepReport& r : Reports("b", 1, 4)) ASSERT_TRUE(busy->ReportStep(r).ok());
  const v1::PlanResponse a = Plan(*busy, "a", 6);
  EXPECT_FALSE(a.has_calibration());
  EXPECT_EQ(a.plan().plan_id(), Plan(*quiet, "a", 6).plan().plan_id());
  EXPECT_TRUE(Plan(*busy, "b", 6).has_calibration());
}

// Linear-layer seconds per token of rank 0 in a plan (its whole layer less its attention).
double LinearSecondsPerToken(const v1::PlanResponse& response) {
  const v1::WorkerCost& cost = response.plan().costs(0);
  return (cost.fwd_ms() - cost.attention_fwd_ms()) / 1e3 / static_cast<double>(cost.tokens());
}

TEST_F(CalibrationServiceTest, PlansPriceLinearLayersAtTheJobsFittedRate) {
  std::unique_ptr<PlanningService> service = NewService();
  for (const v1::StepReport& r : Reports("a", 1, 4)) ASSERT_TRUE(service->ReportStep(r).ok());
  const v1::PlanResponse a = Plan(*service, "a", 6);
  // Job b's trainer measures the same attention, and linear layers twice as slow.
  for (const v1::StepReport& r : Reports("b", 1, 4, 0.01, 0.025)) {
    ASSERT_TRUE(service->ReportStep(r).ok());
  }
  const v1::PlanResponse b = Plan(*service, "b", 6);
  ASSERT_TRUE(a.has_calibration() && b.has_calibration());
  EXPECT_NEAR(a.calibration().gemm_tflops(), 0.05, 0.0025);  // the fit, not the prior's 600
  EXPECT_NEAR(b.calibration().gemm_tflops(), 0.025, 0.00125);
  EXPECT_NEAR(LinearSecondsPerToken(b) / LinearSecondsPerToken(a), 2, 0.1);
  // Job a's plans are what they were before job b reported.
  EXPECT_EQ(Plan(*service, "a", 6).plan().plan_id(), a.plan().plan_id());
  std::unique_ptr<PlanningService> alone = NewService();
  for (const v1::StepReport& r : Reports("a", 1, 4)) ASSERT_TRUE(alone->ReportStep(r).ok());
  EXPECT_EQ(Plan(*alone, "a", 6).plan().plan_id(), a.plan().plan_id());
  // A client reproduces b's plan id from the calibration the response carries.
  v1::PlanRequest request = TestRequest(4, 7, 2048, "b", 6);
  Batch batch = *BatchFromProto(request);
  PlanOptions options = *OptionsFromProto(request.options(), PlanningServiceOptions().defaults);
  ASSERT_TRUE(ApplyPlanCalibration(b.calibration(), &batch, &options).ok());
  EXPECT_EQ(options.cost.gemm_tflops, b.calibration().gemm_tflops());
  EXPECT_EQ(ComputePlanId(batch, options), b.plan().plan_id());
}

TEST_F(CalibrationServiceTest, BadReportsAreRefusedNamingTheField) {
  std::unique_ptr<PlanningService> service = NewService();
  v1::StepReport r = Reports("a", 1, 1)[0];
  r.set_forward_seconds(-3);
  absl::Status status = service->ReportStep(r);
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_THAT(status.message(), HasSubstr("forward_seconds: -3"));
  r = Reports(std::string(300, 'j'), 1, 1)[0];
  EXPECT_THAT(service->ReportStep(r).message(), HasSubstr("job_id: 300 bytes"));
  EXPECT_EQ(Metric("fcp_step_reports_total{code=\"InvalidArgument\",training_job=\"a\"}"), 1);
  EXPECT_TRUE(absl::IsNotFound(service->GetCalibration(v1::GetCalibrationRequest()).status()));
}

TEST_F(CalibrationServiceTest, TheRateOfReportsIsLeftToTheJobQuota) {
  // The coordinator limits ReportStep once, by the job's reports_per_second quota (JobGuard,
  // --job-reports-per-second) before the call gets here: the planning service takes any number,
  // more than the 8192 a second limit inside it once let through at once.
  std::unique_ptr<PlanningService> service = NewService();
  v1::StepReport report = Reports("a", 1, 1)[0];
  for (int i = 0; i < 10000; ++i) {
    report.set_step(i);
    ASSERT_TRUE(service->ReportStep(report).ok()) << i;
  }
}

TEST_F(CalibrationServiceTest, GetCalibrationAndMetricsShowTheFit) {
  std::unique_ptr<PlanningService> service = NewService();
  std::vector<v1::StepReport> reports = Reports("a", 1, 3);
  for (v1::StepReport& r : reports) {
    r.set_predicted_seconds(1.5 * (r.forward_seconds() + r.backward_seconds()));
    ASSERT_TRUE(service->ReportStep(r).ok());
  }
  v1::GetCalibrationRequest request;
  request.set_job_id("a");
  absl::StatusOr<v1::JobCalibration> fit = service->GetCalibration(request);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->first_step(), 1);
  EXPECT_EQ(fit->last_step(), 3);
  EXPECT_NEAR(fit->attention_tflops(), 0.01, 0.001);
  EXPECT_TRUE(ParseCostParams(fit->calibration_file()).ok()) << fit->calibration_file();
  // The slowest rank of step 3 was predicted 1.5x too slow.
  EXPECT_NEAR(Metric("fcp_plan_prediction_error_ratio{training_job=\"a\"}"), 0.5, 1e-6);
  Plan(*service, "a", 5);
  EXPECT_NEAR(Metric("fcp_calibration_value{parameter=\"attention_tflops\",training_job=\"a\"}"),
              0.01, 0.001);
}

}  // namespace
}  // namespace fcp
