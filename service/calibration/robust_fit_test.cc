#include "service/calibration/robust_fit.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fcp::calibration {
namespace {

TEST(RobustFitTest, RecoversExactLinearModel) {
  std::vector<std::vector<double>> rows;
  std::vector<double> y;
  for (int i = 1; i <= 20; ++i) {
    rows.push_back({1e9 * i, static_cast<double>(i % 7 + 1)});
    y.push_back(2e-10 * 1e9 * i + 3e-3 * (i % 7 + 1));
  }
  absl::StatusOr<RobustFitResult> fit = FitNonNegativeRelative(rows, y);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_NEAR(fit->coefficients[0], 2e-10, 2e-10 * 1e-6);
  EXPECT_NEAR(fit->coefficients[1], 3e-3, 3e-3 * 1e-6);
  EXPECT_LT(fit->median_abs_relative_residual, 1e-9);
}

TEST(RobustFitTest, OutliersHaveBoundedInfluence) {
  std::vector<std::vector<double>> rows;
  std::vector<double> y;
  for (int i = 1; i <= 40; ++i) {
    rows.push_back({static_cast<double>(i)});
    // Every 8th row is 20 times too slow (a preempted rank).
    y.push_back(0.5 * i * (i % 8 == 0 ? 20 : 1));
  }
  absl::StatusOr<RobustFitResult> fit = FitNonNegativeRelative(rows, y);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_NEAR(fit->coefficients[0], 0.5, 0.5 * 0.05);
}

TEST(RobustFitTest, ZeroAndNegativeColumnsAreHeldAtZero) {
  // Column 1 is zero everywhere; column 2 only fits with a negative rate.
  std::vector<std::vector<double>> rows = {{1, 0, 1}, {2, 0, 0}, {3, 0, 3}, {4, 0, 0}};
  std::vector<double> y = {0.5, 2, 1.5, 4};
  absl::StatusOr<RobustFitResult> fit = FitNonNegativeRelative(rows, y);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_THAT(fit->estimated, ::testing::ElementsAre(true, false, false));
  EXPECT_EQ(fit->coefficients[1], 0);
  EXPECT_EQ(fit->coefficients[2], 0);
  EXPECT_GT(fit->coefficients[0], 0);
}

TEST(RobustFitTest, RejectsBadInputNamingIt) {
  EXPECT_THAT(FitNonNegativeRelative({}, {}).status().message(), ::testing::HasSubstr("0 rows"));
  EXPECT_THAT(FitNonNegativeRelative({{1}}, {0}).status().message(),
              ::testing::HasSubstr("target 0"));
  EXPECT_THAT(FitNonNegativeRelative({{1}, {1, 2}}, {1, 1}).status().message(),
              ::testing::HasSubstr("row 1 has 2 features"));
  EXPECT_THAT(FitNonNegativeRelative({{-1}}, {1}).status().message(),
              ::testing::HasSubstr("feature 0"));
}

TEST(RobustFitTest, MedianAbs) {
  EXPECT_EQ(MedianAbs({}), 0);
  EXPECT_EQ(MedianAbs({-3, 1, 2}), 2);
  EXPECT_EQ(MedianAbs({-4, 1, 2, 3}), 2.5);
}

}  // namespace
}  // namespace fcp::calibration
