// RoomQueue against the scan it must agree with, under the packers' use (loads and tokens that
// grow, queries whose room mostly grows), and beyond it: values that shrink, rooms that shrink,
// ties, hidden workers.
#include "service/planner/strategies/room_queue.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace fcp {
namespace {

// In index order, the first worker with the least load among the visible ones holding at most
// max_tokens; -1 if none.
int32_t Scan(const std::vector<double>& load, const std::vector<int64_t>& tokens,
             const std::vector<bool>& hidden, int64_t max_tokens) {
  int32_t best = -1;
  for (int32_t w = 0; w < static_cast<int32_t>(load.size()); ++w) {
    if (!hidden[w] && tokens[w] <= max_tokens && (best < 0 || load[w] < load[best])) best = w;
  }
  return best;
}

TEST(RoomQueueTest, FindsWhatAScanFindsUnderRandomUpdates) {
  for (int32_t workers : {1, 3, 4, 5, 37, 256, 1000}) {
    std::mt19937_64 rng(workers);
    RoomQueue queue(workers);
    std::vector<double> load(workers, 0);
    std::vector<int64_t> tokens(workers, 0);
    std::vector<bool> hidden(workers, false);
    for (int step = 0; step < 6000; ++step) {
      const int32_t w = static_cast<int32_t>(rng() % workers);
      if (rng() % 8 == 0) {
        queue.Hide(w);
        hidden[w] = true;
      } else if (rng() % 10 == 0) {  // a load and tokens that shrink (any Set is allowed)
        load[w] = static_cast<double>(rng() % 4);
        tokens[w] /= 2;
        queue.Set(w, load[w], tokens[w]);
        hidden[w] = false;
      } else {
        // Loads drawn from a few values, so that ties (broken by the lowest index) are common.
        load[w] += static_cast<double>(rng() % 4);
        tokens[w] += static_cast<int64_t>(rng() % 100);
        queue.Set(w, load[w], tokens[w]);
        hidden[w] = false;
      }
      // Room that mostly grows (as when documents come largest first), sometimes shrinks.
      const int64_t max_tokens = static_cast<int64_t>(rng() % (step / 2 + 100)) +
                                 (rng() % 4 == 0 ? 0 : static_cast<int64_t>(step) * 12);
      ASSERT_EQ(queue.LeastLoadedWithRoom(max_tokens), Scan(load, tokens, hidden, max_tokens))
          << "W " << workers << ", step " << step << ", max_tokens " << max_tokens;
    }
  }
}

TEST(RoomQueueTest, EqualLoadsGoToTheLowestIndexAndNoRoomIsMinusOne) {
  RoomQueue queue(6);
  EXPECT_EQ(queue.LeastLoadedWithRoom(0), 0);
  queue.Set(0, 1.0, 50);
  queue.Set(1, 1.0, 10);
  queue.Set(2, 0.5, 90);
  for (int32_t w : {3, 4, 5}) queue.Set(w, 2.0, 0);
  EXPECT_EQ(queue.LeastLoadedWithRoom(100), 2);
  EXPECT_EQ(queue.LeastLoadedWithRoom(60), 0);  // 2 is full; 0 and 1 tie at 1.0
  EXPECT_EQ(queue.LeastLoadedWithRoom(20), 1);
  EXPECT_EQ(queue.LeastLoadedWithRoom(100), 2);  // parked workers come back once there is room
  queue.Hide(2);
  EXPECT_EQ(queue.LeastLoadedWithRoom(100), 0);
  queue.Set(2, 0.5, 90);
  EXPECT_EQ(queue.LeastLoadedWithRoom(100), 2);
  EXPECT_EQ(queue.LeastLoadedWithRoom(-1), -1);
  queue.Set(0, -0.0, 0);  // -0 ties with +0 (a scan's < sees no difference)
  queue.Set(1, 0.0, 0);
  EXPECT_EQ(queue.LeastLoadedWithRoom(0), 0);
}

}  // namespace
}  // namespace fcp
