#include "proto/report_convert.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace fcp {
namespace {

// No step of a training job lasts a day; nothing moves more than an exabyte in one.
constexpr double kMaxStepSeconds = 86400;
constexpr int64_t kMaxBytes = int64_t{1} << 60;
constexpr double kMaxFlops = 1e24;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckSeconds(absl::string_view field, double v) {
  if (std::isfinite(v) && v >= 0 && v <= kMaxStepSeconds) return absl::OkStatus();
  return Invalid(field, absl::StrCat(v, ": must be finite and in [0, 86400]"));
}

absl::Status CheckCount(absl::string_view field, int64_t v, int64_t min, int64_t max) {
  if (v >= min && v <= max) return absl::OkStatus();
  return Invalid(field, absl::StrCat(v, ": must be in [", min, ", ", max, "]"));
}

absl::Status CheckFlops(absl::string_view field, double v) {
  if (std::isfinite(v) && v >= 0 && v <= kMaxFlops) return absl::OkStatus();
  return Invalid(field, absl::StrCat(v, ": must be finite and in [0, 1e24]"));
}

// The cost-model fields JobCalibration and PlanCalibration share (same names, same units).
template <typename Proto>
void SetCostFields(const CostParams& c, Proto* p) {
  p->set_attention_tflops(c.attention_tflops);
  p->set_intra_node_gbps(c.intra_node_gbps);
  p->set_inter_node_gbps(c.inter_node_gbps);
  p->set_transfer_latency_us(c.transfer_latency_us);
  p->set_tile_q_half_tokens(c.tile_q_half_tokens);
  p->set_tile_kv_half_tokens(c.tile_kv_half_tokens);
  p->set_tile_overhead_us(c.tile_overhead_us);
  p->set_backward_efficiency(c.backward_efficiency);
  p->set_transfer_overlap(c.transfer_overlap);
}

}  // namespace

absl::StatusOr<calibration::RankStepMeasurement> MeasurementFromProto(const v1::StepReport& r,
                                                                      const ReportLimits& limits) {
  if (r.tile_shapes_size() > limits.max_tile_shapes) {
    return absl::ResourceExhaustedError(absl::StrCat("tile_shapes: ", r.tile_shapes_size(),
                                                     " shapes, over the coordinator's limit of ",
                                                     limits.max_tile_shapes));
  }
  RETURN_IF_ERROR(CheckCount("step", r.step(), 0, int64_t{1} << 53));
  RETURN_IF_ERROR(CheckCount("num_workers", r.num_workers(), 1, limits.max_workers));
  RETURN_IF_ERROR(CheckCount("rank", r.rank(), 0, r.num_workers() - 1));
  RETURN_IF_ERROR(CheckSeconds("forward_seconds", r.forward_seconds()));
  RETURN_IF_ERROR(CheckSeconds("backward_seconds", r.backward_seconds()));
  RETURN_IF_ERROR(CheckSeconds("comm_wait_seconds", r.comm_wait_seconds()));
  RETURN_IF_ERROR(CheckSeconds("linear_seconds", r.linear_seconds()));
  RETURN_IF_ERROR(CheckSeconds("predicted_seconds", r.predicted_seconds()));
  RETURN_IF_ERROR(CheckFlops("linear_flops", r.linear_flops()));
  RETURN_IF_ERROR(CheckCount("transfers", r.transfers(), 0, int64_t{1} << 40));
  RETURN_IF_ERROR(CheckCount("intra_node_bytes", r.intra_node_bytes(), 0, kMaxBytes));
  RETURN_IF_ERROR(CheckCount("inter_node_bytes", r.inter_node_bytes(), 0, kMaxBytes));
  if (r.comm_wait_seconds() > r.forward_seconds() + r.backward_seconds()) {
    return Invalid("comm_wait_seconds",
                   absl::StrCat(r.comm_wait_seconds(), ": more than the step's forward + backward ",
                                r.forward_seconds() + r.backward_seconds()));
  }
  calibration::RankStepMeasurement m;
  m.step = r.step();
  m.rank = r.rank();
  m.num_workers = r.num_workers();
  m.tile_shapes.reserve(r.tile_shapes_size());
  for (int i = 0; i < r.tile_shapes_size(); ++i) {
    const v1::TileShape& t = r.tile_shapes(i);
    const std::string field = absl::StrCat("tile_shapes[", i, "]");
    RETURN_IF_ERROR(CheckCount(field + ".q_len", t.q_len(), 1, int64_t{1} << 40));
    RETURN_IF_ERROR(CheckCount(field + ".kv_len", t.kv_len(), 1, int64_t{1} << 40));
    RETURN_IF_ERROR(CheckCount(field + ".tiles", t.tiles(), 1, int64_t{1} << 40));
    RETURN_IF_ERROR(CheckFlops(field + ".fwd_flops", t.fwd_flops()));
    m.tile_shapes.push_back({t.q_len(), t.kv_len(), t.tiles(), t.fwd_flops()});
  }
  m.forward_seconds = r.forward_seconds();
  m.backward_seconds = r.backward_seconds();
  m.comm_wait_seconds = r.comm_wait_seconds();
  m.transfers = r.transfers();
  m.intra_node_bytes = r.intra_node_bytes();
  m.inter_node_bytes = r.inter_node_bytes();
  m.linear_seconds = r.linear_seconds();
  m.linear_flops = r.linear_flops();
  m.predicted_seconds = r.predicted_seconds();
  return m;
}

