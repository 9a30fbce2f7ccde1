// Conformance of the Transport implementations: the same exchanges over loopback (ranks as
// threads sharing a hub) and gloo (each rank its own Gloo context over TCP, in this process).
#include "worker/transport/transport.h"

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/transport/transport_testing.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(10);
constexpr absl::Duration kShortTimeout = absl::Milliseconds(400);

std::unique_ptr<LocalRanks> MakeRanks(const std::string& kind, int32_t world,
                                      absl::Duration timeout = kTimeout) {
  absl::StatusOr<std::unique_ptr<LocalRanks>> ranks = LocalRanks::Make(kind, world, timeout);
  EXPECT_TRUE(ranks.ok()) << ranks.status();
  return ranks.ok() ? std::move(*ranks) : nullptr;
}

void ExpectAllOk(const std::vector<absl::Status>& status) {
  for (size_t r = 0; r < status.size(); ++r) {
    EXPECT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];
  }
}

class PatternTest : public ::testing::TestWithParam<std::tuple<std::string, int32_t>> {};

TEST_P(PatternTest, RingRounds) {
  const auto& [kind, world] = GetParam();
  std::unique_ptr<LocalRanks> ranks = MakeRanks(kind, world);
  ASSERT_NE(ranks, nullptr);
  ExpectAllOk(ranks->Run([](Transport& t) {
    for (uint64_t tag = 1; tag <= 4; ++tag) RETURN_IF_ERROR(RingPattern(t, tag, 100 * tag));
    return absl::OkStatus();
  }));
}

TEST_P(PatternTest, AllToAllRounds) {
  const auto& [kind, world] = GetParam();
  std::unique_ptr<LocalRanks> ranks = MakeRanks(kind, world);
  ASSERT_NE(ranks, nullptr);
  ExpectAllOk(ranks->Run([](Transport& t) {
    for (uint64_t tag = 1; tag <= 4; ++tag) RETURN_IF_ERROR(AllToAllPattern(t, tag, 50 * tag));
    return absl::OkStatus();
  }));
}

INSTANTIATE_TEST_SUITE_P(KindsAndWorlds, PatternTest,
                         ::testing::Combine(::testing::Values("loopback", "gloo"),
                                            ::testing::Range(1, 9)),
                         [](const auto& info) {
                           return absl::StrCat(std::get<0>(info.param), "_W",
                                               std::get<1>(info.param));
                         });

class TransportTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TransportTest, ManyRoundsOfMixedPatterns) {
  std::unique_ptr<LocalRanks> ranks = MakeRanks(GetParam(), 3);
  ASSERT_NE(ranks, nullptr);
  ExpectAllOk(ranks->Run([](Transport& t) {
    for (uint64_t round = 0; round < 60; ++round) {
      const size_t bytes = (round * 37) % 300;
      RETURN_IF_ERROR(round % 2 == 0 ? RingPattern(t, round, bytes)
                                     : AllToAllPattern(t, round, bytes));
    }
    return absl::OkStatus();
  }));
}

// Each rank posts two tags before waiting, in opposite orders, one rank late: data goes by tag.
TEST_P(TransportTest, MessagesMatchByTagWhateverThePostOrder) {
  std::unique_ptr<LocalRanks> ranks = MakeRanks(GetParam(), 2);
  ASSERT_NE(ranks, nullptr);
  ExpectAllOk(ranks->Run([](Transport& t) -> absl::Status {
    const int32_t me = t.rank();
    const int32_t peer = 1 - me;
    std::vector<uint8_t> out[3], in[3];
    for (int tag : {1, 2}) {
      out[tag].assign(64, static_cast<uint8_t>(tag * 16 + me));
      in[tag].assign(64, 0);
    }
    const auto post = [&](uint64_t tag) {
      return t.Post(tag, {{peer, {{out[tag].data(), 64}}}}, {{peer, {{in[tag].data(), 64}}}});
    };
    if (me == 1) absl::SleepFor(absl::Milliseconds(50));
    ASSIGN_OR_RETURN(auto first, post(me == 0 ? 2 : 1));
    ASSIGN_OR_RETURN(auto second, post(me == 0 ? 1 : 2));
    RETURN_IF_ERROR(second->Wait());
    RETURN_IF_ERROR(first->Wait());
    for (int tag : {1, 2}) {
      if (in[tag] != std::vector<uint8_t>(64, static_cast<uint8_t>(tag * 16 + peer))) {
        return absl::DataLossError(absl::StrCat("rank ", me, ": wrong data under tag ", tag));
      }
    }
    return absl::OkStatus();
  }));
}

