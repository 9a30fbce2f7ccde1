// Turns FLOPs and bytes moved into predicted time (DESIGN §4).
//
//   linear time of a worker  = its tokens · LinearFlopsPerToken(model) / gemm rate   (forward;
//                              backward 2×; 0 under Objective::kAttention)
//   attention time of a tile = FLOPs / (peak · efficiency(q_len, kv_len)) + tile overhead
//   efficiency(q, k)         = q / (q + q_half) · k / (k + kv_half)     (small tiles are slow)
//   transfer time            = latency + bytes / bandwidth(link)        (link: intra or inter node)
//   of which overlapped      = transfer_overlap · transfer time; the rest is charged to both
//                              ranks' compute (timeline.h)
//
// Every constant is data: `CostParams` (defaults below, overridable by a calibration file parsed
// with `ParseCostParams`) plus the request's model and topology. Thread-compatible; immutable.
#ifndef FCP_SERVICE_PLANNER_COST_MODEL_H_
#define FCP_SERVICE_PLANNER_COST_MODEL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/planner/batch.h"
#include "service/planner/plan.h"

namespace fcp {

struct CostParams {
  double transfer_latency_us = 20;    // α of one point-to-point transfer (NCCL launch + handshake)
  double tile_q_half_tokens = 32;     // q length at which a tile reaches half efficiency
  double tile_kv_half_tokens = 32;    // kv length at which a tile reaches half efficiency
  double tile_overhead_us = 0;        // fixed cost per tile (0: tiles of a round share one launch)
  double backward_efficiency = 0.75;  // backward TFLOP/s as a fraction of forward TFLOP/s
  double gemm_tflops = 600;           // achievable TFLOP/s of the linear layers' GEMMs per GPU
  // The fraction of a transfer's time that overlaps compute, in [0, 1]: 1 on a GPU (copy engines
  // and NICs move the bytes while the SMs compute), 0 where moving bytes takes the compute's own
  // cores (the CPU executor: Gloo over TCP). The rest is added to both ranks' compute.
  double transfer_overlap = 1;
  // Measured rates that replace the request's topology rates (0 = keep the topology's). The
  // planner core reads only Topology: whoever loads a calibration (the CLI's --calibration, the
  // coordinator's per-job fit) moves them there with ApplyRateOverrides before planning.
  double attention_tflops = 0;
  double intra_node_gbps = 0;
  double inter_node_gbps = 0;
};

// Moves the nonzero rate overrides of `params` into `topology` and clears them in `params`, so
// the plan id (which hashes the topology) names the rates actually planned with.
void ApplyRateOverrides(CostParams* params, Topology* topology);

// The smallest backward_efficiency accepted: below it the backward pass's cost is 250 times the
// forward's or more, and near 0 it overflows to infinity.
inline constexpr double kMinBackwardEfficiency = 0.01;
// The range of gemm_tflops (as the topology's rates: a denormal rate makes times infinite).
inline constexpr double kMinGemmTflops = 1e-3;
inline constexpr double kMaxGemmTflops = 1e6;

// Parses a calibration file: one `key = value` per line (`#` comments, blank lines allowed); keys
// are the field names of CostParams. Unknown keys and bad numbers (negative, inf, nan; a rate
// override neither 0 nor in [0.001, 1e6]) are InvalidArgument naming the line. Missing keys keep
// their defaults.
absl::StatusOr<CostParams> ParseCostParams(absl::string_view text);
std::string CostParamsToString(const CostParams& params);
// The rules ParseCostParams applies, for params that come from elsewhere (InvalidArgument naming
// the field).
absl::Status ValidateCostParams(const CostParams& params);

class CostModel {
 public:
  // `objective`: kAttention prices the linear layers at 0 (TokenSeconds is 0).
  CostModel(const ModelShape& model, const Topology& topology, const CostParams& params,
            Objective objective = Objective::kWholeStep);

