// The coordinator as clients meet it: a real gRPC server on loopback TCP (port 0), real
// connections, the raw fcp.v1.Planner stub, health and reflection probes, and /metrics scraped
// over HTTP.
#include "service/coordinator.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fcp/v1/planner.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "proto/plan_convert.h"
#include "service/metrics_testing.h"
#include "service/test_requests.h"
#include "tests/grpc_probes.h"
#include "tests/http_get.h"

namespace fcp {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

// One coordinator for the suite (stopping a metrics endpoint takes seconds); each test uses its
// own job id, so counters do not mix.
class CoordinatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    CoordinatorOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.metrics_port = 0;
    options.max_request_bytes = 200000;
    absl::StatusOr<std::unique_ptr<Coordinator>> started = Coordinator::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    shared_ = started->release();
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(shared_, nullptr);
    coordinator_ = shared_;
    plannings_before_ = coordinator_->planning().plannings();
  }

  int64_t Plannings() const { return coordinator_->planning().plannings() - plannings_before_; }

  // A new connection, as another rank (process) would open.
  std::shared_ptr<grpc::Channel> NewChannel() {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // its own TCP connection
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", coordinator_->port()),
                                     grpc::InsecureChannelCredentials(), args);
  }

  grpc::Status Plan(const v1::PlanRequest& request, v1::PlanResponse* response,
                    std::shared_ptr<grpc::Channel> channel = nullptr) {
    auto stub = v1::Planner::NewStub(channel != nullptr ? channel : NewChannel());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub->PlanBatch(&context, request, response);
  }

  double Metric(const std::string& series) {
    absl::StatusOr<std::string> text = HttpGet(coordinator_->metrics_port(), "/metrics");
    EXPECT_TRUE(text.ok()) << text.status();
    return MetricValue(text.value_or(""), series).value_or(-1);
  }

  static Coordinator* shared_;
  Coordinator* coordinator_ = nullptr;
  int64_t plannings_before_ = 0;
};

Coordinator* CoordinatorTest::shared_ = nullptr;

TEST_F(CoordinatorTest, WRanksAskingForOneStepPlanOnceAndEachGetsItsSlice) {
  constexpr int kWorkers = 64;
  v1::PlanRequest request = TestRequest(kWorkers, /*seed=*/11, 4096, "job-w64", /*step=*/5);
  request.mutable_options()->set_strategy("fcp");
  std::vector<v1::PlanResponse> responses(kWorkers);
  std::vector<grpc::Status> statuses(kWorkers);
  std::vector<std::thread> ranks;
  for (int r = 0; r < kWorkers; ++r) {
    ranks.emplace_back([&, r] {
      v1::PlanRequest mine = request;
      mine.add_ranks(r);
      statuses[r] = Plan(mine, &responses[r]);
    });
  }
  for (std::thread& t : ranks) t.join();
  int planned = 0;
  for (int r = 0; r < kWorkers; ++r) {
    ASSERT_TRUE(statuses[r].ok()) << statuses[r].error_message();
    ASSERT_EQ(responses[r].plan().workers_size(), 1);
    EXPECT_EQ(responses[r].plan().workers(0).rank(), r);
    EXPECT_EQ(responses[r].plan().plan_id(), responses[0].plan().plan_id());
    planned += responses[r].cache_hit() ? 0 : 1;
  }
  EXPECT_EQ(planned, 1);
  EXPECT_EQ(Plannings(), 1);
  EXPECT_EQ(Metric(R"(fcp_plan_cache_misses_total{training_job="job-w64"})"), 1);
  EXPECT_EQ(Metric(R"(fcp_plan_cache_hits_total{training_job="job-w64"})"), kWorkers - 1);
  EXPECT_EQ(Metric(R"(fcp_plan_requests_total{code="OK",strategy="fcp",training_job="job-w64"})"),
            kWorkers);
  EXPECT_EQ(Metric(R"(fcp_plan_duration_seconds_count{strategy="fcp",training_job="job-w64"})"), 1);
  EXPECT_EQ(
      Metric(
          R"(grpc_server_handled_total{grpc_code="OK",grpc_method="PlanBatch",grpc_service="fcp.v1.Planner",grpc_type="unary"})"),
      kWorkers);
}

