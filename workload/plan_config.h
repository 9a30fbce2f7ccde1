// The plan flags of `fcp plan` (ABSL_FLAG, defined in plan_config.cc) and the validated
// configuration they make; `fcp-worker` and bench/distributed_emulation take the same flags (the
// namespace is the CLI's, where they began). Every check names the flag, in its dashed spelling,
// e.g.
// "--workers: must be >= 1, got 0"; the CLI prints such errors and exits 2.
#ifndef FCP_WORKLOAD_PLAN_CONFIG_H_
#define FCP_WORKLOAD_PLAN_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fcp/client.h"
#include "service/planner/batch.h"
#include "service/planner/planner.h"
#include "workload/flags.h"
#include "workload/workload.h"

namespace fcp::cli {

struct PlanConfig {
  // Workload: exactly one of the two.
  std::string lengths_path;    // one length per line
  std::string histogram_path;  // MagiAttention-style CSV
  int64_t max_doc_len = 0;
  uint64_t seed = 0;  // batch b is drawn with seed + b
  int32_t batches = 0;
  MaskMix mask_mix;  // --mask-mix: each document's mask (empty: all causal)

  // Batch b's documents fill num_workers × tokens_per_worker tokens.
  int64_t tokens_per_worker = 0;
  ModelShape model;
  Topology topology;

  // "all" runs every registered strategy; otherwise one name.
  std::string strategy;
  PlanOptions options;  // strategy left as "auto"; the runner sets it per strategy

  // fcp-coordinator address (HOST:PORT) to plan through; empty = plan in-process.
  std::string coordinator;
  ClientTlsOptions tls;  // towards the coordinator: enabled by any of --tls-ca/-cert/-key
  // --job-token-file's token (client/job_token.h); empty = $FCP_JOB_TOKEN.
  std::string job_token;

  int64_t validate_max_tiles = 0;  // validate plans with at most this many tiles
  bool json = false;
  std::string dump_plan_path;

  int64_t TotalTokens() const { return tokens_per_worker * topology.num_workers; }
  // The strategies this run reports, in ListStrategies() order for "all".
  std::vector<std::string> Strategies() const;
};

// Underscored names of the flags `fcp plan` accepts (for ParseArgs).
const std::vector<absl::string_view>& PlanFlagNames();

// Reads the flags parsed into their ABSL_FLAGs and checks them: required flags present, ranges,
// combinations, the calibration file parsed. `args` tells which flags were given.
absl::StatusOr<PlanConfig> PlanConfigFromFlags(const ParsedArgs& args);

// The length distribution of the configured workload (--lengths or --histogram).
absl::StatusOr<LengthSampler> LoadSampler(const PlanConfig& config);

// Batch `seed`'s documents: SampleDocuments of the workload (W x T tokens, --max-doc-len), masked
// by --mask-mix (AssignMasks with the same seed).
absl::StatusOr<std::vector<Document>> SampleBatchDocuments(const PlanConfig& config,
                                                           const LengthSampler& sampler,
                                                           uint64_t seed);

// What a program that takes the plan flags (bench/dynamic_cp, bench/distributed_emulation) starts
// from: the configuration and its workload.
struct PlanProgram {
  PlanConfig config;
  LengthSampler sampler;
};
// Parses argv[1..] as the plan flags plus `extra_flags` (the program's own, read by the caller
// from their ABSL_FLAGs), reads the configuration and loads the workload. On --help or any error
// prints the error (prefixed "PROGRAM: "), `usage` and the plan flags' help to stderr and returns
// nullopt: the caller exits 2.
std::optional<PlanProgram> ParsePlanProgram(int argc, char** argv, absl::string_view program,
                                            absl::string_view usage,
                                            std::vector<absl::string_view> extra_flags = {});

// Help text of the plan flags, one per line ("  --workers W  ...").
std::string PlanFlagsHelp();

}  // namespace fcp::cli

#endif  // FCP_WORKLOAD_PLAN_CONFIG_H_
