// Point-to-point exchange between the workers of one job (DESIGN §5): each round of a plan posts
// all its sends and receives together and waits for them. Implementations: `loopback` (ranks as
// threads of one process), `gloo` (TCP, one process per rank), `nccl` (GPU, its own issue).
//
// Messages are matched by (source, destination, tag): a receive of tag t from peer p completes
// with the send of tag t from p to this rank, whatever the order in which the two were posted. A
// receive's buffer list must match the send's in count and sizes. Buffers must stay valid until
// the exchange's Wait returns. A peer that died or never posts its side makes Wait fail with
// DeadlineExceeded (or Unavailable when the transport knows the peer is gone) naming the peer and
// the tag, within the timeout; never a hang.
#ifndef FCP_WORKER_TRANSPORT_TRANSPORT_H_
#define FCP_WORKER_TRANSPORT_TRANSPORT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fcp {

struct TransportBuffer {
  void* data = nullptr;  // host memory (device memory for GPU transports)
  size_t bytes = 0;
};

struct SendOp {
  int32_t peer = 0;
  std::vector<TransportBuffer> buffers;  // read only
};

struct RecvOp {
  int32_t peer = 0;
  std::vector<TransportBuffer> buffers;  // written
};

// One posted round. Wait blocks until every send and receive completed or the timeout passed.
class PendingExchange {
 public:
  virtual ~PendingExchange() = default;
  virtual absl::Status Wait() = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int32_t rank() const = 0;
  virtual int32_t world_size() const = 0;
  virtual absl::string_view name() const = 0;  // "loopback", "gloo", ...
  // True when buffers are device memory (nccl); false: host memory.
  virtual bool device_buffers() const { return false; }

  // Posts sends and receives (each peer at most once per list) under `tag` and returns without
  // waiting. Errors here are argument errors (peer out of range, itself) or a broken transport.
  virtual absl::StatusOr<std::unique_ptr<PendingExchange>> Post(uint64_t tag,
                                                                std::vector<SendOp> sends,
                                                                std::vector<RecvOp> recvs) = 0;

  // Post + Wait.
  absl::Status Exchange(uint64_t tag, std::vector<SendOp> sends, std::vector<RecvOp> recvs);

  // Blocks until every rank entered the barrier (or the timeout passed: DeadlineExceeded).
  virtual absl::Status Barrier() = 0;

  absl::Duration timeout() const { return timeout_; }
  void set_timeout(absl::Duration timeout) { timeout_ = timeout; }

 private:
  absl::Duration timeout_ = absl::Seconds(30);
};

}  // namespace fcp

#endif  // FCP_WORKER_TRANSPORT_TRANSPORT_H_
