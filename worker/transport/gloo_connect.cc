// NewGlooTransport: checks the options, joins the rendezvous and connects the full mesh, each
// failure worded for the operator (which rank never joined, a reused prefix, a bad address).
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "gloo/rendezvous/context.h"
#include "gloo/transport/tcp/device.h"
#include "worker/transport/file_rendezvous.h"
#include "worker/transport/gloo_internal.h"
#include "worker/transport/gloo_transport.h"
#include "worker/transport/transport_check.h"

namespace fcp {
namespace {

using gloo_internal::GlooExceptionStatus;
using gloo_internal::NewConnectedGlooTransport;

using Clock = std::chrono::steady_clock;

absl::Status CheckOptions(const GlooOptions& o) {
  if (o.world_size < 1) return absl::InvalidArgumentError("world_size: must be >= 1");
  if (o.rank < 0 || o.rank >= o.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank: ", o.rank, " is out of range [0, ", o.world_size, ")"));
  }
  if (o.prefix.empty()) {
    return absl::InvalidArgumentError("prefix: must name the job and attempt");
  }
  if (o.timeout <= absl::ZeroDuration()) return absl::InvalidArgumentError("timeout: must be > 0");
  if (o.hostname.empty() && o.interface.empty()) {
    return absl::InvalidArgumentError("hostname: must not be empty (or set interface)");
  }
  return absl::OkStatus();
}

// Gloo writes with writev, which raises SIGPIPE (fatal by default) on a connection whose peer died.
void IgnoreSigpipe() {
  struct sigaction current = {};
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
}

absl::StatusOr<std::unique_ptr<Transport>> Connect(const GlooOptions& options,
                                                   std::shared_ptr<gloo::rendezvous::Store> store,
                                                   absl::string_view where) {
  const std::string who =
      absl::StrCat("gloo rendezvous of rank ", options.rank, " of ", options.world_size,
                   " (prefix '", options.prefix, "'", where, ")");
  IgnoreSigpipe();
  gloo::transport::tcp::attr attr;
  if (options.interface.empty()) {
    // Gloo dereferences a failed address lookup (a crash, not an exception): resolve it first.
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = getaddrinfo(options.hostname.c_str(), nullptr, &hints, &found);
    if (found != nullptr) freeaddrinfo(found);
    if (rc != 0 || found == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": cannot listen on hostname '",
                                                     options.hostname, "': ", gai_strerror(rc)));
    }
    attr.hostname = options.hostname;
  } else {
    attr.iface = options.interface;
  }
  std::shared_ptr<gloo::transport::Device> device;
  try {
    device = gloo::transport::tcp::CreateDevice(attr);
  } catch (...) {
    return absl::InvalidArgumentError(
        GlooExceptionStatus(
            absl::StrCat(who, ": cannot listen on ",
                         options.interface.empty() ? "hostname '" : "interface '",
                         options.interface.empty() ? options.hostname : options.interface, "'"))
            .message());
  }
  const auto timeout = absl::ToChronoMilliseconds(options.timeout);
  DeadlineStore rendezvous(std::move(store), options.prefix, Clock::now() + timeout);
  auto context = std::make_shared<gloo::rendezvous::Context>(options.rank, options.world_size);
  try {
    context->setTimeout(timeout);
    context->connectFullMesh(rendezvous, device);
  } catch (...) {
    const absl::Status status = GlooExceptionStatus(who);
    std::vector<int32_t> missing;
    for (const std::string& key : rendezvous.missing_keys()) {
      if (const int rank = RankOfRendezvousKey(key); rank >= 0) missing.push_back(rank);
    }
    if (!missing.empty()) {
      return absl::DeadlineExceededError(absl::StrCat(who, ": timed out after ",
                                                      absl::FormatDuration(options.timeout), ": ",
                                                      RankList(missing), " never joined"));
    }
    if (absl::StrContains(status.message(), "File already exists")) {
      return absl::AlreadyExistsError(absl::StrCat(
          who, ": this prefix was used before in this store; each attempt needs a fresh one"));
    }
    return status;
  }
  return NewConnectedGlooTransport(std::move(device), std::move(context), options.timeout);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> NewGlooTransport(const GlooOptions& options) {
  RETURN_IF_ERROR(CheckOptions(options));
  ASSIGN_OR_RETURN(std::shared_ptr<gloo::rendezvous::Store> store,
                   OpenFileStore(options.rendezvous_dir));
  return Connect(options, std::move(store), absl::StrCat(", directory ", options.rendezvous_dir));
}

absl::StatusOr<std::unique_ptr<Transport>> NewGlooTransport(
    const GlooOptions& options, std::shared_ptr<gloo::rendezvous::Store> store) {
  RETURN_IF_ERROR(CheckOptions(options));
  if (store == nullptr) return absl::InvalidArgumentError("store: must not be null");
  return Connect(options, std::move(store), "");
}

}  // namespace fcp
