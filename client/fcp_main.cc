// fcp: the context-parallel attention planner's command-line tool.
//
//   fcp strategies                      list the planning strategies
//   fcp plan --lengths F --workers W --tokens-per-worker T [...]
//                                       plan sampled batches, compare strategies, dump a plan
//   fcp calibration --coordinator ADDR --job J [--out FILE]
//                                       a job's cost model fitted from its step reports
//   fcp help                            usage
//
// Exit codes: 0 ok; 1 a plan failed or was invalid; 2 bad input (one "fcp: ..." line on stderr).
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "client/cli/calibration_command.h"
#include "client/cli/plan_command.h"
#include "common/malloc_tuning.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/dcp.h"
#include "workload/flags.h"
#include "workload/plan_config.h"

namespace fcp::cli {
namespace {

constexpr char kUsage[] = R"(fcp: plans context-parallel attention for variable-length batches.

usage:
  fcp strategies           list the planning strategies
  fcp plan [flags]         draw batches from a workload, plan them, compare strategies
  fcp calibration --coordinator ADDR --job J [--out FILE]
                           the cost model the coordinator fitted for job J from its workers'
                           step reports, as a --calibration file (--out: also written there)
  fcp help                 this text

example:
  fcp plan --lengths wikipedia.lengths --workers 64 --tokens-per-worker 32768 --strategy all
  fcp plan --histogram magi_histogram.csv --workers 8 --tokens-per-worker 8192 --batches 10 --json
  fcp plan --lengths wikipedia.lengths --workers 16 --tokens-per-worker 16384 --strategy fcp \
      --dump-plan plan.json
  fcp plan --lengths wikipedia.lengths --workers 64 --tokens-per-worker 32768 \
      --coordinator localhost:50051    # plan through fcp-coordinator

A batch for W workers and T tokens per worker draws documents i.i.d. (seeded; batch b uses
seed + b), truncates each to --max-doc-len and fills exactly W x T tokens, all CAUSAL unless
--mask-mix gives each document its mask (from a second seeded stream: same lengths).
Output: a table per batch (--json: one object per line per batch and strategy). Every plan with
at most --validate-max-tiles tiles is checked by the plan validator.
Exit codes: 0 ok, 1 a plan failed or was invalid, 2 bad input.

plan flags (also spelled with underscores, e.g. --tokens_per_worker):
)";

void PrintUsage(std::ostream& out) {
  out << kUsage << PlanFlagsHelp() << "\ncalibration flags:\n" << CalibrationFlagsHelp();
}

int StrategiesCommand() {
  for (const StrategyInfo& s : ListStrategies()) {
    std::cout << absl::StrFormat("%-10s %s\n", s.name, s.description);
  }
  return kExitOk;
}

int PlanCommand(const std::vector<std::string>& args) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, PlanFlagNames());
  if (parsed.ok() && parsed->help) {
    PrintUsage(std::cout);
    return kExitOk;
  }
  absl::StatusOr<PlanConfig> config =
      parsed.ok() ? PlanConfigFromFlags(*parsed) : absl::StatusOr<PlanConfig>(parsed.status());
  if (!config.ok()) {
    std::cerr << "fcp: " << config.status().message() << "\n";
    return kExitBadInput;
  }
  return RunPlanCommand(*config, std::cout, std::cerr);
}

int Main(const std::vector<std::string>& words) {
  if (words.empty()) {
    std::cerr << "fcp: missing command: strategies, plan, calibration or help (try 'fcp help')\n";
    return kExitBadInput;
  }
  const std::string& command = words[0];
  const std::vector<std::string> rest(words.begin() + 1, words.end());
  if (command == "help" || command == "--help" || command == "-h") {
    PrintUsage(std::cout);
    return kExitOk;
  }
  if (command == "strategies" && rest.empty()) return StrategiesCommand();
  if (command == "strategies") {
    std::cerr << "fcp: strategies: unexpected argument '" << rest[0] << "'\n";
    return kExitBadInput;
  }
  if (command == "plan") return PlanCommand(rest);
  if (command == "calibration") return RunCalibrationCommand(rest, std::cout, std::cerr);
  std::cerr << "fcp: unknown command '" << command << "' (try 'fcp help')\n";
  return kExitBadInput;
}

}  // namespace
}  // namespace fcp::cli

int main(int argc, char** argv) {
  fcp::RetainFreedMemoryForReplanning();  // as the coordinator plans (common/malloc_tuning.h)
  fcp::RegisterDcpPlanner();
  return fcp::cli::Main(std::vector<std::string>(argv + 1, argv + argc));
}
