#include "worker/transport/transport_factory.h"

#include <iterator>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/transport/file_rendezvous.h"
#include "worker/transport/gloo_transport.h"
#include "worker/transport/nccl_transport.h"

namespace fcp {
namespace {

constexpr struct {
  TransportKind kind;
  absl::string_view name;
} kKinds[] = {
    {TransportKind::kLoopback, "loopback"},
    {TransportKind::kGloo, "gloo"},
    {TransportKind::kNccl, "nccl"},
};

absl::Status Missing(absl::string_view field, absl::string_view kind) {
  return absl::InvalidArgumentError(
      absl::StrCat("TransportOptions.", field, ": required by the ", kind, " transport"));
}

absl::StatusOr<std::unique_ptr<Transport>> NewGloo(const TransportOptions& o) {
  GlooOptions gloo;
  gloo.rank = o.rank;
  gloo.world_size = o.world_size;
  gloo.prefix = o.key_prefix;
  gloo.timeout = o.timeout;
  gloo.hostname = o.hostname;
  gloo.interface = o.interface;
  if (o.store != nullptr) return NewGlooTransport(gloo, o.store);
  if (o.rendezvous_dir.empty()) return Missing("store or rendezvous_dir", "gloo");
  gloo.rendezvous_dir = o.rendezvous_dir;
  return NewGlooTransport(gloo);
}

absl::StatusOr<std::unique_ptr<Transport>> NewNccl(const TransportOptions& o) {
  NcclOptions nccl;
  nccl.rank = o.rank;
  nccl.world_size = o.world_size;
  nccl.device = o.device;
  nccl.key = absl::StrCat(o.key_prefix, "/nccl-id");
  nccl.timeout = o.timeout;
  nccl.compute_stream = o.compute_stream;
  std::shared_ptr<gloo::rendezvous::Store> store = o.store;
  if (store == nullptr) {
    if (o.rendezvous_dir.empty()) return Missing("store or rendezvous_dir", "nccl");
    ASSIGN_OR_RETURN(store, OpenFileStore(o.rendezvous_dir));
  }
  return NewNcclTransport(nccl, *store);
}

}  // namespace

absl::string_view TransportKindName(TransportKind kind) {
  for (const auto& k : kKinds) {
    if (k.kind == kind) return k.name;
  }
  return "?";
}

absl::StatusOr<TransportKind> ParseTransportKind(absl::string_view name) {
  std::string known;
  for (size_t i = 0; i < std::size(kKinds); ++i) {
    if (kKinds[i].name == name) return kKinds[i].kind;
    absl::StrAppend(&known,
                    i == 0                       ? ""
                    : i + 1 == std::size(kKinds) ? " or "
                                                 : ", ",
                    kKinds[i].name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--transport: expected ", known, ", got '", name, "'"));
}

absl::StatusOr<std::unique_ptr<Transport>> NewTransport(TransportKind kind,
                                                        const TransportOptions& options) {
  if (kind != TransportKind::kLoopback && options.key_prefix.empty()) {
    return Missing("key_prefix", TransportKindName(kind));
  }
  switch (kind) {
    case TransportKind::kLoopback: {
      if (options.hub == nullptr) return Missing("hub", "loopback");
      auto transport = std::make_unique<LoopbackTransport>(options.hub, options.rank);
      transport->set_timeout(options.timeout);
      return transport;
    }
    case TransportKind::kGloo:
      return NewGloo(options);
    case TransportKind::kNccl:
      return NewNccl(options);
  }
  return absl::InvalidArgumentError("TransportKind: not a kind");
}

}  // namespace fcp
