// What coordinator_soak measures with, apart from its scenarios: a running fcp-coordinator
// process (ports, resident memory, metrics, SIGTERM drain), a rank's own gRPC connection, latency
// statistics and answers counted by status code.
#ifndef FCP_BENCH_SOAK_COORDINATOR_H_
#define FCP_BENCH_SOAK_COORDINATOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fcp/v1/planner.grpc.pb.h"
#include "grpcpp/support/status.h"
#include "tests/subprocess.h"

namespace fcp::soak {

// A running fcp-coordinator (the binary at `binary`, on loopback, ports chosen by the system):
// its ports and its resident memory.
class SoakCoordinator {
 public:
  SoakCoordinator(const std::string& binary, const std::vector<std::string>& flags);
  ~SoakCoordinator() { Stop(); }

  bool ok() const { return port_ > 0; }
  std::string target() const;

  // VmRSS (or VmHWM, the peak) of the process, MiB; -1 if unreadable.
  double MemoryMiB(const char* field = "VmRSS") const;
  // The value of one series of its /metrics, -1 if absent.
  double Metric(const std::string& series) const;
  // SIGTERM; the exit code (0: drained cleanly).
  int Stop();

 private:
  std::unique_ptr<Subprocess> process_;
  int port_ = 0;
  int metrics_port_ = 0;
  bool stopped_ = false;
  int exit_code_ = -1;
};

// A stub over a connection of its own, as a rank's; no receive size limit.
std::unique_ptr<v1::Planner::Stub> NewStub(const std::string& target);

// The p-th percentile (0 <= p <= 100) of `v`, 0 if empty; and the largest value, 0 if empty.
double Percentile(std::vector<double> v, double p);
double Max(const std::vector<double>& v);

// Statuses by code name, e.g. {"OK": 60, "RESOURCE_EXHAUSTED": 4}.
using Codes = std::map<std::string, int64_t>;
std::string CodeName(grpc::StatusCode code);
std::string Describe(const Codes& codes);  // "OK 60, RESOURCE_EXHAUSTED 4"

}  // namespace fcp::soak

#endif  // FCP_BENCH_SOAK_COORDINATOR_H_
