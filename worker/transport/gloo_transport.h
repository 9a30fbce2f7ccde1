// The gloo transport: one process per rank over TCP (Gloo's tcp device and unbound buffers),
// for CPU jobs (DESIGN §5). Ranks meet through a rendezvous store: a directory every rank sees,
// or any gloo::rendezvous::Store (the coordinator's, later).
//
//   GlooOptions options;
//   options.rank = 1;
//   options.world_size = 4;
//   options.rendezvous_dir = "/shared/fcp-rendezvous";
//   options.prefix = "job-17/attempt-3";  // fresh for every attempt
//   options.timeout = absl::Seconds(30);
//   absl::StatusOr<std::unique_ptr<Transport>> transport = NewGlooTransport(options);
//
// One message (source s → destination d under tag t) takes two steps. At Post, s sends d a
// descriptor of its buffers (count, sizes) and d sends s a descriptor of what it expects. Once
// every descriptor of the round has arrived and matched, the data moves, one Gloo operation per
// non-empty buffer (empty ones are skipped on both sides). A mismatch is found before any byte
// moves: both sides fail with InvalidArgument naming peer, tag, expected and got. Rounds move
// while any Wait or Barrier of this rank blocks, so ranks may wait on their rounds in any order.
//
// Failures name the peer and the tag, e.g. (Unavailable: the peer's process died; the list
// names every connection already down, since the peer named first may only have failed after
// another one)
//   gloo rank 0, tag 11: lost the connection to rank 2 (Connection closed by peer
//   [127.0.0.1]:23460); connections down: rank 2
// or (DeadlineExceeded: the peer is alive but never posted its side)
//   gloo rank 0, tag 11: timed out after 2s: rank 2 did not post its send to this rank
// No exception leaves the transport. After a failed Wait (or an exchange dropped without Wait)
// the transport is broken: later calls fail with FailedPrecondition, since Gloo cannot withdraw
// posted operations; the job starts a new attempt with a new prefix. A failure after data started
// moving also closes every connection (so that no late byte lands in buffers the caller got
// back); peers then see this rank as gone. A failure before leaves the connections alone, so
// that every rank waiting on a dead or frozen peer names that peer, not one another.
//
// Threading: Post, Wait and Barrier from one thread at a time; pending exchanges must not outlive
// the transport. Wait's timeout counts from the call to Wait. NewGlooTransport ignores SIGPIPE
// process-wide when its disposition is the default, because Gloo writes to sockets with writev,
// which raises SIGPIPE when a peer has died.
#ifndef FCP_WORKER_TRANSPORT_GLOO_TRANSPORT_H_
#define FCP_WORKER_TRANSPORT_GLOO_TRANSPORT_H_

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

struct GlooOptions {
  int32_t rank = 0;
  int32_t world_size = 1;
  // A directory every rank sees (created if missing). Its keys can be set once: each attempt
  // needs a fresh `prefix` (or a fresh directory).
  std::string rendezvous_dir;
  std::string prefix;                  // job id and attempt; must not be empty
  std::string hostname = "127.0.0.1";  // the address this rank listens on, published to peers
  std::string interface;               // a network interface ("eth0"); when set, replaces hostname
  // How long the rendezvous may take, and then the transport's timeout() for each Wait/Barrier.
  absl::Duration timeout = absl::Seconds(30);
};

// Tags of the gloo transport are below 2^60 (the top bits of a Gloo slot tell the message kind).
inline constexpr uint64_t kGlooMaxTag = (uint64_t{1} << 60) - 1;

// Joins the rendezvous through `options.rendezvous_dir` and connects to every peer. Fails within
// `options.timeout` (DeadlineExceeded naming a rank that never joined) rather than hanging;
// AlreadyExists when the prefix was used before.
absl::StatusOr<std::unique_ptr<Transport>> NewGlooTransport(const GlooOptions& options);

// The same through any Gloo store (options.rendezvous_dir is ignored); keys still go under
// options.prefix. The seam for a coordinator-backed store.
absl::StatusOr<std::unique_ptr<Transport>> NewGlooTransport(
    const GlooOptions& options, std::shared_ptr<gloo::rendezvous::Store> store);

}  // namespace fcp

#endif  // FCP_WORKER_TRANSPORT_GLOO_TRANSPORT_H_