void MeasurementToProto(const calibration::RankStepMeasurement& m, v1::StepReport* r) {
  r->set_step(m.step);
  r->set_rank(m.rank);
  r->set_num_workers(m.num_workers);
  r->clear_tile_shapes();
  for (const calibration::TileShape& t : m.tile_shapes) {
    v1::TileShape* shape = r->add_tile_shapes();
    shape->set_q_len(t.q_len);
    shape->set_kv_len(t.kv_len);
    shape->set_tiles(t.tiles);
    shape->set_fwd_flops(t.fwd_flops);
  }
  r->set_forward_seconds(m.forward_seconds);
  r->set_backward_seconds(m.backward_seconds);
  r->set_comm_wait_seconds(m.comm_wait_seconds);
  r->set_transfers(m.transfers);
  r->set_intra_node_bytes(m.intra_node_bytes);
  r->set_inter_node_bytes(m.inter_node_bytes);
  r->set_linear_seconds(m.linear_seconds);
  r->set_linear_flops(m.linear_flops);
  r->set_predicted_seconds(m.predicted_seconds);
}

void CalibrationToProto(absl::string_view job_id, const calibration::Calibration& c,
                        v1::JobCalibration* p) {
  p->set_job_id(std::string(job_id));
  p->set_first_step(c.first_step);
  p->set_last_step(c.last_step);
  p->set_reports(c.reports);
  p->set_observations(c.observations);
  p->set_median_relative_error(c.median_relative_error);
  for (const std::string& name : c.fitted) p->add_fitted(name);
  p->set_calibration_file(calibration::CalibrationToFile(c));
  SetCostFields(calibration::PlanningParams(c), p);
  p->set_linear_tflops(c.linear_tflops / c.step_scale);
}

void PlanCalibrationToProto(const calibration::Calibration& c, v1::PlanCalibration* p) {
  p->set_last_step(c.last_step);
  const CostParams planned = calibration::PlanningParams(c);
  SetCostFields(planned, p);
  p->set_gemm_tflops(planned.gemm_tflops);
}

absl::Status ApplyPlanCalibration(const v1::PlanCalibration& p, Batch* batch,
                                  PlanOptions* options) {
  CostParams cost = options->cost;  // what the calibration does not name stays the caller's
  cost.attention_tflops = p.attention_tflops();
  cost.intra_node_gbps = p.intra_node_gbps();
  cost.inter_node_gbps = p.inter_node_gbps();
  cost.transfer_latency_us = p.transfer_latency_us();
  cost.tile_q_half_tokens = p.tile_q_half_tokens();
  cost.tile_kv_half_tokens = p.tile_kv_half_tokens();
  cost.tile_overhead_us = p.tile_overhead_us();
  cost.backward_efficiency = p.backward_efficiency();
  if (p.gemm_tflops() > 0) cost.gemm_tflops = p.gemm_tflops();
  if (p.has_transfer_overlap()) cost.transfer_overlap = p.transfer_overlap();
  if (absl::Status s = ValidateCostParams(cost); !s.ok())
    return Invalid("calibration", s.message());
  ApplyRateOverrides(&cost, &batch->topology);
  options->cost = cost;
  return absl::OkStatus();
}

}  // namespace fcp
