// How `fcp plan` reports results: one ResultRow per (batch, strategy), shown as a comparison table
// (with medians over batches) or as JSON lines for other tools.
#ifndef FCP_CLIENT_CLI_REPORT_H_
#define FCP_CLIENT_CLI_REPORT_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "service/planner/plan.h"

namespace fcp::cli {

// What every row of one batch shares.
struct BatchInfo {
  int32_t batch = 0;
  uint64_t seed = 0;
  int32_t workers = 0;
  int64_t tokens_per_worker = 0;
  int64_t tokens = 0;
  int64_t documents = 0;
  int64_t longest_document = 0;
};

struct ResultRow {
  BatchInfo info;
  std::string strategy;  // as requested ("auto", "ring", ...)
  std::string error;     // planning failed: why (then only `strategy` and `info` are set)
  std::string chosen;    // the strategy that made the layout
  std::string plan_id;
  int64_t block_size = 0;
  PlanSummary summary;
  double step_ms = 0;                     // predicted forward (+ backward) ms
  std::optional<double> speedup_vs_ring;  // ring's step_ms / step_ms; none without ring
  std::optional<bool> valid;              // none: validation skipped (too many tiles)

  bool ok() const { return error.empty(); }
};

// "1.23 GB" (decimal units, as bandwidths are GB/s).
std::string HumanBytes(double bytes);

// One JSON object, no newline. Keys: batch, seed, strategy, chosen, workers, tokens, documents,
// block_size, compute_imbalance, token_imbalance, comm_bytes, max_worker_comm_bytes,
// inter_node_bytes, rounds, tiles, predicted_fwd_ms, predicted_bwd_ms, predicted_step_fwd_ms,
// predicted_step_bwd_ms (the same two: the step under the objective, the whole layer by default),
// attention_fwd_ms, attention_bwd_ms (the attention pipeline alone), balanced_fwd_ms,
// balanced_bwd_ms (the perfect-balance bound), max_tokens_per_worker, token_budget (0 = none),
// model, planning_ms, speedup_vs_ring, plan_id, valid; plus error when planning failed (its
// metrics are null).
// Unknown values (no ring to compare with, validation skipped) are null.
std::string JsonLine(const ResultRow& row);

// The comparison table of one batch: a header line, then one line per row.
void PrintBatchTable(const std::vector<ResultRow>& rows, std::ostream& out);

// Per strategy, the median of every metric over `rows` (all batches); valid as "k/n".
void PrintMedians(const std::vector<std::string>& strategies, const std::vector<ResultRow>& rows,
                  std::ostream& out);

}  // namespace fcp::cli

#endif  // FCP_CLIENT_CLI_REPORT_H_
