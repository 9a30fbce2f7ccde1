// The types of one executor step that the executor, its backends and its slice check share: the
// rank's inputs and outputs, the step's statistics and the bound on a plan's rounds. Plain data:
// no kernels, no transport.
#ifndef FCP_WORKER_EXECUTOR_STEP_TYPES_H_
#define FCP_WORKER_EXECUTOR_STEP_TYPES_H_

#include <cstdint>
#include <vector>

namespace fcp {

// This rank's tokens in slice order (WorkerPlan::blocks), row-major as in kernels/attention.h.
struct LocalInputs {
  const float* q = nullptr;    // [tokens, q_heads, head_dim]
  const float* k = nullptr;    // [tokens, kv_heads, head_dim]
  const float* v = nullptr;    // [tokens, kv_heads, head_dim]
  const float* d_o = nullptr;  // [tokens, q_heads, head_dim]: gradient of the output
  int64_t tokens = 0;
};

struct LocalOutputs {
  std::vector<float> o, lse, dq, dk, dv;  // sizes as the inputs (lse: [tokens, q_heads])
};

struct StepStats {
  double forward_seconds = 0;    // wall time of the forward pass
  double backward_seconds = 0;   // wall time of the backward pass
  double attention_seconds = 0;  // time in attention kernels, both passes
  double attention_flops = 0;    // FLOPs of the allowed pairs computed, both passes
  double comm_wait_seconds = 0;  // time blocked waiting for transfers
  int64_t bytes_sent = 0;        // payload bytes (K, V, dK, dV; Q, O, LSE, dO, delta, dQ)
  int64_t bytes_received = 0;
  int64_t tiles = 0;
};

// Rounds of a plan the executor accepts: [0, kMaxRounds) (the round is 17 bits of a transport tag,
// the transfer kind 3).
inline constexpr int32_t kMaxRounds = (1 << 17) - 1;

}  // namespace fcp

#endif  // FCP_WORKER_EXECUTOR_STEP_TYPES_H_
