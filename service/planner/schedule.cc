#include "service/planner/schedule.h"

#include <algorithm>
#include <numeric>

#include "service/planner/mask_math.h"

namespace fcp {

absl::StatusOr<std::unique_ptr<Schedule>> NewDirectSchedule(const Batch& batch,
                                                            const CostModel& cost, Layout layout);
absl::StatusOr<std::unique_ptr<Schedule>> NewRingSchedule(const Batch& batch, const CostModel& cost,
                                                          Layout layout);

absl::StatusOr<std::unique_ptr<Schedule>> NewPlacedSchedule(const Batch& batch,
                                                            const CostModel& cost, Layout layout);

absl::StatusOr<std::unique_ptr<Schedule>> NewSchedule(const Batch& batch, const CostModel& cost,
                                                      Layout layout) {
  if (!layout.placed.empty()) return NewPlacedSchedule(batch, cost, std::move(layout));
  if (layout.kind == Layout::Kind::kZigzagRing) {
    return NewRingSchedule(batch, cost, std::move(layout));
  }
  return NewDirectSchedule(batch, cost, std::move(layout));
}

void SummarizeCosts(const CostModel& cost, CostInputs in, std::vector<WorkerCost>* costs,
                    PlanSummary* summary) {
  const int32_t workers = cost.topology().num_workers;
  std::vector<double> extra(workers);
  for (int32_t w = 0; w < workers; ++w) extra[w] = cost.TokenSeconds(in.tokens[w]);
  costs->assign(workers, WorkerCost{});
  *summary = PlanSummary{};
  std::vector<int32_t> node(workers);  // Topology::NodeOf, once per worker
  for (int32_t w = 0; w < workers; ++w) node[w] = cost.topology().NodeOf(w);
  // Bytes per worker and in all (integer sums: any order). `both_ways`: the list's transfers
  // also go back (a mirrored dK/dV list).
  int64_t comm_bytes = 0, inter_node_bytes = 0;
  const auto count = [&](const std::vector<TimedTransfer>& list, bool both_ways) {
    for (const TimedTransfer& t : list) {
      WorkerCost& src = (*costs)[t.src];
      WorkerCost& dst = (*costs)[t.dst];
      src.send_bytes += t.bytes;
      dst.recv_bytes += t.bytes;
      if (both_ways) {
        dst.send_bytes += t.bytes;
        src.recv_bytes += t.bytes;
      }
      const int64_t bytes = both_ways ? 2 * t.bytes : t.bytes;
      comm_bytes += bytes;
      if (node[t.src] != node[t.dst]) inter_node_bytes += bytes;
    }
  };
  count(in.kv, in.dkv_mirrors_kv);
  for (const auto* list : {&in.dkv, &in.phases.out, &in.phases.d_o, &in.phases.dq}) {
    count(*list, false);
  }
  summary->comm_bytes = comm_bytes;
  summary->inter_node_bytes = inter_node_bytes;
  const Timeline timeline = in.dkv_mirrors_kv
                                ? SimulateMirroredTimeline(cost, in.compute, std::move(in.kv),
                                                           extra, std::move(in.phases))
                                : SimulateTimeline(cost, in.compute, std::move(in.kv),
                                                   std::move(in.dkv), extra, std::move(in.phases));
  double max_flops = 0, sum_flops = 0;
  int64_t max_tokens = 0, sum_tokens = 0;
  double balanced_fwd = 0, balanced_bwd = 0;
  for (int32_t w = 0; w < workers; ++w) {
    WorkerCost& c = (*costs)[w];
    c.fwd_flops = ForwardFlops(cost.model(), in.fwd_pairs[w]);
    c.bwd_flops = kBackwardFlopsRatio * c.fwd_flops;
    c.tokens = in.tokens[w];
    const double compute_fwd = in.compute.FwdTotal(w);
    c.compute_fwd_ms = compute_fwd * 1e3;
    c.fwd_ms = timeline.fwd_seconds[w] * 1e3;
    c.bwd_ms = timeline.bwd_seconds[w] * 1e3;
    c.attention_fwd_ms = (timeline.fwd_seconds[w] - extra[w]) * 1e3;
    c.attention_bwd_ms = (timeline.bwd_seconds[w] - 2 * extra[w]) * 1e3;
    balanced_fwd += compute_fwd + extra[w];
    balanced_bwd += in.compute.BwdTotal(w) + 2 * extra[w];
    max_flops = std::max(max_flops, c.fwd_flops);
    sum_flops += c.fwd_flops;
    max_tokens = std::max(max_tokens, c.tokens);
    sum_tokens += c.tokens;
    summary->max_worker_comm_bytes =
        std::max(summary->max_worker_comm_bytes, c.send_bytes + c.recv_bytes);
    summary->predicted_fwd_ms = std::max(summary->predicted_fwd_ms, c.fwd_ms);
    summary->predicted_bwd_ms = std::max(summary->predicted_bwd_ms, c.bwd_ms);
    summary->attention_fwd_ms = std::max(summary->attention_fwd_ms, c.attention_fwd_ms);
    summary->attention_bwd_ms = std::max(summary->attention_bwd_ms, c.attention_bwd_ms);
  }
  summary->balanced_fwd_ms = balanced_fwd / workers * 1e3;
  summary->balanced_bwd_ms = balanced_bwd / workers * 1e3;
  summary->max_tokens_per_worker = max_tokens;
  summary->token_budget = cost.topology().max_tokens_per_worker;
  summary->model = cost.model().name;
  summary->compute_imbalance = sum_flops > 0 ? max_flops * workers / sum_flops : 1.0;
  summary->token_imbalance =
      sum_tokens > 0 ? static_cast<double>(max_tokens) * workers / sum_tokens : 1.0;
  summary->rounds = in.compute.rounds();
  summary->tiles = in.tiles;
  summary->total_fwd_flops = sum_flops;
}

void SortSlice(WorkerPlan* slice) {
  std::sort(slice->tiles.begin(), slice->tiles.end(), [](const Tile& a, const Tile& b) {
    if (a.round != b.round) return a.round < b.round;
    if (a.q_block != b.q_block) return a.q_block < b.q_block;
    return a.kv_block < b.kv_block;
  });
  auto by_kind_round = [](const Transfer& a, const Transfer& b) {
    if (a.kind != b.kind) return a.kind < b.kind;
    return a.round < b.round;
  };
  std::sort(slice->sends.begin(), slice->sends.end(), by_kind_round);
  std::sort(slice->recvs.begin(), slice->recvs.end(), by_kind_round);
}

}  // namespace fcp
