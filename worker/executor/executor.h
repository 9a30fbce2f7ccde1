// The executor: runs one worker's slice of a plan, forward then backward (DESIGN §5).
//
// Forward, round by round: round r+1's KV transfers are posted before round r's tiles run, so
// transfers overlap compute; each tile's partial output is merged into its q block's (o, lse).
// Backward, rounds reversed: tiles are recomputed from the saved LSE, dQ accumulates locally, the
// dK/dV partials of remote blocks go back to their owners in the plan's dKV rounds (posted after
// that round's tiles, overlapping the next round's), and owners add them to their own.
//
// Every message starts with a 16-byte header (plan fingerprint, step): a peer running another
// plan or step is detected at the first exchange and reported, instead of mixing data.
//
//   Executor executor(&transport, shape);  // shape: q_heads, kv_heads, head_dim
//   ASSIGN_OR_RETURN(StepStats stats,
//                    executor.Run(plan, expected_plan_id, step, inputs, &outputs));
#ifndef FCP_WORKER_EXECUTOR_EXECUTOR_H_
#define FCP_WORKER_EXECUTOR_EXECUTOR_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/attention.h"
#include "service/planner/plan.h"
#include "worker/executor/step_types.h"
#include "worker/transport/transport.h"

namespace fcp {

class ExecutorBackend;

class Executor {
 public:
  // On the CPU: host memory, `threads` kernel threads (<= 0: hardware concurrency).
  Executor(Transport* transport, const kernels::AttentionShape& shape, int threads = 0);
  // On `backend` (worker/executor/executor_backend.h; a GPU: worker/executor/cuda_backend.h).
  // Inputs and outputs of Run stay host fp32; the backend holds the step's tensors in its own
  // memory and dtype.
  Executor(Transport* transport, const kernels::AttentionShape& shape,
           std::unique_ptr<ExecutorBackend> backend);
  ~Executor();

  // Runs `plan`'s slice for transport->rank(). Refuses (FailedPrecondition, before any exchange)
  // a slice that fails CheckSlice: another plan id than `expected_plan_id` (empty: any), input
  // sizes that do not match, ids out of range. Transport errors (a peer gone: DeadlineExceeded /
  // Unavailable naming it) are returned as they come; `outputs` is then unspecified.
  absl::StatusOr<StepStats> Run(const Plan& plan, absl::string_view expected_plan_id, int64_t step,
                                const LocalInputs& inputs, LocalOutputs* outputs);

 private:
  Transport* transport_;
  kernels::AttentionShape shape_;
  std::unique_ptr<ExecutorBackend> backend_;
};

// The transport tag of (step, direction, round): unique within a window of 2^24 steps.
uint64_t ExchangeTag(int64_t step, TransferKind kind, int32_t round);
// The tag of the per-step statistics exchange after the step's transfers (never a round's).
uint64_t GatherTag(int64_t step);

}  // namespace fcp

#endif  // FCP_WORKER_EXECUTOR_EXECUTOR_H_
