#include "service/calibration/cost_fit.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/calibration/robust_fit.h"
#include "service/planner/batch.h"
#include "service/planner/mask_math.h"

namespace fcp::calibration {
namespace {

enum Feature {
  kForwardWork,   // Σ fwd_flops / eff over the forward tiles (forward rows)
  kBackwardWork,  // the same (backward rows)
  kTiles,
  kTransfers,
  kIntraBytes,
  kInterBytes,
  kLinearFlops,
  kNumFeatures
};

// One fitted parameter: the feature whose rate it is and how the rates set it.
struct Term {
  const char* name;
  Feature feature;
  void (*apply)(const std::vector<double>& rate, Calibration* out);
  double (*value)(const Calibration& c);  // the fitted value, in the calibration file's units
};

double Clamp(double v, double lo, double hi) { return std::min(hi, std::max(lo, v)); }
double RateFromSeconds(double seconds_per_unit, double unit) {
  return Clamp(unit / seconds_per_unit, kMinRate, kMaxRate);
}

constexpr Term kTerms[] = {
    {"attention_tflops", kForwardWork,
     [](const std::vector<double>& s, Calibration* c) {
       c->params.attention_tflops = RateFromSeconds(s[kForwardWork], 1e-12);
     },
     [](const Calibration& c) { return c.params.attention_tflops; }},
    {"backward_efficiency", kBackwardWork,
     [](const std::vector<double>& s, Calibration* c) {
       if (s[kForwardWork] <= 0) return;
       c->params.backward_efficiency = Clamp(
           kBackwardFlopsRatio * s[kForwardWork] / s[kBackwardWork], kMinBackwardEfficiency, 100.0);
     },
     [](const Calibration& c) { return c.params.backward_efficiency; }},
    {"tile_overhead_us", kTiles,
     [](const std::vector<double>& s, Calibration* c) {
       c->params.tile_overhead_us = Clamp(s[kTiles] * 1e6, 0, 1e6);
     },
     [](const Calibration& c) { return c.params.tile_overhead_us; }},
    {"transfer_latency_us", kTransfers,
     [](const std::vector<double>& s, Calibration* c) {
       c->params.transfer_latency_us = Clamp(s[kTransfers] * 1e6, 0, 1e6);
     },
     [](const Calibration& c) { return c.params.transfer_latency_us; }},
    {"intra_node_gbps", kIntraBytes,
     [](const std::vector<double>& s, Calibration* c) {
       c->params.intra_node_gbps = RateFromSeconds(s[kIntraBytes], 1e-9);
     },
     [](const Calibration& c) { return c.params.intra_node_gbps; }},
    {"inter_node_gbps", kInterBytes,
     [](const std::vector<double>& s, Calibration* c) {
       c->params.inter_node_gbps = RateFromSeconds(s[kInterBytes], 1e-9);
     },
     [](const Calibration& c) { return c.params.inter_node_gbps; }},
    {"linear_tflops", kLinearFlops,
     [](const std::vector<double>& s, Calibration* c) {
       c->linear_tflops = RateFromSeconds(s[kLinearFlops], 1e-12);
     },
     [](const Calibration& c) { return c.linear_tflops; }},
};

struct Rows {
  std::vector<std::vector<double>> features;
  std::vector<double> targets;
};

// Forward FLOPs divided by the tile efficiency at (q_half, kv_half).
double EfficiencyWork(const RankStepMeasurement& m, double q_half, double kv_half) {
  double work = 0;
  for (const TileShape& t : m.tile_shapes) {
    const double q = static_cast<double>(t.q_len), k = static_cast<double>(t.kv_len);
    work += t.fwd_flops * (q + q_half) / q * (k + kv_half) / k;
  }
  return work;
}

// The features of a report's forward and backward pass.
std::pair<std::vector<double>, std::vector<double>> PassFeatures(const RankStepMeasurement& m,
                                                                 double q_half, double kv_half) {
  double tiles = 0;
  for (const TileShape& t : m.tile_shapes) tiles += static_cast<double>(t.tiles);
  std::vector<double> pass(kNumFeatures, 0);
  pass[kTiles] = tiles;
  pass[kTransfers] = static_cast<double>(m.transfers) / 2;
  pass[kIntraBytes] = static_cast<double>(m.intra_node_bytes) / 2;
  pass[kInterBytes] = static_cast<double>(m.inter_node_bytes) / 2;
  std::vector<double> forward = pass, backward = std::move(pass);
  forward[kForwardWork] = backward[kBackwardWork] = EfficiencyWork(m, q_half, kv_half);
  return {std::move(forward), std::move(backward)};
}

Rows MakeRows(absl::Span<const RankStepMeasurement> reports, double q_half, double kv_half) {
  Rows rows;
  auto add = [&rows](std::vector<double> features, double target) {
    if (target <= 0) return;
    rows.features.push_back(std::move(features));
    rows.targets.push_back(target);
  };
  for (const RankStepMeasurement& m : reports) {
    auto [forward, backward] = PassFeatures(m, q_half, kv_half);
    add(std::move(forward), m.forward_seconds);
    add(std::move(backward), m.backward_seconds);
    std::vector<double> linear(kNumFeatures, 0);
    linear[kLinearFlops] = m.linear_flops;
    if (m.linear_flops > 0) add(std::move(linear), m.linear_seconds);
  }
  return rows;
}

double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

// The median over steps of the slowest rank's measured forward + backward seconds over the
// slowest rank's as the fitted `rate`s predict them, in [1/4, 4]; 1 without steps.
double StepScale(absl::Span<const RankStepMeasurement> reports, double q_half, double kv_half,
                 const std::vector<double>& rate) {
  std::map<int64_t, std::pair<double, double>> slowest;  // step -> (measured, predicted)
  for (const RankStepMeasurement& m : reports) {
    auto [forward, backward] = PassFeatures(m, q_half, kv_half);
    auto& [measured, predicted] = slowest[m.step];
    measured = std::max(measured, m.forward_seconds + m.backward_seconds);
    predicted = std::max(predicted, Dot(rate, forward) + Dot(rate, backward));
  }
  std::vector<double> ratios;
  for (const auto& [step, times] : slowest) {
    if (times.first > 0 && times.second > 0) ratios.push_back(times.first / times.second);
  }
  return ratios.empty() ? 1 : Clamp(MedianAbs(std::move(ratios)), 0.25, 4);
}

bool Fitted(const Calibration& c, absl::string_view name) {
  return std::find(c.fitted.begin(), c.fitted.end(), name) != c.fitted.end();
}

absl::Status CheckMeasurement(const RankStepMeasurement& m, size_t index) {
  for (const TileShape& t : m.tile_shapes) {
    if (t.q_len < 1 || t.kv_len < 1 || t.tiles < 1 || !(t.fwd_flops >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("reports[", index, "].tile_shapes: q_len, kv_len and tiles must be >= 1"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Calibration> FitCalibration(absl::Span<const RankStepMeasurement> reports,
                                           const CostParams& prior, const FitOptions& options) {
  for (size_t i = 0; i < reports.size(); ++i) {
    if (absl::Status s = CheckMeasurement(reports[i], i); !s.ok()) return s;
  }
  Calibration best;
  std::vector<double> best_rates;
  double best_error = 0;
  bool found = false;
  for (double q_half : options.half_tokens_grid) {
    for (double kv_half : options.half_tokens_grid) {
      Rows rows = MakeRows(reports, q_half, kv_half);
      if (static_cast<int>(rows.targets.size()) < options.min_observations) {
        return absl::FailedPreconditionError(absl::StrCat("calibration: ", rows.targets.size(),
                                                          " observations, at least ",
                                                          options.min_observations, " needed"));
      }
      absl::StatusOr<RobustFitResult> fit = FitNonNegativeRelative(rows.features, rows.targets);
      if (!fit.ok()) return fit.status();
      if (found && !(fit->trimmed_mean_square < best_error)) continue;
      Calibration c;
      c.params = prior;
      c.params.tile_q_half_tokens = q_half;
      c.params.tile_kv_half_tokens = kv_half;
      for (const Term& term : kTerms) {
        if (!fit->estimated[term.feature]) continue;
        term.apply(fit->coefficients, &c);
        c.fitted.push_back(term.name);
      }
      c.observations = static_cast<int32_t>(rows.targets.size());
      c.median_relative_error = fit->median_abs_relative_residual;
      best = std::move(c);
      best_error = fit->trimmed_mean_square;
      best_rates = fit->coefficients;
      found = true;
    }
  }
  if (!found) return absl::FailedPreconditionError("calibration: empty half-token grid");
  if (Fitted(best, "attention_tflops")) {
    best.step_scale = StepScale(reports, best.params.tile_q_half_tokens,
                                best.params.tile_kv_half_tokens, best_rates);
  }
  // The rows add each pass's transfer terms to its compute: the fitted transfer rates are what
  // transfers add to a rank's pass. Plans that hid them behind compute would predict the passes
  // shorter than the reports the rates came from, so the job is planned without overlap.
  if (Fitted(best, "transfer_latency_us") || Fitted(best, "intra_node_gbps") ||
      Fitted(best, "inter_node_gbps")) {
    best.params.transfer_overlap = 0;
    best.fitted.push_back("transfer_overlap");
  }
  best.reports = static_cast<int32_t>(reports.size());
  if (!reports.empty()) {
    best.first_step = reports.front().step;
    best.last_step = reports.front().step;
    for (const RankStepMeasurement& m : reports) {
      best.first_step = std::min(best.first_step, m.step);
      best.last_step = std::max(best.last_step, m.step);
    }
  }
  return best;
}

// A fitted rate scaled by the step scale, kept where the planner accepts rates (0: not measured).
// A rate clamped at the floor by the fit (a very slow machine, e.g. a sanitizer build on a busy
// CPU) would otherwise fall below it and make every plan of the job INVALID_ARGUMENT.
double ScaledRate(double rate, double k) {
  return rate == 0 ? 0 : Clamp(rate / k, kMinRate, kMaxRate);
}

Calibration Scaled(const Calibration& fit) {
  Calibration c = fit;
  const double k = fit.step_scale;
  c.params.attention_tflops = ScaledRate(c.params.attention_tflops, k);
  c.params.intra_node_gbps = ScaledRate(c.params.intra_node_gbps, k);
  c.params.inter_node_gbps = ScaledRate(c.params.inter_node_gbps, k);
  c.params.tile_overhead_us = Clamp(c.params.tile_overhead_us * k, 0, 1e6);
  c.params.transfer_latency_us = Clamp(c.params.transfer_latency_us * k, 0, 1e6);
  c.linear_tflops /= k;
  if (c.linear_tflops > 0)
    c.params.gemm_tflops = Clamp(c.linear_tflops, kMinGemmTflops, kMaxGemmTflops);
  return c;
}

CostParams PlanningParams(const Calibration& fit) { return Scaled(fit).params; }

std::vector<std::pair<std::string, double>> FittedValues(const Calibration& fit) {
  const Calibration c = Scaled(fit);
  std::vector<std::pair<std::string, double>> out = {
      {"tile_q_half_tokens", c.params.tile_q_half_tokens},
      {"tile_kv_half_tokens", c.params.tile_kv_half_tokens},
      {"step_scale", c.step_scale}};
  for (const Term& term : kTerms) {
    if (Fitted(c, term.name)) out.emplace_back(term.name, term.value(c));
  }
  if (Fitted(c, "transfer_overlap"))
    out.emplace_back("transfer_overlap", c.params.transfer_overlap);
  return out;
}

std::string CalibrationToFile(const Calibration& fit) {
  const Calibration c = Scaled(fit);
  return absl::StrCat(
      "# fcp cost-model calibration fitted from steps ", c.first_step, "..", c.last_step, " (",
      c.reports, " rank reports, ", c.observations, " observations; median relative error ",
      c.median_relative_error, ")\n", "# fitted: ", absl::StrJoin(c.fitted, ", "),
      "; times scaled by ", c.step_scale, " (the slowest rank's straggle)\n",
      c.linear_tflops > 0 ? absl::StrCat("# linear layers: ", c.linear_tflops, " TFLOP/s\n") : "",
      CostParamsToString(c.params));
}

}  // namespace fcp::calibration
