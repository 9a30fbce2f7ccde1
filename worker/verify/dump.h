// `fcp-worker --dump DIR`: a step's tensors of one rank, for anyone to rebuild whole documents and
// check them against their own reference:
//
//   DIR/step<S>/rank<R>/{q,k,v,o,lse,do,dq,dk,dv}.f32   raw little-endian float32, row-major
//                                                        [local_tokens, heads, head_dim]
//                                                        (lse: [local_tokens, q_heads])
//   DIR/step<S>/rank<R>/manifest.json                    rank, q_heads, kv_heads, head_dim,
//                                                        plan_id, step, documents
//                                                        [{length, mask}], blocks [{document,
//                                                        begin, end}] in local (row) order
#ifndef FCP_WORKER_VERIFY_DUMP_H_
#define FCP_WORKER_VERIFY_DUMP_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "kernels/attention.h"
#include "service/planner/plan.h"
#include "worker/executor/executor.h"
#include "worker/verify/step_data.h"

namespace fcp {

// The manifest's JSON text (numbers as JSON numbers; masks as {"kind": "CAUSAL", ...}).
std::string DumpManifestJson(const Plan& plan, const WorkerPlan& worker,
                             const kernels::AttentionShape& shape, int64_t step);

// Writes the files above (directories created as needed). Errors name the file.
absl::Status DumpStep(const std::string& dir, const Plan& plan, int32_t rank,
                      const kernels::AttentionShape& shape, int64_t step, const StepInputs& in,
                      const LocalOutputs& out);

}  // namespace fcp

#endif  // FCP_WORKER_VERIFY_DUMP_H_
