#include "service/calibration/robust_fit.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fcp::calibration {
namespace {

using Matrix = std::vector<std::vector<double>>;

// Solves the (small, symmetric) system a·x = b by Gaussian elimination with partial pivoting; a
// pivot below `tiny` marks the column as singular (x = 0 there).
std::vector<double> Solve(Matrix a, std::vector<double> b) {
  const size_t n = b.size();
  std::vector<size_t> col_of_row(n);
  for (size_t k = 0; k < n; ++k) {
    size_t pivot = k;
    for (size_t i = k + 1; i < n; ++i) {
      if (std::abs(a[i][k]) > std::abs(a[pivot][k])) pivot = i;
    }
    std::swap(a[k], a[pivot]);
    std::swap(b[k], b[pivot]);
    if (std::abs(a[k][k]) < 1e-300) continue;
    for (size_t i = k + 1; i < n; ++i) {
      const double f = a[i][k] / a[k][k];
      if (f == 0) continue;
      for (size_t j = k; j < n; ++j) a[i][j] -= f * a[k][j];
      b[i] -= f * b[k];
    }
  }
  std::vector<double> x(n, 0);
  for (size_t k = n; k-- > 0;) {
    if (std::abs(a[k][k]) < 1e-300) continue;
    double s = b[k];
    for (size_t j = k + 1; j < n; ++j) s -= a[k][j] * x[j];
    x[k] = s / a[k][k];
  }
  return x;
}

// Weighted least squares over the `active` columns of the (column-scaled) rows.
std::vector<double> WeightedLeastSquares(const Matrix& x, const std::vector<double>& y,
                                         const std::vector<double>& w,
                                         const std::vector<size_t>& active) {
  const size_t k = active.size();
  Matrix a(k, std::vector<double>(k, 0));
  std::vector<double> b(k, 0);
  for (size_t i = 0; i < x.size(); ++i) {
    for (size_t p = 0; p < k; ++p) {
      const double xp = x[i][active[p]] * w[i];
      b[p] += xp * y[i];
      for (size_t q = 0; q < k; ++q) a[p][q] += xp * x[i][active[q]];
    }
  }
  // A whisper of ridge keeps collinear columns (e.g. a feature proportional to another) solvable.
  for (size_t p = 0; p < k; ++p) a[p][p] += 1e-12 * (a[p][p] + 1e-300);
  return Solve(std::move(a), std::move(b));
}

}  // namespace

double MedianAbs(std::vector<double> values) {
  if (values.empty()) return 0;
  for (double& v : values) v = std::abs(v);
  const size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + mid, values.end());
  if (values.size() % 2 == 1) return values[mid];
  const double upper = values[mid];
  return (upper + *std::max_element(values.begin(), values.begin() + mid)) / 2;
}

