// Waits on Gloo unbound buffers until a deadline without Gloo's own timeout. When Gloo's
// waitRecv/waitSend time out they close every connection of the context, so every peer would
// then report this rank as the one that failed; a rank that waited in vain should name the peer
// that never answered, and its other peers should be able to say the same. Here a watchdog
// thread aborts the wait at the deadline instead, leaving the connections alone.
//
//   GlooWaiter waiter;
//   if (!waiter.Wait(*buffer, GlooWaiter::Op::kRecv, deadline)) ...  // deadline passed
//
// An operation whose wait ended at the deadline stays posted in Gloo (it may be waited on again):
// its memory must stay valid until it completes or the connection to that peer is closed.
#ifndef FCP_WORKER_TRANSPORT_GLOO_WAITER_H_
#define FCP_WORKER_TRANSPORT_GLOO_WAITER_H_

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "gloo/transport/unbound_buffer.h"

namespace fcp {

class GlooWaiter {
 public:
  enum class Op { kSend, kRecv };

  GlooWaiter();   // starts the watchdog thread
  ~GlooWaiter();  // stops it

  GlooWaiter(const GlooWaiter&) = delete;
  GlooWaiter& operator=(const GlooWaiter&) = delete;

  // Waits for `buffer`'s posted operation. True when it completed, false when `deadline` passed
  // first. Throws what Gloo throws when the operation failed (its connection broke). Waits of
  // several threads take turns.
  bool Wait(gloo::transport::UnboundBuffer& buffer, Op op,
            std::chrono::steady_clock::time_point deadline);

  // Throws what Gloo throws if `buffer`'s posted operation failed; returns at once otherwise,
  // leaving a completion, if any, to the next Wait. Gloo has no such query: this arms the
  // abort flag first, so that Gloo's wait checks for an error and returns without blocking.
  static void ThrowIfFailed(gloo::transport::UnboundBuffer& buffer, Op op);

 private:
  void Watch();

  std::mutex turn_;  // one Wait at a time
  std::mutex mu_;
  std::condition_variable changed_;
  gloo::transport::UnboundBuffer* current_ = nullptr;  // the buffer waited on, guarded by mu_
  Op op_ = Op::kRecv;
  std::chrono::steady_clock::time_point deadline_;
  bool stop_ = false;
  std::thread watchdog_;
};

}  // namespace fcp

#endif  // FCP_WORKER_TRANSPORT_GLOO_WAITER_H_
