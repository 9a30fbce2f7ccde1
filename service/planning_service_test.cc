#include "service/planning_service.h"

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/plan_convert.h"
#include "service/metrics_testing.h"
#include "service/test_requests.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

v1::PlanResponse Decode(const PlanReply& reply) {
  v1::PlanResponse response;
  EXPECT_TRUE(response.ParseFromString(reply.Encode().Flatten()));
  return response;
}

class PlanningServiceTest : public ::testing::Test {
 protected:
  PlanningServiceTest() : metrics_(registry_, /*max_jobs=*/8) { Reset(PlanningServiceOptions()); }

  void Reset(PlanningServiceOptions options) {
    service_.reset();
    service_ = std::make_unique<PlanningService>(std::move(options), &metrics_);
  }

  double Metric(const std::string& series) {
    return MetricValue(Exposition(registry_), series).value_or(-1);
  }

  prometheus::Registry registry_;
  CoordinatorMetrics metrics_;
  std::unique_ptr<PlanningService> service_;
};

TEST_F(PlanningServiceTest, ReplyEqualsTheLocalPlannersPlanOfThatRank) {
  v1::PlanRequest request = TestRequest(8, 1);
  request.mutable_options()->set_strategy("fcp");
  request.add_ranks(5);
  absl::StatusOr<PlanReply> reply = service_->PlanBatchAndWait(request);
  ASSERT_TRUE(reply.ok()) << reply.status();
  v1::PlanResponse response = Decode(*reply);
  EXPECT_FALSE(response.cache_hit());
  ASSERT_EQ(response.plan().workers_size(), 1);
  EXPECT_EQ(response.plan().workers(0).rank(), 5);

  const Batch batch = *BatchFromProto(request);
  const PlanOptions options = *OptionsFromProto(request.options());
  v1::Plan local;
  PlanToProto(*MakePlan(batch, options, OutputSpec::Ranks({5})), &local);
  local.mutable_summary()->set_planning_ms(0);
  response.mutable_plan()->mutable_summary()->set_planning_ms(0);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(response.plan(), local));
  EXPECT_EQ(response.plan().plan_id(), ComputePlanId(batch, options));
}

TEST_F(PlanningServiceTest, ConcurrentRanksOfOneStepPlanOnce) {
  constexpr int kWorkers = 16;
  std::vector<absl::StatusOr<PlanReply>> replies(kWorkers);
  std::vector<std::thread> ranks;
  for (int r = 0; r < kWorkers; ++r) {
    ranks.emplace_back([&, r] {
      v1::PlanRequest request = TestRequest(kWorkers, 2, 16384, "job-a", 7);
      request.add_ranks(r);
      replies[r] = service_->PlanBatchAndWait(request);
    });
  }
  for (std::thread& t : ranks) t.join();
  int planned = 0;
  for (int r = 0; r < kWorkers; ++r) {
    ASSERT_TRUE(replies[r].ok()) << replies[r].status();
    const v1::PlanResponse response = Decode(*replies[r]);
    ASSERT_EQ(response.plan().workers_size(), 1);
    EXPECT_EQ(response.plan().workers(0).rank(), r);
    EXPECT_EQ(response.plan().plan_id(), Decode(*replies[0]).plan().plan_id());
    planned += response.cache_hit() ? 0 : 1;
  }
  EXPECT_EQ(planned, 1);
  EXPECT_EQ(service_->plannings(), 1);
  EXPECT_EQ(Metric(R"(fcp_plan_cache_misses_total{training_job="job-a"})"), 1);
  EXPECT_EQ(Metric(R"(fcp_plan_cache_hits_total{training_job="job-a"})"), kWorkers - 1);
  EXPECT_EQ(Metric(R"(fcp_plan_requests_total{code="OK",strategy="auto",training_job="job-a"})"),
            kWorkers);
}

