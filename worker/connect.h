// Connecting a rank to its peers: the gloo or nccl transport, met through a rendezvous store (a
// directory every rank sees, fcp-coordinator's store, or any gloo::rendezvous::Store the caller
// brings, e.g. a trainer's own). What fcp-worker and the C API (fcp_executor_new) share.
//
//   ConnectOptions options;
//   options.rank = rank; options.world_size = world; options.prefix = "job-17/attempt-0";
//   RETURN_IF_ERROR(ParseRendezvous("coordinator:fcp-coordinator:50051", &options));
//   ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport, ConnectTransport(options));
#ifndef FCP_WORKER_CONNECT_H_
#define FCP_WORKER_CONNECT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fcp/client.h"
#include "worker/transport.h"

namespace gloo {
namespace rendezvous {
class Store;
}  // namespace rendezvous
}  // namespace gloo

namespace fcp {

struct ConnectOptions {
  std::string transport = "gloo";  // "gloo" or "nccl" (loopback has no rendezvous)
  int32_t rank = 0;
  int32_t world_size = 1;
  std::string prefix;  // keys of this attempt (job and attempt); not empty
  // How long the rendezvous may take, then the transport's timeout for each exchange.
  absl::Duration timeout = absl::Seconds(30);
  std::string hostname = "127.0.0.1";  // gloo: the address this rank listens on
  std::string interface;               // gloo: a network interface; replaces hostname

  // Where ranks meet, the first set of: a store, the coordinator's store, a directory.
  std::shared_ptr<gloo::rendezvous::Store> store;
  std::string coordinator;  // "host:port"
  std::string job_id;       // the coordinator store's namespace
  ClientTlsOptions tls;     // towards the coordinator
  std::string rendezvous_dir;

  int32_t device = -1;             // nccl: this rank's CUDA device
  void* compute_stream = nullptr;  // nccl: the cudaStream_t transfers wait for
};

// "file:DIR" sets rendezvous_dir, "coordinator:HOST:PORT" sets coordinator; anything else is
// InvalidArgument naming `field`.
absl::Status ParseRendezvous(absl::string_view spec, absl::string_view field,
                             ConnectOptions* options);

// Meets the peers and connects. Errors name the field (InvalidArgument) or the rank that never
// joined (DeadlineExceeded), as NewGlooTransport / NewNcclTransport report them.
absl::StatusOr<std::unique_ptr<Transport>> ConnectTransport(const ConnectOptions& options);

}  // namespace fcp

#endif  // FCP_WORKER_CONNECT_H_
