#include "workload/plan_config.h"

#include <cmath>
#include <iostream>
#include <limits>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/job_token.h"
#include "common/pem.h"
#include "common/status_macros.h"
#include "fcp/v1/plan.pb.h"
#include "proto/plan_convert.h"
#include "service/planner/cost_model.h"
#include "workload/workload.h"

// Workload.
ABSL_FLAG(std::string, lengths, "", "document lengths file, one per line (or --histogram)");
ABSL_FLAG(std::string, histogram, "", "length histogram CSV, \"[lo, hi]\",count,... rows");
ABSL_FLAG(int64_t, max_doc_len, 131072, "truncate every sampled document to this many tokens");
ABSL_FLAG(uint64_t, seed, 1, "RNG seed; batch b is drawn with seed + b");
ABSL_FLAG(int32_t, batches, 1, "number of batches to draw and plan");
ABSL_FLAG(std::string, mask_mix, "",
          "documents' masks, kind[=param][:weight],...: causal, full, sliding_window[=4096], "
          "prefix_lm[=0.5 of the document]; each document draws one (seeded); empty = all causal");
// Cluster and model.
ABSL_FLAG(int32_t, workers, 0, "number of workers W (required)");
ABSL_FLAG(int64_t, tokens_per_worker, 0, "tokens per worker T; a batch holds W x T (required)");
ABSL_FLAG(int32_t, workers_per_node, fcp::Topology().workers_per_node, "workers per node");
ABSL_FLAG(double, intra_node_gbps, fcp::Topology().intra_node_gbps,
          "intra-node P2P bandwidth per GPU, GB/s");
ABSL_FLAG(double, inter_node_gbps, fcp::Topology().inter_node_gbps,
          "inter-node P2P bandwidth per GPU, GB/s");
ABSL_FLAG(double, attention_tflops, fcp::Topology().attention_tflops,
          "achievable attention forward TFLOP/s per GPU");
ABSL_FLAG(int64_t, max_tokens_per_worker, 0,
          "token budget per worker, tokens; 0 = from the memory budget or the slack");
ABSL_FLAG(int64_t, activation_memory_bytes, 0,
          "activation memory per worker, bytes (the token budget is it / the model's bytes per "
          "token); 0 = none");
ABSL_FLAG(double, token_slack, fcp::Topology().token_slack,
          "whole_step: no worker above the mean tokens x (1 + slack)");
ABSL_FLAG(double, gemm_tflops, fcp::CostParams().gemm_tflops,
          "achievable TFLOP/s of the linear layers' GEMMs per GPU");
ABSL_FLAG(std::string, model, fcp::ModelShape().name,
          "model preset (shapes listed below); the shape flags override its fields");
ABSL_FLAG(int32_t, heads, fcp::ModelShape().num_q_heads, "query heads (default: the model's)");
ABSL_FLAG(int32_t, kv_heads, fcp::ModelShape().num_kv_heads,
          "key/value heads (default: the model's)");
ABSL_FLAG(int32_t, head_dim, fcp::ModelShape().head_dim, "head dimension (default: the model's)");
ABSL_FLAG(int32_t, hidden_size, fcp::ModelShape().hidden_size,
          "model dimension (default: the model's)");
ABSL_FLAG(int32_t, ffn_hidden_size, fcp::ModelShape().ffn_hidden_size,
          "MLP inner dimension (default: the model's)");
ABSL_FLAG(std::string, mlp, "gated", "MLP kind: gated (SwiGLU) or plain (default: the model's)");
ABSL_FLAG(int32_t, num_layers, fcp::ModelShape().num_layers,
          "layers, for the activation memory (default: the model's)");
ABSL_FLAG(std::string, dtype, "bf16", "element type: bf16, fp16 or fp32");
ABSL_FLAG(std::string, objective, "whole_step",
          "whole_step (linear layers + attention, token budget) or attention (attention alone)");
// Planning.
ABSL_FLAG(std::string, strategy, "auto", "strategy name (see 'fcp strategies'), or all");
ABSL_FLAG(int64_t, block_size, 0, "block size in tokens; 0 = automatic, else a multiple of 64");
ABSL_FLAG(bool, forward_only, false, "optimise and compare forward time only");
ABSL_FLAG(double, time_budget_ms, fcp::PlanOptions().time_budget_ms,
          "auto: time budget for trying strategies, ms");
ABSL_FLAG(std::string, calibration, "", "cost-model calibration file (key = value lines)");
ABSL_FLAG(std::string, coordinator, "",
          "plan through fcp-coordinator at HOST:PORT instead of in-process");
