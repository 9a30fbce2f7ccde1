#include "worker/transport/transport.h"

#include <utility>

#include "common/status_macros.h"

namespace fcp {

absl::Status Transport::Exchange(uint64_t tag, std::vector<SendOp> sends,
                                 std::vector<RecvOp> recvs) {
  ASSIGN_OR_RETURN(std::unique_ptr<PendingExchange> pending,
                   Post(tag, std::move(sends), std::move(recvs)));
  return pending->Wait();
}

}  // namespace fcp
