// Tiny Status helpers: Debian 12's Abseil (20220623) predates ABSL_RETURN_IF_ERROR.
//
//   RETURN_IF_ERROR(DoThing());
//   ASSIGN_OR_RETURN(Plan plan, MakePlan(batch, options));
#ifndef FCP_COMMON_STATUS_MACROS_H_
#define FCP_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FCP_STATUS_CONCAT_INNER_(a, b) a##b
#define FCP_STATUS_CONCAT_(a, b) FCP_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                  \
  do {                                         \
    const ::absl::Status fcp_status_ = (expr); \
    if (!fcp_status_.ok()) return fcp_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  FCP_ASSIGN_OR_RETURN_IMPL_(FCP_STATUS_CONCAT_(fcp_statusor_, __LINE__), lhs, expr)

#define FCP_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  if (!statusor.ok()) return statusor.status();         \
  lhs = std::move(statusor).value()

#endif  // FCP_COMMON_STATUS_MACROS_H_
