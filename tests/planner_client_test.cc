// fcp::PlannerClient against a real fcp coordinator, in-process, over loopback TCP (port 0).
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "fcp/client.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/plan_convert.h"
#include "service/coordinator.h"
#include "service/test_requests.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<Coordinator> StartCoordinator(int port = 0,
                                              const std::string& default_strategy = "auto") {
  CoordinatorOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  options.metrics_port = -1;
  options.planning.defaults.strategy = default_strategy;
  absl::StatusOr<std::unique_ptr<Coordinator>> coordinator = Coordinator::Start(options);
  EXPECT_TRUE(coordinator.ok()) << coordinator.status();
  return coordinator.ok() ? *std::move(coordinator) : nullptr;
}

std::unique_ptr<PlannerClient> Connect(int port, PlannerClientOptions options = {}) {
  options.target = absl::StrCat("127.0.0.1:", port);
  options.max_reconnect_backoff = absl::Milliseconds(100);
  return *PlannerClient::Create(options);
}

v1::PlanRequest StepRequest(int64_t step, int32_t rank) {
  v1::PlanRequest request = TestRequest(8, /*seed=*/100 + step, 4096, "client-test", step);
  request.mutable_options()->set_strategy("fcp");
  request.add_ranks(rank);
  return request;
}

// The plan the local planner makes for `request`, as the client would return it.
v1::Plan LocalPlan(const v1::PlanRequest& request) {
  const Batch batch = *BatchFromProto(request);
  const PlanOptions options = *OptionsFromProto(request.options());
  v1::Plan plan;
  PlanToProto(*MakePlan(batch, options, *OutputSpecFromProto(request, 8)), &plan);
  return plan;
}

// StepRequest(step, rank) in core types.
BatchRequest StepBatchRequest(int64_t step, int32_t rank) {
  const v1::PlanRequest wire = StepRequest(step, rank);
  BatchRequest request;
  request.job_id = wire.job_id();
  request.step = step;
  request.batch = *BatchFromProto(wire);
  request.options = *OptionsFromProto(wire.options());
  request.ranks = {rank};
  return request;
}

bool SamePlan(v1::Plan a, v1::Plan b) {
  a.mutable_summary()->set_planning_ms(0);
  b.mutable_summary()->set_planning_ms(0);
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

TEST(PlannerClientTest, WithoutATargetPlansLocally) {
  std::unique_ptr<PlannerClient> client = *PlannerClient::Create({});
  const v1::PlanRequest request = StepRequest(0, 1);
  absl::StatusOr<PlanResult> result = client->PlanBatch(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->source, PlanSource::kLocal);
  EXPECT_TRUE(SamePlan(result->plan, LocalPlan(request)));
  EXPECT_EQ(client->stats().rpcs, 0);
}

TEST(PlannerClientTest, CoordinatorPlanEqualsTheLocalPlan) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator();
  std::unique_ptr<PlannerClient> client = Connect(coordinator->port());
  const v1::PlanRequest request = StepRequest(0, 6);
  absl::StatusOr<PlanResult> result = client->PlanBatch(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->source, PlanSource::kCoordinator);
  EXPECT_FALSE(result->cache_hit);
  ASSERT_EQ(result->plan.workers_size(), 1);
  EXPECT_EQ(result->plan.workers(0).rank(), 6);
  EXPECT_TRUE(SamePlan(result->plan, LocalPlan(request)));
  EXPECT_TRUE(client->PlanBatch(request)->cache_hit);

  absl::StatusOr<v1::ListStrategiesResponse> strategies = client->ListStrategies();
  ASSERT_TRUE(strategies.ok()) << strategies.status();
  EXPECT_EQ(strategies->planner_version(), std::string(kPlannerVersion));
}

