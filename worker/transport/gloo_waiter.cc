#include "worker/transport/gloo_waiter.h"

namespace fcp {
namespace {

using Clock = std::chrono::steady_clock;

// Gloo's own timeout stays as a backstop should the watchdog ever fail to abort a wait.
constexpr std::chrono::seconds kBackstop(10);

}  // namespace

GlooWaiter::GlooWaiter() : watchdog_([this] { Watch(); }) {}

GlooWaiter::~GlooWaiter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  watchdog_.join();
}

bool GlooWaiter::Wait(gloo::transport::UnboundBuffer& buffer, Op op, Clock::time_point deadline) {
  std::lock_guard<std::mutex> turn(turn_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (Clock::now() >= deadline) return false;
    current_ = &buffer;
    op_ = op;
    deadline_ = deadline;
  }
  changed_.notify_all();
  bool completed = false;
  const auto backstop =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now() + kBackstop);
  try {
    completed =
        op == Op::kRecv ? buffer.waitRecv(nullptr, backstop) : buffer.waitSend(nullptr, backstop);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = nullptr;
    throw;
  }
  std::lock_guard<std::mutex> lock(mu_);
  current_ = nullptr;
  // An abort that lands as the operation completes makes Gloo answer false and keep the
  // completion: the next wait on the buffer returns true at once.
  return completed;
}

void GlooWaiter::ThrowIfFailed(gloo::transport::UnboundBuffer& buffer, Op op) {
  constexpr std::chrono::hours kNever(24);  // the armed abort ends the wait at once
  if (op == Op::kRecv) {
    buffer.abortWaitRecv();
    buffer.waitRecv(nullptr, kNever);
  } else {
    buffer.abortWaitSend();
    buffer.waitSend(nullptr, kNever);
  }
}

void GlooWaiter::Watch() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (current_ == nullptr) {
      changed_.wait(lock);
    } else if (Clock::now() >= deadline_) {
      if (op_ == Op::kRecv) {
        current_->abortWaitRecv();
      } else {
        current_->abortWaitSend();
      }
      current_ = nullptr;
    } else {
      changed_.wait_until(lock, deadline_);
    }
  }
}

}  // namespace fcp