  double Efficiency(int64_t q_len, int64_t kv_len) const {
    return QEfficiency(q_len) * KvEfficiency(kv_len);
  }
  // The two factors of Efficiency, for callers that cache them per block.
  double QEfficiency(int64_t q_len) const {
    const double q = static_cast<double>(q_len);
    return q / (q + params_.tile_q_half_tokens);
  }
  double KvEfficiency(int64_t kv_len) const {
    const double k = static_cast<double>(kv_len);
    return k / (k + params_.tile_kv_half_tokens);
  }
  // Seconds per allowed pair for tiles of this shape (forward); backward is `BackwardFactor()`×.
  double SecondsPerPair(int64_t q_len, int64_t kv_len) const {
    return flops_per_pair_ / (peak_flops_ * Efficiency(q_len, kv_len));
  }
  double BackwardFactor() const { return backward_factor_; }
  // Time of one tile of the given shape with `pairs` allowed (query, key) pairs.
  double TileForwardSeconds(int64_t q_len, int64_t kv_len, int64_t pairs) const {
    return TileForwardSecondsAt(QEfficiency(q_len), KvEfficiency(kv_len), pairs);
  }
  // The same from the cached factors QEfficiency(q_len) and KvEfficiency(kv_len).
  double TileForwardSecondsAt(double q_efficiency, double kv_efficiency, int64_t pairs) const {
    if (pairs <= 0) return 0;
    return static_cast<double>(pairs) *
               (flops_per_pair_ / (peak_flops_ * (q_efficiency * kv_efficiency))) +
           tile_overhead_seconds_;
  }
  double TileBackwardSeconds(int64_t q_len, int64_t kv_len, int64_t pairs) const {
    return BackwardFromForward(TileForwardSeconds(q_len, kv_len, pairs));
  }
  // Forward seconds of `tiles` tiles with every pair allowed (below a causal diagonal), all of
  // q_len queries and together kv_tokens keys: q·k pairs at efficiency q/(q+qh)·k/(k+kh) cost
  // (q+qh)·(k+kh) pairs' worth at full efficiency, which sums over the tiles in O(1).
  double DenseTilesForwardSeconds(int64_t q_len, int64_t kv_tokens, int64_t tiles) const {
    if (tiles <= 0) return 0;
    const double q = static_cast<double>(q_len) + params_.tile_q_half_tokens;
    const double k =
        static_cast<double>(kv_tokens) + static_cast<double>(tiles) * params_.tile_kv_half_tokens;
    return flops_per_pair_ / peak_flops_ * q * k +
           static_cast<double>(tiles) * tile_overhead_seconds_;
  }
  // The backward time of a tile whose forward time is `forward_seconds` (same tile).
  double BackwardFromForward(double forward_seconds) const {
    if (forward_seconds <= 0) return 0;
    return (forward_seconds - tile_overhead_seconds_) * backward_factor_ + tile_overhead_seconds_;
  }
  // The backward time of `tiles` tiles whose forward times sum to `forward_seconds`.
  double BackwardFromForward(double forward_seconds, int64_t tiles) const {
    if (tiles <= 0) return 0;
    const double overhead = static_cast<double>(tiles) * tile_overhead_seconds_;
    return (forward_seconds - overhead) * backward_factor_ + overhead;
  }

  // Bytes of K and V for `tokens` tokens: 2 · num_kv_heads · head_dim · dtype_bytes · tokens.
  int64_t KvBytes(int64_t tokens) const { return kv_bytes_per_token_ * tokens; }
  int64_t kv_bytes_per_token() const { return kv_bytes_per_token_; }
  // Bytes of a transfer of `kind` for `tokens` tokens of its blocks: KvBytes for KV and dKV (dK,
  // dV partials are costed like K, V); for the q-block kinds of placed computation (plan.h), with
  // H q heads of dimension D: Q = H·D in the model dtype; Out = H·D fp32 partial O + H fp32 LSE;
  // dO = H·D in the model dtype + H fp32 LSE + H fp32 delta; dQ = H·D fp32.
  int64_t TransferBytes(TransferKind kind, int64_t tokens) const;
  double LinkBytesPerSecond(int32_t src, int32_t dst) const {
    return topology_.SameNode(src, dst) ? intra_node_bytes_per_second_
                                        : inter_node_bytes_per_second_;
  }
  double TransferSeconds(int32_t src, int32_t dst, int64_t bytes) const {
    return LinkTransferSeconds(topology_.SameNode(src, dst), bytes);
  }
  // The same for a caller that knows whether the two ranks share a node (Topology::NodeOf).
  double LinkTransferSeconds(bool same_node, int64_t bytes) const {
    if (bytes <= 0) return 0;
    return latency_seconds_ +
           static_cast<double>(bytes) /
               (same_node ? intra_node_bytes_per_second_ : inter_node_bytes_per_second_);
  }
  // Forward time of the linear layers for `tokens` tokens (backward: twice this).
  double TokenSeconds(int64_t tokens) const {
    return linear_seconds_per_token_ * static_cast<double>(tokens);
  }

  const ModelShape& model() const { return model_; }
  const Topology& topology() const { return topology_; }
  const CostParams& params() const { return params_; }
  Objective objective() const { return objective_; }

 private:
  ModelShape model_;
  Topology topology_;
  CostParams params_;
  double flops_per_pair_;
  double peak_flops_;
  double backward_factor_;
  double tile_overhead_seconds_;
  int64_t kv_bytes_per_token_;
  // The topology's link rates in bytes per second, and a transfer's latency in seconds (computed
  // once: every transfer's time is priced with them).
  double intra_node_bytes_per_second_;
  double inter_node_bytes_per_second_;
  double latency_seconds_;
  Objective objective_;
  double linear_seconds_per_token_;
};

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_COST_MODEL_H_
