#include "worker/connect.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "gloo/rendezvous/store.h"
#include "worker/coordinator_store.h"
#include "worker/file_rendezvous.h"
#include "worker/gloo_transport.h"
#include "worker/nccl_transport.h"

namespace fcp {
namespace {

// The store named by `o` (null with a directory and gloo: NewGlooTransport opens it itself).
absl::StatusOr<std::shared_ptr<gloo::rendezvous::Store>> StoreOf(const ConnectOptions& o) {
  if (o.store != nullptr) return o.store;
  if (!o.coordinator.empty()) {
    CoordinatorStoreOptions store;
    store.target = o.coordinator;
    store.job_id = o.job_id;
    store.timeout = o.timeout;
    store.tls = o.tls;
    return NewCoordinatorStore(store);
  }
  if (o.transport == "gloo") return std::shared_ptr<gloo::rendezvous::Store>();
  return OpenFileStore(o.rendezvous_dir);
}

}  // namespace

absl::Status ParseRendezvous(absl::string_view spec, absl::string_view field,
                             ConnectOptions* options) {
  absl::string_view rest = spec;
  if (absl::ConsumePrefix(&rest, "file:") && !rest.empty()) {
    options->rendezvous_dir = std::string(rest);
    return absl::OkStatus();
  }
  rest = spec;
  if (absl::ConsumePrefix(&rest, "coordinator:") && !rest.empty()) {
    options->coordinator = std::string(rest);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": expected \"file:DIR\" or \"coordinator:HOST:PORT\", got \"", spec, "\""));
}

absl::StatusOr<std::unique_ptr<Transport>> ConnectTransport(const ConnectOptions& o) {
  if (o.store == nullptr && o.coordinator.empty() && o.rendezvous_dir.empty()) {
    return absl::InvalidArgumentError("rendezvous: no store, coordinator or directory");
  }
  ASSIGN_OR_RETURN(std::shared_ptr<gloo::rendezvous::Store> store, StoreOf(o));
  if (o.transport == "nccl") {
    NcclOptions nccl;
    nccl.rank = o.rank;
    nccl.world_size = o.world_size;
    nccl.device = o.device;
    nccl.key = absl::StrCat(o.prefix, "/nccl-id");
    nccl.timeout = o.timeout;
    nccl.compute_stream = o.compute_stream;
    return NewNcclTransport(nccl, *store);
  }
  if (o.transport != "gloo") {
    return absl::InvalidArgumentError(
        absl::StrCat("transport: expected \"gloo\" or \"nccl\", got \"", o.transport, "\""));
  }
  GlooOptions gloo;
  gloo.rank = o.rank;
  gloo.world_size = o.world_size;
  gloo.prefix = o.prefix;
  gloo.timeout = o.timeout;
  gloo.hostname = o.hostname;
  gloo.interface = o.interface;
  if (store == nullptr) {
    gloo.rendezvous_dir = o.rendezvous_dir;
    return NewGlooTransport(gloo);
  }
  return NewGlooTransport(gloo, std::move(store));
}

}  // namespace fcp
