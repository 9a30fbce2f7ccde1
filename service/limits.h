// Request limits: what one PlanBatch may ask of the coordinator. Checked on the wire message before
// anything proportional to it is allocated or planned; a request over a limit gets
// RESOURCE_EXHAUSTED naming the field, its value and the limit, e.g.
//   "documents: 250000 documents, over the coordinator's limit of 100000 (--max-documents)".
// (The size of the message itself is bounded earlier, by gRPC: --max-request-bytes.)
//
// A small request can still ask for a large plan: 1,000 documents of 100K tokens over W = 4096
// ranks is a 3 KB message, but `ring` cuts each document into 2W chunks (8M blocks, 1.5 GB and
// 24 s of planning); one 8K-token document over W = 4096 is 10 bytes, but `ring` passes KV
// around all W ranks (W x (W - 1) transfers: 1.5 GB and 15 s). CheckPlanSize bounds the blocks
// and transfers a planning will make, on the converted batch, before planning.
#ifndef FCP_SERVICE_LIMITS_H_
#define FCP_SERVICE_LIMITS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fcp/v1/plan.pb.h"
#include "service/planner/batch.h"
#include "service/planner/planner.h"

namespace fcp {

// Longest job_id accepted: it becomes the training_job label of every coordinator metric.
constexpr size_t kMaxJobIdBytes = 256;

struct RequestLimits {
  int64_t max_documents = 1 << 20;
  int32_t max_workers = 16384;
  int64_t max_total_tokens = int64_t{1} << 34;  // 16G tokens: W = 16K ranks at 1M each
  double max_time_budget_ms = 10000;
  // Blocks one planning may make, checked on MinimumBlocks. 4M: about 0.8 GB and 12 s of ring
  // planning (measured: ~190 bytes and ~3 us per block).
  int64_t max_blocks = int64_t{1} << 22;
  // KV transfers one planning may schedule, checked on MinimumTransfers. 4M: ring up to W = 2048
  // (measured at W = 2048: 0.4 GB and 7 s).
  int64_t max_transfers = int64_t{1} << 22;
};

// OK, or INVALID_ARGUMENT for a job_id longer than kMaxJobIdBytes.
absl::Status CheckJobId(absl::string_view job_id);

// OK, or RESOURCE_EXHAUSTED for the first limit `request` is over (documents, topology.num_workers,
// ranks, total tokens, options.time_budget_ms), or INVALID_ARGUMENT for a job_id longer than
// kMaxJobIdBytes. Values the planner rejects anyway (negative lengths, 0 workers) pass here and get
// INVALID_ARGUMENT from the planner's validation.
absl::Status CheckLimits(const v1::PlanRequest& request, const RequestLimits& limits);

// The blocks planning `batch` with `options` is sure to make, where the request alone says
// (validated inputs): `ring` cuts every document into exactly min(length, 2W) chunks; `fcp` and
// `dcp` (and `auto`, which runs `fcp`) with an explicit options.block_size cut it into blocks of
// at most that size, at least ceil(length / block_size). Otherwise 0: the other strategies, and
// automatic block sizes, follow the batch's balance rather than a size the request sets. Costs
// O(documents).
int64_t MinimumBlocks(const Batch& batch, const PlanOptions& options);

// (worker, worker) KV transfers a planning of `batch` with `options.strategy` is sure to schedule
// (ring, per_doc, and whole_doc under a memory cap; see fcp::MinimumTransfers in
// service/planner/plan_size.h), 0 for the others. Costs O(documents).
int64_t MinimumTransfers(const Batch& batch, const PlanOptions& options);

// OK, or RESOURCE_EXHAUSTED when MinimumTransfers is over limits.max_transfers, e.g. "ring: at
// least 16773120 KV transfers (W x (W - 1)), over the coordinator's limit of 4194304
// (--max-transfers)"; for the strategies that balance compute (fcp, flashcp, flexdeg, dcp) when
// EstimatedBalancedTransfers (service/planner/plan_size.h) is, e.g. "fcp: about 8386560 KV
// transfers (...)" for one 2M-token causal document over W = 4096; or MinimumBlocks over
// limits.max_blocks, e.g. "ring: at least 8192000 blocks (2W = 8192 chunks per document), over the
// coordinator's limit of 4194304
// (--max-blocks)".
absl::Status CheckPlanSize(const Batch& batch, const PlanOptions& options,
                           const RequestLimits& limits);

}  // namespace fcp

#endif  // FCP_SERVICE_LIMITS_H_
