// Row exchanges between the ranks of a plan, in global token order (service/planner/
// token_dispatch.h): what a trainer needs around context-parallel attention to undo the dispatch
// (gather every rank's rows of an output) and to back-propagate through that (scatter the
// gradient of the gathered tensor back, summing what every rank contributed).
//
// Collective: every rank of the transport calls with the same plan and tag (RowsTag(step, call)
// in worker/executor/executor.h). Host memory; rows in the calling rank's local order, which needs
// only its own slice in the plan: rows travel between ranks in canonical order (owned blocks by
// id), which every rank can compute for every other from plan.blocks. Transport errors come back
// naming the peer; a plan without this rank's slice is InvalidArgument naming `rank`.
#ifndef FCP_WORKER_EXECUTOR_ROW_EXCHANGE_H_
#define FCP_WORKER_EXECUTOR_ROW_EXCHANGE_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "kernels/attention.h"
#include "service/planner/plan.h"
#include "worker/transport/transport.h"

namespace fcp {

// global[g] = the row of token g, from whichever rank holds it (an all-gather); `local`:
// [this rank's tokens, row_bytes], `global`: [total tokens, row_bytes].
absl::Status GatherRows(Transport& transport, const Plan& plan, uint64_t tag, size_t row_bytes,
                        const void* local, void* global);

// local[i] = sum over ranks r of global_r[g_i], g_i this rank's token of local row i (a
// reduce-scatter: the gradient of GatherRows). Rows of `row_elements` elements of `dtype`,
// summed in fp32 in rank order and rounded once.
absl::Status ScatterAddRows(Transport& transport, const Plan& plan, uint64_t tag,
                            kernels::DType dtype, int64_t row_elements, const void* global,
                            void* local);

}  // namespace fcp

#endif  // FCP_WORKER_EXECUTOR_ROW_EXCHANGE_H_
