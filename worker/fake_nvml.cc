// A stand-in for libnvidia-ml.so.1 for nvml_gauges_test: one GPU, "GPU-fake" (index 0), with fixed
// readings: 37% utilization, 123456789 bytes used, SM clock 1410 MHz. Loaded with dlopen only.
#include <cstring>

namespace {
struct Device {};
Device the_gpu;
}  // namespace

extern "C" {

struct nvmlUtilization_t {
  unsigned int gpu, memory;
};
struct nvmlMemory_t {
  unsigned long long total, free, used;
};

int nvmlInit_v2() { return 0; }
int nvmlShutdown() { return 0; }
int nvmlDeviceGetHandleByUUID(const char* uuid, void** device) {
  if (std::strcmp(uuid, "GPU-fake") != 0) return 13;  // NVML_ERROR_NOT_FOUND
  *device = &the_gpu;
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void** device) {
  if (index != 0) return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *device = &the_gpu;
  return 0;
}
int nvmlDeviceGetUtilizationRates(void* device, nvmlUtilization_t* rates) {
  if (device != &the_gpu) return 2;
  *rates = {37, 5};
  return 0;
}
int nvmlDeviceGetMemoryInfo(void* device, nvmlMemory_t* memory) {
  if (device != &the_gpu) return 2;
  *memory = {80ull << 30, (80ull << 30) - 123456789, 123456789};
  return 0;
}
int nvmlDeviceGetClockInfo(void* device, int type, unsigned int* clock_mhz) {
  if (device != &the_gpu || type != 1) return 2;  // NVML_CLOCK_SM only
  *clock_mhz = 1410;
  return 0;
}

}  // extern "C"
