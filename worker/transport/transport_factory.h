// One rank's Transport of a kind named at run time (fcp-worker's --transport): the one place that
// maps a kind's name to its implementation and its options.
//
//   ASSIGN_OR_RETURN(TransportKind kind, ParseTransportKind(flag_value));
//   TransportOptions options;
//   options.rank = rank;
//   options.world_size = world;
//   options.key_prefix = "job-17/attempt-3";  // fresh for every attempt
//   options.rendezvous_dir = "/shared/fcp-rendezvous";  // or options.store (the coordinator's)
//   ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport, NewTransport(kind, options));
//
// loopback: ranks are threads of this process meeting at options.hub (no rendezvous).
// gloo:     CPU memory over TCP (worker/transport/gloo_transport.h).
// nccl:     GPU memory (worker/transport/nccl_transport.h); Unimplemented in a build without NCCL.
#ifndef FCP_WORKER_TRANSPORT_TRANSPORT_FACTORY_H_
#define FCP_WORKER_TRANSPORT_TRANSPORT_FACTORY_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gloo/rendezvous/store.h"
#include "worker/transport/loopback_transport.h"
#include "worker/transport/transport.h"

namespace fcp {

enum class TransportKind : uint8_t { kLoopback, kGloo, kNccl };

// "loopback", "gloo", "nccl".
absl::string_view TransportKindName(TransportKind kind);

// The kind of a name; InvalidArgument naming the flag and the known kinds otherwise:
//   --transport: expected loopback, gloo or nccl, got 'tcp'
absl::StatusOr<TransportKind> ParseTransportKind(absl::string_view name);

struct TransportOptions {
  int32_t rank = 0;
  int32_t world_size = 1;
  // How long rendezvous may take, and then the transport's timeout() for each Wait and Barrier.
  absl::Duration timeout = absl::Seconds(30);

  // loopback: the ranks' meeting point (required; must outlive the transport).
  LoopbackHub* hub = nullptr;

  // gloo, nccl: rendezvous through `store` (e.g. the coordinator's,
  // worker/transport/coordinator_store.h), else through the directory `rendezvous_dir`. Keys go
  // under `key_prefix` (job and attempt; must not be empty).
  std::shared_ptr<gloo::rendezvous::Store> store;
  std::string rendezvous_dir;
  std::string key_prefix;

  // gloo: the address this rank listens on, published to peers; `interface` ("eth0") replaces it.
  std::string hostname = "127.0.0.1";
  std::string interface;

  // nccl: the rank's CUDA device and the cudaStream_t its transfers wait for (null: none).
  int32_t device = -1;
  void* compute_stream = nullptr;
};

// This rank's transport of `kind`. InvalidArgument naming the field when an option `kind` needs
// is missing; otherwise the errors of the kind's own factory.
absl::StatusOr<std::unique_ptr<Transport>> NewTransport(TransportKind kind,
                                                        const TransportOptions& options);

}  // namespace fcp

#endif  // FCP_WORKER_TRANSPORT_TRANSPORT_FACTORY_H_
