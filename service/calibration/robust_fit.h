// A small robust regression for the closed loop (DESIGN §4): fits y ≈ x·b with b >= 0 by
// iteratively reweighted least squares on *relative* residuals r_i = (y_i - x_i·b) / max(y_i,
// x_i·b) — at most 1 in size, so a row's influence is bounded however wrong it is — with Huber
// weights (residuals beyond huber_k robust scales count linearly, not quadratically), so a
// few outliers — a step slowed by a noisy neighbour, a garbage report that passed validation —
// move the fit by a bounded amount. Coefficients are non-negative (they are seconds per FLOP, per
// byte, per transfer): a column that is zero in every row, or whose coefficient would turn
// negative, is held at 0 and reported as not estimated.
//
//   RobustFitResult fit = *FitNonNegativeRelative(rows, targets);
//   fit.coefficients[j]      // seconds per unit of feature j
//   fit.estimated[j]         // false: no information about j in the rows (held at 0)
//
// Pure and deterministic: the same rows in the same order give the same bits. No I/O, no gRPC.
#ifndef FCP_SERVICE_CALIBRATION_ROBUST_FIT_H_
#define FCP_SERVICE_CALIBRATION_ROBUST_FIT_H_

#include <vector>

#include "absl/status/statusor.h"

namespace fcp::calibration {

struct RobustFitOptions {
  double huber_k = 1.345;    // in robust scales (95% efficiency under Gaussian noise)
  double min_scale = 0.005;  // floor of the robust scale of relative residuals
  int iterations = 20;       // most IRLS iterations per active set
  double tolerance = 1e-9;   // stop once no coefficient moves by more than this, relatively
};

struct RobustFitResult {
  std::vector<double> coefficients;        // one per column, >= 0
  std::vector<bool> estimated;             // per column: false = held at 0
  std::vector<double> relative_residuals;  // per row, (y - x·b) / y
  double median_abs_relative_residual = 0;
  double trimmed_mean_square = 0;  // mean of the smallest 80% of the squared residuals
};

// `rows[i]` holds row i's features (every row as long as rows[0]), `targets[i]` > 0 its measured
// value. InvalidArgument for empty or ragged input, non-finite values or targets <= 0.
absl::StatusOr<RobustFitResult> FitNonNegativeRelative(
    const std::vector<std::vector<double>>& rows, const std::vector<double>& targets,
    const RobustFitOptions& options = RobustFitOptions());

// The median of |values| (0 for none).
double MedianAbs(std::vector<double> values);

}  // namespace fcp::calibration

#endif  // FCP_SERVICE_CALIBRATION_ROBUST_FIT_H_
