#include "service/calibration/job_calibrations.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace fcp::calibration {
namespace {

// Planned steps whose calibration stays pinned per job (ranks of one step ask within moments).
constexpr size_t kMaxPinnedSteps = 64;

}  // namespace

double StepAccuracy::ErrorRatio() const {
  if (predicted_seconds <= 0 || measured_seconds <= 0) return 0;
  return std::abs(predicted_seconds - measured_seconds) / measured_seconds;
}

JobCalibrations::JobCalibrations(JobCalibrationOptions options) : options_(std::move(options)) {}

JobCalibrations::Job& JobCalibrations::JobFor(absl::string_view name) {
  auto it = jobs_.find(name);
  if (it == jobs_.end()) {
    if (static_cast<int32_t>(jobs_.size()) >= options_.max_jobs) {
      auto oldest = std::min_element(jobs_.begin(), jobs_.end(), [](const auto& a, const auto& b) {
        return a.second.last_used < b.second.last_used;
      });
      jobs_.erase(oldest);
    }
    it = jobs_.emplace(std::string(name), Job()).first;
  }
  it->second.last_used = ++clock_;
  return it->second;
}

StepAccuracy JobCalibrations::Report(absl::string_view name, RankStepMeasurement m) {
  absl::MutexLock lock(&mu_);
  Job& job = JobFor(name);

  const int64_t step = m.step;
  const int32_t rank = m.rank;
  if (rank < options_.max_ranks_per_step) job.reports.emplace(std::make_pair(step, rank), m);
  // Forget steps no fit will read again: older than the newest step's window and lag.
  const int64_t newest = job.reports.empty() ? step : job.reports.rbegin()->first.first;
  const int64_t keep_from = newest - options_.window_steps - options_.lag_steps;
  job.reports.erase(job.reports.begin(), job.reports.lower_bound({keep_from, 0}));
  job.pinned.erase(job.pinned.begin(), job.pinned.lower_bound(keep_from));

  StepAccuracy accuracy;
  accuracy.step = step;
  for (auto it = job.reports.lower_bound({step, 0});
       it != job.reports.end() && it->first.first == step; ++it) {
    const RankStepMeasurement& r = it->second;
    ++accuracy.ranks;
    accuracy.predicted_seconds = std::max(accuracy.predicted_seconds, r.predicted_seconds);
    accuracy.measured_seconds =
        std::max(accuracy.measured_seconds, r.forward_seconds + r.backward_seconds);
  }
  return accuracy;
}

std::vector<RankStepMeasurement> JobCalibrations::Window(const Job& job, int64_t last) const {
  std::vector<RankStepMeasurement> window;
  for (auto it = job.reports.lower_bound({last - options_.window_steps + 1, 0});
       it != job.reports.end() && it->first.first <= last; ++it) {
    window.push_back(it->second);
  }
  return window;
}

std::shared_ptr<const Calibration> JobCalibrations::Fit(
    const std::vector<RankStepMeasurement>& window) const {
  if (window.empty()) return nullptr;
  absl::StatusOr<Calibration> fit = FitCalibration(window, options_.prior, options_.fit);
  if (!fit.ok()) return nullptr;
  return std::make_shared<const Calibration>(*std::move(fit));
}

std::shared_ptr<const Calibration> JobCalibrations::ForStep(absl::string_view name, int64_t step) {
  std::vector<RankStepMeasurement> window;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(name);
    if (it == jobs_.end()) return nullptr;
    Job& job = it->second;
    if (auto pinned = job.pinned.find(step); pinned != job.pinned.end()) return pinned->second;
    // Steps before the reports' window are not pinned: their reports are gone.
    if (!job.reports.empty() && step < job.reports.begin()->first.first) return nullptr;
    window = Window(job, step - options_.lag_steps);
  }
  // Fitted without the lock (other jobs keep reporting); the first fit pinned for the step wins.
  std::shared_ptr<const Calibration> fit = Fit(window);
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(name);
  if (it == jobs_.end()) return fit;
  Job& job = it->second;
  auto pinned = job.pinned.emplace(step, std::move(fit)).first->second;
  while (job.pinned.size() > kMaxPinnedSteps) job.pinned.erase(job.pinned.begin());
  return pinned;
}

absl::StatusOr<Calibration> JobCalibrations::Latest(absl::string_view name) {
  std::vector<RankStepMeasurement> window;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(name);
    if (it == jobs_.end() || it->second.reports.empty()) {
      return absl::NotFoundError(absl::StrCat("job '", name, "': no step reports"));
    }
    const Job& job = it->second;
    window = Window(job, job.reports.rbegin()->first.first);
  }
  return FitCalibration(window, options_.prior, options_.fit);
}

}  // namespace fcp::calibration
