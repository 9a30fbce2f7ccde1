// NvmlGauges against a fake libnvidia-ml (FCP_FAKE_NVML, worker/fake_nvml.cc), and absent without
// NVML; a CPU TrainerExecutor's metrics endpoint serves without them.
#include "worker/nvml_gauges.h"

#include <unistd.h>

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/http_get.h"
#include "worker/trainer_executor.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const WorkerLabels kLabels{"job-7", 3, 1, "GPU-fake"};

NvmlGaugesOptions Fake(const std::string& uuid = "GPU-fake") {
  NvmlGaugesOptions options;
  options.labels = kLabels;
  options.labels.gpu_uuid = uuid;
  options.library = FCP_FAKE_NVML;
  return options;
}

TEST(NvmlGaugesTest, ReadsTheDevicesUtilizationMemoryAndClockLabelledLikeTheRank) {
  std::shared_ptr<NvmlGauges> gauges = NvmlGauges::Open(Fake());
  ASSERT_NE(gauges, nullptr);
  std::map<std::string, double> values;
  for (const prometheus::MetricFamily& family : gauges->Collect()) {
    EXPECT_EQ(family.type, prometheus::MetricType::Gauge) << family.name;
    ASSERT_EQ(family.metric.size(), 1u) << family.name;
    std::map<std::string, std::string> labels;
    for (const auto& label : family.metric[0].label) labels[label.name] = label.value;
    EXPECT_EQ(labels, WorkerLabelMap(kLabels)) << family.name;
    values[family.name] = family.metric[0].gauge.value;
  }
  EXPECT_EQ(values, (std::map<std::string, double>{{"fcp_worker_gpu_utilization_ratio", 0.37},
                                                   {"fcp_worker_gpu_memory_used_bytes", 123456789},
                                                   {"fcp_worker_gpu_sm_clock_hertz", 1410e6}}));
}

TEST(NvmlGaugesTest, WithoutAUuidTheDeviceIsPickedByIndex) {
  NvmlGaugesOptions options = Fake("");
  EXPECT_NE(NvmlGauges::Open(options), nullptr);
  options.device_index = 1;
  EXPECT_EQ(NvmlGauges::Open(options), nullptr);
}

TEST(NvmlGaugesTest, AbsentWithoutTheLibraryOrTheDevice) {
  NvmlGaugesOptions options = Fake();
  options.library = "libfcp-no-such-nvml.so.1";
  EXPECT_EQ(NvmlGauges::Open(options), nullptr);
  EXPECT_EQ(NvmlGauges::Open(Fake("GPU-another")), nullptr);
}

TEST(NvmlGaugesTest, AbsentOnAMachineWithoutAGpuDriver) {
  if (access("/dev/nvidiactl", F_OK) == 0) GTEST_SKIP() << "this machine has an NVIDIA driver";
  NvmlGaugesOptions options;  // the real libnvidia-ml.so.1, if installed at all
  options.labels = kLabels;
  EXPECT_EQ(NvmlGauges::Open(options), nullptr);
}

TEST(NvmlGaugesTest, ACpuExecutorsEndpointServesWithoutGpuGauges) {
  TrainerExecutorOptions options;
  options.transport = "loopback";
  options.job_id = "cpu-job";
  options.threads = 1;
  options.metrics_port = FreePort();
  absl::StatusOr<std::unique_ptr<TrainerExecutor>> executor = TrainerExecutor::Create(options);
  ASSERT_TRUE(executor.ok()) << executor.status();
  absl::StatusOr<std::string> body = HttpGet(options.metrics_port, "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr("fcp_worker_steps_total{"));
  EXPECT_THAT(*body, HasSubstr("training_job=\"cpu-job\""));
  EXPECT_THAT(*body, Not(HasSubstr("fcp_worker_gpu_")));
}

}  // namespace
}  // namespace fcp
