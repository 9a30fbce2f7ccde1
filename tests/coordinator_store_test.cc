// fcp::NewCoordinatorStore against a real coordinator, in-process, over loopback TCP (port 0):
// ranks are threads, each with its own store (its own connection), as separate processes would be.
#include "worker/transport/coordinator_store.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gloo/barrier.h"
#include "gloo/common/error.h"
#include "gloo/rendezvous/context.h"
#include "gloo/transport/tcp/device.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/coordinator.h"

namespace fcp {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::unique_ptr<Coordinator> StartCoordinator(int port = 0) {
  CoordinatorOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  options.metrics_port = -1;
  options.rendezvous.max_value_bytes = 1 << 16;
  absl::StatusOr<std::unique_ptr<Coordinator>> coordinator = Coordinator::Start(options);
  EXPECT_TRUE(coordinator.ok()) << coordinator.status();
  return coordinator.ok() ? *std::move(coordinator) : nullptr;
}

std::vector<char> Bytes(absl::string_view s) { return std::vector<char>(s.begin(), s.end()); }

class CoordinatorStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    coordinator_ = StartCoordinator();
    ASSERT_NE(coordinator_, nullptr);
  }

  CoordinatorStoreOptions Options(const std::string& job, const std::string& prefix = "") {
    CoordinatorStoreOptions options;
    options.target = absl::StrCat("127.0.0.1:", coordinator_->port());
    options.job_id = job;
    options.prefix = prefix;
    options.timeout = absl::Seconds(20);
    return options;
  }

  std::shared_ptr<gloo::rendezvous::Store> NewStore(const CoordinatorStoreOptions& options) {
    absl::StatusOr<std::shared_ptr<gloo::rendezvous::Store>> store = NewCoordinatorStore(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.value_or(nullptr);
  }

  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(CoordinatorStoreTest, BadOptionsAreInvalidArgumentNamingTheField) {
  CoordinatorStoreOptions options = Options("job");
  options.target = "";
  EXPECT_THAT(NewCoordinatorStore(options).status().message(), HasSubstr("target"));
  options = Options("");
  EXPECT_THAT(NewCoordinatorStore(options).status().message(), HasSubstr("job_id"));
  options = Options("job");
  options.timeout = absl::ZeroDuration();
  EXPECT_THAT(NewCoordinatorStore(options).status().message(), HasSubstr("timeout"));
  options = Options("job");
  options.max_poll_interval = absl::Microseconds(1);
  EXPECT_TRUE(absl::IsInvalidArgument(NewCoordinatorStore(options).status()));
}

// Every rank publishes its address, then waits for and reads everyone's: what Gloo's
// connectFullMesh does. Ranks start at staggered times, so gets really wait.
TEST_F(CoordinatorStoreTest, RanksAsThreadsExchangeValues) {
  constexpr int kRanks = 6;
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < kRanks; ++rank) {
    ranks.emplace_back([this, rank] {
      std::shared_ptr<gloo::rendezvous::Store> store = NewStore(Options("exchange", "attempt-0/"));
      ASSERT_NE(store, nullptr);
      absl::SleepFor(absl::Milliseconds(20 * rank));
      try {
        store->set(absl::StrCat("rank/", rank), Bytes(absl::StrCat("addr-of-", rank)));
        std::vector<std::string> keys;
        for (int peer = 0; peer < kRanks; ++peer) keys.push_back(absl::StrCat("rank/", peer));
        store->wait(keys, std::chrono::seconds(20));
        for (int peer = kRanks - 1; peer >= 0; --peer) {
          EXPECT_EQ(store->get(absl::StrCat("rank/", peer)), Bytes(absl::StrCat("addr-of-", peer)));
        }
      } catch (const gloo::Exception& e) {
        ADD_FAILURE() << "rank " << rank << ": " << e.what();
      }
    });
  }
  for (std::thread& rank : ranks) rank.join();
  EXPECT_EQ(coordinator_->rendezvous().entries(), kRanks);
  EXPECT_EQ(*coordinator_->rendezvous().Get("exchange", "attempt-0/rank/3"), "addr-of-3");
}

TEST_F(CoordinatorStoreTest, JobsAndPrefixesDoNotSeeEachOther) {
  CoordinatorStoreOptions options = Options("job-a", "attempt-0/");
  options.timeout = absl::Milliseconds(100);
  std::shared_ptr<gloo::rendezvous::Store> a0 = NewStore(options);
  options.prefix = "attempt-1/";
  std::shared_ptr<gloo::rendezvous::Store> a1 = NewStore(options);
  options.job_id = "job-b";
  std::shared_ptr<gloo::rendezvous::Store> b1 = NewStore(options);
  a0->set("id", Bytes("0"));
  a1->set("id", Bytes("1"));
  EXPECT_EQ(a0->get("id"), Bytes("0"));
  EXPECT_EQ(a1->get("id"), Bytes("1"));
  EXPECT_THROW(b1->get("id"), gloo::IoException);
}

