#include "service/calibration/plan_measurement.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/planner/mask_math.h"

namespace fcp::calibration {

std::pair<double, double> AttentionSeconds(const WorkerCost& worker, const CostModel& cost) {
  if (worker.attention_fwd_ms > 0 || worker.attention_bwd_ms > 0) {
    return {worker.attention_fwd_ms / 1000, worker.attention_bwd_ms / 1000};
  }
  const double linear = cost.TokenSeconds(worker.tokens);
  return {std::max(0.0, worker.fwd_ms / 1000 - linear),
          std::max(0.0, worker.bwd_ms / 1000 - 2 * linear)};
}

double AttentionStepSeconds(const Plan& plan, const CostModel& cost) {
  double fwd = 0, bwd = 0;
  for (const WorkerCost& worker : plan.costs) {
    const auto [f, b] = AttentionSeconds(worker, cost);
    fwd = std::max(fwd, f);
    bwd = std::max(bwd, b);
  }
  return fwd + bwd;
}

absl::StatusOr<RankStepMeasurement> MeasurementOfPlan(const Plan& plan, const CostModel& cost,
                                                      int32_t rank, int64_t step) {
  const ModelShape& model = cost.model();
  const Topology& topology = cost.topology();
  const WorkerPlan* slice = plan.FindWorker(rank);
  if (slice == nullptr || plan.blocks.empty() || rank >= static_cast<int32_t>(plan.costs.size())) {
    return absl::FailedPreconditionError(
        absl::StrCat("measurement: the plan holds no slice or blocks of rank ", rank));
  }
  RankStepMeasurement m;
  m.step = step;
  m.rank = rank;
  m.num_workers = static_cast<int32_t>(plan.costs.size());
  std::map<std::pair<int64_t, int64_t>, TileShape> shapes;  // ordered: a deterministic report
  for (const Tile& t : slice->tiles) {
    const Block& q = plan.blocks[t.q_block];
    const Block& k = plan.blocks[t.kv_block];
    const Mask& mask = plan.documents[q.document].mask;
    TileShape& shape = shapes[{q.tokens(), k.tokens()}];
    shape.q_len = q.tokens();
    shape.kv_len = k.tokens();
    ++shape.tiles;
    shape.fwd_flops += ForwardFlops(
        model, static_cast<double>(AllowedPairs(mask, q.begin, q.end, k.begin, k.end)));
  }
  for (auto& [key, shape] : shapes) m.tile_shapes.push_back(shape);
  for (const auto* transfers : {&slice->sends, &slice->recvs}) {
    for (const Transfer& t : *transfers) {
      ++m.transfers;
      int64_t tokens = 0;
      for (int32_t b : t.blocks) tokens += plan.blocks[b].tokens();
      (topology.SameNode(rank, t.peer) ? m.intra_node_bytes : m.inter_node_bytes) +=
          cost.TransferBytes(t.kind, tokens);  // KV, or a q block's kind (placed computation)
    }
  }
  // The attention pipeline alone: what forward/backward_seconds measure.
  const auto [fwd, bwd] = AttentionSeconds(plan.costs[rank], cost);
  m.predicted_seconds = fwd + bwd;
  return m;
}

}  // namespace fcp::calibration
