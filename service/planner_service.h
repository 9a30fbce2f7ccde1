// PlannerGrpcService: the fcp.v1.Planner gRPC service (proto/fcp/v1/planner.proto). A thin shell
// over PlanningService: it decodes the request, hands it over, and sends the reply.
//
// PlanBatch is a raw callback method: gRPC threads never block on planning (that happens on the
// PlanningService's pool) and a reply is sent as the cached plan's encoded pieces, without
// re-encoding the plan per rank (see cached_plan.h). Clients see an ordinary
// PlanBatch(PlanRequest) returns (PlanResponse).
//
//   fcp::PlanningService planning(options, &metrics);
//   fcp::PlannerGrpcService service(&planning);
//   builder.RegisterService(&service);
//
// Thread-safe; `planning` must outlive the server.
#ifndef FCP_SERVICE_PLANNER_SERVICE_H_
#define FCP_SERVICE_PLANNER_SERVICE_H_

#include "fcp/v1/planner.grpc.pb.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "service/job_guard.h"
#include "service/planning_service.h"

namespace fcp {

class PlannerGrpcService final
    : public v1::Planner::WithRawCallbackMethod_PlanBatch<
          v1::Planner::WithCallbackMethod_ListStrategies<v1::Planner::WithCallbackMethod_ReportStep<
              v1::Planner::WithCallbackMethod_GetCalibration<v1::Planner::Service>>>> {
 public:
  // `guard` (may be null: every call allowed, no quotas) authorizes each PlanBatch for its job_id
  // and applies the job's quotas; it must outlive the server too.
  explicit PlannerGrpcService(PlanningService* planning, JobGuard* guard = nullptr)
      : planning_(planning), guard_(guard) {}

  grpc::ServerUnaryReactor* PlanBatch(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;

  grpc::ServerUnaryReactor* ListStrategies(grpc::CallbackServerContext* context,
                                           const v1::ListStrategiesRequest* request,
                                           v1::ListStrategiesResponse* response) override;

  // The closed loop (calibration.proto): answered at once, on the gRPC thread (a report is a
  // bounded validation and an insert; a calibration one small fit).
  grpc::ServerUnaryReactor* ReportStep(grpc::CallbackServerContext* context,
                                       const v1::StepReport* request,
                                       v1::ReportStepResponse* response) override;
  grpc::ServerUnaryReactor* GetCalibration(grpc::CallbackServerContext* context,
                                           const v1::GetCalibrationRequest* request,
                                           v1::JobCalibration* response) override;

 private:
  PlanningService* const planning_;
  JobGuard* const guard_;
};

// `reply` encoded as a v1::PlanResponse; the buffer shares the cached plan's bytes (and keeps the
// plan alive) instead of copying them.
grpc::ByteBuffer ReplyToByteBuffer(const PlanReply& reply);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_SERVICE_H_
