#include "worker/transport/transport_check.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fcp {
namespace {

template <typename Op>
absl::Status CheckPeers(absl::string_view who, absl::string_view list, int32_t rank,
                        int32_t world_size, const std::vector<Op>& ops) {
  std::vector<bool> seen(world_size, false);
  for (size_t i = 0; i < ops.size(); ++i) {
    const int32_t peer = ops[i].peer;
    const std::string field = absl::StrCat(who, ": ", list, "[", i, "].peer: ", peer);
    if (peer < 0 || peer >= world_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " is out of range [0, ", world_size, ")"));
    }
    if (peer == rank) return absl::InvalidArgumentError(absl::StrCat(field, " is this rank"));
    if (seen[peer]) {
      return absl::InvalidArgumentError(absl::StrCat(field, " appears twice in ", list));
    }
    seen[peer] = true;
  }
  return absl::OkStatus();
}

}  // namespace

std::string Who(absl::string_view transport, int32_t rank, uint64_t tag) {
  return absl::StrCat(transport, " rank ", rank, ", tag ", tag);
}

absl::Status CheckPostArguments(absl::string_view who, int32_t rank, int32_t world_size,
                                const std::vector<SendOp>& sends,
                                const std::vector<RecvOp>& recvs) {
  absl::Status status = CheckPeers(who, "sends", rank, world_size, sends);
  if (status.ok()) status = CheckPeers(who, "recvs", rank, world_size, recvs);
  return status;
}

BufferShape BufferShape::Of(const std::vector<TransportBuffer>& buffers) {
  BufferShape shape;
  shape.digest = 14695981039346656037ull;
  for (const TransportBuffer& b : buffers) {
    if (shape.count < kListed) shape.leading[shape.count] = b.bytes;
    ++shape.count;
    shape.total_bytes += b.bytes;
    for (int byte = 0; byte < 8; ++byte) {
      shape.digest = (shape.digest ^ ((b.bytes >> (8 * byte)) & 0xff)) * 1099511628211ull;
    }
  }
  return shape;
}

bool BufferShape::SameAs(const BufferShape& other) const {
  return count == other.count && total_bytes == other.total_bytes && digest == other.digest;
}

std::string BufferShape::ToString() const {
  const uint64_t listed = std::min<uint64_t>(count, kListed);
  std::string sizes = absl::StrJoin(leading, leading + listed, ", ");
  if (count > listed) absl::StrAppend(&sizes, ", ...");
  return absl::StrCat(count, count == 1 ? " buffer [" : " buffers [", sizes, "] (", total_bytes,
                      " bytes)");
}

absl::Status ShapeMismatch(absl::string_view who, bool sending, int32_t peer,
                           const BufferShape& mine, const BufferShape& theirs) {
  if (sending) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": send to rank ", peer, ": rank ", peer,
                                                   " expects ", theirs.ToString(),
                                                   ", this rank sends ", mine.ToString()));
  }
  return absl::InvalidArgumentError(absl::StrCat(who, ": receive from rank ", peer, ": expected ",
                                                 mine.ToString(), ", rank ", peer, " sends ",
                                                 theirs.ToString()));
}

std::string RankList(const std::vector<int32_t>& ranks) {
  return absl::StrJoin(ranks, ", ",
                       [](std::string* out, int32_t rank) { absl::StrAppend(out, "rank ", rank); });
}

}  // namespace fcp
