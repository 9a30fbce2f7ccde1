// Shared by the files of the gloo transport (gloo_transport.cc, gloo_connect.cc); not an API.
#ifndef FCP_WORKER_GLOO_INTERNAL_H_
#define FCP_WORKER_GLOO_INTERNAL_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gloo/rendezvous/context.h"
#include "gloo/transport/device.h"
#include "worker/transport.h"

namespace fcp {

// The exception in flight (call only inside a catch) as a Status: "<context> (<Gloo's words>)".
// Gloo throws IoException when a connection broke (Unavailable); a timeout of Gloo's own (only a
// backstop here) is DeadlineExceeded; anything else is Internal.
absl::Status GlooExceptionStatus(absl::string_view context);

// The transport over a context whose full mesh is connected.
std::unique_ptr<Transport> NewConnectedGlooTransport(
    std::shared_ptr<gloo::transport::Device> device,
    std::shared_ptr<gloo::rendezvous::Context> context, absl::Duration timeout);

}  // namespace fcp

#endif  // FCP_WORKER_GLOO_INTERNAL_H_
