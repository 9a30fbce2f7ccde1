// The nccl transport: point-to-point exchanges between GPUs over NCCL (DESIGN §5). Buffers are
// device memory. One communicator serves any plan: each Post is one NCCL group (ncclGroupStart,
// an ncclSend/ncclRecv per buffer, ncclGroupEnd) on the transport's communication stream, which
// first waits for the work enqueued so far on the caller's compute stream (so sends read what
// kernels wrote), and Wait returns once the group's transfers have landed.
//
//   NcclOptions options;
//   options.rank = rank;
//   options.world_size = world;
//   options.key = "job-17/attempt-3/nccl-id";  // fresh for every attempt
//   options.compute_stream = stream;           // a cudaStream_t
//   ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport, NewNcclTransport(options, *store));
//
// Rendezvous: rank 0 makes the NCCL unique id and sets it in `store` under `key`; the others get
// it there (any gloo::rendezvous::Store: the coordinator's, NewCoordinatorStore, or a directory,
// OpenFileStore). The communicator is non-blocking (ncclConfig_t.blocking = 0): no NCCL call
// hangs the caller, and a watchdog thread polls ncclCommGetAsyncError. On an asynchronous NCCL
// error, or when a Wait or Barrier runs past the transport's timeout, the watchdog aborts the
// communicator (ncclCommAbort: the transfers in flight stop) and every pending and later call
// fails with the first error, naming this rank, the tag and the peers, e.g.
//   nccl rank 0, tag 17: timed out after 30s waiting for rank 2 (send, recv); communicator aborted
// The job then restarts with a new key (a new communicator), as with gloo.
//
// Matching: NCCL pairs a rank's sends to a peer with that peer's receives in posting order, and
// has no tags. Every rank must therefore post its exchanges with a given peer in the same order
// (the executor does: rounds in order, forward then backward). To catch a rank that does not,
// each message carries its tag in a leading 8-byte word: a mismatch fails Wait with
// FailedPrecondition naming the peer and both tags. Buffer counts and sizes must match exactly
// (NCCL cannot check them: a mismatch corrupts or hangs until the timeout).
//
// Threading: Post, Wait and Barrier may be called from any thread; exchanges complete in posting
// order. At most kMaxInFlight exchanges may be posted and not yet waited. Pending exchanges must
// not outlive the transport. Requires a CUDA device per rank (two ranks of one communicator on
// one GPU are refused by NCCL).
#ifndef FCP_WORKER_TRANSPORT_NCCL_TRANSPORT_H_
#define FCP_WORKER_TRANSPORT_NCCL_TRANSPORT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/transport/transport.h"

namespace gloo {
namespace rendezvous {
class Store;
}  // namespace rendezvous
}  // namespace gloo

namespace fcp {

struct NcclOptions {
  int32_t rank = 0;
  int32_t world_size = 1;
  int32_t device = -1;  // CUDA device of this rank; -1: the calling thread's current device
  std::string key;      // store key of the unique id: job and attempt; must not be empty
  // How long rendezvous and communicator setup may take, and then the transport's timeout() for
  // each Wait and Barrier.
  absl::Duration timeout = absl::Seconds(30);
  // The cudaStream_t whose work each Post waits for before its transfers (null: none; the
  // caller then synchronises itself).
  void* compute_stream = nullptr;
  absl::Duration watchdog_interval = absl::Milliseconds(2);
};

inline constexpr int kNcclMaxInFlight = 8;

// Meets the other ranks through `store` and creates the communicator. Unavailable/DeadlineExceeded
// when a rank never joins (within options.timeout), InvalidArgument for bad options, Internal
// (with NCCL's message) when NCCL refuses.
absl::StatusOr<std::unique_ptr<Transport>> NewNcclTransport(const NcclOptions& options,
                                                            gloo::rendezvous::Store& store);

}  // namespace fcp

#endif  // FCP_WORKER_TRANSPORT_NCCL_TRANSPORT_H_
