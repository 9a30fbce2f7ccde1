#include "worker/transport/loopback_transport.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "worker/transport/transport_check.h"

namespace fcp {
namespace loopback_internal {

enum class Liveness { kAlive, kAborted, kClosed };

// One message (source → destination under a tag), shared by the exchanges of its two sides.
struct Message {
  int32_t src = 0;
  int32_t dst = 0;
  uint64_t tag = 0;
  const std::vector<TransportBuffer>* send = nullptr;  // valid until the sender's Wait returns
  const std::vector<TransportBuffer>* recv = nullptr;
  bool copying = false;  // both sides posted; the later poster copies, outside the hub's lock
  bool done = false;
  absl::Status send_status;  // the outcome as each side reports it
  absl::Status recv_status;
};

using Key = std::tuple<int32_t, int32_t, uint64_t>;  // (source, destination, tag)

class HubState {
 public:
  explicit HubState(int32_t world_size)
      : world(std::max(world_size, 1)),
        ranks(world, Liveness::kAlive),
        in_barrier(world, false),
        entered(world, ~uint64_t{0}) {}

  bool Gone(int32_t rank) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return ranks[rank] != Liveness::kAlive;
  }

  // "rank 2 is gone (aborted)"; one clause per rank.
  std::string GoneNote(const std::vector<int32_t>& gone) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::vector<std::string> notes;
    for (int32_t r : gone) {
      notes.push_back(absl::StrCat("rank ", r, " is gone (",
                                   ranks[r] == Liveness::kAborted ? "aborted" : "closed", ")"));
    }
    return absl::StrJoin(notes, "; ");
  }

  absl::Mutex mu;
  const int32_t world;
  std::vector<Liveness> ranks ABSL_GUARDED_BY(mu);
  std::map<Key, std::shared_ptr<Message>> waiting ABSL_GUARDED_BY(mu);  // posted by one side
  uint64_t barrier_generation ABSL_GUARDED_BY(mu) = 0;
  std::vector<bool> in_barrier ABSL_GUARDED_BY(mu);
  std::vector<uint64_t> entered ABSL_GUARDED_BY(mu);  // the generation each rank last entered
  int32_t in_barrier_count ABSL_GUARDED_BY(mu) = 0;
};

namespace {

Key KeyOf(const Message& m) { return {m.src, m.dst, m.tag}; }

// Moves a matched message: both buffer lists are valid (neither side's Wait can return while
// `copying` is set).
void Deliver(Message& m) {
  const std::vector<TransportBuffer>& from = *m.send;
  const std::vector<TransportBuffer>& to = *m.recv;
  bool same = from.size() == to.size();
  for (size_t i = 0; same && i < from.size(); ++i) same = from[i].bytes == to[i].bytes;
  if (!same) {
    const BufferShape sent = BufferShape::Of(from);
    const BufferShape expected = BufferShape::Of(to);
    m.send_status = ShapeMismatch(Who("loopback", m.src, m.tag), true, m.dst, sent, expected);
    m.recv_status = ShapeMismatch(Who("loopback", m.dst, m.tag), false, m.src, expected, sent);
    return;
  }
  for (size_t i = 0; i < from.size(); ++i) {
    if (from[i].bytes > 0) std::memcpy(to[i].data, from[i].data, from[i].bytes);
  }
}

class LoopbackExchange final : public PendingExchange {
 public:
  LoopbackExchange(HubState* hub, int32_t rank, uint64_t tag, absl::Duration timeout,
                   std::vector<SendOp> sends, std::vector<RecvOp> recvs)
      : hub_(hub),
        rank_(rank),
        tag_(tag),
        timeout_(timeout),
        sends_(std::move(sends)),
        recvs_(std::move(recvs)) {}

  ~LoopbackExchange() override {
    if (finished_) return;
    absl::MutexLock lock(&hub_->mu);
    Finish().IgnoreError();  // never waited: withdraw what did not move
  }

