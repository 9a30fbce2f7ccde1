#include "service/rendezvous_service.h"

#include <string>
#include <utility>

namespace fcp {
namespace {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status Authorize(JobGuard* guard, const grpc::ServerContextBase& context,
                       absl::string_view method, absl::string_view job_id) {
  return guard == nullptr ? absl::OkStatus() : guard->AuthorizeCall(context, method, job_id);
}

}  // namespace

grpc::ServerUnaryReactor* RendezvousGrpcService::Set(grpc::CallbackServerContext* context,
                                                     const v1::RendezvousSetRequest* request,
                                                     v1::RendezvousSetResponse* /*response*/) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  constexpr absl::string_view kMethod = "fcp.v1.Rendezvous/Set";
  absl::Status allowed = Authorize(guard_, *context, kMethod, request->job_id());
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  absl::Status set = store_->Set(request->job_id(), request->key(), request->value());
  if (guard_ != nullptr) set = guard_->Checked(*context, kMethod, request->job_id(), set);
  reactor->Finish(ToGrpcStatus(set));
  return reactor;
}

grpc::ServerUnaryReactor* RendezvousGrpcService::Get(grpc::CallbackServerContext* context,
                                                     const v1::RendezvousGetRequest* request,
                                                     v1::RendezvousGetResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status allowed = Authorize(guard_, *context, "fcp.v1.Rendezvous/Get", request->job_id());
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  absl::StatusOr<std::string> value = store_->Get(request->job_id(), request->key());
  if (value.ok()) {
    response->set_found(true);
    response->set_value(*std::move(value));
  } else if (!absl::IsNotFound(value.status())) {
    reactor->Finish(ToGrpcStatus(value.status()));
    return reactor;
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace fcp
