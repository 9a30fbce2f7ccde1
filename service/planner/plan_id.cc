// Plan ids: every rank of a job, and every coordinator replica, must derive the same id from the
// same planning inputs, so the hash is over a canonical encoding (fixed-width little-endian
// fields, in a fixed order) with a fixed function (two FNV-1a 64 lanes), never std::hash or
// absl::Hash, which may differ between builds.
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "service/planner/planner.h"

namespace fcp {
namespace {

class StableHasher {
 public:
  void Bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      a_ = (a_ ^ p[i]) * kPrime;
      b_ = (b_ ^ p[i]) * kPrime;
      b_ ^= b_ >> 29;
    }
  }
  void Int(int64_t v) {
    unsigned char buf[8];
    for (int i = 0; i < 8; ++i) buf[i] = static_cast<unsigned char>(static_cast<uint64_t>(v) >> (8 * i));
    Bytes(buf, 8);
  }
  void Double(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    Int(static_cast<int64_t>(bits));
  }
  void String(absl::string_view s) {
    Int(static_cast<int64_t>(s.size()));
    Bytes(s.data(), s.size());
  }
  std::string Hex() const { return absl::StrFormat("%016x%016x", a_, b_); }

 private:
  static constexpr uint64_t kPrime = 0x100000001b3ULL;
  uint64_t a_ = 0xcbf29ce484222325ULL;
  uint64_t b_ = 0x84222325cbf29ce4ULL;
};

}  // namespace

std::string ComputePlanId(const Batch& batch, const PlanOptions& options) {
  StableHasher h;
  h.String(kPlannerVersion);
  h.Int(static_cast<int64_t>(batch.documents.size()));
  for (const Document& d : batch.documents) {
    h.Int(d.length);
    h.Int(static_cast<int64_t>(d.mask.kind));
    h.Int(d.mask.kind == MaskKind::kSlidingWindow ? d.mask.window : 0);
    h.Int(d.mask.kind == MaskKind::kPrefixLm ? d.mask.prefix : 0);
  }
  const ModelShape& m = batch.model;
  for (int64_t v : {int64_t{m.num_q_heads}, int64_t{m.num_kv_heads}, int64_t{m.head_dim},
                    static_cast<int64_t>(m.dtype)}) {
    h.Int(v);
  }
  h.Double(m.linear_flops_per_token);
  const Topology& t = batch.topology;
  h.Int(t.num_workers);
  h.Int(t.workers_per_node);
  h.Double(t.intra_node_gbps);
  h.Double(t.inter_node_gbps);
  h.Double(t.attention_tflops);
  h.Int(t.max_tokens_per_worker);
  h.String(options.strategy);
  h.Int(options.block_size);
  h.Int(options.include_backward ? 1 : 0);
  h.Double(options.time_budget_ms);
  const CostParams& c = options.cost;
  for (double v : {c.transfer_latency_us, c.tile_q_half_tokens, c.tile_kv_half_tokens,
                   c.tile_overhead_us, c.backward_efficiency}) {
    h.Double(v);
  }
  return h.Hex();
}

}  // namespace fcp