TEST_F(CoordinatorStoreTest, KeyNeverSetTimesOutNamingKeyJobAndCoordinator) {
  CoordinatorStoreOptions options = Options("job-t", "p/");
  options.timeout = absl::Milliseconds(300);
  std::shared_ptr<gloo::rendezvous::Store> store = NewStore(options);
  const absl::Time start = absl::Now();
  try {
    store->get("never");
    FAIL() << "get of a key never set returned";
  } catch (const gloo::IoException& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr("'p/never'"), HasSubstr("job 'job-t'"),
                                HasSubstr(options.target), HasSubstr("not set within")));
  }
  const absl::Duration waited = absl::Now() - start;
  EXPECT_GE(waited, absl::Milliseconds(300));
  EXPECT_LT(waited, absl::Seconds(5));

  // wait() with Gloo's own timeout argument.
  store->set("here", Bytes("x"));
  EXPECT_THROW(store->wait({"here", "missing"}, std::chrono::milliseconds(100)), gloo::IoException);
  store->wait({"here"}, std::chrono::milliseconds(100));
}

TEST_F(CoordinatorStoreTest, CoordinatorRefusalThrowsAtOnce) {
  std::shared_ptr<gloo::rendezvous::Store> store = NewStore(Options("job-r"));
  const absl::Time start = absl::Now();
  try {
    store->set("big", std::vector<char>((1 << 16) + 1, 'x'));
    FAIL() << "set over the coordinator's value limit returned";
  } catch (const gloo::IoException& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr("'big'"), HasSubstr("RESOURCE_EXHAUSTED"),
                                HasSubstr("--rendezvous-max-value-bytes")));
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(CoordinatorStoreTest, UnreachableCoordinatorTimesOutWithTheLastError) {
  CoordinatorStoreOptions options = Options("job-u");
  options.timeout = absl::Milliseconds(300);
  coordinator_.reset();
  std::shared_ptr<gloo::rendezvous::Store> store = NewStore(options);
  try {
    store->set("k", Bytes("v"));
    FAIL() << "set without a coordinator returned";
  } catch (const gloo::IoException& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr("'k'"), HasSubstr("UNAVAILABLE")));
  }
}

// A rank that starts before the coordinator (pods start in any order) keeps polling and gets
// the value once the coordinator is up.
TEST_F(CoordinatorStoreTest, WaitsForACoordinatorThatStartsLate) {
  const int port = coordinator_->port();
  const CoordinatorStoreOptions options = Options("job-late");
  coordinator_.reset();
  std::shared_ptr<gloo::rendezvous::Store> waiting = NewStore(options);
  absl::Notification got;
  std::thread rank([&] {
    EXPECT_NO_THROW(EXPECT_EQ(waiting->get("id"), Bytes("late")));
    got.Notify();
  });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(got.HasBeenNotified());
  coordinator_ = StartCoordinator(port);
  if (coordinator_ != nullptr) NewStore(options)->set("id", Bytes("late"));
  rank.join();
}

// The store is good enough for Gloo itself: 3 ranks connect a full mesh over TCP on 127.0.0.1
// through it, then run a barrier and pass a value around a ring.
TEST_F(CoordinatorStoreTest, ConnectsAGlooFullMesh) {
  static constexpr int kRanks = 3;
  std::vector<std::thread> ranks;
  std::vector<int> received(kRanks, -1);
  for (int rank = 0; rank < kRanks; ++rank) {
    ranks.emplace_back([this, rank, &received] {
      std::shared_ptr<gloo::rendezvous::Store> store = NewStore(Options("gloo-job", "gloo/"));
      ASSERT_NE(store, nullptr);
      try {
        gloo::transport::tcp::attr attr;
        attr.hostname = "127.0.0.1";
        std::shared_ptr<gloo::transport::Device> device = gloo::transport::tcp::CreateDevice(attr);
        auto context = std::make_shared<gloo::rendezvous::Context>(rank, kRanks);
        context->setTimeout(std::chrono::seconds(20));
        context->connectFullMesh(*store, device);

        gloo::BarrierOptions barrier(context);
        gloo::barrier(barrier);

        int send = 100 + rank;
        std::unique_ptr<gloo::transport::UnboundBuffer> send_buffer =
            context->createUnboundBuffer(&send, sizeof(send));
        std::unique_ptr<gloo::transport::UnboundBuffer> recv_buffer =
            context->createUnboundBuffer(&received[rank], sizeof(int));
        constexpr uint64_t kSlot = 7;
        recv_buffer->recv((rank + kRanks - 1) % kRanks, kSlot);
        send_buffer->send((rank + 1) % kRanks, kSlot);
        recv_buffer->waitRecv();
        send_buffer->waitSend();
      } catch (const gloo::Exception& e) {
        ADD_FAILURE() << "rank " << rank << ": " << e.what();
      }
    });
  }
  for (std::thread& rank : ranks) rank.join();
  EXPECT_EQ(received, (std::vector<int>{102, 100, 101}));
}

}  // namespace
}  // namespace fcp
