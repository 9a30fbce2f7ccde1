#include "workload/plan_config.h"

#include <cmath>
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
#include "service/planner/cost_model.h"
#include "workload/workload.h"

// Workload.
ABSL_FLAG(std::string, lengths, "", "document lengths file, one per line (or --histogram)");
ABSL_FLAG(std::string, histogram, "", "length histogram CSV, \"[lo, hi]\",count,... rows");
ABSL_FLAG(int64_t, max_doc_len, 131072, "truncate every sampled document to this many tokens");
ABSL_FLAG(uint64_t, seed, 1, "RNG seed; batch b is drawn with seed + b");
ABSL_FLAG(int32_t, batches, 1, "number of batches to draw and plan");
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
ABSL_FLAG(int64_t, max_tokens_per_worker, 0, "memory cap in tokens per worker; 0 = unlimited");
ABSL_FLAG(int32_t, heads, fcp::ModelShape().num_q_heads, "query heads");
ABSL_FLAG(int32_t, kv_heads, fcp::ModelShape().num_kv_heads, "key/value heads");
ABSL_FLAG(int32_t, head_dim, fcp::ModelShape().head_dim, "head dimension");
ABSL_FLAG(std::string, dtype, "bf16", "element type: bf16, fp16 or fp32");
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
  return AtLeast<int32_t>("batches", c.batches, 1);
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
  return AtLeast<int64_t>("max_tokens_per_worker", t.max_tokens_per_worker, 0);
}

absl::Status ReadModelFlags(PlanConfig& c) {
  ModelShape& m = c.model;
  m.num_q_heads = absl::GetFlag(FLAGS_heads);
  RETURN_IF_ERROR(AtLeast<int32_t>("heads", m.num_q_heads, 1));
  m.num_kv_heads = absl::GetFlag(FLAGS_kv_heads);
  RETURN_IF_ERROR(AtLeast<int32_t>("kv_heads", m.num_kv_heads, 1));
  if (m.num_q_heads % m.num_kv_heads != 0) {
    return Invalid(
        "heads", absl::StrCat(m.num_q_heads, " is not a multiple of --kv-heads ", m.num_kv_heads));
  }
  m.head_dim = absl::GetFlag(FLAGS_head_dim);
  RETURN_IF_ERROR(AtLeast<int32_t>("head_dim", m.head_dim, 1));
  const std::string dtype = absl::AsciiStrToLower(absl::GetFlag(FLAGS_dtype));
  if (dtype == "bf16") {
    m.dtype = DType::kBf16;
  } else if (dtype == "fp16") {
    m.dtype = DType::kFp16;
  } else if (dtype == "fp32") {
    m.dtype = DType::kFp32;
  } else {
    return Invalid("dtype", absl::StrCat("expected bf16, fp16 or fp32, got '", dtype, "'"));
  }
  return absl::OkStatus();
}

absl::Status ReadPlanningFlags(PlanConfig& c) {
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
  c.coordinator = absl::GetFlag(FLAGS_coordinator);
  if (!c.coordinator.empty() && !calibration.empty()) {
    return Invalid("calibration",
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
      "lengths", "histogram", "max_doc_len", "seed", "batches",
      // cluster and model
      "workers", "tokens_per_worker", "workers_per_node", "intra_node_gbps", "inter_node_gbps",
      "attention_tflops", "max_tokens_per_worker", "heads", "kv_heads", "head_dim", "dtype",
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
  RETURN_IF_ERROR(ReadModelFlags(c));
  RETURN_IF_ERROR(ReadPlanningFlags(c));
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

std::string PlanFlagsHelp() { return FlagsHelp(PlanFlagNames()); }

}  // namespace fcp::cli
