// fcp.v1.Rendezvous as clients meet it: an in-process coordinator on loopback TCP (port 0), the
// raw generated stub, real connections.
#include "service/rendezvous_service.h"

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "fcp/v1/rendezvous.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "service/coordinator.h"
#include "service/metrics_testing.h"
#include "tests/grpc_probes.h"

namespace fcp {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

class RendezvousServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CoordinatorOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.metrics_port = -1;
    options.rendezvous.max_value_bytes = 1000;
    options.rendezvous.max_keys_per_job = 3;
    absl::StatusOr<std::unique_ptr<Coordinator>> started = Coordinator::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    coordinator_ = *std::move(started);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", coordinator_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Rendezvous::NewStub(channel_);
  }

  grpc::Status Set(const std::string& job, const std::string& key, const std::string& value) {
    v1::RendezvousSetRequest request;
    request.set_job_id(job);
    request.set_key(key);
    request.set_value(value);
    v1::RendezvousSetResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->Set(&context, request, &response);
  }

  grpc::Status Get(const std::string& job, const std::string& key,
                   v1::RendezvousGetResponse* response) {
    v1::RendezvousGetRequest request;
    request.set_job_id(job);
    request.set_key(key);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->Get(&context, request, response);
  }

  double Metric(const std::string& series) {
    return MetricValue(Exposition(coordinator_->registry()), series).value_or(-1);
  }

  std::unique_ptr<Coordinator> coordinator_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Rendezvous::Stub> stub_;
};

TEST_F(RendezvousServiceTest, SetThenGet) {
  v1::RendezvousGetResponse response;
  ASSERT_TRUE(Get("job", "attempt-0/nccl-id", &response).ok());
  EXPECT_FALSE(response.found());

  const std::string id(128, '\x7f');
  ASSERT_TRUE(Set("job", "attempt-0/nccl-id", id).ok());
  ASSERT_TRUE(Get("job", "attempt-0/nccl-id", &response).ok());
  EXPECT_TRUE(response.found());
  EXPECT_EQ(response.value(), id);

  ASSERT_TRUE(Get("other-job", "attempt-0/nccl-id", &response).ok());
  EXPECT_FALSE(response.found());
}

TEST_F(RendezvousServiceTest, BadInputIsInvalidArgumentNamingTheField) {
  grpc::Status status = Set("", "k", "v");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("job_id: must not be empty"));
  v1::RendezvousGetResponse response;
  status = Get("j", "", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("key: must not be empty"));
}

TEST_F(RendezvousServiceTest, LimitsAreResourceExhaustedNamingTheFlag) {
  grpc::Status status = Set("j", "k", std::string(1001, 'x'));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("--rendezvous-max-value-bytes"));
  for (const char* key : {"a", "b", "c"}) ASSERT_TRUE(Set("j", key, "").ok());
  status = Set("j", "d", "");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("--rendezvous-max-keys-per-job"));
}

TEST_F(RendezvousServiceTest, HealthReflectionAndGrpcMetricsCoverIt) {
  EXPECT_EQ(*HealthStatus(channel_, "fcp.v1.Rendezvous"), kServing);
  EXPECT_THAT(*ReflectedServices(channel_), Contains("fcp.v1.Rendezvous"));
  ASSERT_TRUE(Set("j", "k", "v").ok());
  v1::RendezvousGetResponse response;
  ASSERT_TRUE(Get("j", "missing", &response).ok());  // not found is not an error
  EXPECT_EQ(Metric(R"(grpc_server_handled_total{grpc_code="OK",grpc_method="Set",)"
                   R"(grpc_service="fcp.v1.Rendezvous",grpc_type="unary"})"),
            1);
  EXPECT_EQ(Metric(R"(grpc_server_handled_total{grpc_code="OK",grpc_method="Get",)"
                   R"(grpc_service="fcp.v1.Rendezvous",grpc_type="unary"})"),
            1);
  coordinator_->StartDraining();
  EXPECT_EQ(*HealthStatus(channel_, "fcp.v1.Rendezvous"), kNotServing);
}

}  // namespace
}  // namespace fcp
