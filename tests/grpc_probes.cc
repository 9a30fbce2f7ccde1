#include "tests/grpc_probes.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/client_context.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/client_callback.h"

namespace fcp {
namespace {

using google::protobuf::internal::WireFormatLite;

std::string LengthDelimited(int field, const std::string& bytes) {
  std::string out;
  out.push_back(
      static_cast<char>(WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED)));
  out.push_back(static_cast<char>(bytes.size()));  // probes send short strings only
  return out + bytes;
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  (void)buffer.Dump(&slices);
  std::string out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// Calls `visit(field, value_or_bytes)` for each field of a message; false if malformed.
template <typename Visit>
bool ForEachField(const std::string& bytes, Visit visit) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  while (uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    switch (WireFormatLite::GetTagWireType(tag)) {
      case WireFormatLite::WIRETYPE_VARINT: {
        uint64_t v;
        if (!in.ReadVarint64(&v)) return false;
        visit(field, v, std::string());
        break;
      }
      case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
        uint32_t n;
        std::string s;
        if (!in.ReadVarint32(&n) || !in.ReadString(&s, static_cast<int>(n))) return false;
        visit(field, 0, s);
        break;
      }
      default:
        if (!WireFormatLite::SkipField(&in, tag)) return false;
    }
  }
  return true;
}

// One request, one response, on a bidi stream.
class OneShotBidi final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  OneShotBidi(grpc::GenericStub& stub, const std::string& method, const std::string& request) {
    grpc::Slice slice(request);
    request_ = grpc::ByteBuffer(&slice, 1);
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    stub.PrepareBidiStreamingCall(&context_, method, grpc::StubOptions(), this);
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&response_);
    StartCall();
  }
  void OnReadDone(bool ok) override { read_ = ok; }
  void OnDone(const grpc::Status& status) override {
    status_ = status;
    done_.Notify();
  }
  absl::StatusOr<std::string> Wait() {
    done_.WaitForNotification();
    if (!status_.ok()) return FromGrpc(status_);
    if (!read_) return absl::InternalError("no response");
    return Flatten(response_);
  }

 private:
  grpc::ClientContext context_;
  grpc::ByteBuffer request_, response_;
  bool read_ = false;
  grpc::Status status_;
  absl::Notification done_;
};

}  // namespace

absl::StatusOr<int> HealthStatus(const std::shared_ptr<grpc::Channel>& channel,
                                 const std::string& service) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(LengthDelimited(1, service));  // HealthCheckRequest.service
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return FromGrpc(status);
  int serving = kUnknown;
  if (!ForEachField(Flatten(response), [&](int field, uint64_t v, const std::string&) {
        if (field == 1) serving = static_cast<int>(v);  // HealthCheckResponse.status
      })) {
    return absl::InternalError("malformed HealthCheckResponse");
  }
  return serving;
}

absl::StatusOr<std::vector<std::string>> ReflectedServices(
    const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  OneShotBidi call(stub, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                   LengthDelimited(7, ""));  // ServerReflectionRequest.list_services
  absl::StatusOr<std::string> response = call.Wait();
  if (!response.ok()) return response.status();
  std::vector<std::string> names;
  // ServerReflectionResponse.list_services_response (6) > service (1) > name (1)
  const bool ok = ForEachField(*response, [&](int f6, uint64_t, const std::string& list) {
    if (f6 != 6) return;
    ForEachField(list, [&](int f1, uint64_t, const std::string& service) {
      if (f1 != 1) return;
      ForEachField(service, [&](int name_field, uint64_t, const std::string& name) {
        if (name_field == 1) names.push_back(name);
      });
    });
  });
  if (!ok) return absl::InternalError("malformed ServerReflectionResponse");
  return names;
}

}  // namespace fcp