TEST_F(CoordinatorTest, EveryRanksPlanEqualsTheLocalPlannersAndRepeatsHitTheCache) {
  const v1::PlanRequest request = TestRequest(8, 12, 4096, "job-full");  // no ranks: every slice
  v1::PlanResponse response;
  ASSERT_TRUE(Plan(request, &response).ok());
  EXPECT_FALSE(response.cache_hit());
  v1::Plan local;
  PlanToProto(*MakePlan(*BatchFromProto(request), *OptionsFromProto(request.options())), &local);
  EXPECT_EQ(response.plan().workers_size(), 8);
  local.mutable_summary()->set_planning_ms(0);
  v1::Plan remote = response.plan();
  remote.mutable_summary()->set_planning_ms(0);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(remote, local));

  v1::PlanResponse again;
  ASSERT_TRUE(Plan(request, &again).ok());
  EXPECT_TRUE(again.cache_hit());
  EXPECT_EQ(again.plan().plan_id(), response.plan().plan_id());
  EXPECT_EQ(Plannings(), 1);
}

struct WireCase {
  std::string name;
  std::function<void(v1::PlanRequest&)> mutate;
  grpc::StatusCode code;
  std::string message;
};

TEST_F(CoordinatorTest, BadInputGetsItsCodeAndNamesTheField) {
  const std::vector<WireCase> cases = {
      {"zero length", [](v1::PlanRequest& r) { r.mutable_documents(17)->set_length(0); },
       grpc::StatusCode::INVALID_ARGUMENT, "documents[17].length: must be > 0"},
      {"no workers", [](v1::PlanRequest& r) { r.mutable_topology()->set_num_workers(0); },
       grpc::StatusCode::INVALID_ARGUMENT, "topology.num_workers: 0"},
      {"gqa", [](v1::PlanRequest& r) { r.mutable_model()->set_num_kv_heads(3); },
       grpc::StatusCode::INVALID_ARGUMENT, "model.num_q_heads % model.num_kv_heads"},
      {"strategy", [](v1::PlanRequest& r) { r.mutable_options()->set_strategy("nope"); },
       grpc::StatusCode::INVALID_ARGUMENT, "nope"},
      {"memory cap",
       [](v1::PlanRequest& r) { r.mutable_topology()->set_max_tokens_per_worker(10); },
       grpc::StatusCode::INVALID_ARGUMENT, "memory cap"},
      {"rank", [](v1::PlanRequest& r) { r.add_ranks(-1); }, grpc::StatusCode::INVALID_ARGUMENT,
       "ranks[0]: -1"},
      {"oversize",
       [](v1::PlanRequest& r) {
         for (int i = 0; i < 50000; ++i) r.add_documents()->set_length(1000);
       },
       grpc::StatusCode::RESOURCE_EXHAUSTED, ""},
  };
  for (const WireCase& c : cases) {
    v1::PlanRequest request = TestRequest(4, 13, 4096, "job-bad");
    for (int i = 0; i < 20; ++i) request.add_documents()->set_length(100);  // > 17 documents
    c.mutate(request);
    v1::PlanResponse response;
    const grpc::Status status = Plan(request, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.name << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.name;
  }
  EXPECT_EQ(Plannings(), 0);
  EXPECT_EQ(Metric(R"(fcp_plan_requests_total{code="InvalidArgument",strategy="auto",)"
                   R"(training_job="job-bad"})"),
            5);
}

TEST_F(CoordinatorTest, HealthReflectionAndDraining) {
  CoordinatorOptions options;  // its own coordinator: this test stops it
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_port = -1;
  std::unique_ptr<Coordinator> own = *Coordinator::Start(options);
  coordinator_ = own.get();
  std::shared_ptr<grpc::Channel> channel = NewChannel();
  EXPECT_EQ(*HealthStatus(channel, ""), kServing);
  EXPECT_EQ(*HealthStatus(channel, "fcp.v1.Planner"), kServing);
  EXPECT_EQ(HealthStatus(channel, "no.such.Service").status().code(), absl::StatusCode::kNotFound);

  absl::StatusOr<std::vector<std::string>> services = ReflectedServices(channel);
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, Contains("fcp.v1.Planner"));
  EXPECT_THAT(*services, Contains("grpc.health.v1.Health"));

  auto stub = v1::Planner::NewStub(channel);
  grpc::ClientContext context;
  v1::ListStrategiesResponse strategies;
  ASSERT_TRUE(stub->ListStrategies(&context, {}, &strategies).ok());
  EXPECT_EQ(strategies.strategies(0).name(), "auto");

  coordinator_->StartDraining();
  EXPECT_EQ(*HealthStatus(channel, ""), kNotServing);
  EXPECT_EQ(*HealthStatus(channel, "fcp.v1.Planner"), kNotServing);
  v1::PlanResponse response;
  EXPECT_TRUE(Plan(TestRequest(4, 14), &response, channel).ok()) << "draining still serves";

  coordinator_->Shutdown(absl::Seconds(1));
  EXPECT_EQ(Plan(TestRequest(4, 14), &response, channel).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST(CoordinatorOptionsTest, TheRpcQuotaMustHoldTheLargestRequestAndThreadsAreNotNegative) {
  CoordinatorOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_port = -1;
  options.max_request_bytes = 1 << 20;
  options.rpc_memory_bytes = (2 << 20) - 1;
  absl::StatusOr<std::unique_ptr<Coordinator>> started = Coordinator::Start(options);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      started.status().message(),
      HasSubstr("rpc_memory_bytes: must be >= 2 x max_request_bytes (2097152), got 2097151"));

  options.rpc_memory_bytes = 2 << 20;
  options.rpc_threads = -1;
  started = Coordinator::Start(options);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(started.status().message(), HasSubstr("rpc_threads: must be >= 0"));
}

// The smallest quota the options allow (twice the largest request) with few threads still serves
// a request of the largest size. (A quota of exactly one request does not: gRPC resets the stream
// with ENHANCE_YOUR_CALM, measured; hence the factor 2 in the options' rule.)
TEST(CoordinatorOptionsTest, ATightRpcQuotaStillServesTheLargestRequest) {
  CoordinatorOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_port = -1;
  options.max_request_bytes = 1 << 18;
  options.rpc_memory_bytes = 2 << 18;
  options.rpc_threads = 4;
  absl::StatusOr<std::unique_ptr<Coordinator>> started = Coordinator::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  auto stub = v1::Planner::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*started)->port()), grpc::InsecureChannelCredentials()));
  // One-token documents up to just under the largest request size.
  v1::PlanRequest request = TestRequest(4, 20);
  v1::Document one = request.documents(0);
  one.set_length(1);
  const size_t per_document = one.ByteSizeLong() + 2;  // tag and length prefix
  const size_t room = (size_t{1} << 18) - 64 - request.ByteSizeLong();
  for (size_t i = 0; i < room / per_document; ++i) *request.add_documents() = one;
  ASSERT_GT(request.ByteSizeLong(), (size_t{1} << 18) * 9 / 10);
  ASSERT_LE(request.ByteSizeLong(), size_t{1} << 18);
  request.mutable_options()->set_strategy("whole_doc");  // the quota is under test, not planning
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::PlanResponse response;
  const grpc::Status status = stub->PlanBatch(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(response.plan().plan_id().empty());
}

}  // namespace
}  // namespace fcp