  // Posts both lists; messages whose other side is already there are delivered here.
  absl::Status PostAll() {
    std::vector<Message*> matched;
    {
      absl::MutexLock lock(&hub_->mu);
      if (hub_->Gone(rank_)) {
        return absl::FailedPreconditionError(
            absl::StrCat(Who("loopback", rank_, tag_), ": this rank is gone (aborted)"));
      }
      for (const SendOp& op : sends_) RETURN_IF_ERROR(CheckNotInFlight(op.peer, true));
      for (const RecvOp& op : recvs_) RETURN_IF_ERROR(CheckNotInFlight(op.peer, false));
      for (const SendOp& op : sends_) Enter(op.peer, true, &op.buffers, &matched);
      for (const RecvOp& op : recvs_) Enter(op.peer, false, &op.buffers, &matched);
    }
    if (matched.empty()) return absl::OkStatus();
    for (Message* m : matched) Deliver(*m);
    absl::MutexLock lock(&hub_->mu);
    for (Message* m : matched) {
      m->copying = false;
      m->done = true;
    }
    return absl::OkStatus();
  }

  absl::Status Wait() override {
    if (finished_) {
      return absl::FailedPreconditionError(
          absl::StrCat(Who("loopback", rank_, tag_), ": Wait called twice"));
    }
    const absl::Time deadline = absl::Now() + timeout_;
    absl::MutexLock lock(&hub_->mu);
    const auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_->mu) {
      if (hub_->Gone(rank_)) return true;
      for (const Entry& e : entries_) {
        if (!e.message->done && (e.message->copying || !hub_->Gone(e.peer))) return false;
      }
      return true;
    };
    hub_->mu.AwaitWithDeadline(absl::Condition(&settled), deadline);
    return Finish();
  }

 private:
  struct Entry {
    std::shared_ptr<Message> message;
    int32_t peer;
    bool sending;
  };

  Key KeyFor(int32_t peer, bool sending) const {
    return sending ? Key{rank_, peer, tag_} : Key{peer, rank_, tag_};
  }

  absl::Status CheckNotInFlight(int32_t peer, bool sending) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_->mu) {
    const auto it = hub_->waiting.find(KeyFor(peer, sending));
    if (it == hub_->waiting.end()) return absl::OkStatus();
    if ((sending ? it->second->send : it->second->recv) == nullptr) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(Who("loopback", rank_, tag_), ": a ",
                                                   sending ? "send to" : "receive from", " rank ",
                                                   peer, " under this tag is already in flight"));
  }

  void Enter(int32_t peer, bool sending, const std::vector<TransportBuffer>* buffers,
             std::vector<Message*>* matched) ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_->mu) {
    const Key key = KeyFor(peer, sending);
    std::shared_ptr<Message> m;
    if (const auto it = hub_->waiting.find(key); it != hub_->waiting.end()) {
      m = it->second;
      hub_->waiting.erase(it);
      m->copying = true;
      matched->push_back(m.get());
    } else {
      m = std::make_shared<Message>();
      std::tie(m->src, m->dst, m->tag) = key;
      hub_->waiting.emplace(key, m);
    }
    (sending ? m->send : m->recv) = buffers;
    entries_.push_back({std::move(m), peer, sending});
  }

  // Withdraws the messages that did not move, waits for copies in flight (they use this side's
  // buffers) and words the outcome.
  absl::Status Finish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_->mu) {
    finished_ = true;
    std::vector<int32_t> gone;
    std::vector<std::string> missing;
    for (const Entry& e : entries_) {
      if (e.message->done || e.message->copying) continue;
      hub_->waiting.erase(KeyOf(*e.message));
      if (hub_->Gone(e.peer)) gone.push_back(e.peer);
      missing.push_back(absl::StrCat("rank ", e.peer, " did not post its ",
                                     e.sending ? "receive from" : "send to", " this rank"));
    }
    const auto copied = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_->mu) {
      for (const Entry& e : entries_) {
        if (e.message->copying) return false;
      }
      return true;
    };
    hub_->mu.Await(absl::Condition(&copied));

    const std::string who = Who("loopback", rank_, tag_);
    if (!gone.empty()) {
      return absl::UnavailableError(
          absl::StrCat(who, ": ", hub_->GoneNote(gone), "; ", absl::StrJoin(missing, ", ")));
    }
    if (!missing.empty() && hub_->Gone(rank_)) {
      return absl::FailedPreconditionError(absl::StrCat(who, ": this rank was aborted"));
    }
    if (!missing.empty()) {
      return absl::DeadlineExceededError(absl::StrCat(who, ": timed out after ",
                                                      absl::FormatDuration(timeout_), ": ",
                                                      absl::StrJoin(missing, ", ")));
    }
    for (const Entry& e : entries_) {
      const absl::Status& status = e.sending ? e.message->send_status : e.message->recv_status;
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  HubState* const hub_;
  const int32_t rank_;
  const uint64_t tag_;
  const absl::Duration timeout_;
  const std::vector<SendOp> sends_;  // the hub points into these until Finish
  const std::vector<RecvOp> recvs_;
  std::vector<Entry> entries_;
  bool finished_ = false;
};

}  // namespace
}  // namespace loopback_internal