ABSL_FLAG(std::string, tls_ca, "",
          "--coordinator over TLS: PEM CA the coordinator's certificate must chain to");
ABSL_FLAG(std::string, tls_cert, "",
          "--coordinator over mutual TLS: PEM client certificate (with --tls-key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, job_token_file, "",
          "--coordinator with --job-tokens: file holding this job's token (else $FCP_JOB_TOKEN)");
// Output.
ABSL_FLAG(int64_t, validate_max_tiles, 5000000,
          "validate plans with at most this many tiles (bigger ones: valid is null)");
ABSL_FLAG(bool, json, false, "one JSON object per line per (batch, strategy)");
ABSL_FLAG(std::string, dump_plan, "", "write the full plan as protobuf JSON to this file");

namespace fcp::cli {
namespace {

// Large enough for W = 1024 at 1M tokens each, small enough that sampling fits in memory.
constexpr int64_t kMaxTotalTokens = int64_t{1} << 36;

absl::Status Invalid(absl::string_view flag, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(DashedFlag(flag), ": ", what));
}

template <typename T>
absl::Status AtLeast(absl::string_view flag, T value, T min) {
  if (value >= min) return absl::OkStatus();
  return Invalid(flag, absl::StrCat("must be >= ", min, ", got ", value));
}

absl::Status Positive(absl::string_view flag, double value) {
  if (value > 0 && std::isfinite(value)) return absl::OkStatus();
  return Invalid(flag, absl::StrCat("must be a finite number > 0, got ", value));
}

absl::Status Required(const ParsedArgs& args, absl::string_view flag, absl::string_view what) {
  if (args.Given(flag)) return absl::OkStatus();
  return Invalid(flag, absl::StrCat("required (", what, ")"));
}

absl::Status ReadWorkloadFlags(PlanConfig& c) {
  c.lengths_path = absl::GetFlag(FLAGS_lengths);
  c.histogram_path = absl::GetFlag(FLAGS_histogram);
  if (c.lengths_path.empty() == c.histogram_path.empty()) {
    return absl::InvalidArgumentError(
        c.lengths_path.empty() ? "a workload is required: --lengths FILE or --histogram FILE.csv"
                               : "--lengths and --histogram are mutually exclusive");
  }
  c.max_doc_len = absl::GetFlag(FLAGS_max_doc_len);
  RETURN_IF_ERROR(AtLeast<int64_t>("max_doc_len", c.max_doc_len, 1));
  c.seed = absl::GetFlag(FLAGS_seed);
  c.batches = absl::GetFlag(FLAGS_batches);
  RETURN_IF_ERROR(AtLeast<int32_t>("batches", c.batches, 1));
  absl::StatusOr<MaskMix> mix = ParseMaskMix(absl::GetFlag(FLAGS_mask_mix));
  if (!mix.ok()) return Invalid("mask_mix", mix.status().message());
  c.mask_mix = *std::move(mix);
  return absl::OkStatus();
}

absl::Status ReadClusterFlags(const ParsedArgs& args, PlanConfig& c) {
  RETURN_IF_ERROR(Required(args, "workers", "the number of workers W"));
  RETURN_IF_ERROR(Required(args, "tokens_per_worker", "tokens per worker T"));
  Topology& t = c.topology;
  t.num_workers = absl::GetFlag(FLAGS_workers);
  RETURN_IF_ERROR(AtLeast<int32_t>("workers", t.num_workers, 1));
  c.tokens_per_worker = absl::GetFlag(FLAGS_tokens_per_worker);
  RETURN_IF_ERROR(AtLeast<int64_t>("tokens_per_worker", c.tokens_per_worker, 1));
  if (c.tokens_per_worker > kMaxTotalTokens / t.num_workers) {
    return Invalid("tokens_per_worker", absl::StrCat("W x T exceeds ", kMaxTotalTokens, " tokens"));
  }
  t.workers_per_node = absl::GetFlag(FLAGS_workers_per_node);
  RETURN_IF_ERROR(AtLeast<int32_t>("workers_per_node", t.workers_per_node, 1));
  t.intra_node_gbps = absl::GetFlag(FLAGS_intra_node_gbps);
  RETURN_IF_ERROR(Positive("intra_node_gbps", t.intra_node_gbps));
  t.inter_node_gbps = absl::GetFlag(FLAGS_inter_node_gbps);
  RETURN_IF_ERROR(Positive("inter_node_gbps", t.inter_node_gbps));
  t.attention_tflops = absl::GetFlag(FLAGS_attention_tflops);
  RETURN_IF_ERROR(Positive("attention_tflops", t.attention_tflops));
  t.max_tokens_per_worker = absl::GetFlag(FLAGS_max_tokens_per_worker);
  RETURN_IF_ERROR(AtLeast<int64_t>("max_tokens_per_worker", t.max_tokens_per_worker, 0));
  t.activation_memory_bytes = absl::GetFlag(FLAGS_activation_memory_bytes);
  RETURN_IF_ERROR(AtLeast<int64_t>("activation_memory_bytes", t.activation_memory_bytes, 0));
  t.token_slack = absl::GetFlag(FLAGS_token_slack);
  if (!(t.token_slack >= 0 && std::isfinite(t.token_slack))) {
    return Invalid("token_slack",
                   absl::StrCat("must be a finite number >= 0, got ", t.token_slack));
  }
  return absl::OkStatus();
}

// An int32 shape flag, when given: >= 1, set on `proto` (the preset's value otherwise).
absl::Status ShapeFlag(const ParsedArgs& args, absl::string_view flag,
                       const absl::Flag<int32_t>& value, void (v1::ModelShape::*set)(int32_t),
                       v1::ModelShape& proto) {
  if (!args.Given(flag)) return absl::OkStatus();
  const int32_t v = absl::GetFlag(value);
  RETURN_IF_ERROR(AtLeast<int32_t>(flag, v, 1));
  (proto.*set)(v);
  return absl::OkStatus();
}

// --model and the shape flags, resolved as the API resolves fcp.v1.ModelShape (ModelFromProto):
// the preset's shape under the flags given.
absl::Status ReadModelFlags(const ParsedArgs& args, PlanConfig& c) {
  v1::ModelShape p;
  p.set_preset(absl::GetFlag(FLAGS_model));
  if (!ModelPreset(p.preset()).ok()) {
    return Invalid("model", absl::StrCat("unknown model '", p.preset(), "' (known: ",
                                         absl::StrJoin(ModelPresetNames(), ", "), ")"));
  }
  RETURN_IF_ERROR(ShapeFlag(args, "heads", FLAGS_heads, &v1::ModelShape::set_num_q_heads, p));
  RETURN_IF_ERROR(
      ShapeFlag(args, "kv_heads", FLAGS_kv_heads, &v1::ModelShape::set_num_kv_heads, p));
  RETURN_IF_ERROR(ShapeFlag(args, "head_dim", FLAGS_head_dim, &v1::ModelShape::set_head_dim, p));
  RETURN_IF_ERROR(
      ShapeFlag(args, "hidden_size", FLAGS_hidden_size, &v1::ModelShape::set_hidden_size, p));
  RETURN_IF_ERROR(ShapeFlag(args, "ffn_hidden_size", FLAGS_ffn_hidden_size,
                            &v1::ModelShape::set_ffn_hidden_size, p));
  RETURN_IF_ERROR(
      ShapeFlag(args, "num_layers", FLAGS_num_layers, &v1::ModelShape::set_num_layers, p));
  if (args.Given("mlp")) {
    const std::string mlp = absl::AsciiStrToLower(absl::GetFlag(FLAGS_mlp));
    if (mlp != "gated" && mlp != "plain") {
      return Invalid("mlp", absl::StrCat("expected gated or plain, got '", mlp, "'"));
    }
    p.set_mlp(mlp == "gated" ? v1::ModelShape::GATED : v1::ModelShape::PLAIN);
  }
  const std::string dtype = absl::AsciiStrToLower(absl::GetFlag(FLAGS_dtype));
  if (dtype == "fp16") {
    p.set_dtype(v1::ModelShape::FP16);
  } else if (dtype == "fp32") {
    p.set_dtype(v1::ModelShape::FP32);
  } else if (dtype != "bf16") {
    return Invalid("dtype", absl::StrCat("expected bf16, fp16 or fp32, got '", dtype, "'"));
  }
  ASSIGN_OR_RETURN(c.model, ModelFromProto(p));  // cannot fail: the preset and enums are known
  if (c.model.num_q_heads % c.model.num_kv_heads != 0) {
    return Invalid("heads", absl::StrCat(c.model.num_q_heads, " is not a multiple of --kv-heads ",
                                         c.model.num_kv_heads));
  }
  return absl::OkStatus();
}

absl::Status ReadPlanningFlags(const ParsedArgs& args, PlanConfig& c) {
  c.strategy = absl::GetFlag(FLAGS_strategy);
  if (c.strategy != "all") {
    std::vector<std::string> names;
    for (const StrategyInfo& s : ListStrategies()) names.push_back(s.name);
    if (std::find(names.begin(), names.end(), c.strategy) == names.end()) {
      return Invalid("strategy", absl::StrCat("unknown strategy '", c.strategy, "' (known: ",
                                              absl::StrJoin(names, ", "), "; or all)"));
    }
  }
  PlanOptions& o = c.options;
  o.block_size = absl::GetFlag(FLAGS_block_size);
  if (o.block_size < 0 || o.block_size % 64 != 0) {
    return Invalid("block_size", absl::StrCat("must be 0 (automatic) or a positive multiple of "
                                              "64, got ",
                                              o.block_size));
  }
  o.include_backward = !absl::GetFlag(FLAGS_forward_only);
  absl::StatusOr<Objective> objective =
      ParseObjective(absl::AsciiStrToLower(absl::GetFlag(FLAGS_objective)), "--objective");
  if (!objective.ok()) return objective.status();
  o.objective = *objective;
  o.time_budget_ms = absl::GetFlag(FLAGS_time_budget_ms);
  RETURN_IF_ERROR(Positive("time_budget_ms", o.time_budget_ms));
  const std::string calibration = absl::GetFlag(FLAGS_calibration);
  if (!calibration.empty()) {
    absl::StatusOr<std::string> text = ReadFileToString(calibration);
    if (!text.ok()) return Invalid("calibration", text.status().message());
    absl::StatusOr<CostParams> cost = ParseCostParams(*text);
    if (!cost.ok()) {
      return Invalid("calibration", absl::StrCat(calibration, ": ", cost.status().message()));
    }
    o.cost = *cost;
    ApplyRateOverrides(&o.cost, &c.topology);  // a fitted calibration carries measured rates
  }
  if (args.Given("gemm_tflops")) {
    o.cost.gemm_tflops = absl::GetFlag(FLAGS_gemm_tflops);
    RETURN_IF_ERROR(Positive("gemm_tflops", o.cost.gemm_tflops));
  }
  c.coordinator = absl::GetFlag(FLAGS_coordinator);
  if (!c.coordinator.empty() && !calibration.empty()) {
    return Invalid("calibration",
                   "cannot be combined with --coordinator (the coordinator plans with its own "
                   "calibration)");
  }
  if (!c.coordinator.empty() && args.Given("gemm_tflops")) {
    return Invalid("gemm_tflops",
                   "cannot be combined with --coordinator (the coordinator plans with its own "
                   "calibration)");
  }
  return absl::OkStatus();
}

// --tls-ca, --tls-cert, --tls-key: TLS towards --coordinator, the files checked here so that a
// bad one is a flag error.
absl::Status ReadTlsFlags(const ParsedArgs& args, PlanConfig& c) {
  ClientTlsOptions& tls = c.tls;
  tls.ca_file = absl::GetFlag(FLAGS_tls_ca);
  tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  tls.key_file = absl::GetFlag(FLAGS_tls_key);
  tls.enabled = args.Given("tls_ca") || args.Given("tls_cert") || args.Given("tls_key");
  if (!tls.enabled) return absl::OkStatus();
  if (c.coordinator.empty()) return Invalid("tls_ca", "TLS flags need --coordinator HOST:PORT");
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return Invalid(tls.cert_file.empty() ? "tls_cert" : "tls_key",
                   "--tls-cert and --tls-key go together (a client certificate and its key)");
  }
  if (args.Given("tls_ca")) RETURN_IF_ERROR(ReadPemCertificates("--tls-ca", tls.ca_file).status());
  if (!tls.cert_file.empty()) {
    ASSIGN_OR_RETURN(const std::string cert, ReadPemCertificates("--tls-cert", tls.cert_file));
    RETURN_IF_ERROR(ReadPemPrivateKey("--tls-key", tls.key_file, cert, "--tls-cert").status());
  }
  return absl::OkStatus();
}

