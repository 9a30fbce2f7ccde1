// WorkerMetrics: one rank's Prometheus metrics (prometheus-cpp), labelled
// {training_job, rank, node, gpu_uuid} (gpu_uuid empty on CPU):
//
//   fcp_worker_steps_total                     steps executed
//   fcp_worker_step_errors_total               steps that failed (transport, plan, check)
//   fcp_worker_attention_seconds_total         time in attention kernels, forward + backward
//   fcp_worker_attention_flops_total           FLOPs of the allowed pairs computed
//   fcp_worker_comm_bytes_total{direction}     payload bytes "sent" / "received"
//   fcp_worker_comm_wait_seconds_total         time blocked waiting for transfers
//   fcp_worker_step_seconds                    forward + backward wall time per step (histogram)
//   fcp_worker_tokens                          tokens this rank held in the last step
//   fcp_worker_predicted_step_seconds          the plan's predicted step time for this rank
//   fcp_worker_plan_fallbacks_total            plans made locally because the coordinator
//                                              could not answer
//
// Several ranks may share one registry (loopback mode: all ranks in one process). Thread-safe.
#ifndef FCP_WORKER_WORKER_METRICS_H_
#define FCP_WORKER_WORKER_METRICS_H_

#include <map>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "worker/executor/executor.h"

namespace fcp {

struct WorkerLabels {
  std::string training_job;
  int32_t rank = 0;
  int32_t node = 0;
  std::string gpu_uuid;
};

// {training_job, rank, node, gpu_uuid} as Prometheus labels (for other collectables of the rank,
// e.g. worker/nvml_gauges.h).
std::map<std::string, std::string> WorkerLabelMap(const WorkerLabels& labels);

class WorkerMetrics {
 public:
  // The families are created in `registry` on first use (shared by every rank registered there);
  // `registry` must outlive this object.
  WorkerMetrics(prometheus::Registry& registry, const WorkerLabels& labels);

  void RecordStep(const StepStats& stats, int64_t tokens, double predicted_seconds);
  void RecordError();
  void RecordFallbacks(int64_t count);

 private:
  prometheus::Counter& steps_;
  prometheus::Counter& errors_;
  prometheus::Counter& attention_seconds_;
  prometheus::Counter& attention_flops_;
  prometheus::Counter& bytes_sent_;
  prometheus::Counter& bytes_received_;
  prometheus::Counter& wait_seconds_;
  prometheus::Histogram& step_seconds_;
  prometheus::Gauge& tokens_;
  prometheus::Gauge& predicted_;
  prometheus::Counter& fallbacks_;
};

}  // namespace fcp

#endif  // FCP_WORKER_WORKER_METRICS_H_
