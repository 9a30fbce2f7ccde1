// What only the loopback transport does: aborted and destroyed ranks, withdrawn messages. The
// behavior every transport shares is in transport_test.cc.
#include "worker/transport/loopback_transport.h"

#include <memory>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

TEST(LoopbackTransportTest, AnAbortedPeerFailsAWaitAtOnce) {
  LoopbackHub hub(2);
  LoopbackTransport transport(&hub, 0);
  transport.set_timeout(absl::Seconds(30));
  std::thread aborter([&hub] {
    absl::SleepFor(absl::Milliseconds(50));
    hub.Abort(1);
  });
  std::vector<uint8_t> in(4);
  const absl::Time start = absl::Now();
  const absl::Status status = transport.Exchange(7, {}, {{1, {{in.data(), 4}}}});
  aborter.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(status.message(),
            "loopback rank 0, tag 7: rank 1 is gone (aborted); rank 1 did not post its send to "
            "this rank");
}

TEST(LoopbackTransportTest, ADestroyedTransportCountsAsGone) {
  LoopbackHub hub(3);
  LoopbackTransport transport(&hub, 0);
  { LoopbackTransport gone(&hub, 2); }
  std::vector<uint8_t> out(4);
  const absl::Status status = transport.Exchange(1, {{2, {{out.data(), 4}}}}, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("rank 2 is gone (closed)"));
  EXPECT_THAT(status.message(), HasSubstr("rank 2 did not post its receive from this rank"));
}

TEST(LoopbackTransportTest, AMessageAlreadyDeliveredSurvivesItsSenderLeaving) {
  LoopbackHub hub(2);
  LoopbackTransport receiver(&hub, 1);
  std::vector<uint8_t> in(4, 0);
  absl::StatusOr<std::unique_ptr<PendingExchange>> pending =
      receiver.Post(3, {}, {{0, {{in.data(), 4}}}});
  ASSERT_TRUE(pending.ok()) << pending.status();
  {
    LoopbackTransport sender(&hub, 0);
    std::vector<uint8_t> out(4, 9);
    ASSERT_TRUE(sender.Exchange(3, {{1, {{out.data(), 4}}}}, {}).ok());
  }
  EXPECT_TRUE((*pending)->Wait().ok());
  EXPECT_EQ(in, std::vector<uint8_t>(4, 9));
}

TEST(LoopbackTransportTest, AnAbortedRankCannotPost) {
  LoopbackHub hub(2);
  LoopbackTransport transport(&hub, 0);
  hub.Abort(0);
  EXPECT_EQ(transport.Post(1, {}, {}).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(transport.Barrier().code(), absl::StatusCode::kFailedPrecondition);
}

// The sender drops its exchange (and frees its buffer) before the receiver shows up: the
// receiver must time out, not read freed memory.
TEST(LoopbackTransportTest, ADroppedExchangeWithdrawsItsMessages) {
  LoopbackHub hub(2);
  LoopbackTransport sender(&hub, 0);
  LoopbackTransport receiver(&hub, 1);
  receiver.set_timeout(absl::Milliseconds(100));
  {
    auto out = std::make_unique<std::vector<uint8_t>>(4, 1);
    absl::StatusOr<std::unique_ptr<PendingExchange>> pending =
        sender.Post(5, {{1, {{out->data(), 4}}}}, {});
    ASSERT_TRUE(pending.ok());
  }
  std::vector<uint8_t> in(4);
  const absl::Status status = receiver.Exchange(5, {}, {{0, {{in.data(), 4}}}});
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_EQ(status.message(),
            "loopback rank 1, tag 5: timed out after 100ms: rank 0 did not post its send to this "
            "rank");
}

TEST(LoopbackTransportTest, ASecondSendUnderATagInFlightIsRefused) {
  LoopbackHub hub(2);
  LoopbackTransport transport(&hub, 0);
  std::vector<uint8_t> out(4);
  absl::StatusOr<std::unique_ptr<PendingExchange>> first =
      transport.Post(5, {{1, {{out.data(), 4}}}}, {});
  ASSERT_TRUE(first.ok());
  absl::StatusOr<std::unique_ptr<PendingExchange>> second =
      transport.Post(5, {{1, {{out.data(), 4}}}}, {});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(second.status().message(),
              HasSubstr("a send to rank 1 under this tag is already in flight"));
}

TEST(LoopbackTransportTest, ABarrierFailsAtOnceWhenARankIsGone) {
  LoopbackHub hub(3);
  LoopbackTransport transport(&hub, 0);
  transport.set_timeout(absl::Seconds(30));
  hub.Abort(2);
  const absl::Time start = absl::Now();
  const absl::Status status = transport.Barrier();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(status.message(), "loopback rank 0, barrier: rank 2 is gone (aborted)");
}

}  // namespace
}  // namespace fcp
