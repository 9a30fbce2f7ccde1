#include "worker/nvml_gauges.h"

#include <dlfcn.h>

#include <utility>

namespace fcp {

// The few NVML declarations used here (nvml.h's ABI, stable since NVML 5: the _v2 entry points).
namespace {
using nvmlReturn_t = int;  // NVML_SUCCESS = 0
using nvmlDevice_t = struct nvmlDevice_st*;
struct nvmlUtilization_t {
  unsigned int gpu;     // percent of the sample period a kernel ran
  unsigned int memory;  // percent of it device memory was read or written
};
struct nvmlMemory_t {
  unsigned long long total, free, used;  // bytes
};
constexpr int kNvmlClockSm = 1;  // NVML_CLOCK_SM
}  // namespace

struct NvmlGauges::Api {
  void* library = nullptr;
  nvmlDevice_t device = nullptr;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  nvmlReturn_t (*by_uuid)(const char*, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*by_index)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*utilization)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*clock)(nvmlDevice_t, int, unsigned int*) = nullptr;
  bool initialized = false;

  ~Api() {
    if (initialized) shutdown();
    if (library != nullptr) dlclose(library);
  }
};

namespace {

template <typename F>
bool Resolve(void* library, const char* name, F* function) {
  *function = reinterpret_cast<F>(dlsym(library, name));
  return *function != nullptr;
}

prometheus::MetricFamily Gauge(const char* name, const char* help,
                               const std::vector<prometheus::ClientMetric::Label>& labels,
                               double value) {
  prometheus::ClientMetric metric;
  metric.label = labels;
  metric.gauge.value = value;
  return {name, help, prometheus::MetricType::Gauge, {metric}};
}

}  // namespace

std::shared_ptr<NvmlGauges> NvmlGauges::Open(const NvmlGaugesOptions& options) {
  auto api = std::make_unique<Api>();
  api->library = dlopen(options.library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (api->library == nullptr) return nullptr;
  void* l = api->library;
  if (!Resolve(l, "nvmlInit_v2", &api->init) || !Resolve(l, "nvmlShutdown", &api->shutdown) ||
      !Resolve(l, "nvmlDeviceGetHandleByUUID", &api->by_uuid) ||
      !Resolve(l, "nvmlDeviceGetHandleByIndex_v2", &api->by_index) ||
      !Resolve(l, "nvmlDeviceGetUtilizationRates", &api->utilization) ||
      !Resolve(l, "nvmlDeviceGetMemoryInfo", &api->memory) ||
      !Resolve(l, "nvmlDeviceGetClockInfo", &api->clock)) {
    return nullptr;
  }
  if (api->init() != 0) return nullptr;
  api->initialized = true;
  const nvmlReturn_t found =
      options.labels.gpu_uuid.empty()
          ? api->by_index(static_cast<unsigned int>(options.device_index), &api->device)
          : api->by_uuid(options.labels.gpu_uuid.c_str(), &api->device);
  if (found != 0) return nullptr;
  return std::shared_ptr<NvmlGauges>(new NvmlGauges(options.labels, std::move(api)));
}

NvmlGauges::NvmlGauges(const WorkerLabels& labels, std::unique_ptr<Api> api)
    : labels_(labels), api_(std::move(api)) {}

NvmlGauges::~NvmlGauges() = default;

std::vector<prometheus::MetricFamily> NvmlGauges::Collect() const {
  std::vector<prometheus::ClientMetric::Label> labels;
  for (const auto& [name, value] : WorkerLabelMap(labels_)) labels.push_back({name, value});
  std::vector<prometheus::MetricFamily> out;
  nvmlUtilization_t utilization{};
  if (api_->utilization(api_->device, &utilization) == 0) {
    out.push_back(Gauge("fcp_worker_gpu_utilization_ratio",
                        "Share of NVML's last sample period in which a kernel ran on the GPU.",
                        labels, utilization.gpu / 100.0));
  }
  nvmlMemory_t memory{};
  if (api_->memory(api_->device, &memory) == 0) {
    out.push_back(Gauge("fcp_worker_gpu_memory_used_bytes",
                        "GPU memory in use (all processes), bytes.", labels,
                        static_cast<double>(memory.used)));
  }
  unsigned int clock_mhz = 0;
  if (api_->clock(api_->device, kNvmlClockSm, &clock_mhz) == 0) {
    out.push_back(Gauge("fcp_worker_gpu_sm_clock_hertz", "The GPU's current SM clock, hertz.",
                        labels, clock_mhz * 1e6));
  }
  return out;
}

}  // namespace fcp
