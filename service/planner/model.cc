#include "service/planner/model.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fcp {

int DTypeBytes(DType dtype) { return dtype == DType::kFp32 ? 4 : 2; }

absl::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kBf16:
      return "BF16";
    case DType::kFp16:
      return "FP16";
    case DType::kFp32:
      return "FP32";
  }
  return "UNKNOWN";
}

absl::string_view MlpKindName(MlpKind kind) {
  switch (kind) {
    case MlpKind::kGated:
      return "GATED";
    case MlpKind::kPlain:
      return "PLAIN";
  }
  return "UNKNOWN";
}

namespace {

int MlpMatrices(MlpKind kind) { return kind == MlpKind::kGated ? 3 : 2; }

struct Preset {
  const char* name;
  int32_t hidden, ffn, layers, q_heads, kv_heads, head_dim;
  MlpKind mlp;
};

// From each model's published config.json (hidden_size, intermediate_size, num_hidden_layers,
// num_attention_heads, num_key_value_heads; head_dim = hidden_size / num_attention_heads).
constexpr Preset kPresets[] = {
    {"llama3-8b", 4096, 14336, 32, 32, 8, 128, MlpKind::kGated},
    {"llama3-70b", 8192, 28672, 80, 64, 8, 128, MlpKind::kGated},
    {"llama3-405b", 16384, 53248, 126, 128, 8, 128, MlpKind::kGated},
    {"qwen2.5-7b", 3584, 18944, 28, 28, 4, 128, MlpKind::kGated},
    {"qwen2.5-72b", 8192, 29568, 80, 64, 8, 128, MlpKind::kGated},
    {"mistral-7b", 4096, 14336, 32, 32, 8, 128, MlpKind::kGated},
    {"llama2-7b", 4096, 11008, 32, 32, 32, 128, MlpKind::kGated},
    {"gpt3-175b", 12288, 49152, 96, 96, 96, 128, MlpKind::kPlain},  // GPT-3 paper, Table 2.1
};

}  // namespace

double LinearFlopsPerToken(const ModelShape& m) {
  if (m.linear_flops_per_token > 0) return m.linear_flops_per_token;
  const double h = m.hidden_size, f = m.ffn_hidden_size;
  const double q = static_cast<double>(m.num_q_heads) * m.head_dim;
  const double kv = static_cast<double>(m.num_kv_heads) * m.head_dim;
  return 2 * h * (q + 2 * kv + q) + 2 * MlpMatrices(m.mlp) * h * f;
}

int64_t ActivationBytesPerToken(const ModelShape& m) {
  const int64_t h = m.hidden_size, f = m.ffn_hidden_size;
  const int64_t q = int64_t{m.num_q_heads} * m.head_dim;
  const int64_t kv = int64_t{m.num_kv_heads} * m.head_dim;
  const int64_t elements = 4 * h + 2 * q + 2 * kv + MlpMatrices(m.mlp) * f;
  const int64_t per_layer = elements * DTypeBytes(m.dtype) + 4 * int64_t{m.num_q_heads};
  return per_layer * m.num_layers;
}

absl::StatusOr<ModelShape> ModelPreset(absl::string_view name) {
  for (const Preset& p : kPresets) {
    if (name != p.name) continue;
    ModelShape m;
    m.name = p.name;
    m.hidden_size = p.hidden;
    m.ffn_hidden_size = p.ffn;
    m.num_layers = p.layers;
    m.num_q_heads = p.q_heads;
    m.num_kv_heads = p.kv_heads;
    m.head_dim = p.head_dim;
    m.mlp = p.mlp;
    return m;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "model: unknown preset '", name, "' (known: ", absl::StrJoin(ModelPresetNames(), ", "), ")"));
}

std::vector<std::string> ModelPresetNames() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.emplace_back(p.name);
  return names;
}

absl::string_view ObjectiveName(Objective objective) {
  switch (objective) {
    case Objective::kWholeStep:
      return "whole_step";
    case Objective::kAttention:
      return "attention";
  }
  return "unknown";
}

absl::StatusOr<Objective> ParseObjective(absl::string_view name, absl::string_view field) {
  for (Objective o : {Objective::kWholeStep, Objective::kAttention}) {
    if (name == ObjectiveName(o)) return o;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": unknown objective '", name, "' (known: whole_step, attention)"));
}

}  // namespace fcp