absl::Status ReadOutputFlags(PlanConfig& c) {
  c.validate_max_tiles = absl::GetFlag(FLAGS_validate_max_tiles);
  RETURN_IF_ERROR(AtLeast<int64_t>("validate_max_tiles", c.validate_max_tiles, 0));
  c.json = absl::GetFlag(FLAGS_json);
  c.dump_plan_path = absl::GetFlag(FLAGS_dump_plan);
  if (!c.dump_plan_path.empty()) {
    if (c.strategy == "all") return Invalid("dump_plan", "needs a single --strategy, not all");
    if (c.batches != 1) {
      return Invalid(
          "dump_plan",
          absl::StrCat("needs --batches 1 (pick the batch with --seed), got ", c.batches));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> PlanConfig::Strategies() const {
  if (strategy != "all") return {strategy};
  std::vector<std::string> names;
  for (const StrategyInfo& s : ListStrategies()) names.push_back(s.name);
  return names;
}

const std::vector<absl::string_view>& PlanFlagNames() {
  static const auto* const kNames = new std::vector<absl::string_view>{
      // workload
      "lengths", "histogram", "max_doc_len", "seed", "batches", "mask_mix",
      // cluster and model
      "workers", "tokens_per_worker", "workers_per_node", "intra_node_gbps", "inter_node_gbps",
      "attention_tflops", "max_tokens_per_worker", "activation_memory_bytes", "token_slack",
      "gemm_tflops", "model", "heads", "kv_heads", "head_dim", "hidden_size", "ffn_hidden_size",
      "mlp", "num_layers", "dtype", "objective",
      // planning
      "strategy", "block_size", "forward_only", "time_budget_ms", "calibration", "coordinator",
      "tls_ca", "tls_cert", "tls_key", "job_token_file",
      // output
      "validate_max_tiles", "json", "dump_plan"};
  return *kNames;
}

absl::StatusOr<PlanConfig> PlanConfigFromFlags(const ParsedArgs& args) {
  if (!args.positional.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan: unexpected argument '", args.positional.front(), "'"));
  }
  PlanConfig c;
  RETURN_IF_ERROR(ReadWorkloadFlags(c));
  RETURN_IF_ERROR(ReadClusterFlags(args, c));
  RETURN_IF_ERROR(ReadModelFlags(args, c));
  RETURN_IF_ERROR(ReadPlanningFlags(args, c));
  RETURN_IF_ERROR(ReadTlsFlags(args, c));
  if (args.Given("job_token_file")) {
    ASSIGN_OR_RETURN(c.job_token,
                     ReadJobTokenFile("--job-token-file", absl::GetFlag(FLAGS_job_token_file)));
  }
  RETURN_IF_ERROR(ReadOutputFlags(c));
  return c;
}

absl::StatusOr<LengthSampler> LoadSampler(const PlanConfig& c) {
  if (!c.lengths_path.empty()) {
    ASSIGN_OR_RETURN(std::vector<int64_t> lengths, ReadLengthsFile(c.lengths_path));
    return LengthSampler::FromLengths(std::move(lengths));
  }
  ASSIGN_OR_RETURN(std::vector<HistogramBin> bins, ReadHistogramFile(c.histogram_path));
  return LengthSampler::FromHistogram(std::move(bins));
}

absl::StatusOr<std::vector<Document>> SampleBatchDocuments(const PlanConfig& c,
                                                           const LengthSampler& sampler,
                                                           uint64_t seed) {
  ASSIGN_OR_RETURN(std::vector<Document> documents,
                   SampleDocuments(sampler, c.TotalTokens(), c.max_doc_len, seed));
  AssignMasks(c.mask_mix, seed, &documents);
  return documents;
}

std::optional<PlanProgram> ParsePlanProgram(int argc, char** argv, absl::string_view program,
                                            absl::string_view usage,
                                            std::vector<absl::string_view> extra_flags) {
  std::vector<absl::string_view> allowed = PlanFlagNames();
  allowed.insert(allowed.end(), extra_flags.begin(), extra_flags.end());
  absl::StatusOr<ParsedArgs> args =
      ParseArgs(std::vector<std::string>(argv + 1, argv + argc), allowed);
  const bool help = args.ok() && args->help;
  absl::StatusOr<PlanConfig> config =
      args.ok() ? PlanConfigFromFlags(*args) : absl::StatusOr<PlanConfig>(args.status());
  absl::StatusOr<LengthSampler> sampler =
      config.ok() ? LoadSampler(*config) : absl::StatusOr<LengthSampler>(config.status());
  if (sampler.ok() && !help) return PlanProgram{*std::move(config), *std::move(sampler)};
  if (!help) std::cerr << program << ": " << sampler.status().message() << "\n";
  std::cerr << "usage: " << usage << "\n" << PlanFlagsHelp();
  return std::nullopt;
}

std::string PlanFlagsHelp() {
  std::string help = FlagsHelp(PlanFlagNames());
  absl::StrAppend(&help,
                  "\nModel presets (--model; hidden / FFN, layers, q / kv heads x head_dim):\n");
  for (const std::string& name : ModelPresetNames()) {
    const ModelShape m = *ModelPreset(name);
    absl::StrAppendFormat(&help, "  %-12s %5d / %5d %-5s %3d layers, %3d / %2d x %d\n", name,
                          m.hidden_size, m.ffn_hidden_size, MlpKindName(m.mlp), m.num_layers,
                          m.num_q_heads, m.num_kv_heads, m.head_dim);
  }
  return help;
}

}  // namespace fcp::cli
