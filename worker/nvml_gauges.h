// NvmlGauges: one GPU's NVML readings as Prometheus gauges beside the fcp_worker_* metrics
// (issue 24 item 6), labelled like them {training_job, rank, node, gpu_uuid}:
//
//   fcp_worker_gpu_utilization_ratio   share of the last sample period a kernel ran (0-1)
//   fcp_worker_gpu_memory_used_bytes   device memory in use (all processes)
//   fcp_worker_gpu_sm_clock_hertz      current SM clock
//
// NVML is dlopen'ed at run time (no link dependency, no CUDA toolkit needed to build): without
// libnvidia-ml.so.1, without a driver, or without the GPU, Open returns null and the gauges are
// simply absent. The readings are taken at each scrape (Collect), so they are as fresh as the
// scrape; a reading NVML refuses at that moment is left out of that scrape.
//
//   std::shared_ptr<NvmlGauges> gpu = NvmlGauges::Open({labels});  // null: no NVML
//   if (gpu != nullptr) exposer.RegisterCollectable(gpu);
//
// Thread-safe (NVML is). The exposer holds a weak_ptr: keep the shared_ptr while it serves.
#ifndef FCP_WORKER_NVML_GAUGES_H_
#define FCP_WORKER_NVML_GAUGES_H_

#include <memory>
#include <string>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "worker/worker_metrics.h"

namespace fcp {

struct NvmlGaugesOptions {
  WorkerLabels labels;       // labels.gpu_uuid ("GPU-...", as CudaBackend::uuid()) picks the device
  int32_t device_index = 0;  // NVML's index, used only when labels.gpu_uuid is empty
  std::string library = "libnvidia-ml.so.1";  // what dlopen loads (tests load a fake)
};

class NvmlGauges final : public prometheus::Collectable {
 public:
  // Null when NVML cannot be used here: the library does not load, lacks a function, nvmlInit
  // fails (no driver) or the device is not found. Never an error: the gauges are optional.
  static std::shared_ptr<NvmlGauges> Open(const NvmlGaugesOptions& options);
  ~NvmlGauges() override;

  std::vector<prometheus::MetricFamily> Collect() const override;

  struct Api;  // the NVML functions resolved with dlsym

 private:
  NvmlGauges(const WorkerLabels& labels, std::unique_ptr<Api> api);

  const WorkerLabels labels_;
  std::unique_ptr<Api> api_;
};

}  // namespace fcp

#endif  // FCP_WORKER_NVML_GAUGES_H_
