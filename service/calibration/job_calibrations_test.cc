#include "service/calibration/job_calibrations.h"

#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/calibration/calibration_testing.h"

namespace fcp::calibration {
namespace {

using testing::GroundTruth;
using testing::SyntheticReports;

void ReportSteps(JobCalibrations& store, absl::string_view job, const GroundTruth& truth,
                 int64_t first, int64_t last, int32_t ranks = 4) {
  for (int64_t s = first; s <= last; ++s) {
    for (RankStepMeasurement& m : SyntheticReports(truth, s, ranks, 0.01, 1)) {
      store.Report(job, std::move(m));
    }
  }
}

TEST(JobCalibrationsTest, PlansOfStepTUseReportsUpToTMinusLag) {
  JobCalibrations store(JobCalibrationOptions{});
  EXPECT_EQ(store.ForStep("a", 3), nullptr);  // no reports at all
  ReportSteps(store, "a", GroundTruth(), 1, 1);
  EXPECT_EQ(store.ForStep("a", 2), nullptr);  // lag 2: step 2 may use step 0 only
  std::shared_ptr<const Calibration> c = store.ForStep("a", 3);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->last_step, 1);
  ReportSteps(store, "a", GroundTruth(), 2, 4);
  std::shared_ptr<const Calibration> c6 = store.ForStep("a", 6);
  ASSERT_NE(c6, nullptr);
  EXPECT_EQ(c6->first_step, 1);
  EXPECT_EQ(c6->last_step, 4);
}

TEST(JobCalibrationsTest, AStepsCalibrationIsPinnedAgainstLateReports) {
  JobCalibrations store(JobCalibrationOptions{});
  ReportSteps(store, "a", GroundTruth(), 1, 1, /*ranks=*/2);
  std::shared_ptr<const Calibration> first = store.ForStep("a", 3);
  ASSERT_NE(first, nullptr);
  // Ranks 2 and 3 of step 1 report late: rank 1 of step 3 must still plan with `first`.
  GroundTruth slower;
  slower.attention_tflops = 0.005;
  std::vector<RankStepMeasurement> late = SyntheticReports(slower, 1, 4, 0, 2);
  store.Report("a", late[2]);
  store.Report("a", late[3]);
  EXPECT_EQ(store.ForStep("a", 3), first);
}

TEST(JobCalibrationsTest, TwoReplicasWithTheSameReportsAgreeExactly) {
  JobCalibrations one(JobCalibrationOptions{}), two(JobCalibrationOptions{});
  std::vector<RankStepMeasurement> reports;
  for (int64_t s = 1; s <= 5; ++s) {
    for (RankStepMeasurement& m : SyntheticReports(GroundTruth(), s, 4, 0.05, 3)) {
      reports.push_back(std::move(m));
    }
  }
  for (const RankStepMeasurement& m : reports) one.Report("j", m);
  // The other replica receives them in the opposite order.
  for (auto it = reports.rbegin(); it != reports.rend(); ++it) {
    two.Report("j", *it);
  }
  std::shared_ptr<const Calibration> a = one.ForStep("j", 7), b = two.ForStep("j", 7);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(CalibrationToFile(*a), CalibrationToFile(*b));
  EXPECT_EQ(a->params.attention_tflops, b->params.attention_tflops);  // bit for bit
}

TEST(JobCalibrationsTest, JobsAreIsolated) {
  JobCalibrations store(JobCalibrationOptions{});
  ReportSteps(store, "a", GroundTruth(), 1, 4);
  std::shared_ptr<const Calibration> before = store.ForStep("a", 6);
  ASSERT_NE(before, nullptr);
  GroundTruth other;
  other.attention_tflops = 3;
  ReportSteps(store, "b", other, 1, 4);
  EXPECT_EQ(store.ForStep("a", 6), before);
  absl::StatusOr<Calibration> a = store.Latest("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->params.attention_tflops, before->params.attention_tflops);
  std::shared_ptr<const Calibration> b = store.ForStep("b", 6);
  ASSERT_NE(b, nullptr);
  EXPECT_NEAR(b->params.attention_tflops, 3, 0.15);
  EXPECT_TRUE(absl::IsNotFound(store.Latest("c").status()));
}

TEST(JobCalibrationsTest, WindowSlidesToRecentSteps) {
  JobCalibrationOptions options;
  options.window_steps = 3;
  JobCalibrations store(options);
  ReportSteps(store, "a", GroundTruth(), 1, 4);
  GroundTruth faster;
  faster.attention_tflops = 0.08;  // the job moved to faster hardware at step 5
  ReportSteps(store, "a", faster, 5, 7);
  absl::StatusOr<Calibration> latest = store.Latest("a");
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->first_step, 5);
  EXPECT_NEAR(latest->params.attention_tflops, 0.08, 0.004);
}

TEST(JobCalibrationsTest, AccuracyIsTheSlowestRanksError) {
  JobCalibrations store(JobCalibrationOptions{});
  RankStepMeasurement a, b;
  a.step = b.step = 4;
  a.rank = 0;
  b.rank = 1;
  a.forward_seconds = 1;
  a.predicted_seconds = 1.5;
  b.forward_seconds = 2;
  b.backward_seconds = 2;
  b.predicted_seconds = 3;
  store.Report("a", a);
  const StepAccuracy accuracy = store.Report("a", b);
  EXPECT_EQ(accuracy.ranks, 2);
  EXPECT_EQ(accuracy.measured_seconds, 4);
  EXPECT_EQ(accuracy.predicted_seconds, 3);
  EXPECT_DOUBLE_EQ(accuracy.ErrorRatio(), 0.25);
}

TEST(JobCalibrationsTest, JobsAreBounded) {
  JobCalibrationOptions options;
  options.max_jobs = 2;
  JobCalibrations store(options);
  ReportSteps(store, "a", GroundTruth(), 1, 1);
  ReportSteps(store, "b", GroundTruth(), 1, 1);
  ReportSteps(store, "c", GroundTruth(), 1, 1);
  EXPECT_TRUE(absl::IsNotFound(store.Latest("a").status()));  // least recently reported
  EXPECT_TRUE(store.Latest("b").ok());
  EXPECT_TRUE(store.Latest("c").ok());
}

}  // namespace
}  // namespace fcp::calibration
