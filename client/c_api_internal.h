// Shared by the C API's translation units (c_api.cc, c_exec_api.cc, c_dispatch_api.cc), all in
// libfcp.so: the plan handle and the error helpers. Hidden: nothing here is exported.
#ifndef FCP_CLIENT_C_API_INTERNAL_H_
#define FCP_CLIENT_C_API_INTERNAL_H_

#include <string>

#include "absl/base/call_once.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fcp/c_api.h"
#include "fcp/client.h"
#include "service/planner/plan.h"

#pragma GCC visibility push(hidden)

struct fcp_plan {
  fcp::PlanResult result;
  mutable absl::once_flag serialized_once, json_once, core_once;
  mutable std::string serialized, json;
  mutable absl::StatusOr<fcp::Plan> core;  // the plan in planner types, made on first use
};

namespace fcp {
namespace c_api {

// Writes `status` into `error` (if not NULL) and returns its code.
int Fail(const absl::Status& status, fcp_error* error);
inline int Succeed(fcp_error* error) { return Fail(absl::OkStatus(), error); }

// `plan` in planner types (converted once; thread-safe). InvalidArgument naming `plan` for NULL.
absl::StatusOr<const Plan*> CorePlan(const fcp_plan* plan);

}  // namespace c_api
}  // namespace fcp

#pragma GCC visibility pop

#endif  // FCP_CLIENT_C_API_INTERNAL_H_
