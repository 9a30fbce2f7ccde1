// Shared by the files of the gloo transport (gloo_transport.cc, gloo_connect.cc); not an API.
// The vocabulary of posted Gloo operations: slots, descriptors, operations, errors.
#ifndef FCP_WORKER_TRANSPORT_GLOO_INTERNAL_H_
#define FCP_WORKER_TRANSPORT_GLOO_INTERNAL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gloo/rendezvous/context.h"
#include "gloo/transport/device.h"
#include "gloo/transport/unbound_buffer.h"
#include "worker/transport/transport.h"
#include "worker/transport/transport_check.h"

namespace fcp {
namespace gloo_internal {

// The top four bits of a Gloo slot tell the kind of message; the rest is the tag (below 2^60).
// Gloo's own collectives use a top byte in [1, 8] (gloo/types.h), so these never meet them.
enum class Kind : uint64_t {
  kSendDescriptor = 0x8,
  kRecvDescriptor = 0x9,
  kData = 0xA,
  kBarrier = 0xB,
  kProbe = 0xC
};

inline uint64_t SlotOf(Kind kind, uint64_t tag) { return static_cast<uint64_t>(kind) << 60 | tag; }

inline constexpr uint64_t kDescriptorMagic = 0x31637365'64706366;  // "fcpdesc1"
inline constexpr uint64_t kDescriptorSeal = 0x6c616573'2e706366;   // "fcp.seal"

// What one side of a message holds, sent to the other side before any data moves. Gloo cannot
// say whether a receive completed without blocking; `seal`, the last bytes to land, can: see
// Arrived.
struct Descriptor {
  uint64_t magic = 0;
  uint64_t tag = 0;
  BufferShape shape;
  uint64_t seal = 0;
};
static_assert(std::is_trivially_copyable_v<Descriptor>);

// Whether a descriptor's bytes are (landing) in memory, read while Gloo's network thread may be
// writing them (hence the atomic load). A hint only: the receive is still waited on before the
// descriptor is read.
inline bool Arrived(const Descriptor& d) {
  return __atomic_load_n(&d.seal, __ATOMIC_ACQUIRE) == kDescriptorSeal;
}

// One posted Gloo operation.
struct Op {
  std::unique_ptr<gloo::transport::UnboundBuffer> buffer;
  int32_t peer = -1;
  bool send = false;
  bool done = false;  // a wait on it returned true
};

// The Gloo objects of one exchange or barrier. Gloo keeps raw pointers into them until each
// operation completes, so after a failure they live on until the transport closes.
struct GlooOps {
  std::unique_ptr<Descriptor[]> descriptors;
  std::vector<std::unique_ptr<Op>> ops;
};

// The exception in flight (call only inside a catch) as a Status: "<context> (<Gloo's words>)".
// Gloo throws IoException when a connection broke (Unavailable); a timeout of Gloo's own (only a
// backstop here) is DeadlineExceeded; anything else is Internal.
absl::Status GlooExceptionStatus(absl::string_view context);

// "<who>: lost the connection to rank <peer>", the context of a broken connection.
std::string LostConnection(absl::string_view who, int32_t peer);

// The transport over a context whose full mesh is connected.
std::unique_ptr<Transport> NewConnectedGlooTransport(
    std::shared_ptr<gloo::transport::Device> device,
    std::shared_ptr<gloo::rendezvous::Context> context, absl::Duration timeout);

}  // namespace gloo_internal
}  // namespace fcp

#endif  // FCP_WORKER_TRANSPORT_GLOO_INTERNAL_H_
