// The gloo transport across real processes: four gloo_peer processes exchange in a ring and all
// to all; one of them dies (SIGKILL) or freezes (SIGSTOP) and the others must fail naming it,
// within the timeout, and exit non-zero.
#include <signal.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/subprocess.h"
#include "worker/transport/transport_testing.h"

namespace fcp {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int32_t kWorld = 4;
constexpr int32_t kVictim = 2;

std::vector<std::unique_ptr<Subprocess>> Launch(const TempDir& dir,
                                                const std::vector<std::string>& flags) {
  std::vector<std::unique_ptr<Subprocess>> peers;
  for (int32_t r = 0; r < kWorld; ++r) {
    std::vector<std::string> argv = {FCP_GLOO_PEER, absl::StrCat("--rank=", r),
                                     absl::StrCat("--world=", kWorld), "--dir=" + dir.path()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    peers.push_back(std::make_unique<Subprocess>(argv));
    EXPECT_TRUE(peers.back()->Start().ok());
  }
  return peers;
}

void ExpectLine(Subprocess& peer, const std::string& line) {
  absl::StatusOr<std::string> got = peer.ReadLine(absl::Seconds(20));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, line);
}

TEST(GlooMultiprocessTest, FourProcessesExchangeInARingAndAllToAll) {
  TempDir dir;
  std::vector<std::unique_ptr<Subprocess>> peers = Launch(dir, {"--rounds=3", "--bytes=200000"});
  for (int32_t r = 0; r < kWorld; ++r) {
    for (int round = 0; round < 3; ++round)
      ExpectLine(*peers[r], absl::StrCat("round ", round, " ok"));
    ExpectLine(*peers[r], "done");
    EXPECT_EQ(peers[r]->Wait(), 0) << "rank " << r;
  }
}

// Rank 2 fails at the start of round 1. Each survivor must print an error naming rank 2 within
// `deadline` of round 0, then (once released) exit 1.
void ExpectSurvivorsNameTheVictim(const std::string& how, absl::Duration timeout,
                                  absl::Duration deadline, absl::StatusCode code) {
  TempDir dir;
  const std::string release = dir.path() + "/release";
  std::vector<std::unique_ptr<Subprocess>> peers =
      Launch(dir, {"--rounds=3", "--fail_round=1", absl::StrCat("--fail_rank=", kVictim),
                   "--fail_how=" + how, "--release_file=" + release,
                   absl::StrCat("--timeout_ms=", absl::ToInt64Milliseconds(timeout))});
  for (int32_t r = 0; r < kWorld; ++r) ExpectLine(*peers[r], "round 0 ok");
  const absl::Time start = absl::Now();
  for (int32_t r = 0; r < kWorld; ++r) {
    if (r == kVictim) continue;
    absl::StatusOr<std::string> line = peers[r]->ReadLine(deadline);
    ASSERT_TRUE(line.ok()) << "rank " << r << ": " << line.status();
    EXPECT_THAT(*line, StartsWith(absl::StrCat("error: ", absl::StatusCodeToString(code),
                                               ": gloo rank ", r, ", tag 11: ")));
    EXPECT_THAT(*line, HasSubstr("rank 2"));
    std::printf("rank %d: %s\n", r, line->c_str());
  }
  EXPECT_LT(absl::Now() - start, deadline);
  std::ofstream(release).put('\n');
  for (int32_t r = 0; r < kWorld; ++r) {
    if (r == kVictim) continue;
    EXPECT_EQ(peers[r]->Wait(), 1) << "rank " << r;
  }
  peers[kVictim]->Signal(SIGKILL);
  EXPECT_EQ(peers[kVictim]->Wait(), 128 + SIGKILL);
}

TEST(GlooMultiprocessTest, AKilledPeerIsNamedByEverySurvivorAtOnce) {
  // A dead process's connections close: the survivors know well before the 3 s timeout.
  ExpectSurvivorsNameTheVictim("kill", absl::Seconds(3), absl::Seconds(3),
                               absl::StatusCode::kUnavailable);
}

TEST(GlooMultiprocessTest, AFrozenPeerIsNamedByEverySurvivorAfterTheTimeout) {
  // A stopped process keeps its connections open: only the 2 s timeout tells.
  const absl::Time start = absl::Now();
  ExpectSurvivorsNameTheVictim("stop", absl::Seconds(2), absl::Seconds(5),
                               absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, absl::Seconds(2));
}

}  // namespace
}  // namespace fcp
