// Shared by the Transport implementations: the checks of Post's arguments and the wording of a
// mismatched message, so that every transport reports a bad round the same way.
//
//   RETURN_IF_ERROR(CheckPostArguments(Who("loopback", rank, tag), world, sends, recvs));
//   if (!BufferShape::Of(recv.buffers).SameAs(BufferShape::Of(send.buffers))) ...
#ifndef FCP_WORKER_TRANSPORT_TRANSPORT_CHECK_H_
#define FCP_WORKER_TRANSPORT_TRANSPORT_CHECK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "worker/transport/transport.h"

namespace fcp {

// The prefix of a transport's error messages: "gloo rank 1, tag 7".
std::string Who(absl::string_view transport, int32_t rank, uint64_t tag);

// Post's preconditions: every peer in [0, world_size), never the posting rank itself, each peer
// at most once per list. InvalidArgument naming the entry (`who: sends[2].peer: 9 is out of
// range [0, 4)`).
absl::Status CheckPostArguments(absl::string_view who, int32_t rank, int32_t world_size,
                                const std::vector<SendOp>& sends, const std::vector<RecvOp>& recvs);

// What one side of a message holds. Trivially copyable: the gloo transport sends it as is.
struct BufferShape {
  static constexpr int kListed = 4;

  uint64_t count = 0;
  uint64_t total_bytes = 0;
  uint64_t digest = 0;             // FNV-1a of the sizes in order
  uint64_t leading[kListed] = {};  // the first min(count, kListed) sizes, for messages

  static BufferShape Of(const std::vector<TransportBuffer>& buffers);
  bool SameAs(const BufferShape& other) const;
  std::string ToString() const;  // "3 buffers [16, 8, 0] (24 bytes)"
};

// InvalidArgument for a message whose two sides disagree, worded from `rank`'s side:
//   gloo rank 1, tag 7: receive from rank 0: expected 1 buffer [8] (8 bytes), rank 0 sends ...
//   gloo rank 0, tag 7: send to rank 1: rank 1 expects 1 buffer [8] (8 bytes), this rank sends ...
absl::Status ShapeMismatch(absl::string_view who, bool sending, int32_t peer,
                           const BufferShape& mine, const BufferShape& theirs);

// "rank 1, rank 2": each rank named in full, so that a search for "rank 2" finds it.
std::string RankList(const std::vector<int32_t>& ranks);

}  // namespace fcp

#endif  // FCP_WORKER_TRANSPORT_TRANSPORT_CHECK_H_
