// ThreadPool: a fixed set of threads running tasks from a bounded FIFO queue. The coordinator plans
// on it, so gRPC's own threads never block on planning and the number of plannings running at once
// is bounded by the pool's size; a full queue is the coordinator's overload signal.
//
//   fcp::ThreadPool pool(/*threads=*/2, /*max_queued=*/64);
//   if (!pool.TrySchedule([] { Work(); })) return absl::ResourceExhaustedError("queue full");
//
// Thread-safe. The destructor runs every task already queued, then joins the threads.
#ifndef FCP_SERVICE_THREAD_POOL_H_
#define FCP_SERVICE_THREAD_POOL_H_

#include <cstddef>
#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace fcp {

class ThreadPool {
 public:
  using Task = absl::AnyInvocable<void() &&>;

  // `threads` >= 1; at most `max_queued` tasks wait for a thread (running ones not counted).
  ThreadPool(int threads, size_t max_queued);
  ~ThreadPool();

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues `task` and returns true, or returns false (dropping it) if the queue is full or the
  // pool is shutting down.
  bool TrySchedule(Task task);

  // Tasks waiting for a thread.
  size_t queued() const;

 private:
  void WorkerLoop();
  bool Runnable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_queued_;
  mutable absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace fcp

#endif  // FCP_SERVICE_THREAD_POOL_H_
