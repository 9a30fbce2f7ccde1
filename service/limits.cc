#include "service/limits.h"

#include <algorithm>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "service/planner/plan_size.h"

namespace fcp {
namespace {

absl::Status Over(absl::string_view field, absl::string_view what, absl::string_view flag) {
  return absl::ResourceExhaustedError(
      absl::StrCat(field, ": ", what, ", over the coordinator's limit of ", flag));
}

int64_t SaturatingAdd(int64_t a, int64_t b) {
  return b > std::numeric_limits<int64_t>::max() - a ? std::numeric_limits<int64_t>::max() : a + b;
}

// The strategies that balance compute, whose plan size EstimatedBalancedTransfers estimates.
// (`auto` bounds its own candidates by its time budget.)
bool EstimatesBalancedTransfers(absl::string_view strategy) {
  return strategy == "fcp" || strategy == "grouped" || strategy == "flashcp" ||
         strategy == "flexdeg" || strategy == "dcp";
}

}  // namespace

int64_t MinimumBlocks(const Batch& batch, const PlanOptions& options) {
  const bool ring = options.strategy == "ring";
  const bool sized =
      options.block_size > 0 && (options.strategy == "fcp" || options.strategy == "grouped" ||
                                 options.strategy == "dcp" || options.strategy == "auto");
  if (!ring && !sized) return 0;
  const int64_t chunks = 2 * int64_t{batch.topology.num_workers};
  int64_t blocks = 0;
  for (const Document& d : batch.documents) {
    const int64_t pieces = ring ? std::min(d.length, chunks)
                                : (d.length + options.block_size - 1) / options.block_size;
    blocks = SaturatingAdd(blocks, pieces);
  }
  return blocks;
}

int64_t MinimumTransfers(const Batch& batch, const PlanOptions& options) {
  return MinimumTransfers(options.strategy, batch, options.block_size);
}

absl::Status CheckPlanSize(const Batch& batch, const PlanOptions& options,
                           const RequestLimits& limits) {
  const int64_t transfers = MinimumTransfers(batch, options);
  if (transfers > limits.max_transfers) {
    const std::string how = options.strategy == "ring" ? "W x (W - 1)"
                            : options.strategy == "whole_doc"
                                ? "documents over topology.max_tokens_per_worker cut "
                                  "into k exchanging pieces"
                                : "k x (k - 1) for a document over k ranks";
    return Over(options.strategy, absl::StrCat("at least ", transfers, " KV transfers (", how, ")"),
                absl::StrCat(limits.max_transfers, " (--max-transfers)"));
  }
  if (EstimatesBalancedTransfers(options.strategy)) {
    const int64_t estimate = EstimatedBalancedTransfers(batch);
    if (estimate > limits.max_transfers) {
      return Over(options.strategy,
                  absl::StrCat("about ", estimate,
                               " KV transfers (a document balanced over k ranks exchanges KV "
                               "between ~k x (k - 1) / 2 of their pairs)"),
                  absl::StrCat(limits.max_transfers, " (--max-transfers)"));
    }
  }
  const int64_t blocks = MinimumBlocks(batch, options);
  if (blocks <= limits.max_blocks) return absl::OkStatus();
  const std::string how =
      options.strategy == "ring"
          ? absl::StrCat("2W = ", 2 * int64_t{batch.topology.num_workers}, " chunks per document")
          : absl::StrCat("options.block_size ", options.block_size);
  return Over(options.strategy, absl::StrCat("at least ", blocks, " blocks (", how, ")"),
              absl::StrCat(limits.max_blocks, " (--max-blocks)"));
}

absl::Status CheckJobId(absl::string_view job_id) {
  if (job_id.size() > kMaxJobIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("job_id: ", job_id.size(), " bytes, more than ",
                                                   kMaxJobIdBytes,
                                                   " (it labels every metric of the job)"));
  }
  return absl::OkStatus();
}

absl::Status CheckLimits(const v1::PlanRequest& request, const RequestLimits& limits) {
  RETURN_IF_ERROR(CheckJobId(request.job_id()));
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