TEST_P(TransportTest, SeveralBuffersPerMessageAndEmptyOnes) {
  std::unique_ptr<LocalRanks> ranks = MakeRanks(GetParam(), 2);
  ASSERT_NE(ranks, nullptr);
  ExpectAllOk(ranks->Run([](Transport& t) -> absl::Status {
    const std::vector<size_t> sizes = {100, 0, 0, 7, 0, 1 << 20};
    std::vector<std::vector<uint8_t>> data;
    for (size_t i = 0; i < sizes.size(); ++i) {
      data.emplace_back(sizes[i], t.rank() == 0 ? static_cast<uint8_t>(i + 1) : 0);
    }
    std::vector<TransportBuffer> buffers;
    for (auto& d : data) buffers.push_back({d.data(), d.size()});
    // Rank 0 sends six buffers to rank 1; rank 1 sends rank 0 a message with no buffers at all.
    if (t.rank() == 0) {
      RETURN_IF_ERROR(t.Exchange(3, {{1, buffers}}, {{1, {}}}));
    } else {
      RETURN_IF_ERROR(t.Exchange(3, {{0, {}}}, {{0, buffers}}));
      for (size_t i = 0; i < sizes.size(); ++i) {
        if (data[i] != std::vector<uint8_t>(sizes[i], static_cast<uint8_t>(i + 1))) {
          return absl::DataLossError(absl::StrCat("buffer ", i, " differs"));
        }
      }
    }
    return absl::OkStatus();
  }));
}

TEST_P(TransportTest, MismatchedSizesFailBothSidesNamingExpectedAndGot) {
  std::unique_ptr<LocalRanks> ranks = MakeRanks(GetParam(), 2);
  ASSERT_NE(ranks, nullptr);
  const std::vector<absl::Status> status = ranks->Run([](Transport& t) {
    std::vector<uint8_t> a(16), b(12);
    if (t.rank() == 0) return t.Exchange(5, {{1, {{a.data(), 16}, {b.data(), 8}}}}, {});
    return t.Exchange(5, {}, {{0, {{a.data(), 16}, {b.data(), 12}}}});
  });
  const std::string kind = GetParam();
  EXPECT_EQ(status[0].code(), absl::StatusCode::kInvalidArgument) << status[0];
  EXPECT_THAT(status[0].message(),
              HasSubstr(kind + " rank 0, tag 5: send to rank 1: rank 1 expects 2 buffers [16, "
                               "12] (28 bytes), this rank sends 2 buffers [16, 8] (24 bytes)"));
  EXPECT_EQ(status[1].code(), absl::StatusCode::kInvalidArgument) << status[1];
  EXPECT_THAT(status[1].message(),
              HasSubstr(kind + " rank 1, tag 5: receive from rank 0: expected 2 buffers [16, "
                               "12] (28 bytes), rank 0 sends 2 buffers [16, 8] (24 bytes)"));
}

TEST_P(TransportTest, MismatchedCountsFail) {
  std::unique_ptr<LocalRanks> ranks = MakeRanks(GetParam(), 2);
  ASSERT_NE(ranks, nullptr);
  const std::vector<absl::Status> status = ranks->Run([](Transport& t) {
    std::vector<uint8_t> a(8), b(8);
    if (t.rank() == 0) return t.Exchange(6, {{1, {{a.data(), 8}}}}, {});
    return t.Exchange(6, {}, {{0, {{a.data(), 8}, {b.data(), 8}}}});
  });
  EXPECT_EQ(status[1].code(), absl::StatusCode::kInvalidArgument) << status[1];
  EXPECT_THAT(status[1].message(),
              HasSubstr("expected 2 buffers [8, 8] (16 bytes), rank 0 sends 1 buffer [8]"));
}

TEST_P(TransportTest, APeerThatNeverPostsTimesOutNamingIt) {
  std::unique_ptr<LocalRanks> ranks = MakeRanks(GetParam(), 3, kShortTimeout);
  ASSERT_NE(ranks, nullptr);
  absl::Duration waited;
  const std::vector<absl::Status> status = ranks->Run([&](Transport& t) {
    if (t.rank() != 0) return absl::OkStatus();  // alive, but never posts
    std::vector<uint8_t> in(8);
    const absl::Time start = absl::Now();
    absl::Status s = t.Exchange(9, {}, {{2, {{in.data(), 8}}}});
    waited = absl::Now() - start;
    return s;
  });
  EXPECT_EQ(status[0].code(), absl::StatusCode::kDeadlineExceeded) << status[0];
  EXPECT_THAT(status[0].message(), HasSubstr(GetParam() + " rank 0, tag 9: timed out after 400ms"));
  EXPECT_THAT(status[0].message(), HasSubstr("rank 2"));
  EXPECT_THAT(status[0].message(), HasSubstr("did not post its send to this rank"));
  EXPECT_GE(waited, kShortTimeout);
  EXPECT_LT(waited, absl::Seconds(3));
}

