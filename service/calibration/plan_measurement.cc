#include "service/calibration/plan_measurement.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/planner/mask_math.h"

namespace fcp::calibration {

absl::StatusOr<RankStepMeasurement> MeasurementOfPlan(const Plan& plan, const ModelShape& model,
                                                      const Topology& topology, int32_t rank,
                                                      int64_t step) {
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
  const int64_t kv_bytes_per_token =
      int64_t{2} * model.num_kv_heads * model.head_dim * DTypeBytes(model.dtype);
  for (const auto* transfers : {&slice->sends, &slice->recvs}) {
    for (const Transfer& t : *transfers) {
      ++m.transfers;
      int64_t tokens = 0;
      for (int32_t b : t.blocks) tokens += plan.blocks[b].tokens();
      (topology.SameNode(rank, t.peer) ? m.intra_node_bytes : m.inter_node_bytes) +=
          tokens * kv_bytes_per_token;
    }
  }
  const WorkerCost& cost = plan.costs[rank];
  m.predicted_seconds = (cost.fwd_ms + cost.bwd_ms) / 1000;
  return m;
}

}  // namespace fcp::calibration
