#include "service/single_flight.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace fcp {
namespace {

TEST(SingleFlightTest, FollowersGetTheLeadersValueWithTheirRoles) {
  SingleFlight<int> flights;
  std::vector<std::pair<int, SingleFlightRole>> calls;
  auto record = [&calls](const int& v, SingleFlightRole role) { calls.push_back({v, role}); };
  EXPECT_EQ(flights.Join("a", record), SingleFlightRole::kLeader);
  EXPECT_EQ(flights.Join("a", record), SingleFlightRole::kFollower);
  EXPECT_EQ(flights.Join("b", record), SingleFlightRole::kLeader);
  EXPECT_EQ(flights.size(), 2u);
  flights.Finish("a", 7);
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0], std::make_pair(7, SingleFlightRole::kLeader));
  EXPECT_EQ(calls[1], std::make_pair(7, SingleFlightRole::kFollower));
  EXPECT_EQ(flights.size(), 1u);
  // A finished key starts a new flight.
  EXPECT_EQ(flights.Join("a", record), SingleFlightRole::kLeader);
}

TEST(SingleFlightTest, ConcurrentJoinersMakeOneLeader) {
  SingleFlight<int> flights;
  std::atomic<int> leaders{0};
  std::atomic<int> called{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      if (flights.Join("k", [&](const int&, SingleFlightRole) { ++called; }) ==
          SingleFlightRole::kLeader) {
        ++leaders;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(leaders.load(), 1);
  flights.Finish("k", 1);
  EXPECT_EQ(called.load(), 16);
}

}  // namespace
}  // namespace fcp