TEST_P(TransportTest, APeerThatIsGoneFailsTheWaitAtOnceNamingIt) {
  std::unique_ptr<LocalRanks> ranks = MakeRanks(GetParam(), 3);
  ASSERT_NE(ranks, nullptr);
  absl::Notification closed;
  absl::Duration waited;
  const std::vector<absl::Status> status = ranks->Run([&](Transport& t) {
    if (t.rank() == 2) {
      ranks->Close(2);
      closed.Notify();
      return absl::OkStatus();
    }
    if (t.rank() == 1) return absl::OkStatus();
    closed.WaitForNotification();
    std::vector<uint8_t> in(8), out(8);
    const absl::Time start = absl::Now();
    absl::Status s = t.Exchange(4, {{2, {{out.data(), 8}}}}, {{2, {{in.data(), 8}}}});
    waited = absl::Now() - start;
    return s;
  });
  EXPECT_EQ(status[0].code(), absl::StatusCode::kUnavailable) << status[0];
  EXPECT_THAT(status[0].message(), HasSubstr(GetParam() + " rank 0, tag 4: "));
  EXPECT_THAT(status[0].message(), HasSubstr("rank 2"));
  EXPECT_LT(waited, absl::Seconds(3));  // far below the 10 s timeout
}

TEST_P(TransportTest, BarrierHoldsEveryRankUntilAllEntered) {
  constexpr int32_t kWorld = 4;
  std::unique_ptr<LocalRanks> ranks = MakeRanks(GetParam(), kWorld);
  ASSERT_NE(ranks, nullptr);
  std::atomic<int> entered[3] = {0, 0, 0};
  ExpectAllOk(ranks->Run([&](Transport& t) -> absl::Status {
    for (int round = 0; round < 3; ++round) {
      absl::SleepFor(absl::Milliseconds(20 * ((t.rank() + round) % kWorld)));
      ++entered[round];
      RETURN_IF_ERROR(t.Barrier());
      if (entered[round] != kWorld) return absl::InternalError("left the barrier early");
    }
    return absl::OkStatus();
  }));
}

TEST_P(TransportTest, BarrierTimesOutNamingTheMissingRank) {
  std::unique_ptr<LocalRanks> ranks = MakeRanks(GetParam(), 3, kShortTimeout);
  ASSERT_NE(ranks, nullptr);
  const std::vector<absl::Status> status =
      ranks->Run([](Transport& t) { return t.rank() == 2 ? absl::OkStatus() : t.Barrier(); });
  // The first rank to time out names rank 2. A loopback rank that fails is aborted (LocalRanks
  // does as the worker does), so the other one may instead see that rank gone.
  int named = 0;
  for (int r : {0, 1}) {
    EXPECT_FALSE(status[r].ok());
    if (status[r].code() != absl::StatusCode::kDeadlineExceeded) continue;
    EXPECT_THAT(status[r].message(), HasSubstr("timed out after 400ms; rank 2 never entered"));
    ++named;
  }
  EXPECT_GE(named, 1);
}

TEST_P(TransportTest, PostRefusesBadPeers) {
  std::unique_ptr<LocalRanks> ranks = MakeRanks(GetParam(), 3);
  ASSERT_NE(ranks, nullptr);
  Transport& t = ranks->rank(0);
  const auto refusal = [&](std::vector<SendOp> sends, std::vector<RecvOp> recvs) {
    absl::StatusOr<std::unique_ptr<PendingExchange>> p = t.Post(8, sends, recvs);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << p.status();
    return std::string(p.status().message());
  };
  EXPECT_THAT(refusal({{3, {}}}, {}), HasSubstr("rank 0, tag 8: sends[0].peer: 3 is out of range"));
  EXPECT_THAT(refusal({}, {{1, {}}, {0, {}}}), HasSubstr("recvs[1].peer: 0 is this rank"));
  EXPECT_THAT(refusal({{1, {}}, {1, {}}}, {}), HasSubstr("sends[1].peer: 1 appears twice"));
  EXPECT_THAT(refusal({{-1, {}}}, {}), HasSubstr("sends[0].peer: -1 is out of range [0, 3)"));
}

TEST_P(TransportTest, WaitTwiceIsRefused) {
  std::unique_ptr<LocalRanks> ranks = MakeRanks(GetParam(), 1);
  ASSERT_NE(ranks, nullptr);
  absl::StatusOr<std::unique_ptr<PendingExchange>> p = ranks->rank(0).Post(1, {}, {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE((*p)->Wait().ok());
  EXPECT_EQ((*p)->Wait().code(), absl::StatusCode::kFailedPrecondition);
}

INSTANTIATE_TEST_SUITE_P(Kinds, TransportTest, ::testing::Values("loopback", "gloo"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace fcp
