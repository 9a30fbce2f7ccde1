// The loopback transport: the ranks of one job as threads of one process, for tests and for
// emulating many ranks on one machine (DESIGN §5). Ranks meet through a LoopbackHub they share.
//
//   LoopbackHub hub(4);
//   std::vector<std::thread> threads;
//   for (int32_t r = 0; r < 4; ++r) {
//     threads.emplace_back([&hub, r] {
//       LoopbackTransport transport(&hub, r);
//       absl::Status status = transport.Exchange(tag, std::move(sends), std::move(recvs));
//       if (!status.ok()) hub.Abort(r);  // peers fail at once instead of waiting out the timeout
//     });
//   }
//
// A message (source, destination, tag) moves when both sides have posted it: the later of the two
// copies the sender's buffers into the receiver's, so a send completes only once its receiver
// took it, as on a network. Nothing is buffered inside the hub.
#ifndef FCP_WORKER_TRANSPORT_LOOPBACK_TRANSPORT_H_
#define FCP_WORKER_TRANSPORT_LOOPBACK_TRANSPORT_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/transport/transport.h"

namespace fcp {

namespace loopback_internal {
class HubState;
}  // namespace loopback_internal

// The meeting point of the ranks of one job. Thread-safe; must outlive its transports.
class LoopbackHub {
 public:
  explicit LoopbackHub(int32_t world_size);
  ~LoopbackHub();

  LoopbackHub(const LoopbackHub&) = delete;
  LoopbackHub& operator=(const LoopbackHub&) = delete;

  int32_t world_size() const;

  // Marks `rank` gone for good: every wait on a message from or to it that has not moved yet,
  // now or later, fails at once with Unavailable naming it, and so do barriers it has not
  // entered. Its own pending Wait and Barrier fail too. Idempotent.
  void Abort(int32_t rank);

 private:
  friend class LoopbackTransport;
  std::unique_ptr<loopback_internal::HubState> state_;
};

// One rank's endpoint on a hub. Post, Wait and Barrier are thread-safe. A Wait's timeout counts
// from the call to Wait (the transport's timeout() as of Post). After a failed Wait the transport
// stays usable: the failed messages are withdrawn from the hub, as are those of an exchange
// dropped without Wait. Failures name the peer and the tag:
//   loopback rank 0, tag 9: timed out after 400ms: rank 2 did not post its send to this rank
//   loopback rank 0, tag 7: rank 1 is gone (aborted); rank 1 did not post its send to this rank
class LoopbackTransport final : public Transport {
 public:
  // `hub` must outlive the transport; at most one transport per rank.
  LoopbackTransport(LoopbackHub* hub, int32_t rank);
  // Marks the rank gone (as LoopbackHub::Abort): a peer still waiting on it fails fast.
  ~LoopbackTransport() override;

  LoopbackTransport(const LoopbackTransport&) = delete;
  LoopbackTransport& operator=(const LoopbackTransport&) = delete;

  int32_t rank() const override { return rank_; }
  int32_t world_size() const override;
  absl::string_view name() const override { return "loopback"; }

  absl::StatusOr<std::unique_ptr<PendingExchange>> Post(uint64_t tag, std::vector<SendOp> sends,
                                                        std::vector<RecvOp> recvs) override;
  absl::Status Barrier() override;

 private:
  LoopbackHub* hub_;
  int32_t rank_;
};

}  // namespace fcp

#endif  // FCP_WORKER_TRANSPORT_LOOPBACK_TRANSPORT_H_
