#include "tests/slow_link.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace fcp {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  return address;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SlowLink>> SlowLink::Start(int target_port, absl::Duration delay) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in address = Loopback(0);
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return absl::InternalError(absl::StrCat("listen on 127.0.0.1: ", why));
  }
  return std::unique_ptr<SlowLink>(new SlowLink(fd, ntohs(address.sin_port), target_port, delay));
}

SlowLink::SlowLink(int listen_fd, int port, int target_port, absl::Duration delay)
    : listen_fd_(listen_fd), port_(port), target_port_(target_port), delay_(delay) {
  acceptor_ = std::thread([this] { Accept(); });
}

SlowLink::~SlowLink() {
  std::vector<std::thread> pumps;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    pumps = std::move(pumps_);
  }
  ::shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  for (std::thread& pump : pumps) pump.join();
  ::close(listen_fd_);
  absl::MutexLock lock(&mu_);
  for (int fd : fds_) ::close(fd);
}

bool SlowLink::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void SlowLink::Accept() {
  while (true) {
    const int client = ::accept(listen_fd_, nullptr, nullptr);
    if (client < 0) return;  // shut down by the destructor
    const int upstream = ::socket(AF_INET, SOCK_STREAM, 0);
    const sockaddr_in target = Loopback(target_port_);
    if (upstream < 0 ||
        ::connect(upstream, reinterpret_cast<const sockaddr*>(&target), sizeof(target)) != 0) {
      if (upstream >= 0) ::close(upstream);
      ::close(client);
      continue;
    }
    absl::MutexLock lock(&mu_);
    fds_.push_back(client);
    fds_.push_back(upstream);
    if (stopping_) {
      ::shutdown(client, SHUT_RDWR);
      ::shutdown(upstream, SHUT_RDWR);
    }
    pumps_.emplace_back([this, client, upstream] { Pump(client, upstream); });
    pumps_.emplace_back([this, client, upstream] { Pump(upstream, client); });
  }
}

void SlowLink::Pump(int from, int to) {
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = ::recv(from, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    absl::SleepFor(delay_);
    if (stopping()) break;
    ssize_t sent = 0;
    while (sent < n) {
      const ssize_t m = ::send(to, buffer + sent, n - sent, MSG_NOSIGNAL);
      if (m <= 0) break;
      sent += m;
    }
    if (sent < n) break;
  }
  ::shutdown(to, SHUT_WR);
}

}  // namespace fcp
