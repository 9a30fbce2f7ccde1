// Test support for executor backends: a small batch, and every rank of a plan run as a thread over
// the loopback transport with a backend (and optionally a transport wrapper) of the test's choice.
#ifndef FCP_WORKER_VERIFY_EXECUTOR_TESTING_H_
#define FCP_WORKER_VERIFY_EXECUTOR_TESTING_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/planner/batch.h"
#include "service/planner/plan.h"
#include "worker/executor/executor.h"
#include "worker/executor/executor_backend.h"
#include "worker/transport/transport.h"

namespace fcp {

inline constexpr uint64_t kTestSeed = 7;
inline constexpr int64_t kTestStep = 1;

// ~96 tokens per worker of documents of 1..300 tokens under `mask`, one of them spanning several
// workers; 4 query heads over 2 kv heads of `head_dim`.
Batch BackendTestBatch(const Mask& mask, int32_t world, int32_t head_dim, uint64_t seed);

// Test masks by number: 0 causal, 1 full, 2 sliding window 37, 3 prefix-LM 50.
Mask MaskOfKind(int kind);

// `strategy`'s plan of `batch` with blocks of 64 tokens, every rank's slice.
Plan BackendTestPlan(const Batch& batch, const std::string& strategy);

kernels::AttentionShape ShapeOf(const Batch& batch);

struct RankRun {
  absl::Status status;
  LocalOutputs outputs;
  StepStats stats;
};

using BackendFactory = std::function<std::unique_ptr<ExecutorBackend>(int32_t rank)>;
// Wraps rank r's loopback transport (e.g. to inspect what it is handed; called after rank r's
// backend was made); identity when null.
using TransportWrapper =
    std::function<std::unique_ptr<Transport>(std::unique_ptr<Transport> loopback)>;

// Runs step kTestStep of every rank on its own thread with deterministic inputs (seed kTestSeed).
std::vector<RankRun> RunRanks(const Plan& plan, const Batch& batch, const BackendFactory& backend,
                              const TransportWrapper& wrap = nullptr,
                              absl::Duration timeout = absl::Seconds(60));

}  // namespace fcp

#endif  // FCP_WORKER_VERIFY_EXECUTOR_TESTING_H_
