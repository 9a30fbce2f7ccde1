// The executor: runs one worker's slice of a plan, forward and backward (DESIGN §5), on tensors
// the caller owns (a trainer's activations) or, through Run, on host fp32 inputs (fcp-worker, the
// benchmarks).
//
// Forward, round by round: round r+1's KV transfers are posted before round r's tiles run, so
// transfers overlap compute; each tile's partial output is merged into its q block's (o, lse).
// The K/V blocks received stay in the forward's context. Backward, rounds reversed: tiles are
// recomputed from the saved LSE, dQ accumulates locally, the dK/dV partials of remote blocks go
// back to their owners in the plan's dKV rounds (posted after that round's tiles, overlapping the
// next round's), and owners add them to their own.
//
// Placed computation (service/planner/plan.h): a rank computing tiles of a q block it does not
// own receives its Q rows with the forward round's KV (one message per peer and round), keeps a
// partial (O, LSE) for it and sends that back after its rounds (the return phase), where the owner
// merges it by LSE; the backward starts with the owners sending dO, final LSE and delta of such q
// blocks, and ends with the partial dQ going back to be summed.
//
// Every message starts with a 16-byte header (plan fingerprint, step): a peer running another
// plan or step is detected at the first exchange and reported, instead of mixing data. Tags carry
// the call's number: every rank makes the same sequence of Forward calls (e.g. one per layer,
// all with the same step), and each Backward reuses its forward's number, so layers never mix.
//
//   Executor executor(&transport, shape);  // shape: q_heads, kv_heads, head_dim
//   ASSIGN_OR_RETURN(std::unique_ptr<ForwardContext> context,
//                    executor.Forward(plan, "", step, {dtype, dtype, q, k, v, o, lse, tokens}));
//   ASSIGN_OR_RETURN(StepStats backward, executor.Backward(*context, {d_o, dq, dk, dv}));
//   // or, host fp32 in and out, both passes: executor.Run(plan, plan_id, step, inputs, &outputs)
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

// Caller-owned tensors of one forward, in the backend's memory, rows in slice order.
struct ForwardTensors {
  kernels::DType dtype = kernels::DType::kFp32;      // of q, k, v (and of d_o at backward)
  kernels::DType out_dtype = kernels::DType::kFp32;  // of o (and of dq, dk, dv at backward)
  const void* q = nullptr;                           // [tokens, q_heads, head_dim]
  const void* k = nullptr;                           // [tokens, kv_heads, head_dim]
  const void* v = nullptr;
  void* o = nullptr;     // [tokens, q_heads, head_dim], written
  float* lse = nullptr;  // [tokens, q_heads], written (the context reads it at backward)
  int64_t tokens = 0;
};

struct BackwardTensors {
  const void* d_o = nullptr;  // like o, in the forward's dtype
  void* dq = nullptr;         // like q, k, v, in the forward's out_dtype; overwritten
  void* dk = nullptr;
  void* dv = nullptr;
};

// `a`'s figures plus `b`'s (tiles: a's, the tiles of one slice).
StepStats CombineStats(const StepStats& a, const StepStats& b);

class ExecutorBackend;
class Executor;

// What a backward needs from its forward: the slice's schedule, the K/V blocks received, fp32
// state, pointers to the forward's tensors (which must stay valid and unchanged). Self-contained:
// the plan may go away; it may outlive its executor (it can then only be destroyed).
class ForwardContext {
 public:
  struct State;
  explicit ForwardContext(std::unique_ptr<State> state);
  ~ForwardContext();
  const StepStats& stats() const;  // the forward's
  const Executor* executor() const;
  int64_t tokens() const;
  bool backward_done() const;
  double predicted_seconds() const;  // the plan's forward + backward for this slice
  State& state() { return *state_; }

 private:
  std::unique_ptr<State> state_;
};

class Executor {
 public:
  // On the CPU: host memory, `threads` kernel threads (<= 0: hardware concurrency).
  Executor(Transport* transport, const kernels::AttentionShape& shape, int threads = 0);
  // On `backend` (worker/executor/executor_backend.h; a GPU: worker/executor/cuda_backend.h).
  Executor(Transport* transport, const kernels::AttentionShape& shape,
           std::unique_ptr<ExecutorBackend> backend);
  ~Executor();

  // Forward of `plan`'s slice for transport->rank(), on `tensors` (backend memory). Refuses,
  // before any exchange: a slice that fails CheckSlice (FailedPrecondition: another plan id than
  // `expected_plan_id` (empty: any), tensors.tokens not the slice's rows, ids out of range); a bad
  // shape or null tensor (InvalidArgument naming it). On a GPU the work is ordered after what
  // `stream` (a cudaStream_t) holds; on return, outputs are complete. Transport errors (a peer
  // gone: DeadlineExceeded / Unavailable naming it) are returned as they come.
  absl::StatusOr<std::unique_ptr<ForwardContext>> Forward(const Plan& plan,
                                                          absl::string_view expected_plan_id,
                                                          int64_t step,
                                                          const ForwardTensors& tensors,
                                                          void* stream = nullptr);
  // Backward of `context`'s forward (made by this executor, once): dq, dk, dv from d_o. Returns
  // the backward's figures (backward_seconds, its kernels, bytes, waits).
  absl::StatusOr<StepStats> Backward(ForwardContext& context, const BackwardTensors& tensors,
                                     void* stream = nullptr);

  // Forward + Backward on host fp32 inputs (copied to the backend and converted to its dtype()
  // when it holds device memory); outputs are host fp32. `outputs` is unspecified on error.
  absl::StatusOr<StepStats> Run(const Plan& plan, absl::string_view expected_plan_id, int64_t step,
                                const LocalInputs& inputs, LocalOutputs* outputs);

  // The attention shape of later forwards (a context keeps its own for its backward).
  void set_shape(const kernels::AttentionShape& shape) { shape_ = shape; }
  // Numbers of collective calls (forwards, row exchanges), the same sequence on every rank.
  uint32_t NextCall() { return next_call_++; }
  Transport* transport() const { return transport_; }
  ExecutorBackend& backend() const { return *backend_; }
  const kernels::AttentionShape& shape() const { return shape_; }

 private:
  Transport* transport_;
  kernels::AttentionShape shape_;
  std::unique_ptr<ExecutorBackend> backend_;
  uint32_t next_call_ = 0;
};

// The transport tag of (step, transfer kind, round, call): step within a window of 2^24 steps,
// call within 2^16 calls; below 2^60 (the gloo transport's limit). A forward round's KV and Q
// share one exchange, under kKv's tag.
uint64_t ExchangeTag(int64_t step, TransferKind kind, int32_t round, uint32_t call = 0);
// The tag of the per-step statistics exchange after the step's transfers (never a round's).
uint64_t GatherTag(int64_t step);
// The tag of a row exchange (worker/executor/row_exchange.h) of collective call `call`.
uint64_t RowsTag(int64_t step, uint32_t call);

}  // namespace fcp

#endif  // FCP_WORKER_EXECUTOR_EXECUTOR_H_
