// The inputs of one planning request: documents with their masks, the model's shape (model.h) and
// the cluster topology with its memory limits. Plain values; `ValidateBatch` is the single place
// that decides whether a batch is well-formed, and its errors name the offending field.
#ifndef FCP_SERVICE_PLANNER_BATCH_H_
#define FCP_SERVICE_PLANNER_BATCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "service/planner/model.h"

namespace fcp {

// The rates of a topology (GB/s, TFLOP/s), bounded so that every time the cost model derives
// from them stays finite: a denormal rate makes a document's seconds infinite, and the planner's
// shares of two infinities NaN (fuzz/corpus/plan_request_fuzzer/regression-denormal-tflops).
inline constexpr double kMinRate = 1e-3;
inline constexpr double kMaxRate = 1e6;

// Which (query i, key j) pairs of one document may attend, 0-based positions within the document.
enum class MaskKind : uint8_t {
  kCausal = 0,         // j <= i
  kFull = 1,           // always
  kSlidingWindow = 2,  // 0 <= i - j < window
  kPrefixLm = 3,       // j < prefix or j <= i
};

struct Mask {
  MaskKind kind = MaskKind::kCausal;
  int64_t window = 0;  // kSlidingWindow only; >= 1
  int64_t prefix = 0;  // kPrefixLm only; >= 0

  static Mask Causal() { return {}; }
  static Mask Full() { return {MaskKind::kFull, 0, 0}; }
  static Mask SlidingWindow(int64_t window) { return {MaskKind::kSlidingWindow, window, 0}; }
  static Mask PrefixLm(int64_t prefix) { return {MaskKind::kPrefixLm, 0, prefix}; }
  bool operator==(const Mask& o) const {
    return kind == o.kind && window == o.window && prefix == o.prefix;
  }
};

absl::string_view MaskKindName(MaskKind kind);  // "CAUSAL", "FULL", ...
std::string MaskToString(const Mask& mask);     // "CAUSAL", "SLIDING_WINDOW(512)", ...

// One attention unit: its tokens attend only to tokens of the same document.
struct Document {
  int64_t length = 0;
  Mask mask;
};

// Bandwidths are in gigabytes per second (1e9 B/s) per GPU, as nccl-tests reports them.
//
// A node's GPUs talk over NVLink (intra_node_gbps per pair); each GPU has its own NIC for
// traffic to other nodes (inter_node_gbps), as on DGX H100/H200 (8 GPUs, 8 × 400G InfiniBand).
// Rounds are matchings (each GPU sends to <= 1 peer and receives from <= 1), so no NIC ever
// carries two transfers in one direction in one round.
struct Topology {
  int32_t num_workers = 0;
  int32_t workers_per_node = 8;
  double intra_node_gbps = 150;   // NVLink P2P per pair
  double inter_node_gbps = 45;    // 400G InfiniBand per GPU
  double attention_tflops = 400;  // achievable dense attention forward TFLOP/s per GPU
  // The memory limit per worker, in tokens (TokenBudget below). In order of precedence:
  int64_t max_tokens_per_worker = 0;    // explicit cap in tokens; 0 = none
  int64_t activation_memory_bytes = 0;  // activation memory per worker; 0 = none
  double token_slack = 0.05;            // else at most mean tokens per worker × (1 + slack)

  int32_t NodeOf(int32_t rank) const { return rank / workers_per_node; }
  bool SameNode(int32_t a, int32_t b) const { return NodeOf(a) == NodeOf(b); }
};

struct Batch {
  std::vector<Document> documents;
  ModelShape model;
  Topology topology;

  int64_t TotalTokens() const;
};

// OK, or InvalidArgument naming the first offending field and rule, e.g.
// "documents[17].length: must be > 0" or "model.num_q_heads % model.num_kv_heads != 0".
absl::Status ValidateBatch(const Batch& batch);

// The most tokens a worker may hold (0 = unlimited), the first that applies of:
//   topology.max_tokens_per_worker                    if > 0
//   activation_memory_bytes / ActivationBytesPerToken if activation_memory_bytes > 0
//   ceil(total tokens / num_workers × (1 + token_slack))   under Objective::kWholeStep
//   0 (unlimited)                                          under Objective::kAttention
// With the default slack no worker holds more than 1.05× the mean: the trainer sized its memory
// for its share of the batch's tokens, and a worker holding more also does more linear work.
int64_t TokenBudget(const Batch& batch, Objective objective);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_BATCH_H_