absl::StatusOr<RobustFitResult> FitNonNegativeRelative(const Matrix& rows,
                                                       const std::vector<double>& targets,
                                                       const RobustFitOptions& options) {
  if (rows.empty() || rows.size() != targets.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("robust fit: ", rows.size(), " rows and ", targets.size(), " targets"));
  }
  const size_t columns = rows[0].size();
  // Columns scaled to a maximum of 1 (FLOPs ~1e12 next to transfers ~1e1).
  std::vector<double> scale(columns, 0);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].size() != columns) {
      return absl::InvalidArgumentError(
          absl::StrCat("robust fit: row ", i, " has ", rows[i].size(), " features, not ", columns));
    }
    if (!(targets[i] > 0) || !std::isfinite(targets[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("robust fit: target ", i, " = ", targets[i], ": must be finite and > 0"));
    }
    for (size_t j = 0; j < columns; ++j) {
      if (!std::isfinite(rows[i][j]) || rows[i][j] < 0) {
        return absl::InvalidArgumentError(absl::StrCat("robust fit: row ", i, " feature ", j, " = ",
                                                       rows[i][j], ": must be finite, >= 0"));
      }
      scale[j] = std::max(scale[j], rows[i][j]);
    }
  }
  Matrix x = rows;
  for (auto& row : x) {
    for (size_t j = 0; j < columns; ++j) row[j] = scale[j] > 0 ? row[j] / scale[j] : 0;
  }
  std::vector<size_t> active;
  for (size_t j = 0; j < columns; ++j) {
    if (scale[j] > 0) active.push_back(j);
  }

  const size_t n = rows.size();
  // Residuals are relative to max(measured, predicted): at most 1 in size however wrong a row is,
  // so no single row (a time of 1 ns, or of an hour) has unbounded influence. The first pass,
  // with nothing predicted yet, measures against max(measured, median measured).
  std::vector<double> sorted_targets = targets;
  const double median_target = MedianAbs(sorted_targets);
  std::vector<double> predicted(n, median_target);
  std::vector<double> beta, residuals(n, 0);
  while (true) {
    std::vector<double> robust(n, 1.0);  // Huber weights of the residuals
    std::fill(predicted.begin(), predicted.end(), median_target);
    for (int it = 0; it < options.iterations && !active.empty(); ++it) {
      std::vector<double> w(n);
      for (size_t i = 0; i < n; ++i) {
        const double d = std::max(targets[i], predicted[i]);
        w[i] = robust[i] / (d * d);
      }
      std::vector<double> next = WeightedLeastSquares(x, targets, w, active);
      bool converged = next.size() == beta.size();
      for (size_t p = 0; converged && p < next.size(); ++p) {
        converged = std::abs(next[p] - beta[p]) <= options.tolerance * std::abs(next[p]);
      }
      beta = std::move(next);
      for (size_t i = 0; i < n; ++i) {
        predicted[i] = 0;
        for (size_t p = 0; p < active.size(); ++p) predicted[i] += x[i][active[p]] * beta[p];
        residuals[i] = (targets[i] - predicted[i]) / std::max(targets[i], predicted[i]);
      }
      const double s = std::max(options.min_scale, 1.4826 * MedianAbs(residuals));
      for (size_t i = 0; i < n; ++i) {
        const double u = std::abs(residuals[i]) / s;
        robust[i] = u <= options.huber_k ? 1.0 : options.huber_k / u;
      }
      if (converged) break;
    }
    // Hold the most negative coefficient at 0 and fit the rest again.
    size_t worst = active.size();
    for (size_t p = 0; p < active.size(); ++p) {
      if (beta[p] < 0 && (worst == active.size() || beta[p] < beta[worst])) worst = p;
    }
    if (worst == active.size()) break;
    active.erase(active.begin() + static_cast<std::ptrdiff_t>(worst));
    if (active.empty()) {
      std::fill(predicted.begin(), predicted.end(), 0.0);
      break;
    }
  }
  for (size_t i = 0; i < n; ++i) residuals[i] = (targets[i] - predicted[i]) / targets[i];

  RobustFitResult result;
  result.coefficients.assign(columns, 0);
  result.estimated.assign(columns, false);
  for (size_t p = 0; p < active.size(); ++p) {
    result.coefficients[active[p]] = beta[p] / scale[active[p]];
    result.estimated[active[p]] = true;
  }
  result.relative_residuals = residuals;
  result.median_abs_relative_residual = MedianAbs(residuals);
  // The mean square of the best 80% of the residuals: a robust, yet efficient, quality measure.
  std::vector<double> squares(n);
  for (size_t i = 0; i < n; ++i) squares[i] = residuals[i] * residuals[i];
  std::sort(squares.begin(), squares.end());
  const size_t kept = std::max<size_t>(1, n * 4 / 5);
  double sum = 0;
  for (size_t i = 0; i < kept; ++i) sum += squares[i];
  result.trimmed_mean_square = sum / static_cast<double>(kept);
  return result;
}

}  // namespace fcp::calibration
