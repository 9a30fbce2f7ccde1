#include "worker/worker_metrics.h"

#include <map>

#include "absl/strings/str_cat.h"

namespace fcp {
namespace {

using Labels = std::map<std::string, std::string>;

Labels With(Labels labels, const std::string& key, const std::string& value) {
  labels[key] = value;
  return labels;
}

prometheus::Counter& Counter(prometheus::Registry& r, const std::string& name,
                             const std::string& help, const Labels& labels) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add(labels);
}

prometheus::Gauge& Gauge(prometheus::Registry& r, const std::string& name, const std::string& help,
                         const Labels& labels) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add(labels);
}

// Step times from 1 ms (small CPU steps) to 5 minutes.
prometheus::Histogram::BucketBoundaries StepBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
}

}  // namespace

std::map<std::string, std::string> WorkerLabelMap(const WorkerLabels& l) {
  return {{"training_job", l.training_job},
          {"rank", absl::StrCat(l.rank)},
          {"node", absl::StrCat(l.node)},
          {"gpu_uuid", l.gpu_uuid}};
}

WorkerMetrics::WorkerMetrics(prometheus::Registry& registry, const WorkerLabels& labels)
    : steps_(Counter(registry, "fcp_worker_steps_total", "Steps executed (forward + backward).",
                     WorkerLabelMap(labels))),
      errors_(Counter(registry, "fcp_worker_step_errors_total",
                      "Steps that failed: transport errors, refused plans, failed checks.",
                      WorkerLabelMap(labels))),
      attention_seconds_(Counter(registry, "fcp_worker_attention_seconds_total",
                                 "Seconds spent in attention kernels, forward and backward.",
                                 WorkerLabelMap(labels))),
      attention_flops_(Counter(registry, "fcp_worker_attention_flops_total",
                               "Attention FLOPs computed (allowed pairs), forward and backward.",
                               WorkerLabelMap(labels))),
      bytes_sent_(Counter(registry, "fcp_worker_comm_bytes_total",
                          "Payload bytes exchanged with peers (K, V, dK, dV), by direction.",
                          With(WorkerLabelMap(labels), "direction", "sent"))),
      bytes_received_(Counter(registry, "fcp_worker_comm_bytes_total",
                              "Payload bytes exchanged with peers (K, V, dK, dV), by direction.",
                              With(WorkerLabelMap(labels), "direction", "received"))),
      wait_seconds_(Counter(registry, "fcp_worker_comm_wait_seconds_total",
                            "Seconds blocked waiting for transfers (not hidden by compute).",
                            WorkerLabelMap(labels))),
      step_seconds_(prometheus::BuildHistogram()
                        .Name("fcp_worker_step_seconds")
                        .Help("Wall time of a step's attention, forward + backward, seconds.")
                        .Register(registry)
                        .Add(WorkerLabelMap(labels), StepBuckets())),
      tokens_(Gauge(registry, "fcp_worker_tokens", "Tokens this rank held in the last step.",
                    WorkerLabelMap(labels))),
      predicted_(Gauge(registry, "fcp_worker_predicted_step_seconds",
                       "The plan's predicted attention step time for this rank (fwd + bwd).",
                       WorkerLabelMap(labels))),
      fallbacks_(Counter(registry, "fcp_worker_plan_fallbacks_total",
                         "Plans made locally because the coordinator could not answer.",
                         WorkerLabelMap(labels))) {}

void WorkerMetrics::RecordStep(const StepStats& stats, int64_t tokens, double predicted_seconds) {
  steps_.Increment();
  attention_seconds_.Increment(stats.attention_seconds);
  attention_flops_.Increment(stats.attention_flops);
  bytes_sent_.Increment(static_cast<double>(stats.bytes_sent));
  bytes_received_.Increment(static_cast<double>(stats.bytes_received));
  wait_seconds_.Increment(stats.comm_wait_seconds);
  step_seconds_.Observe(stats.forward_seconds + stats.backward_seconds);
  tokens_.Set(static_cast<double>(tokens));
  predicted_.Set(predicted_seconds);
}

void WorkerMetrics::RecordError() { errors_.Increment(); }

void WorkerMetrics::RecordFallbacks(int64_t count) {
  if (count > 0) fallbacks_.Increment(static_cast<double>(count));
}

}  // namespace fcp
