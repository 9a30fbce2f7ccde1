// What one token costs: the model's shape, the work and memory it implies per token, presets of
// published models by name, and what the planner minimises (the objective).
//
// Linear FLOPs per token, forward (a matmul of an m-vector by an m×n matrix is 2·m·n FLOPs), with
// h = hidden_size, f = ffn_hidden_size, q = num_q_heads·head_dim, kv = num_kv_heads·head_dim:
//
//   q projection  2·h·q        k and v projections  2·2·h·kv   (GQA: kv < q)
//   o projection  2·q·h        MLP  gated (SwiGLU: gate, up, down)  2·3·h·f;  plain  2·2·h·f
//
// backward = 2 × forward (the gradients of the input and of the weights, each one matmul).
// Llama-3-8B: 2·4096·(4096 + 2·1024 + 4096 + 3·14336) = 436.2 MFLOP per token forward.
// Attention itself (the (query, key) pairs) is priced separately, by mask_math and the cost model;
// embeddings, the LM head and norms are left out (per layer, they are not in the layer).
//
// Activation bytes per token and layer: what training keeps for the backward pass, assuming
// FlashAttention (no score matrix kept), no activation recomputation, no dropout (Llama-style
// models train without it), and everything in `dtype` but the attention's log-sum-exp (fp32):
//
//   2·h   input of the attention norm and of the q/k/v projections (its output)
//   q + 2·kv + q    Q, K, V and the attention output (FlashAttention's backward needs all four)
//   2·h   input of the MLP norm and of the MLP (its output)
//   gated 3·f (gate, up, and their product, the input of down); plain 2·f (fc1 out, activation)
//   + 4·num_q_heads bytes of log-sum-exp
//
// times `num_layers` for the model: Llama-3-8B keeps 139,392 B per token and layer, 4.46 MB per
// token for its 32 layers. It is the unit an activation-memory budget is divided by.
#ifndef FCP_SERVICE_PLANNER_MODEL_H_
#define FCP_SERVICE_PLANNER_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fcp {

enum class DType : uint8_t { kBf16 = 0, kFp16 = 1, kFp32 = 2 };
int DTypeBytes(DType dtype);
absl::string_view DTypeName(DType dtype);  // "BF16", "FP16", "FP32"

// The MLP of a transformer layer: gated (SwiGLU/GeGLU: gate and up projections, their product
// into down; Llama, Qwen, Mistral) or plain (fc1, activation, fc2; GPT-2/3).
enum class MlpKind : uint8_t { kGated = 0, kPlain = 1 };
absl::string_view MlpKindName(MlpKind kind);  // "GATED", "PLAIN"

// The default is Llama-3-8B.
struct ModelShape {
  int32_t num_q_heads = 32;
  int32_t num_kv_heads = 8;
  int32_t head_dim = 128;
  DType dtype = DType::kBf16;
  // Forward FLOPs of the non-attention layers per token; 0 = derived from the shape below
  // (LinearFlopsPerToken). A positive value overrides the derivation.
  double linear_flops_per_token = 0;
  int32_t hidden_size = 4096;
  int32_t ffn_hidden_size = 14336;
  MlpKind mlp = MlpKind::kGated;
  int32_t num_layers = 32;  // scales the activation memory only (plans are per layer)
  // A label for reports: the preset the shape came from, or "custom". Not a planning input.
  std::string name = "llama3-8b";
};

// Forward linear FLOPs per token: the override if set, else the formula above.
double LinearFlopsPerToken(const ModelShape& model);
// Activation bytes per token for all num_layers layers (the formula above).
int64_t ActivationBytesPerToken(const ModelShape& model);

// The published shapes of well-known models, by name ("llama3-8b", "llama3-70b", "qwen2.5-7b",
// ...; ModelPresetNames() lists them); InvalidArgument naming the known ones otherwise.
absl::StatusOr<ModelShape> ModelPreset(absl::string_view name);
std::vector<std::string> ModelPresetNames();

// What plans minimise and reports lead with.
enum class Objective : uint8_t {
  // Default. Each worker's time is its linear layers (forward + backward, by its tokens) plus its
  // attention pipeline; the plan's step is the slowest worker's; tokens per worker are held to the
  // token budget (TokenBudget in batch.h).
  kWholeStep = 0,
  // Attention alone, as papers that report attention MFU measure it: no linear layers, no token
  // budget unless the topology sets one explicitly (the planner's behaviour before the model).
  kAttention = 1,
};
absl::string_view ObjectiveName(Objective objective);  // "whole_step", "attention"
// Parses ObjectiveName's output; InvalidArgument naming `field` otherwise.
absl::StatusOr<Objective> ParseObjective(absl::string_view name, absl::string_view field);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_MODEL_H_
