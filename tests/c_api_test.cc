// The C API (fcp/c_api.h) against a real coordinator, in-process over loopback TCP.
#include "fcp/c_api.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "fcp/v1/planner.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/coordinator.h"
#include "service/test_requests.h"

extern "C" int fcp_c_api_smoke(const char* target, char* message, size_t message_size);

namespace fcp {
namespace {

using ::testing::HasSubstr;

class CApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CoordinatorOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.metrics_port = -1;
    coordinator_ = *Coordinator::Start(options);
    target_ = absl::StrCat("127.0.0.1:", coordinator_->port());
  }

  fcp_client* NewClient(const char* target) {
    fcp_client_options options;
    fcp_client_options_init(&options);
    options.target = target;
    fcp_client* client = nullptr;
    EXPECT_EQ(fcp_client_new(&options, &client, nullptr), FCP_OK);
    return client;
  }

  std::unique_ptr<Coordinator> coordinator_;
  std::string target_;
};

TEST_F(CApiTest, TheHeaderExampleWorksFromC) {
  char message[256] = "";
  EXPECT_EQ(fcp_c_api_smoke(target_.c_str(), message, sizeof(message)), 0) << message;
}

TEST_F(CApiTest, SerializedRequestsAndResponsesRoundTrip) {
  fcp_client* client = NewClient(target_.c_str());
  v1::PlanRequest request = TestRequest(4, 9);
  request.add_ranks(1);
  const std::string bytes = request.SerializeAsString();
  fcp_plan* plan = nullptr;
  fcp_error error;
  ASSERT_EQ(fcp_client_plan_request(client, bytes.data(), bytes.size(), &plan, &error), FCP_OK)
      << error.message;
  EXPECT_EQ(fcp_plan_source_of(plan), FCP_SOURCE_COORDINATOR);
  EXPECT_EQ(fcp_plan_cache_hit(plan), 0);
  EXPECT_GT(fcp_plan_predicted_step_ms(plan), 0);
  size_t size = 0;
  const void* serialized = fcp_plan_serialized(plan, &size);
  v1::PlanResponse response;
  ASSERT_TRUE(response.ParseFromArray(serialized, static_cast<int>(size)));
  EXPECT_EQ(response.plan().plan_id(), fcp_plan_id(plan));
  EXPECT_THAT(fcp_plan_json(plan), HasSubstr(fcp_plan_id(plan)));
  fcp_block block;
  EXPECT_EQ(fcp_plan_block(plan, fcp_plan_num_blocks(plan), &block), FCP_NOT_FOUND);
  fcp_plan_free(plan);
  fcp_client_free(client);
}

TEST_F(CApiTest, ErrorsCarryTheirCodeAndMessage) {
  fcp_client* client = NewClient(target_.c_str());
  const int64_t lengths[] = {100, 0};
  fcp_batch batch;
  fcp_batch_init(&batch);
  batch.document_lengths = lengths;
  batch.num_documents = 2;
  batch.num_workers = 2;
  fcp_plan* plan = nullptr;
  fcp_error error;
  EXPECT_EQ(fcp_client_plan(client, &batch, &plan, &error), FCP_INVALID_ARGUMENT);
  EXPECT_EQ(error.code, FCP_INVALID_ARGUMENT);
  EXPECT_THAT(error.message, HasSubstr("documents[1].length: must be > 0"));
  EXPECT_EQ(plan, nullptr);
  EXPECT_EQ(fcp_client_get(client, 5, &plan, &error), FCP_NOT_FOUND);
  EXPECT_EQ(fcp_client_plan(client, nullptr, &plan, nullptr), FCP_INVALID_ARGUMENT);
  fcp_client_free(client);
}

// Four documents of kFourLengths over 4 workers.
const int64_t kFourLengths[] = {5000, 3000, 200, 100};
fcp_batch FourDocumentBatch() {
  fcp_batch batch;
  fcp_batch_init(&batch);
  batch.document_lengths = kFourLengths;
  batch.num_documents = 4;
  batch.num_workers = 4;
  return batch;
}

TEST_F(CApiTest, PrefetchGetAndFallbackStats) {
  fcp_client* client = NewClient(target_.c_str());
  fcp_batch batch = FourDocumentBatch();
  batch.step = 8;
  fcp_error error;
  ASSERT_EQ(fcp_client_prefetch(client, &batch, &error), FCP_OK) << error.message;
  fcp_plan* plan = nullptr;
  ASSERT_EQ(fcp_client_get(client, 8, &plan, &error), FCP_OK) << error.message;
  EXPECT_EQ(fcp_plan_num_workers(plan), 4u);  // no ranks asked: every slice
  const std::string id = fcp_plan_id(plan);
  fcp_plan_free(plan);

  coordinator_->Shutdown(absl::ZeroDuration());
  ASSERT_EQ(fcp_client_plan(client, &batch, &plan, &error), FCP_OK) << error.message;
  EXPECT_EQ(fcp_plan_source_of(plan), FCP_SOURCE_LOCAL_FALLBACK);
  EXPECT_EQ(fcp_plan_id(plan), id);
  fcp_plan_free(plan);
  fcp_client_stats stats;
  fcp_client_get_stats(client, &stats);
  EXPECT_EQ(stats.prefetches, 1);
  EXPECT_EQ(stats.fallbacks, 1);
  fcp_client_free(client);
}

