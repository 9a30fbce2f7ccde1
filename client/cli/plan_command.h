// `fcp plan`: draws batches from a workload, plans each with the requested strategies, validates
// the plans and reports them (table or JSON lines); optionally dumps the plan as protobuf JSON.
//
// Validation: each plan is first made summary-only (its planning_ms is the one reported); if it
// has at most config.validate_max_tiles tiles it is made again with every worker's slice and
// checked by fcp::ValidatePlan, otherwise `valid` is reported as unknown with a note on stderr.
// The speed-up column compares predicted step time (forward + backward, or forward only with
// --forward-only) with `ring` on the same batch; ring is planned for reference if not requested.
#ifndef FCP_CLIENT_CLI_PLAN_COMMAND_H_
#define FCP_CLIENT_CLI_PLAN_COMMAND_H_

#include <ostream>

#include "workload/plan_config.h"

namespace fcp::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitPlanFailed = 1;  // a plan could not be made or failed validation
inline constexpr int kExitBadInput = 2;    // bad flags, workload file or batch

// Runs the command; results go to `out`, errors and notes (one line each, "fcp: ...") to `err`.
// Returns the process exit code.
int RunPlanCommand(const PlanConfig& config, std::ostream& out, std::ostream& err);

}  // namespace fcp::cli

#endif  // FCP_CLIENT_CLI_PLAN_COMMAND_H_
