#include "service/thread_pool.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace fcp {
namespace {

TEST(ThreadPoolTest, RunsEveryTaskAndTheDestructorFinishesQueuedOnes) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(2, 100);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(pool.TrySchedule([&ran] { ++ran; }));
  }
  EXPECT_EQ(ran.load(), 100);
}

TEST(ThreadPoolTest, RejectsTasksBeyondTheQueueBound) {
  absl::Notification release;
  absl::Notification started;
  ThreadPool pool(1, 2);
  ASSERT_TRUE(pool.TrySchedule([&] {
    started.Notify();
    release.WaitForNotification();
  }));
  started.WaitForNotification();  // the thread is busy: the next tasks queue
  EXPECT_TRUE(pool.TrySchedule([] {}));
  EXPECT_TRUE(pool.TrySchedule([] {}));
  EXPECT_EQ(pool.queued(), 2u);
  EXPECT_FALSE(pool.TrySchedule([] {}));
  release.Notify();
}

}  // namespace
}  // namespace fcp