// The closed loop from C: each rank reports the step it ran; from step 3 on the coordinator plans
// with the rates it fitted (10 ms of forward attention here, not the default GPU's microseconds).
TEST_F(CApiTest, ReportedStepsCalibrateLaterPlans) {
  fcp_client* client = NewClient(target_.c_str());
  const int64_t lengths[] = {3000, 2000, 1500, 900, 500, 250};
  fcp_batch batch;
  fcp_batch_init(&batch);
  batch.job_id = "c-closed-loop";
  batch.document_lengths = lengths;
  batch.num_documents = 6;
  batch.num_workers = 2;
  batch.strategy = "whole_doc";
  fcp_error error;
  for (int64_t step = 1; step <= 2; ++step) {
    batch.step = step;
    fcp_plan* plan = nullptr;
    ASSERT_EQ(fcp_client_plan(client, &batch, &plan, &error), FCP_OK) << error.message;
    for (int32_t rank = 0; rank < 2; ++rank) {
      fcp_step_times times;
      fcp_step_times_init(&times);
      times.rank = rank;
      times.forward_seconds = 0.010 * (rank + 1);
      times.backward_seconds = 0.025 * (rank + 1);
      times.linear_seconds = 0.004;
      times.linear_flops = 4e9;
      EXPECT_EQ(fcp_client_report_step(client, &batch, plan, &times, &error), FCP_OK)
          << error.message;
    }
    fcp_step_times bad;
    fcp_step_times_init(&bad);
    bad.forward_seconds = -1;
    EXPECT_EQ(fcp_client_report_step(client, &batch, plan, &bad, &error), FCP_INVALID_ARGUMENT);
    EXPECT_THAT(error.message, HasSubstr("forward_seconds: -1"));
    bad.forward_seconds = 1;
    bad.rank = 5;
    EXPECT_EQ(fcp_client_report_step(client, &batch, plan, &bad, &error), FCP_FAILED_PRECONDITION);
    fcp_plan_free(plan);
  }
  batch.step = 4;
  fcp_plan* plan = nullptr;
  ASSERT_EQ(fcp_client_plan(client, &batch, &plan, &error), FCP_OK) << error.message;
  EXPECT_EQ(fcp_plan_source_of(plan), FCP_SOURCE_COORDINATOR);  // the client checked its id
  // Planned at the reported ~10 ms scale, not the default 400 TFLOP/s (microseconds).
  EXPECT_GT(fcp_plan_predicted_step_ms(plan), 10);
  fcp_plan_free(plan);
  fcp_client_free(client);
}

// The model struct reaches the request: a preset's shape (its summary names it), explicit fields
// over it ("custom"), the objective, and a bad preset named in the error.
TEST_F(CApiTest, PlanModelCarriesPresetShapeAndObjective) {
  fcp_client* client = NewClient(target_.c_str());
  const fcp_batch batch = FourDocumentBatch();
  fcp_model model;
  fcp_model_init(&model);
  EXPECT_LT(model.token_slack, 0);
  model.preset = "llama3-70b";
  auto summary = [&](v1::PlanResponse* response) {
    fcp_plan* plan = nullptr;
    fcp_error error;
    EXPECT_EQ(fcp_client_plan_model(client, &batch, &model, &plan, &error), FCP_OK)
        << error.message;
    size_t size = 0;
    const void* serialized = fcp_plan_serialized(plan, &size);
    EXPECT_TRUE(response->ParseFromArray(serialized, static_cast<int>(size)));
    fcp_plan_free(plan);
    return response->plan().summary();
  };
  v1::PlanResponse seventy;
  EXPECT_EQ(summary(&seventy).model(), "llama3-70b");
  EXPECT_GT(seventy.plan().summary().token_budget(), 0);  // whole step: the 5% slack

  model.ffn_hidden_size = 1024;
  model.mlp = FCP_MLP_PLAIN;
  model.objective = FCP_OBJECTIVE_ATTENTION;
  v1::PlanResponse custom;
  EXPECT_EQ(summary(&custom).model(), "custom");
  EXPECT_EQ(custom.plan().summary().token_budget(), 0);  // attention alone: no budget
  EXPECT_NE(custom.plan().plan_id(), seventy.plan().plan_id());

  model.preset = "llama9-1t";
  fcp_plan* plan = nullptr;
  fcp_error error;
  EXPECT_EQ(fcp_client_plan_model(client, &batch, &model, &plan, &error), FCP_INVALID_ARGUMENT);
  EXPECT_THAT(error.message, HasSubstr("model.preset"));
  fcp_client_free(client);
}

}  // namespace
}  // namespace fcp