TEST(PlannerClientTest, FallsBackWhenTheCoordinatorStopsMidRunAndReturnsWhenItIsBack) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator();
  const int port = coordinator->port();
  std::unique_ptr<PlannerClient> client = Connect(port);
  for (int64_t step = 0; step < 6; ++step) {
    if (step == 3) coordinator->Shutdown(absl::ZeroDuration());
    const v1::PlanRequest request = StepRequest(step, 2);
    absl::StatusOr<PlanResult> result = client->PlanBatch(request);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->source, step < 3 ? PlanSource::kCoordinator : PlanSource::kLocalFallback);
    EXPECT_TRUE(SamePlan(result->plan, LocalPlan(request))) << "step " << step;
  }
  EXPECT_EQ(client->stats().fallbacks, 3);
  EXPECT_EQ(client->stats().errors, 0);

  // The coordinator comes back on the same port: the client uses it again.
  coordinator = StartCoordinator(port);
  ASSERT_NE(coordinator, nullptr);
  PlanSource source = PlanSource::kLocalFallback;
  for (int i = 0; i < 50 && source != PlanSource::kCoordinator; ++i) {
    source = client->PlanBatch(StepRequest(10 + i, 0))->source;
    if (source != PlanSource::kCoordinator) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(source, PlanSource::kCoordinator);
}

TEST(PlannerClientTest, UnreachableCoordinatorIsRetriedThenPlannedLocally) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator();
  const int port = coordinator->port();
  coordinator.reset();  // nothing listens there now
  PlannerClientOptions options;
  options.max_attempts = 3;
  options.initial_backoff = absl::Milliseconds(1);
  std::unique_ptr<PlannerClient> client = Connect(port, options);
  const v1::PlanRequest request = StepRequest(0, 3);
  absl::StatusOr<PlanResult> result = client->PlanBatch(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->source, PlanSource::kLocalFallback);
  EXPECT_EQ(result->plan.plan_id(), LocalPlan(request).plan_id());
  EXPECT_EQ(client->stats().rpcs, 3);
  EXPECT_EQ(client->stats().retries, 2);
  EXPECT_EQ(client->stats().fallbacks, 1);

  options.local_fallback = false;
  absl::StatusOr<PlanResult> strict = Connect(port, options)->PlanBatch(request);
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kUnavailable);
}

TEST(PlannerClientTest, DeadlineExceededFallsBackOrFails) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator();
  PlannerClientOptions options;
  options.deadline = absl::Milliseconds(2);
  // Distinct batches the coordinator needs tens of milliseconds to plan: never answered in time.
  auto slow = [](uint64_t seed) {
    v1::PlanRequest request = TestRequest(256, seed, 32768, "client-test", 1);
    request.add_ranks(0);
    return request;
  };
  std::unique_ptr<PlannerClient> client = Connect(coordinator->port(), options);
  absl::StatusOr<PlanResult> result = client->PlanBatch(slow(1));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->source, PlanSource::kLocalFallback);
  EXPECT_EQ(client->stats().fallbacks, 1);
  EXPECT_EQ(client->stats().retries, 0);

  options.local_fallback = false;
  absl::StatusOr<PlanResult> strict = Connect(coordinator->port(), options)->PlanBatch(slow(2));
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(PlannerClientTest, BadInputIsReturnedNotRetriedNorPlannedLocally) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator();
  std::unique_ptr<PlannerClient> client = Connect(coordinator->port());
  v1::PlanRequest request = StepRequest(0, 1);
  request.mutable_documents(4)->set_length(-3);
  absl::StatusOr<PlanResult> result = client->PlanBatch(request);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("documents[4].length: must be > 0"));
  EXPECT_EQ(client->stats().rpcs, 1);
  EXPECT_EQ(client->stats().fallbacks, 0);
  EXPECT_EQ(client->stats().errors, 1);
}

