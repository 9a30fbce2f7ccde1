// A slow network link for tests: a TCP proxy on 127.0.0.1 that forwards every chunk of bytes to a
// target port after a fixed delay, in both directions. A TLS handshake through it takes a few
// round trips of that delay, as on a loaded machine or a congested link.
//
//   absl::StatusOr<std::unique_ptr<SlowLink>> link = SlowLink::Start(target_port,
//                                                                  absl::Milliseconds(500));
//   ... connect to "localhost:" + (*link)->port() ...
#ifndef FCP_TESTS_SLOW_LINK_H_
#define FCP_TESTS_SLOW_LINK_H_

#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fcp {

class SlowLink {
 public:
  // Listens on 127.0.0.1 (port chosen by the kernel) and forwards to 127.0.0.1:target_port.
  static absl::StatusOr<std::unique_ptr<SlowLink>> Start(int target_port, absl::Duration delay);
  ~SlowLink();  // closes every socket and joins every thread

  int port() const { return port_; }

 private:
  SlowLink(int listen_fd, int port, int target_port, absl::Duration delay);
  void Accept();
  void Pump(int from, int to);
  bool stopping() const;

  const int listen_fd_;
  const int port_;
  const int target_port_;
  const absl::Duration delay_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> pumps_ ABSL_GUARDED_BY(mu_);
  std::thread acceptor_;
};

}  // namespace fcp

#endif  // FCP_TESTS_SLOW_LINK_H_
