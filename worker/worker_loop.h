// One rank's training-like loop (what `fcp-worker` runs, per rank): for each step, draw the batch
// (seeded, identical on every rank), get the plan (coordinator with prefetch of the next step, or
// local planning), generate the rank's inputs, execute forward + backward, optionally check the
// outputs against whole-document reference attention and dump them, record metrics, and gather
// every rank's step statistics on rank 0 for the per-step report.
#ifndef FCP_WORKER_WORKER_LOOP_H_
#define FCP_WORKER_WORKER_LOOP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kernels/attention.h"
#include "worker/executor/executor.h"
#include "worker/executor/executor_backend.h"
#include "worker/transport/transport.h"
#include "worker/worker_metrics.h"
#include "workload/plan_config.h"
#include "workload/workload.h"

namespace fcp {

class PlannerClient;

struct WorkerConfig {
  cli::PlanConfig plan;  // workload, model, topology (num_workers = world), strategy, options
  int32_t steps = 3;     // steps 1..steps; step s plans batch seed + s - 1 (the CLI's batch s - 1)
  int32_t threads = 0;   // kernel threads per rank (<= 0: hardware concurrency / ranks here)
  int32_t check_steps = 1;  // compare the first N steps with reference attention
  double check_tolerance = 1e-5;
  std::string dump_dir;  // empty: no dump
  std::string training_job = "fcp-demo";
  // With a coordinator: send each step's measurement to it (ReportStep) so it fits this job's
  // cost model from what the steps really cost.
  bool report_steps = true;
  absl::Duration plan_deadline = absl::Seconds(10);
};

// What rank 0 reports for each step: every rank's figures.
struct StepReport {
  int64_t step = 0;
  std::string strategy;
  std::string plan_id;
  double planning_ms = 0;  // the plan's own planning time
  bool fallback = false;   // rank 0's plan was made locally because the coordinator failed
  double predicted_imbalance = 1;
  // The plan's predicted forward + backward attention time of its slowest worker (the summary's
  // attention_fwd_ms + attention_bwd_ms): attention tiles and the transfers they cannot hide,
  // what fcp-worker runs (no linear layers).
  double predicted_ms = 0;
  int64_t plan_bytes = 0;            // plan's total comm bytes
  std::vector<StepStats> ranks;      // measured, by rank
  std::vector<int64_t> tokens;       // by rank
  double reference_error = -1;       // max relative error over ranks; -1: not checked
  double StepSeconds() const;        // slowest rank's forward + backward
  double MeasuredImbalance() const;  // max / mean attention seconds
  int64_t BytesSent() const;
};

// Runs all steps of `rank` over `transport`. `client`: null = plan locally. `on_step` is called on
// rank 0 only, after each step with every rank's figures. `backend`: where attention runs (null:
// the CPU with config.threads threads). Returns the first error (a failed step stops the loop:
// peers would otherwise wait on an exchange that never comes).
absl::Status RunWorkerLoop(const WorkerConfig& config, const LengthSampler& sampler,
                           Transport* transport, PlannerClient* client, WorkerMetrics* metrics,
                           const std::function<void(const StepReport&)>& on_step,
                           std::unique_ptr<ExecutorBackend> backend = nullptr);

}  // namespace fcp

#endif  // FCP_WORKER_WORKER_LOOP_H_