TEST_F(PlanningServiceTest, RepeatIsACacheHitAndEvictionReplans) {
  PlanningServiceOptions options;
  options.cache_bytes = 1;  // nothing fits: every request plans
  Reset(options);
  const v1::PlanRequest request = TestRequest(4, 3);
  ASSERT_TRUE(service_->PlanBatchAndWait(request).ok());
  ASSERT_TRUE(service_->PlanBatchAndWait(request).ok());
  EXPECT_EQ(service_->plannings(), 2);

  Reset(PlanningServiceOptions());
  ASSERT_FALSE(service_->PlanBatchAndWait(request)->cache_hit);
  absl::StatusOr<PlanReply> again = service_->PlanBatchAndWait(request);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->cache_hit);
  EXPECT_TRUE(Decode(*again).cache_hit());
  EXPECT_EQ(service_->plannings(), 1);
  EXPECT_EQ(service_->cache_stats().entries, 1u);
}

TEST_F(PlanningServiceTest, EmptyOptionsTakeTheServiceDefaults) {
  PlanningServiceOptions options;
  options.defaults.strategy = "whole_doc";
  options.defaults.time_budget_ms = 50;
  Reset(options);
  const v1::PlanRequest request = TestRequest(4, 4);
  absl::StatusOr<PlanReply> reply = service_->PlanBatchAndWait(request);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->plan->plan().strategy, "whole_doc");
  EXPECT_EQ(reply->plan->plan_id(), ComputePlanId(*BatchFromProto(request), options.defaults));
  const v1::ListStrategiesResponse list = service_->ListStrategies();
  EXPECT_EQ(list.default_strategy(), "whole_doc");
  EXPECT_EQ(list.default_time_budget_ms(), 50);
  ASSERT_GT(list.strategies_size(), 0);
  EXPECT_EQ(list.strategies(0).name(), "auto");
}

TEST_F(PlanningServiceTest, AFullPlanningQueueAnswersResourceExhaustedAtOnce) {
  PlanningServiceOptions options;
  options.planning_threads = 1;
  options.max_queued_plannings = 1;
  Reset(options);
  // Three distinct plannings submitted within microseconds; the first keeps the one thread busy
  // for tens of milliseconds, the second waits in the queue, the third finds it full.
  constexpr int kRequests = 3;
  std::vector<absl::StatusOr<PlanReply>> replies(kRequests, absl::UnknownError("pending"));
  absl::Mutex mu;
  int done = 0;
  for (int i = 0; i < kRequests; ++i) {
    v1::PlanRequest request = TestRequest(i == 0 ? 256 : 16, 100 + i, 16384);
    service_->PlanBatch(request, [&, i](absl::StatusOr<PlanReply> r) {
      absl::MutexLock lock(&mu);
      replies[i] = std::move(r);
      ++done;
    });
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](int* d) { return *d == kRequests; }, &done));
  }
  int rejected = 0;
  for (const auto& r : replies) {
    if (r.ok()) continue;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr("planning queue full"));
    ++rejected;
  }
  EXPECT_GE(rejected, 1);
  EXPECT_LE(rejected, 2);
  EXPECT_EQ(service_->plannings(), kRequests - rejected);
}

struct BadRequest {
  std::string name;
  std::function<void(v1::PlanRequest&)> mutate;
  absl::StatusCode code;
  std::string message;
};

void PrintTo(const BadRequest& c, std::ostream* os) { *os << c.name; }

