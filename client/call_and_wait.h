// CallAndWait: one unary gRPC call through a stub's callback API, waiting for its end. fcp's
// clients use it instead of the synchronous API, which costs more CPU per call (measured with the
// generated stub in bench/coordinator_load: 3,274 cache hits/s synchronous, 6,281/s this way, at 4
// clients parsing 38 KB plans on 2 cores; docs/benchmarks.md, "Coordinator round trip").
//
//   grpc::Status status = fcp::CallAndWait([&](auto done) {
//     stub->async()->PlanBatch(&context, &request, &response, std::move(done));
//   });
#ifndef FCP_CLIENT_CALL_AND_WAIT_H_
#define FCP_CLIENT_CALL_AND_WAIT_H_

#include <utility>

#include "absl/synchronization/notification.h"
#include "grpcpp/support/status.h"

namespace fcp {

// `start(done)` starts the call with `done` as its completion callback; returns the call's status.
template <typename Start>
grpc::Status CallAndWait(Start start) {
  grpc::Status status;
  absl::Notification finished;
  start([&status, &finished](grpc::Status s) {
    status = std::move(s);
    finished.Notify();
  });
  finished.WaitForNotification();
  return status;
}

}  // namespace fcp

#endif  // FCP_CLIENT_CALL_AND_WAIT_H_
