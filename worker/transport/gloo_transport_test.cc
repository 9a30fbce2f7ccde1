// What only the gloo transport does: the rendezvous, its options, tags, the broken state after a
// failure, any Gloo store. The behavior every transport shares is in transport_test.cc.
#include "worker/transport/gloo_transport.h"

#include <memory>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gloo/rendezvous/hash_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/transport/transport_testing.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

GlooOptions Options(const TempDir& dir, int32_t rank, int32_t world) {
  GlooOptions options;
  options.rank = rank;
  options.world_size = world;
  options.rendezvous_dir = dir.path();
  options.prefix = "job/attempt-0";
  options.timeout = absl::Seconds(10);
  return options;
}

// Runs NewGlooTransport for ranks [0, joining) of `world` at once.
std::vector<absl::StatusOr<std::unique_ptr<Transport>>> Join(
    int32_t world, int32_t joining, const std::function<GlooOptions(int32_t)>& options,
    std::shared_ptr<gloo::rendezvous::Store> store = nullptr) {
  std::vector<absl::StatusOr<std::unique_ptr<Transport>>> transports(joining);
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < joining; ++r) {
    threads.emplace_back([&, r] {
      transports[r] = store ? NewGlooTransport(options(r), store) : NewGlooTransport(options(r));
    });
  }
  for (std::thread& t : threads) t.join();
  return transports;
}

TEST(GlooTransportTest, ARankThatNeverJoinsIsNamedWithinTheTimeout) {
  TempDir dir;
  const absl::Time start = absl::Now();
  const auto transports = Join(3, 2, [&](int32_t r) {
    GlooOptions o = Options(dir, r, 3);
    o.timeout = absl::Milliseconds(500);
    return o;
  });
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  for (int32_t r = 0; r < 2; ++r) {
    EXPECT_EQ(transports[r].status().code(), absl::StatusCode::kDeadlineExceeded)
        << transports[r].status();
    EXPECT_EQ(transports[r].status().message(),
              absl::StrCat("gloo rendezvous of rank ", r,
                           " of 3 (prefix 'job/attempt-0', "
                           "directory ",
                           dir.path(),
                           "): timed out after 500ms: rank 2 never "
                           "joined"));
  }
}

TEST(GlooTransportTest, APrefixServesOneAttempt) {
  TempDir dir;
  ASSERT_TRUE(NewGlooTransport(Options(dir, 0, 1)).ok());
  const absl::StatusOr<std::unique_ptr<Transport>> again = NewGlooTransport(Options(dir, 0, 1));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  EXPECT_THAT(again.status().message(), HasSubstr("each attempt needs a fresh one"));
  GlooOptions next = Options(dir, 0, 1);
  next.prefix = "job/attempt-1";
  EXPECT_TRUE(NewGlooTransport(next).ok());
}

TEST(GlooTransportTest, OptionsAreChecked) {
  TempDir dir;
  const auto refusal = [&](const std::function<void(GlooOptions&)>& change) {
    GlooOptions o = Options(dir, 0, 2);
    change(o);
    const absl::StatusOr<std::unique_ptr<Transport>> t = NewGlooTransport(o);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
    return std::string(t.status().message());
  };
  EXPECT_EQ(refusal([](GlooOptions& o) { o.world_size = 0; }), "world_size: must be >= 1");
  EXPECT_EQ(refusal([](GlooOptions& o) { o.rank = 2; }), "rank: 2 is out of range [0, 2)");
  EXPECT_THAT(refusal([](GlooOptions& o) { o.prefix = ""; }), HasSubstr("prefix: must"));
  EXPECT_THAT(refusal([](GlooOptions& o) { o.timeout = absl::ZeroDuration(); }),
              HasSubstr("timeout: must be > 0"));
  EXPECT_THAT(refusal([](GlooOptions& o) { o.rendezvous_dir = ""; }),
              HasSubstr("rendezvous_dir: must not be empty"));
  EXPECT_THAT(refusal([](GlooOptions& o) { o.hostname = "no-such-host.invalid"; }),
              HasSubstr("cannot listen on hostname 'no-such-host.invalid'"));
}

TEST(GlooTransportTest, TagsAbove2To60AreRefused) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<Transport>> t = NewGlooTransport(Options(dir, 0, 1));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE((*t)->Exchange(kGlooMaxTag, {}, {}).ok());
  EXPECT_EQ((*t)->Post(kGlooMaxTag + 1, {}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GlooTransportTest, AFailedWaitBreaksTheTransport) {
  TempDir dir;
  auto transports = Join(2, 2, [&](int32_t r) { return Options(dir, r, 2); });
  ASSERT_TRUE(transports[0].ok() && transports[1].ok());
  Transport& t = **transports[0];
  t.set_timeout(absl::Milliseconds(200));
  std::vector<uint8_t> in(4);
  EXPECT_EQ(t.Exchange(1, {}, {{1, {{in.data(), 4}}}}).code(), absl::StatusCode::kDeadlineExceeded);
  const absl::Status after = t.Exchange(2, {}, {});
  EXPECT_EQ(after.code(), absl::StatusCode::kFailedPrecondition) << after;
  EXPECT_THAT(after.message(), HasSubstr("gloo rank 0, tag 2: the transport is broken by an "
                                         "earlier failure (gloo rank 0, tag 1: timed out"));
  EXPECT_EQ(t.Barrier().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(GlooTransportTest, AnExchangeDroppedWithoutWaitBreaksTheTransport) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<Transport>> t = NewGlooTransport(Options(dir, 0, 1));
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->Post(1, {}, {}).ok());  // dropped at once
  EXPECT_THAT((*t)->Exchange(2, {}, {}).message(), HasSubstr("dropped without Wait"));
}

// The seam for a coordinator-backed rendezvous: any Gloo store.
TEST(GlooTransportTest, RanksCanMeetThroughAnyGlooStore) {
  TempDir unused;
  auto store = std::make_shared<gloo::rendezvous::HashStore>();
  auto transports = Join(
      3, 3, [&](int32_t r) { return Options(unused, r, 3); }, store);
  std::vector<std::thread> threads;
  std::vector<absl::Status> status(3);
  for (int32_t r = 0; r < 3; ++r) {
    ASSERT_TRUE(transports[r].ok()) << transports[r].status();
    threads.emplace_back([&, r] { status[r] = AllToAllPattern(**transports[r], 1, 1000); });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : status) EXPECT_TRUE(s.ok()) << s;
}

TEST(GlooTransportTest, LargeMessagesArriveWhole) {
  std::unique_ptr<LocalRanks> ranks = *LocalRanks::Make("gloo", 2, absl::Seconds(20));
  for (const absl::Status& s : ranks->Run([](Transport& t) {
         return AllToAllPattern(t, 1, size_t{16} << 20);  // 16 MiB and 8 MiB buffers
       })) {
    EXPECT_TRUE(s.ok()) << s;
  }
}

}  // namespace
}  // namespace fcp
