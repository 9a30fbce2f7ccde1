// Plan ids: every rank of a job, and every coordinator replica, must derive the same id from the
// same planning inputs, so the hash is over a canonical encoding (fixed-width little-endian
// fields, in a fixed order) with a fixed function (stable_hasher.h), never std::hash or
// absl::Hash, which may differ between builds.
#include <cstdint>
#include <string>

#include "service/planner/planner.h"
#include "service/planner/stable_hasher.h"

namespace fcp {
std::string ComputePlanId(const Batch& batch, const PlanOptions& options) {
  StableHasher h;
  h.String(kPlannerVersion);
  h.Int(static_cast<int64_t>(batch.documents.size()));
  for (const Document& d : batch.documents) {
    h.Int(d.length);
    if (d.mask.kind != MaskKind::kCausal) {
      h.Int(static_cast<int64_t>(d.mask.kind) + 1);
      h.Int(d.mask.kind == MaskKind::kSlidingWindow ? d.mask.window : 0);
      h.Int(d.mask.kind == MaskKind::kPrefixLm ? d.mask.prefix : 0);
    } else {
      h.Int(0);  // causal documents (the common case) cost one word
    }
  }
  const ModelShape& m = batch.model;
  for (int64_t v : {int64_t{m.num_q_heads}, int64_t{m.num_kv_heads}, int64_t{m.head_dim},
                    static_cast<int64_t>(m.dtype)}) {
    h.Int(v);
  }
  h.Double(m.linear_flops_per_token);
  for (int64_t v : {int64_t{m.hidden_size}, int64_t{m.ffn_hidden_size}, static_cast<int64_t>(m.mlp),
                    int64_t{m.num_layers}}) {
    h.Int(v);
  }
  const Topology& t = batch.topology;
  h.Int(t.num_workers);
  h.Int(t.workers_per_node);
  h.Double(t.intra_node_gbps);
  h.Double(t.inter_node_gbps);
  h.Double(t.attention_tflops);
  h.Int(t.max_tokens_per_worker);
  h.Int(t.activation_memory_bytes);
  h.Double(t.token_slack);
  h.String(options.strategy);
  h.Int(options.block_size);
  h.Int(options.include_backward ? 1 : 0);
  h.Double(options.time_budget_ms);
  h.Double(options.balance_tolerance);
  h.Int(static_cast<int64_t>(options.objective));
  const CostParams& c = options.cost;
  for (double v : {c.transfer_latency_us, c.tile_q_half_tokens, c.tile_kv_half_tokens,
                   c.tile_overhead_us, c.backward_efficiency, c.gemm_tflops}) {
    h.Double(v);
  }
  // Last, and only when not the default 1: the ids of plans that overlap transfers fully (every
  // plan before the field existed) stay what they were.
  if (c.transfer_overlap != 1) h.Double(c.transfer_overlap);
  return h.Hex();
}

}  // namespace fcp