TEST(PlannerClientTest, PrefetchRunsInTheBackgroundAndGetCollectsIt) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator();
  std::unique_ptr<PlannerClient> client = Connect(coordinator->port());
  ASSERT_TRUE(client->Prefetch(StepRequest(1, 4)).ok());
  ASSERT_TRUE(client->Prefetch(StepRequest(2, 4)).ok());
  EXPECT_EQ(client->Prefetch(StepRequest(1, 4)).code(), absl::StatusCode::kAlreadyExists);
  absl::StatusOr<PlanResult> one = client->Get(1);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->plan.plan_id(), LocalPlan(StepRequest(1, 4)).plan_id());
  EXPECT_EQ(client->Get(1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(client->Get(2).ok());
  EXPECT_EQ(client->stats().prefetches, 2);
  // A prefetch nobody collects is waited for by the destructor.
  ASSERT_TRUE(client->Prefetch(StepRequest(3, 4)).ok());
}

TEST(PlannerClientTest, ADifferentCoordinatorDefaultIsCaughtByThePlanIdCheck) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator(0, "whole_doc");
  std::unique_ptr<PlannerClient> client = Connect(coordinator->port());
  v1::PlanRequest request = StepRequest(0, 1);
  request.mutable_options()->clear_strategy();  // the coordinator's default applies
  absl::StatusOr<PlanResult> result = client->PlanBatch(request);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr("plan id mismatch"));

  PlannerClientOptions matching;
  matching.fallback_defaults.strategy = "whole_doc";
  EXPECT_TRUE(Connect(coordinator->port(), matching)->PlanBatch(request).ok());
}

// The core-typed call returns the message call's plan, in core types, from each source.
TEST(PlannerClientTest, CoreTypedCallsReturnTheMessageCallsPlan) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator();
  const int port = coordinator->port();
  const v1::Plan expected = LocalPlan(StepRequest(0, 6));
  auto check = [&](PlannerClient* client, PlanSource source) {
    absl::StatusOr<BatchPlanResult> result = client->PlanBatch(StepBatchRequest(0, 6));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->source, source);
    ASSERT_EQ(result->plan.workers.size(), 1u);
    EXPECT_EQ(result->plan.workers[0].rank, 6);
    v1::Plan as_proto;
    PlanToProto(result->plan, &as_proto);
    EXPECT_TRUE(SamePlan(as_proto, expected));
  };
  check(Connect(port).get(), PlanSource::kCoordinator);
  check(PlannerClient::Create({})->get(), PlanSource::kLocal);
  coordinator.reset();  // nothing listens there now
  PlannerClientOptions options;
  options.initial_backoff = absl::Milliseconds(1);
  std::unique_ptr<PlannerClient> client = Connect(port, options);
  check(client.get(), PlanSource::kLocalFallback);
  EXPECT_EQ(client->stats().fallbacks, 1);
}

TEST(PlannerClientTest, CorePrefetchIsCollectedByGetPlanOnly) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator();
  std::unique_ptr<PlannerClient> client = Connect(coordinator->port());
  ASSERT_TRUE(client->Prefetch(StepBatchRequest(1, 4)).ok());
  EXPECT_EQ(client->Prefetch(StepRequest(1, 4)).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(client->Get(1).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<BatchPlanResult> one = client->GetPlan(1);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->plan.plan_id, LocalPlan(StepRequest(1, 4)).plan_id());
  EXPECT_EQ(client->GetPlan(1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client->stats().prefetches, 1);
}

// Options the request leaves to the defaults are checked like the message call's.
TEST(PlannerClientTest, CoreTypedCallsAreCheckedByThePlanIdToo) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator(0, "whole_doc");
  BatchRequest request = StepBatchRequest(0, 1);
  request.options.strategy = "";  // the coordinator's default applies
  absl::StatusOr<BatchPlanResult> result = Connect(coordinator->port())->PlanBatch(request);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr("plan id mismatch"));

  PlannerClientOptions matching;
  matching.fallback_defaults.strategy = "whole_doc";
  result = Connect(coordinator->port(), matching)->PlanBatch(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->plan.strategy, "whole_doc");
}

}  // namespace
}  // namespace fcp
