// CoordinatorStore: a gloo::rendezvous::Store kept on fcp-coordinator (fcp.v1.Rendezvous,
// proto/fcp/v1/rendezvous.proto), so the ranks of a job can connect a Gloo context, or share an
// NCCL unique id, knowing nothing but the coordinator's address: no shared file system, no Redis.
//
//   fcp::CoordinatorStoreOptions options;
//   options.target = "fcp-coordinator:50051";
//   options.job_id = "llama-8b-run-12";
//   options.prefix = "attempt-0/gloo/";  // a restarted job or another communicator: another prefix
//   ASSIGN_OR_RETURN(std::shared_ptr<gloo::rendezvous::Store> store,
//                    fcp::NewCoordinatorStore(options));
//   auto context = std::make_shared<gloo::rendezvous::Context>(rank, world_size);
//   context->connectFullMesh(*store, device);  // throws gloo::IoException on failure
//
// Behaviour, following Gloo's Store contract:
//  * set(key, data) stores `data` under job_id, prefix + key, replacing any previous value.
//  * get(key) waits until the key is set, up to `timeout`, and returns its value.
//  * wait(keys, timeout) waits until every key is set, all within `timeout` (gloo::kNoTimeout:
//    forever); wait(keys) uses options.timeout.
//  * Waiting polls the coordinator with jittered exponential backoff, from initial_poll_interval
//    up to max_poll_interval. UNAVAILABLE and a single RPC's DEADLINE_EXCEEDED (coordinator
//    starting or restarting, network blip) are retried until the timeout; set retries them too.
//  * Errors throw gloo::IoException (Gloo's Store API has no other error channel) naming the key,
//    the job, the coordinator and the cause, e.g. "fcp rendezvous: key 'attempt-0/gloo/3' of job
//    'j' on coordinator 10.0.0.5:50051: not set within 30s". Other RPC errors (INVALID_ARGUMENT,
//    RESOURCE_EXHAUSTED over a coordinator limit) throw at once. Callers turn the exception into
//    an absl::Status where they call Gloo.
//
// The coordinator keeps values in memory for its --rendezvous-ttl-seconds: all ranks of a job
// must use the same coordinator replica, and a coordinator restart in the middle of a rendezvous
// loses what was set (the waiting ranks time out; the job restarts with a new prefix).
//
// Thread-safe: one store may serve several threads.
#ifndef FCP_WORKER_TRANSPORT_COORDINATOR_STORE_H_
#define FCP_WORKER_TRANSPORT_COORDINATOR_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fcp/client.h"
#include "gloo/rendezvous/store.h"

namespace fcp {

struct CoordinatorStoreOptions {
  std::string target;  // fcp-coordinator, "host:port" (any gRPC target); not empty
  std::string job_id;  // the training job: the namespace of the keys; not empty
  std::string prefix;  // put before every key
  absl::Duration timeout = absl::Seconds(30);     // get, wait(keys) and set, retries included
  absl::Duration rpc_timeout = absl::Seconds(5);  // one RPC
  absl::Duration initial_poll_interval = absl::Milliseconds(2);
  absl::Duration max_poll_interval = absl::Milliseconds(200);
  ClientTlsOptions tls;  // towards the coordinator: plaintext unless tls.enabled
  // Sent as `authorization: Bearer TOKEN` with every call, for a coordinator started with
  // --job-tokens (a token of job_id); empty = $FCP_JOB_TOKEN, if set, else none.
  std::string job_token;
};

// A store on the coordinator at options.target. Connects lazily: the coordinator may come up
// after the store is made. INVALID_ARGUMENT naming the field for bad options (TLS files
// included).
absl::StatusOr<std::shared_ptr<gloo::rendezvous::Store>> NewCoordinatorStore(
    const CoordinatorStoreOptions& options);

}  // namespace fcp

#endif  // FCP_WORKER_TRANSPORT_COORDINATOR_STORE_H_
