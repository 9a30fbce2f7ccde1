#include "service/planner/cost_model.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "service/planner/mask_math.h"

namespace fcp {
namespace {

struct ParamField {
  const char* name;
  double CostParams::*field;
};

constexpr ParamField kFields[] = {
    {"transfer_latency_us", &CostParams::transfer_latency_us},
    {"tile_q_half_tokens", &CostParams::tile_q_half_tokens},
    {"tile_kv_half_tokens", &CostParams::tile_kv_half_tokens},
    {"tile_overhead_us", &CostParams::tile_overhead_us},
    {"backward_efficiency", &CostParams::backward_efficiency},
    {"gemm_tflops", &CostParams::gemm_tflops},
    {"transfer_overlap", &CostParams::transfer_overlap},
    {"attention_tflops", &CostParams::attention_tflops},
    {"intra_node_gbps", &CostParams::intra_node_gbps},
    {"inter_node_gbps", &CostParams::inter_node_gbps},
};

// The rate overrides: 0 (keep the topology's) or a rate the topology accepts.
constexpr double CostParams::*kRateFields[] = {
    &CostParams::attention_tflops, &CostParams::intra_node_gbps, &CostParams::inter_node_gbps};

}  // namespace

absl::StatusOr<CostParams> ParseCostParams(absl::string_view text) {
  CostParams params;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const size_t eq = line.find_first_of("=:");
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("calibration line ", line_number, ": expected `key = value`"));
    }
    const absl::string_view key = absl::StripAsciiWhitespace(line.substr(0, eq));
    const absl::string_view value = absl::StripAsciiWhitespace(line.substr(eq + 1));
    const ParamField* found = nullptr;
    for (const ParamField& f : kFields) {
      if (key == f.name) found = &f;
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("calibration line ", line_number, ": unknown key '", key, "'"));
    }
    double v;
    if (!absl::SimpleAtod(value, &v) || !(v >= 0) || !std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat("calibration line ", line_number, ": ", key,
                                                     ": '", value,
                                                     "' is not a finite number >= 0"));
    }
    const bool is_rate = std::find(std::begin(kRateFields), std::end(kRateFields), found->field) !=
                         std::end(kRateFields);
    if (is_rate && v != 0 && !(v >= kMinRate && v <= kMaxRate)) {
      return absl::InvalidArgumentError(absl::StrCat("calibration line ", line_number, ": ", key,
                                                     ": ", v, " must be 0 or in [0.001, 1e6]"));
    }
    params.*(found->field) = v;
  }
  if (!(params.backward_efficiency >= kMinBackwardEfficiency)) {
    return absl::InvalidArgumentError("calibration: backward_efficiency must be >= 0.01");
  }
  if (!(params.gemm_tflops >= kMinGemmTflops && params.gemm_tflops <= kMaxGemmTflops)) {
    return absl::InvalidArgumentError("calibration: gemm_tflops must be in [0.001, 1e6]");
  }
  if (!(params.transfer_overlap <= 1)) {
    return absl::InvalidArgumentError("calibration: transfer_overlap must be in [0, 1]");
  }
  return params;
}

absl::Status ValidateCostParams(const CostParams& params) {
  for (const ParamField& f : kFields) {
    const double v = params.*(f.field);
    if (!(v >= 0) || !std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat(f.name, ": ", v, ": must be finite, >= 0"));
    }
  }
  for (double CostParams::*rate : kRateFields) {
    const double v = params.*rate;
    if (v != 0 && !(v >= kMinRate && v <= kMaxRate)) {
      return absl::InvalidArgumentError(absl::StrCat("rate ", v, ": must be 0 or in [0.001, 1e6]"));
    }
  }
  if (!(params.backward_efficiency >= kMinBackwardEfficiency)) {
    return absl::InvalidArgumentError("backward_efficiency: must be >= 0.01");
  }
  if (!(params.gemm_tflops >= kMinGemmTflops && params.gemm_tflops <= kMaxGemmTflops)) {
    return absl::InvalidArgumentError("gemm_tflops: must be in [0.001, 1e6]");
  }
  if (!(params.transfer_overlap <= 1)) {
    return absl::InvalidArgumentError("transfer_overlap: must be in [0, 1]");
  }
  return absl::OkStatus();
}

void ApplyRateOverrides(CostParams* params, Topology* topology) {
  if (params->attention_tflops > 0) topology->attention_tflops = params->attention_tflops;
  if (params->intra_node_gbps > 0) topology->intra_node_gbps = params->intra_node_gbps;
  if (params->inter_node_gbps > 0) topology->inter_node_gbps = params->inter_node_gbps;
  for (double CostParams::*rate : kRateFields) params->*rate = 0;
}

std::string CostParamsToString(const CostParams& params) {
  std::string out;
  for (const ParamField& f : kFields) absl::StrAppend(&out, f.name, " = ", params.*(f.field), "\n");
  return out;
}

CostModel::CostModel(const ModelShape& model, const Topology& topology, const CostParams& params,
                     Objective objective)
    : model_(model),
      topology_(topology),
      params_(params),
      flops_per_pair_(ForwardFlops(model, 1)),
      peak_flops_(topology.attention_tflops * 1e12),
      backward_factor_(kBackwardFlopsRatio / params.backward_efficiency),
      tile_overhead_seconds_(params.tile_overhead_us * 1e-6),
      kv_bytes_per_token_(int64_t{2} * model.num_kv_heads * model.head_dim *
                          DTypeBytes(model.dtype)),
      intra_node_bytes_per_second_(topology.intra_node_gbps * 1e9),
      inter_node_bytes_per_second_(topology.inter_node_gbps * 1e9),
      latency_seconds_(params.transfer_latency_us * 1e-6),
      objective_(objective),
      linear_seconds_per_token_(objective == Objective::kAttention
                                    ? 0
                                    : LinearFlopsPerToken(model) / (params.gemm_tflops * 1e12)) {}

int64_t CostModel::TransferBytes(TransferKind kind, int64_t tokens) const {
  const int64_t heads = model_.num_q_heads;
  const int64_t q_row = heads * model_.head_dim;
  constexpr int64_t kFloat = 4;
  switch (kind) {
    case TransferKind::kKv:
    case TransferKind::kDkv:
      return KvBytes(tokens);
    case TransferKind::kQ:
      return q_row * DTypeBytes(model_.dtype) * tokens;
    case TransferKind::kOut:
      return (q_row + heads) * kFloat * tokens;
    case TransferKind::kDo:
      return (q_row * DTypeBytes(model_.dtype) + 2 * heads * kFloat) * tokens;
    case TransferKind::kDq:
      return q_row * kFloat * tokens;
  }
  return 0;
}

}  // namespace fcp
