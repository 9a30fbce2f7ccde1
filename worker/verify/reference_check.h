// Checks one rank's outputs of a step against single-process attention: for every document the
// rank holds tokens of, the whole document's inputs are rebuilt (step_data.h), reference attention
// runs over it (kernels/reference.h), and the rank's rows of o, lse, dq, dk and dv are compared.
#ifndef FCP_WORKER_VERIFY_REFERENCE_CHECK_H_
#define FCP_WORKER_VERIFY_REFERENCE_CHECK_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/attention.h"
#include "service/planner/plan.h"
#include "worker/executor/executor.h"

namespace fcp {

struct ReferenceError {
  // Per tensor: max |out - ref| / max |ref| over each document's compared rows, max over documents.
  double o = 0, lse = 0, dq = 0, dk = 0, dv = 0;
  int32_t documents = 0;  // documents compared
  double Max() const;
  std::string ToString() const;  // "o 3.1e-07 lse 1.2e-07 dq ... (12 documents)"
};

absl::StatusOr<ReferenceError> CompareWithReference(const Plan& plan, int32_t rank,
                                                    const kernels::AttentionShape& shape,
                                                    uint64_t seed, int64_t step,
                                                    const LocalOutputs& outputs);

}  // namespace fcp

#endif  // FCP_WORKER_VERIFY_REFERENCE_CHECK_H_
