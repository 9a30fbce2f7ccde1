// `fcp-worker`'s flags (ABSL_FLAG, defined in worker_options.cc) and the validated options they
// make. The planning flags are the `fcp plan` CLI's, with the same names and defaults
// (workload/plan_config.h); --world plays the CLI's --workers. Errors name the flag:
// "--rank: must be in [0, 4), got 7".
#ifndef FCP_WORKER_WORKER_OPTIONS_H_
#define FCP_WORKER_WORKER_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/transport/transport_factory.h"
#include "worker/worker_loop.h"

namespace fcp {

struct WorkerOptions {
  WorkerConfig loop;  // steps, checks, dump, the planning configuration
  int32_t world = 0;  // ranks of the job
  int32_t rank = -1;  // this process's rank; -1: every rank here (loopback)
  TransportKind transport = TransportKind::kLoopback;
  std::string device = "cpu";     // "cpu" or "cuda": where tensors live and attention runs
  int32_t cuda_device = -1;       // cuda: the GPU of every rank here; -1: rank % GPUs visible
  std::string rendezvous;         // gloo, nccl: "coordinator[:HOST:PORT]" or a shared directory
  std::string rendezvous_target;  // gloo: the coordinator to meet through; empty: the directory
  int32_t attempt = 0;            // gloo: rendezvous keys are per (training job, attempt)
  std::string listen_address;     // gloo: address this rank listens on, published to peers
  std::string interface;          // gloo: network interface; overrides listen_address
  absl::Duration timeout;         // transport timeout per exchange
  int32_t metrics_port = 0;       // this process's metrics port; 0: no metrics
  absl::Duration linger;          // keep serving metrics this long after the last step
  std::string summary_json;       // rank 0 appends one JSON line per step
  std::string gpu_uuid;           // label value (empty on CPU)
};

// Parses argv (without the program name); `help` is set for --help/-h.
absl::StatusOr<WorkerOptions> ParseWorkerOptions(const std::vector<std::string>& args, bool* help);

// The --help text.
std::string WorkerUsage();

}  // namespace fcp

#endif  // FCP_WORKER_WORKER_OPTIONS_H_
