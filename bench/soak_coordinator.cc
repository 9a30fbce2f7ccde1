#include "bench/soak_coordinator.h"

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "service/metrics_testing.h"
#include "tests/http_get.h"

namespace fcp::soak {

SoakCoordinator::SoakCoordinator(const std::string& binary, const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {binary, "--host",         "127.0.0.1", "--port",
                                   "0",    "--metrics-port", "0"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  process_ = std::make_unique<Subprocess>(argv);
  if (!process_->Start().ok()) return;
  absl::StatusOr<std::string> line = process_->ReadLine(absl::Seconds(60));
  if (!line.ok() ||
      std::sscanf(line->c_str(),
                  "fcp-coordinator: serving fcp.v1.Planner on port %d, metrics on port %d", &port_,
                  &metrics_port_) != 2) {
    port_ = 0;
  }
}

std::string SoakCoordinator::target() const { return absl::StrCat("127.0.0.1:", port_); }

double SoakCoordinator::MemoryMiB(const char* field) const {
  std::ifstream status(absl::StrCat("/proc/", process_->pid(), "/status"));
  std::string key;
  double kib = 0;
  while (status >> key) {
    if (key == absl::StrCat(field, ":") && status >> kib) return kib / 1024;
  }
  return -1;
}

double SoakCoordinator::Metric(const std::string& series) const {
  absl::StatusOr<std::string> text = HttpGet(metrics_port_, "/metrics");
  return text.ok() ? MetricValue(*text, series).value_or(-1) : -1;
}

int SoakCoordinator::Stop() {
  if (process_ == nullptr || stopped_) return exit_code_;
  stopped_ = true;
  process_->Signal(SIGTERM);
  exit_code_ = process_->Wait();
  return exit_code_;
}

std::unique_ptr<v1::Planner::Stub> NewStub(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // its own connection, as a rank's
  return v1::Planner::NewStub(
      grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p / 100 * v.size()));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

double Max(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

std::string CodeName(grpc::StatusCode code) {
  return std::string(absl::StatusCodeToString(static_cast<absl::StatusCode>(code)));
}

std::string Describe(const Codes& codes) {
  std::string out;
  for (const auto& [code, n] : codes) absl::StrAppend(&out, out.empty() ? "" : ", ", code, " ", n);
  return out;
}

}  // namespace fcp::soak
