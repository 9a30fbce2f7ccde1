// `fcp calibration --coordinator ADDR --job J [--out FILE]`: prints the cost model the
// coordinator fitted for job J from its workers' step reports (the closed loop, DESIGN §4), as a
// `--calibration` file (key = value lines, provenance in comments); --out also writes it there,
// for `fcp plan --calibration FILE` or `fcp-worker --calibration FILE`.
#ifndef FCP_CLIENT_CLI_CALIBRATION_COMMAND_H_
#define FCP_CLIENT_CLI_CALIBRATION_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

namespace fcp::cli {

// The words after "calibration". Exit codes: 0 ok; 1 (kExitPlanFailed) the coordinator failed
// (NOT_FOUND: the job has not reported); 2 bad input.
int RunCalibrationCommand(const std::vector<std::string>& args, std::ostream& out,
                          std::ostream& err);

// Help lines of its flags.
std::string CalibrationFlagsHelp();

}  // namespace fcp::cli

#endif  // FCP_CLIENT_CLI_CALIBRATION_COMMAND_H_
