// Deterministic inputs of a training-like step. Every element of Q, K, V and dO is a function of
// (seed, step, document, position in the document, tensor, element) alone, so any process can
// rebuild any token's rows without talking to the rank that holds it: that is what lets each rank
// check its slice against whole-document reference attention, and anyone rebuild a dump.
#ifndef FCP_WORKER_VERIFY_STEP_DATA_H_
#define FCP_WORKER_VERIFY_STEP_DATA_H_

#include <cstdint>
#include <vector>

#include "kernels/attention.h"
#include "service/planner/plan.h"
#include "worker/executor/executor.h"

namespace fcp {

enum class StepTensor : uint8_t { kQ = 0, kK = 1, kV = 2, kDo = 3 };

// Rows [begin, end) of `tensor` of `document` (row_elems floats per row), uniform in [-1, 1).
void FillRows(uint64_t seed, int64_t step, int32_t document, int64_t begin, int64_t end,
              StepTensor tensor, int64_t row_elems, float* out);

// This rank's inputs, in slice order (WorkerPlan::blocks).
struct StepInputs {
  std::vector<float> q, k, v, d_o;
  int64_t tokens = 0;
  LocalInputs View() const { return {q.data(), k.data(), v.data(), d_o.data(), tokens}; }
};

StepInputs MakeStepInputs(const Plan& plan, const WorkerPlan& worker,
                          const kernels::AttentionShape& shape, uint64_t seed, int64_t step);

}  // namespace fcp

#endif  // FCP_WORKER_VERIFY_STEP_DATA_H_
