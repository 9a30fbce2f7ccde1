#include "service/rendezvous_service.h"

#include <string>
#include <utility>

namespace fcp {
namespace {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace

grpc::ServerUnaryReactor* RendezvousGrpcService::Set(grpc::CallbackServerContext* context,
                                                     const v1::RendezvousSetRequest* request,
                                                     v1::RendezvousSetResponse* /*response*/) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(store_->Set(request->job_id(), request->key(), request->value())));
  return reactor;
}

grpc::ServerUnaryReactor* RendezvousGrpcService::Get(grpc::CallbackServerContext* context,
                                                     const v1::RendezvousGetRequest* request,
                                                     v1::RendezvousGetResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
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
