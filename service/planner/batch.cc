#include "service/planner/batch.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace fcp {

absl::string_view MaskKindName(MaskKind kind) {
  switch (kind) {
    case MaskKind::kCausal:
      return "CAUSAL";
    case MaskKind::kFull:
      return "FULL";
    case MaskKind::kSlidingWindow:
      return "SLIDING_WINDOW";
    case MaskKind::kPrefixLm:
      return "PREFIX_LM";
  }
  return "UNKNOWN";
}

std::string MaskToString(const Mask& mask) {
  switch (mask.kind) {
    case MaskKind::kSlidingWindow:
      return absl::StrCat("SLIDING_WINDOW(", mask.window, ")");
    case MaskKind::kPrefixLm:
      return absl::StrCat("PREFIX_LM(", mask.prefix, ")");
    default:
      return std::string(MaskKindName(mask.kind));
  }
}

int64_t Batch::TotalTokens() const {
  int64_t total = 0;
  for (const Document& d : documents) total += d.length;
  return total;
}

namespace {

absl::Status Invalid(absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

absl::Status ValidateDocuments(const std::vector<Document>& documents) {
  if (documents.empty()) return Invalid("documents", "must not be empty");
  for (size_t i = 0; i < documents.size(); ++i) {
    const Document& d = documents[i];
    auto field = [i](absl::string_view name) { return absl::StrCat("documents[", i, "].", name); };
    if (d.length <= 0) return Invalid(field("length"), "must be > 0");
    switch (d.mask.kind) {
      case MaskKind::kCausal:
      case MaskKind::kFull:
        break;
      case MaskKind::kSlidingWindow:
        if (d.mask.window < 1) return Invalid(field("mask.window"), "must be >= 1");
        break;
      case MaskKind::kPrefixLm:
        if (d.mask.prefix < 0) return Invalid(field("mask.prefix"), "must be >= 0");
        break;
      default:
        return Invalid(field("mask.kind"), "unknown mask kind");
    }
  }
  return absl::OkStatus();
}

// Linear-layer FLOPs per token: ~6e12 for a 1T-parameter model's training step; 1e15 leaves room.
constexpr double kMaxLinearFlopsPerToken = 1e15;
// Model dimensions: 64x the largest published models', small enough that no product overflows.
constexpr int32_t kMaxHiddenSize = 1 << 20;
constexpr int32_t kMaxFfnHiddenSize = 1 << 22;
constexpr int32_t kMaxLayers = 10000;
constexpr double kMaxTokenSlack = 100;

absl::Status ValidateRate(absl::string_view field, double rate) {
  if (rate >= kMinRate && rate <= kMaxRate) return absl::OkStatus();
  return Invalid(field, absl::StrCat(rate, ": must be in [0.001, 1e6]"));
}

absl::Status ValidateModel(const ModelShape& m) {
  if (m.num_q_heads < 1) return Invalid("model.num_q_heads", "must be >= 1");
  if (m.num_kv_heads < 1) return Invalid("model.num_kv_heads", "must be >= 1");
  if (m.num_q_heads % m.num_kv_heads != 0) {
    return Invalid("model.num_q_heads % model.num_kv_heads", "!= 0 (GQA needs whole groups)");
  }
  if (m.head_dim < 1 || m.head_dim > 1024) return Invalid("model.head_dim", "must be in [1, 1024]");
  if (m.dtype != DType::kBf16 && m.dtype != DType::kFp16 && m.dtype != DType::kFp32) {
    return Invalid("model.dtype", "unknown dtype");
  }
  if (!(m.linear_flops_per_token >= 0 && m.linear_flops_per_token <= kMaxLinearFlopsPerToken)) {
    return Invalid("model.linear_flops_per_token",
                   absl::StrCat(m.linear_flops_per_token, ": must be in [0, 1e15]"));
  }
  if (m.hidden_size < 1 || m.hidden_size > kMaxHiddenSize) {
    return Invalid("model.hidden_size", absl::StrCat(m.hidden_size, ": must be in [1, 1048576]"));
  }
  if (m.ffn_hidden_size < 1 || m.ffn_hidden_size > kMaxFfnHiddenSize) {
    return Invalid("model.ffn_hidden_size",
                   absl::StrCat(m.ffn_hidden_size, ": must be in [1, 4194304]"));
  }
  if (m.mlp != MlpKind::kGated && m.mlp != MlpKind::kPlain) {
    return Invalid("model.mlp", "unknown MLP kind");
  }
  if (m.num_layers < 1 || m.num_layers > kMaxLayers) {
    return Invalid("model.num_layers", absl::StrCat(m.num_layers, ": must be in [1, 10000]"));
  }
  if (const double derived = LinearFlopsPerToken(m); !(derived <= kMaxLinearFlopsPerToken)) {
    return Invalid("model.hidden_size",
                   absl::StrCat("the shape's linear FLOPs per token, ", derived, ", exceed 1e15"));
  }
  return absl::OkStatus();
}

absl::Status ValidateTopology(const Topology& t, const ModelShape& model, int64_t total_tokens) {
  if (t.num_workers < 1)
    return Invalid("topology.num_workers", absl::StrCat(t.num_workers, ": must be >= 1"));
  if (t.workers_per_node < 1) return Invalid("topology.workers_per_node", "must be >= 1");
  if (absl::Status s = ValidateRate("topology.intra_node_gbps", t.intra_node_gbps); !s.ok())
    return s;
  if (absl::Status s = ValidateRate("topology.inter_node_gbps", t.inter_node_gbps); !s.ok())
    return s;
  if (absl::Status s = ValidateRate("topology.attention_tflops", t.attention_tflops); !s.ok()) {
    return s;
  }
  if (t.max_tokens_per_worker < 0) return Invalid("topology.max_tokens_per_worker", "must be >= 0");
  if (t.activation_memory_bytes < 0) {
    return Invalid("topology.activation_memory_bytes", "must be >= 0");
  }
  if (!(t.token_slack >= 0 && t.token_slack <= kMaxTokenSlack)) {
    return Invalid("topology.token_slack", absl::StrCat(t.token_slack, ": must be in [0, 100]"));
  }
  // An explicit limit must leave room for the whole batch.
  const bool by_tokens = t.max_tokens_per_worker > 0;
  if (!by_tokens && t.activation_memory_bytes > 0 &&
      t.activation_memory_bytes < ActivationBytesPerToken(model)) {
    return Invalid("topology.activation_memory_bytes",
                   absl::StrCat(t.activation_memory_bytes, " bytes hold no token (the model keeps ",
                                ActivationBytesPerToken(model), " bytes per token)"));
  }
  const int64_t cap = by_tokens ? t.max_tokens_per_worker
                      : t.activation_memory_bytes > 0
                          ? t.activation_memory_bytes / ActivationBytesPerToken(model)
                          : 0;
  if (cap > 0 && static_cast<__int128>(total_tokens) > static_cast<__int128>(cap) * t.num_workers) {
    return Invalid(
        by_tokens ? "topology.max_tokens_per_worker" : "topology.activation_memory_bytes",
        absl::StrCat("total tokens ", total_tokens, " exceed the memory cap of all ", t.num_workers,
                     " workers (", cap, " tokens each)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateBatch(const Batch& batch) {
  if (absl::Status s = ValidateDocuments(batch.documents); !s.ok()) return s;
  if (absl::Status s = ValidateModel(batch.model); !s.ok()) return s;
  return ValidateTopology(batch.topology, batch.model, batch.TotalTokens());
}

int64_t TokenBudget(const Batch& batch, Objective objective) {
  const Topology& t = batch.topology;
  if (t.max_tokens_per_worker > 0) return t.max_tokens_per_worker;
  if (t.activation_memory_bytes > 0) {
    return t.activation_memory_bytes / ActivationBytesPerToken(batch.model);
  }
  if (objective == Objective::kAttention) return 0;
  const int64_t workers = std::max(1, t.num_workers);
  const int64_t total = batch.TotalTokens();
  const int64_t mean_up = total / workers + (total % workers != 0 ? 1 : 0);
  const double slack = std::ceil(static_cast<double>(total) / workers * (1 + t.token_slack));
  return std::max(mean_up, static_cast<int64_t>(slack));
}

}  // namespace fcp
