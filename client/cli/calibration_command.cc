#include "client/cli/calibration_command.h"

#include <fstream>
#include <memory>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli/plan_command.h"
#include "fcp/client.h"
#include "workload/flags.h"
#include "workload/plan_config.h"

ABSL_DECLARE_FLAG(std::string, coordinator);
ABSL_FLAG(std::string, job, "", "training job id whose fitted cost model to print (required)");
ABSL_FLAG(std::string, out, "", "also write the fit as a --calibration file here");

namespace fcp::cli {
namespace {

const std::vector<absl::string_view>& CalibrationFlagNames() {
  static const auto* const kNames = new std::vector<absl::string_view>{"coordinator", "job", "out"};
  return *kNames;
}

}  // namespace

std::string CalibrationFlagsHelp() { return FlagsHelp(CalibrationFlagNames()); }

int RunCalibrationCommand(const std::vector<std::string>& args, std::ostream& out,
                          std::ostream& err) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, CalibrationFlagNames());
  if (!parsed.ok()) {
    err << "fcp: calibration: " << parsed.status().message() << "\n";
    return kExitBadInput;
  }
  const std::string target = absl::GetFlag(FLAGS_coordinator);
  const std::string job = absl::GetFlag(FLAGS_job);
  if (target.empty() || job.empty()) {
    err << "fcp: calibration: --coordinator and --job are required\n";
    return kExitBadInput;
  }
  PlannerClientOptions options;
  options.target = target;
  absl::StatusOr<std::unique_ptr<PlannerClient>> client = PlannerClient::Create(options);
  if (!client.ok()) {
    err << "fcp: calibration: " << client.status().message() << "\n";
    return kExitBadInput;
  }
  absl::StatusOr<v1::JobCalibration> fit = (*client)->GetCalibration(job);
  if (!fit.ok()) {
    err << "fcp: calibration: job '" << job << "': " << fit.status().ToString() << "\n";
    return kExitPlanFailed;
  }
  out << absl::StrFormat("# job %s, fitted parameters: %s\n", fit->job_id(),
                         absl::StrJoin(fit->fitted(), ", "))
      << fit->calibration_file();
  const std::string path = absl::GetFlag(FLAGS_out);
  if (!path.empty()) {
    std::ofstream file(path);
    file << fit->calibration_file();
    if (!file.good()) {
      err << "fcp: calibration: cannot write " << path << "\n";
      return kExitPlanFailed;
    }
  }
  return kExitOk;
}

}  // namespace fcp::cli
