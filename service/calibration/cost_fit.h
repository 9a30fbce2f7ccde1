// Fits the cost model (service/planner/cost_model.h, DESIGN §4) to what workers measured: the
// closed loop's math, free of gRPC and of any clock.
//
// Each rank's report of a step becomes observations — its forward pass, its backward pass, its
// linear layers where measured — and every observation is a sum of terms, each a feature of the
// step times one unknown rate:
//
//   forward wall  = Σ_shapes fwd_flops / eff(q, kv) · s_fwd + tiles · s_tile
//                   + transfers/2 · s_msg + intra_bytes/2 · s_intra + inter_bytes/2 · s_inter
//   backward wall = Σ_shapes fwd_flops / eff(q, kv) · s_bwd + (the same tile and transfer terms:
//                   dK/dV partials retrace the forward's transfers)
//   linear        = linear_flops · s_linear
//
// with eff(q, kv) = q/(q + q_half) · kv/(kv + kv_half). For each (q_half, kv_half) of a small grid
// the s_* come from a robust non-negative regression on relative error (robust_fit.h); the grid
// point with the smallest trimmed mean square error wins. The rates become the CostParams the
// planner uses: attention_tflops = 1e-12 / s_fwd, backward_efficiency = 2.5 · s_fwd / s_bwd,
// tile_overhead_us = 1e6 · s_tile, transfer_latency_us = 1e6 · s_msg, *_node_gbps = 1e-9 / s_*,
// gemm_tflops = 1e-12 / s_linear. A term with no information (its feature 0 in every row) keeps
// the prior's value.
//
// Overlap: the rows add a pass's transfer terms to its compute, so fitted transfer rates are what
// transfers add to a rank's pass, whatever the hardware overlapped. A fit with transfer terms
// sets transfer_overlap = 0 (cost_model.h): the planner's timeline then adds them the same way,
// where overlapping them would predict every pass shorter than the reports it was fitted on (on
// the CPU, where Gloo's copies take the attention threads' cores, by a third of the step). The
// overlap itself cannot be fitted from pass totals: with transfers shorter than the compute they
// hide behind, a pass lasts compute + (1 - overlap) · transfers, and (1 - overlap) and the
// transfer rates only appear as their product.
//
// Adding a parameter: a Feature, its value in MakeRows, and one line in kTerms (cost_fit.cc).
//
// Pure and deterministic: FitCalibration's result depends only on the measurements' values and
// order (callers sort them by (step, rank)).
#ifndef FCP_SERVICE_CALIBRATION_COST_FIT_H_
#define FCP_SERVICE_CALIBRATION_COST_FIT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "service/planner/cost_model.h"

namespace fcp::calibration {

// The forward tiles of one shape a rank computed: `tiles` tiles of q_len queries by kv_len keys,
// `fwd_flops` forward FLOPs over them (DESIGN §1: 4 · head_dim · num_q_heads · allowed pairs).
struct TileShape {
  int64_t q_len = 0;
  int64_t kv_len = 0;
  int64_t tiles = 0;
  double fwd_flops = 0;
};

// What one rank measured in one step (fcp.v1.StepReport, validated by the proto conversion).
struct RankStepMeasurement {
  int64_t step = 0;
  int32_t rank = 0;
  int32_t num_workers = 0;
  std::vector<TileShape> tile_shapes;  // the forward tiles of the rank's slice, by shape
  double forward_seconds = 0;          // wall time of the forward pass
  double backward_seconds = 0;         // wall time of the backward pass; 0 = forward only
  double comm_wait_seconds = 0;        // of which blocked on transfers
  int64_t transfers = 0;               // sends + recvs of the slice, forward + backward
  int64_t intra_node_bytes = 0;        // bytes sent + received within the node
  int64_t inter_node_bytes = 0;        // bytes sent + received across nodes
  double linear_seconds = 0;           // non-attention layers, where the trainer measures them
  double linear_flops = 0;             // their FLOPs
  double predicted_seconds = 0;        // the plan's forward + backward prediction for this rank
};

// A fitted cost model.
struct Calibration {
  CostParams params;         // the planner's calibration; rates as overrides (0 = not measured)
  double linear_tflops = 0;  // GEMM rate of the linear layers; 0 = not measured
  int64_t first_step = 0;    // the steps whose reports it was fitted on
  int64_t last_step = 0;
  int32_t reports = 0;               // rank reports used
  int32_t observations = 0;          // rows of the regression
  double median_relative_error = 0;  // of the fit on its own observations
  // Names of the parameters the reports said something about, e.g. "attention_tflops".
  std::vector<std::string> fitted;
  // A step lasts as long as its slowest rank, and ranks straggle (noise, contention) where the
  // per-rank fit above sees the typical rank: the median over steps of the slowest rank's
  // measured time over its fitted time. Plans use every time scaled by it (PlanningParams).
  double step_scale = 1;
};

struct FitOptions {
  // Candidate half-efficiency tile lengths (tokens), for q and kv alike.
  std::vector<double> half_tokens_grid = {0, 16, 32, 64, 128, 256, 512};
  int min_observations = 4;  // fewer: FailedPrecondition (not enough to fit)
};

// Fits `reports` (InvalidArgument if one is inconsistent, FailedPrecondition if there are too
// few). Parameters the reports do not inform keep `prior`'s values.
absl::StatusOr<Calibration> FitCalibration(absl::Span<const RankStepMeasurement> reports,
                                           const CostParams& prior,
                                           const FitOptions& options = FitOptions());

// What the planner plans with: `params` with every time scaled by step_scale (rates divided,
// latencies and overheads multiplied; uniform, so which plan is best does not change, only how
// long it is predicted to take), and the fitted linear-layer rate, if any, as gemm_tflops.
CostParams PlanningParams(const Calibration& calibration);

// The fitted parameters by calibration-file name ("attention_tflops", "tile_q_half_tokens", ...),
// as planned with (scaled): the tile half lengths and step_scale (always set) and every parameter
// in `fitted`.
std::vector<std::pair<std::string, double>> FittedValues(const Calibration& calibration);

// The calibration as planned with (PlanningParams), as a `--calibration` file (ParseCostParams
// reads it back), with the fit's provenance as comments.
std::string CalibrationToFile(const Calibration& calibration);

}  // namespace fcp::calibration

#endif  // FCP_SERVICE_CALIBRATION_COST_FIT_H_
