#include "service/planner_service.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "google/protobuf/arena.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/slice.h"

namespace fcp {
namespace {

// Pieces shorter than this are copied; longer ones are shared with the cache.
constexpr size_t kMinSharedPiece = 512;

grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

using PlanHolder = std::shared_ptr<const CachedPlan>;

void ReleasePlan(void* holder) { delete static_cast<PlanHolder*>(holder); }

grpc::Slice SharedSlice(absl::string_view bytes, const PlanHolder& plan) {
  if (bytes.size() < kMinSharedPiece) return grpc::Slice(bytes.data(), bytes.size());
  // gRPC only reads the bytes; the holder keeps them alive until gRPC releases the slice.
  return grpc::Slice(const_cast<char*>(bytes.data()), bytes.size(), &ReleasePlan,
                     new PlanHolder(plan));
}

}  // namespace

grpc::ByteBuffer ReplyToByteBuffer(const PlanReply& reply) {
  const EncodedResponse encoded = reply.Encode();
  std::vector<grpc::Slice> slices;
  slices.reserve(encoded.pieces.size() + 2);
  slices.emplace_back(encoded.head);
  for (absl::string_view piece : encoded.pieces) slices.push_back(SharedSlice(piece, reply.plan));
  if (!encoded.tail.empty()) slices.emplace_back(encoded.tail);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

grpc::ServerUnaryReactor* PlannerGrpcService::PlanBatch(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request,
                                                        grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  google::protobuf::Arena arena;
  auto* message = google::protobuf::Arena::CreateMessage<v1::PlanRequest>(&arena);
  grpc::ByteBuffer buffer(*request);  // the reader consumes it; this copy shares the slices
  grpc::ProtoBufferReader reader(&buffer);
  if (!message->ParseFromZeroCopyStream(&reader)) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "request: not a valid fcp.v1.PlanRequest"));
    return reactor;
  }
  absl::StatusOr<JobQuotas::Ticket> admitted =
      guard_ == nullptr ? JobQuotas::Ticket() : guard_->AdmitPlanBatch(*context, message->job_id());
  if (!admitted.ok()) {
    reactor->Finish(ToGrpcStatus(admitted.status()));
    return reactor;
  }
  // The ticket counts the request in flight for its job until the answer is sent.
  planning_->PlanBatch(*message, [reactor, response,
                                  ticket = *std::move(admitted)](absl::StatusOr<PlanReply> reply) {
    if (!reply.ok()) {
      reactor->Finish(ToGrpcStatus(reply.status()));
      return;
    }
    grpc::ByteBuffer encoded = ReplyToByteBuffer(*reply);
    response->Swap(&encoded);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* PlannerGrpcService::ListStrategies(
    grpc::CallbackServerContext* context, const v1::ListStrategiesRequest* /*request*/,
    v1::ListStrategiesResponse* response) {
  *response = planning_->ListStrategies();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* PlannerGrpcService::ReportStep(grpc::CallbackServerContext* context,
                                                         const v1::StepReport* request,
                                                         v1::ReportStepResponse* /*response*/) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // As PlanBatch: the job's credentials, then its reports_per_second quota.
  absl::Status admitted =
      guard_ == nullptr ? absl::OkStatus() : guard_->AdmitReport(*context, request->job_id());
  reactor->Finish(ToGrpcStatus(admitted.ok() ? planning_->ReportStep(*request) : admitted));
  return reactor;
}

grpc::ServerUnaryReactor* PlannerGrpcService::GetCalibration(
    grpc::CallbackServerContext* context, const v1::GetCalibrationRequest* request,
    v1::JobCalibration* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Status allowed =
      guard_ == nullptr
          ? absl::OkStatus()
          : guard_->AuthorizeCall(*context, "fcp.v1.Planner/GetCalibration", request->job_id());
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  absl::StatusOr<v1::JobCalibration> calibration = planning_->GetCalibration(*request);
  if (calibration.ok()) *response = *std::move(calibration);
  reactor->Finish(ToGrpcStatus(calibration.status()));
  return reactor;
}

}  // namespace fcp