std::vector<BadRequest> BadRequests() {
  using C = absl::StatusCode;
  return {
      {"ZeroLength", [](v1::PlanRequest& r) { r.mutable_documents(2)->set_length(0); },
       C::kInvalidArgument, "documents[2].length: must be > 0"},
      {"NoDocuments", [](v1::PlanRequest& r) { r.clear_documents(); }, C::kInvalidArgument,
       "documents: must not be empty"},
      {"NoWorkers", [](v1::PlanRequest& r) { r.mutable_topology()->set_num_workers(0); },
       C::kInvalidArgument, "topology.num_workers: 0"},
      {"NoTopology", [](v1::PlanRequest& r) { r.clear_topology(); }, C::kInvalidArgument,
       "topology.num_workers"},
      {"GqaGroups", [](v1::PlanRequest& r) { r.mutable_model()->set_num_kv_heads(5); },
       C::kInvalidArgument, "model.num_q_heads % model.num_kv_heads"},
      {"UnknownStrategy", [](v1::PlanRequest& r) { r.mutable_options()->set_strategy("magic"); },
       C::kInvalidArgument, "magic"},
      {"BadBlockSize", [](v1::PlanRequest& r) { r.mutable_options()->set_block_size(100); },
       C::kInvalidArgument, "options.block_size"},
      {"RankOutOfRange", [](v1::PlanRequest& r) { r.add_ranks(4); }, C::kInvalidArgument,
       "ranks[0]: 4 is not in [0, 4)"},
      {"UnknownMask",
       [](v1::PlanRequest& r) {
         r.mutable_documents(1)->mutable_mask()->set_kind(static_cast<v1::Mask::Kind>(9));
       },
       C::kInvalidArgument, "documents[1].mask.kind"},
      {"OverMemoryCap",
       [](v1::PlanRequest& r) { r.mutable_topology()->set_max_tokens_per_worker(100); },
       C::kInvalidArgument, "memory cap"},
      {"TooManyWorkers", [](v1::PlanRequest& r) { r.mutable_topology()->set_num_workers(1 << 20); },
       C::kResourceExhausted, "--max-workers"},
      {"TooLong", [](v1::PlanRequest& r) { r.mutable_documents(0)->set_length(int64_t{1} << 40); },
       C::kResourceExhausted, "--max-total-tokens"},
      {"RingOverMaxBlocks",
       [](v1::PlanRequest& r) {
         r.clear_documents();
         for (int i = 0; i < 2000; ++i) r.add_documents()->set_length(100000);
         r.mutable_topology()->set_num_workers(2048);
         r.mutable_options()->set_strategy("ring");
       },
       C::kResourceExhausted, "ring: at least 8192000 blocks"},
      {"RingOverMaxTransfers",
       [](v1::PlanRequest& r) {
         r.mutable_topology()->set_num_workers(4096);
         r.mutable_options()->set_strategy("ring");
       },
       C::kResourceExhausted, "--max-transfers"},
      {"TinyBlocksOverMaxBlocks",
       [](v1::PlanRequest& r) {
         r.mutable_documents(0)->set_length(int64_t{1} << 30);
         r.mutable_options()->set_block_size(64);
       },
       C::kResourceExhausted, "--max-blocks"},
  };
}

class PlanningServiceBadInputTest : public PlanningServiceTest,
                                    public ::testing::WithParamInterface<BadRequest> {};

TEST_P(PlanningServiceBadInputTest, GetsItsCodeAndAMessageNamingTheField) {
  v1::PlanRequest request = TestRequest(4, 5);
  GetParam().mutate(request);
  absl::StatusOr<PlanReply> reply = service_->PlanBatchAndWait(request);
  EXPECT_EQ(reply.status().code(), GetParam().code) << reply.status();
  EXPECT_THAT(reply.status().message(), HasSubstr(GetParam().message));
  EXPECT_EQ(service_->plannings(), 0);
}

INSTANTIATE_TEST_SUITE_P(Cases, PlanningServiceBadInputTest, ::testing::ValuesIn(BadRequests()),
                         [](const auto& info) { return info.param.name; });

TEST_F(PlanningServiceTest, AnUnplannableBatchFailsAndIsCounted) {
  // The ring's zigzag chunks put every 1-token document on rank 0: over the memory cap.
  v1::PlanRequest request = TestRequest(2, 6);
  request.clear_documents();
  for (int i = 0; i < 10; ++i) request.add_documents()->set_length(1);
  request.mutable_topology()->set_max_tokens_per_worker(5);
  request.mutable_options()->set_strategy("ring");
  absl::StatusOr<PlanReply> reply = service_->PlanBatchAndWait(request);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kFailedPrecondition) << reply.status();
  EXPECT_EQ(
      Metric(
          R"(fcp_plan_requests_total{code="FailedPrecondition",strategy="ring",training_job="test-job"})"),
      1);
}

}  // namespace
}  // namespace fcp
