// Request limits: what one PlanBatch may ask of the coordinator. Checked on the wire message before
// anything proportional to it is allocated or planned; a request over a limit gets
// RESOURCE_EXHAUSTED naming the field, its value and the limit, e.g.
//   "documents: 250000 documents, over the coordinator's limit of 100000 (--max-documents)".
// (The size of the message itself is bounded earlier, by gRPC: --max-request-bytes.)
#ifndef FCP_SERVICE_LIMITS_H_
#define FCP_SERVICE_LIMITS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "fcp/v1/plan.pb.h"

namespace fcp {

struct RequestLimits {
  int64_t max_documents = 1 << 20;
  int32_t max_workers = 16384;
  int64_t max_total_tokens = int64_t{1} << 34;  // 16G tokens: W = 16K ranks at 1M each
  double max_time_budget_ms = 10000;
};

// OK, or RESOURCE_EXHAUSTED for the first limit `request` is over (documents, topology.num_workers,
// ranks, total tokens, options.time_budget_ms). Values the planner rejects anyway (negative
// lengths, 0 workers) pass here and get INVALID_ARGUMENT from the planner's validation.
absl::Status CheckLimits(const v1::PlanRequest& request, const RequestLimits& limits);

}  // namespace fcp

#endif  // FCP_SERVICE_LIMITS_H_
