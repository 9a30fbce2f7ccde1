// RendezvousGrpcService: the fcp.v1.Rendezvous gRPC service (proto/fcp/v1/rendezvous.proto), a
// thin shell over RendezvousStore. Both methods answer at once on the gRPC thread (a Get of a key
// not set yet answers found = false; clients poll), so no call is ever parked on the server.
//
//   fcp::RendezvousStore store(options);
//   fcp::RendezvousGrpcService service(&store);
//   builder.RegisterService(&service);
//
// Thread-safe; `store` must outlive the server.
#ifndef FCP_SERVICE_RENDEZVOUS_SERVICE_H_
#define FCP_SERVICE_RENDEZVOUS_SERVICE_H_

#include "fcp/v1/rendezvous.grpc.pb.h"
#include "grpcpp/support/server_callback.h"
#include "service/job_guard.h"
#include "service/rendezvous_store.h"

namespace fcp {

class RendezvousGrpcService final : public v1::Rendezvous::CallbackService {
 public:
  // `guard` (may be null: every call allowed) authorizes each call for its job_id and logs and
  // counts the store's per-job quota refusals; it must outlive the server too.
  explicit RendezvousGrpcService(RendezvousStore* store, JobGuard* guard = nullptr)
      : store_(store), guard_(guard) {}

  grpc::ServerUnaryReactor* Set(grpc::CallbackServerContext* context,
                                const v1::RendezvousSetRequest* request,
                                v1::RendezvousSetResponse* response) override;

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const v1::RendezvousGetRequest* request,
                                v1::RendezvousGetResponse* response) override;

 private:
  RendezvousStore* const store_;
  JobGuard* const guard_;
};

}  // namespace fcp

#endif  // FCP_SERVICE_RENDEZVOUS_SERVICE_H_
