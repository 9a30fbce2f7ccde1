#include "service/limits.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fcp {
namespace {

absl::Status Over(absl::string_view field, absl::string_view what, absl::string_view flag) {
  return absl::ResourceExhaustedError(
      absl::StrCat(field, ": ", what, ", over the coordinator's limit of ", flag));
}

}  // namespace

absl::Status CheckLimits(const v1::PlanRequest& request, const RequestLimits& limits) {
  if (request.documents_size() > limits.max_documents) {
    return Over("documents", absl::StrCat(request.documents_size(), " documents"),
                absl::StrCat(limits.max_documents, " (--max-documents)"));
  }
  const int32_t workers = request.topology().num_workers();
  if (workers > limits.max_workers) {
    return Over("topology.num_workers", absl::StrCat(workers, " workers"),
                absl::StrCat(limits.max_workers, " (--max-workers)"));
  }
  if (request.ranks_size() > limits.max_workers) {
    return Over("ranks", absl::StrCat(request.ranks_size(), " ranks"),
                absl::StrCat(limits.max_workers, " (--max-workers)"));
  }
  int64_t total = 0;
  for (const v1::Document& d : request.documents()) {
    // Negative lengths are the planner's to reject. total <= the limit, so this cannot overflow.
    const int64_t length = std::max<int64_t>(d.length(), 0);
    if (length > limits.max_total_tokens - total) {
      return Over("documents", absl::StrCat("more than ", limits.max_total_tokens, " tokens"),
                  absl::StrCat(limits.max_total_tokens, " tokens (--max-total-tokens)"));
    }
    total += length;
  }
  const double budget = request.options().time_budget_ms();
  if (budget > limits.max_time_budget_ms) {
    return Over("options.time_budget_ms", absl::StrCat(budget, " ms"),
                absl::StrCat(limits.max_time_budget_ms, " ms (--max-time-budget-ms)"));
  }
  return absl::OkStatus();
}

}  // namespace fcp