using loopback_internal::HubState;
using loopback_internal::Liveness;

LoopbackHub::LoopbackHub(int32_t world_size) : state_(std::make_unique<HubState>(world_size)) {}

LoopbackHub::~LoopbackHub() = default;

int32_t LoopbackHub::world_size() const { return state_->world; }

void LoopbackHub::Abort(int32_t rank) {
  if (rank < 0 || rank >= state_->world) return;
  absl::MutexLock lock(&state_->mu);
  state_->ranks[rank] = Liveness::kAborted;
}

LoopbackTransport::LoopbackTransport(LoopbackHub* hub, int32_t rank) : hub_(hub), rank_(rank) {}

LoopbackTransport::~LoopbackTransport() {
  HubState& hub = *hub_->state_;
  if (rank_ < 0 || rank_ >= hub.world) return;
  absl::MutexLock lock(&hub.mu);
  if (hub.ranks[rank_] == Liveness::kAlive) hub.ranks[rank_] = Liveness::kClosed;
}

int32_t LoopbackTransport::world_size() const { return hub_->world_size(); }

absl::StatusOr<std::unique_ptr<PendingExchange>> LoopbackTransport::Post(
    uint64_t tag, std::vector<SendOp> sends, std::vector<RecvOp> recvs) {
  RETURN_IF_ERROR(
      CheckPostArguments(Who("loopback", rank_, tag), rank_, world_size(), sends, recvs));
  auto exchange = std::make_unique<loopback_internal::LoopbackExchange>(
      hub_->state_.get(), rank_, tag, timeout(), std::move(sends), std::move(recvs));
  RETURN_IF_ERROR(exchange->PostAll());
  return exchange;
}

absl::Status LoopbackTransport::Barrier() {
  HubState& hub = *hub_->state_;
  const std::string who = absl::StrCat("loopback rank ", rank_, ", barrier");
  if (rank_ < 0 || rank_ >= hub.world) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": rank out of range"));
  }
  const absl::Time deadline = absl::Now() + timeout();
  absl::MutexLock lock(&hub.mu);
  if (hub.Gone(rank_)) {
    return absl::FailedPreconditionError(absl::StrCat(who, ": this rank is gone (aborted)"));
  }
  hub.in_barrier[rank_] = true;
  hub.entered[rank_] = hub.barrier_generation;
  if (++hub.in_barrier_count == hub.world) {
    ++hub.barrier_generation;
    std::fill(hub.in_barrier.begin(), hub.in_barrier.end(), false);
    hub.in_barrier_count = 0;
    return absl::OkStatus();
  }
  const uint64_t generation = hub.barrier_generation;
  const auto released = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub.mu) {
    if (hub.barrier_generation != generation || hub.Gone(rank_)) return true;
    for (int32_t r = 0; r < hub.world; ++r) {
      if (!hub.in_barrier[r] && hub.Gone(r)) return true;
    }
    return false;
  };
  hub.mu.AwaitWithDeadline(absl::Condition(&released), deadline);
  if (hub.barrier_generation != generation) return absl::OkStatus();
  hub.in_barrier[rank_] = false;
  --hub.in_barrier_count;
  if (hub.Gone(rank_)) {
    return absl::FailedPreconditionError(absl::StrCat(who, ": this rank was aborted"));
  }
  std::vector<int32_t> gone;
  std::vector<int32_t> absent;
  std::vector<int32_t> gave_up;  // entered, then timed out too
  for (int32_t r = 0; r < hub.world; ++r) {
    if (r == rank_ || hub.in_barrier[r]) continue;
    if (hub.Gone(r)) {
      gone.push_back(r);
    } else {
      (hub.entered[r] == generation ? gave_up : absent).push_back(r);
    }
  }
  if (!gone.empty()) return absl::UnavailableError(absl::StrCat(who, ": ", hub.GoneNote(gone)));
  std::string message = absl::StrCat(who, ": timed out after ", absl::FormatDuration(timeout()));
  if (!absent.empty()) absl::StrAppend(&message, "; ", RankList(absent), " never entered");
  if (!gave_up.empty()) absl::StrAppend(&message, "; ", RankList(gave_up), " gave up too");
  return absl::DeadlineExceededError(message);
}

}  // namespace fcp
