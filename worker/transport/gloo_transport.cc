#include "worker/transport/gloo_transport.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "gloo/rendezvous/context.h"
#include "gloo/transport/unbound_buffer.h"
#include "worker/transport/gloo_internal.h"
#include "worker/transport/gloo_waiter.h"
#include "worker/transport/transport_check.h"

namespace fcp {
namespace gloo_internal {
namespace {

using Clock = std::chrono::steady_clock;

class GlooExchange;

class GlooTransport final : public Transport {
 public:
  GlooTransport(std::shared_ptr<gloo::transport::Device> device,
                std::shared_ptr<gloo::rendezvous::Context> context, absl::Duration timeout)
      : device_(std::move(device)), context_(std::move(context)) {
    set_timeout(timeout);
  }

  ~GlooTransport() override {
    // Operations left behind by a failure may still be written to: stop the connections first.
    if (!graveyard_.empty()) CloseConnections();
    graveyard_.clear();
    context_.reset();
    device_.reset();
  }

  int32_t rank() const override { return context_->rank; }
  int32_t world_size() const override { return context_->size; }
  absl::string_view name() const override { return "gloo"; }

  absl::StatusOr<std::unique_ptr<PendingExchange>> Post(uint64_t tag, std::vector<SendOp> sends,
                                                        std::vector<RecvOp> recvs) override;
  absl::Status Barrier() override;

  // Posts a send (or receive) of `bytes` at `data` with `peer` on `slot`, kept in `ops`. Gloo
  // throws if the connection to `peer` is broken.
  Op* Start(GlooOps& ops, bool send, int32_t peer, uint64_t slot, void* data, size_t bytes) {
    auto op = std::make_unique<Op>();
    op->buffer = context_->createUnboundBuffer(data, bytes);
    op->peer = peer;
    op->send = send;
    ops.ops.push_back(std::move(op));
    Op* started = ops.ops.back().get();
    if (send) {
      started->buffer->send(peer, slot);
    } else {
      started->buffer->recv(peer, slot);
    }
    return started;
  }

  // Waits for `op` until `deadline`: false if the deadline passed first. Throws what Gloo throws.
  bool WaitOne(Op& op, Clock::time_point deadline) {
    if (!op.done) {
      op.done = waiter_.Wait(*op.buffer, op.send ? GlooWaiter::Op::kSend : GlooWaiter::Op::kRecv,
                             deadline);
    }
    return op.done;
  }

  // As WaitOne, but meanwhile moves every pending exchange along (every millisecond while some
  // wait for descriptors): a rank must not hold back data a peer waits for because this rank
  // waits on another exchange first. Calls `between` every few milliseconds, and returns early
  // when it says so.
  bool WaitFor(Op& op, Clock::time_point deadline, const std::function<bool()>& between = nullptr);

  Clock::time_point Deadline() const {
    return Clock::now() + absl::ToChronoMilliseconds(timeout());
  }

  void Register(GlooExchange* exchange) { pending_.push_back(exchange); }
  void Unregister(GlooExchange* exchange) {
    pending_.erase(std::remove(pending_.begin(), pending_.end(), exchange), pending_.end());
  }

  // Marks the transport broken by `cause` and keeps `ops` alive. Closes every connection when
  // data may still move into or out of the caller's buffers.
  // The first failure is reported with every connection Gloo knows is down: the rank named
  // may only be the messenger of an earlier death (it failed on the dead rank and exited).
  absl::Status Fail(absl::Status cause, std::unique_ptr<GlooOps> ops, bool close_connections) {
    if (ops == nullptr) ops = std::make_unique<GlooOps>();
    const bool lost = cause.code() == absl::StatusCode::kUnavailable ||
                      cause.code() == absl::StatusCode::kDeadlineExceeded;
    if (lost && broken_.ok()) {
      if (const std::vector<int32_t> down = DownPeers(*ops); !down.empty()) {
        cause = absl::Status(cause.code(),
                             absl::StrCat(cause.message(), "; connections down: ", RankList(down)));
      }
    }
    if (broken_.ok()) broken_ = cause;
    if (ops != nullptr) graveyard_.push_back(std::move(ops));
    if (close_connections) CloseConnections();
    return cause;
  }

 private:
  absl::Status CheckUsable(absl::string_view who) const {
    if (broken_.ok()) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat(who, ": the transport is broken by an earlier failure (", broken_.message(),
                     "); start a new attempt"));
  }

  // The peers whose connection Gloo found broken: posting to them throws at once. The probes
  // (empty receives on a slot no rank sends to) stay posted, kept in `ops`.
  std::vector<int32_t> DownPeers(GlooOps& ops) {
    std::vector<int32_t> down;
    for (int32_t peer = 0; peer < world_size(); ++peer) {
      if (peer == rank()) continue;
      try {
        Start(ops, false, peer, SlotOf(Kind::kProbe, 0), nullptr, 0);
      } catch (...) {
        down.push_back(peer);
      }
    }
    return down;
  }

  void CloseConnections() {
    try {
      context_->closeConnections();
    } catch (...) {
      // Already closing; nothing more to stop.
    }
  }

  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::rendezvous::Context> context_;
  GlooWaiter waiter_;
  absl::Status broken_;
  uint64_t barriers_ = 0;
  std::vector<GlooExchange*> pending_;  // posted and not finished, in post order
  std::vector<std::unique_ptr<GlooOps>> graveyard_;
};

// One posted round: kDescribing until every descriptor arrived and matched, then kMoving until
// the data moved. Data moves only after the round's descriptors matched, so that a mismatch
// leaves no Gloo operation on the caller's buffers (and a receive shorter than its send, which
// Gloo's network thread dies of, is never posted).
class GlooExchange final : public PendingExchange {
 public:
  GlooExchange(GlooTransport* transport, uint64_t tag, std::vector<SendOp> sends,
               std::vector<RecvOp> recvs)
      : transport_(transport),
        tag_(tag),
        who_(Who("gloo", transport->rank(), tag)),
        sends_(std::move(sends)),
        recvs_(std::move(recvs)),
        ops_(std::make_unique<GlooOps>()) {
    for (const SendOp& op : sends_) sides_.push_back({op.peer, true, &op.buffers});
    for (const RecvOp& op : recvs_) sides_.push_back({op.peer, false, &op.buffers});
    transport_->Register(this);
  }

  ~GlooExchange() override {
    if (state_ == State::kFinished) return;
    Finish(
        absl::FailedPreconditionError(absl::StrCat(who_, ": an exchange was dropped without Wait")))
        .IgnoreError();
  }

  // Sends this rank's descriptors and posts the receives of the peers'. A broken connection is
  // kept for Wait to report, with the round's context, as other failures.
  void PostDescriptors() {
    ops_->descriptors = std::make_unique<Descriptor[]>(2 * sides_.size());
    for (size_t i = 0; i < sides_.size(); ++i) {
      Side& side = sides_[i];
      side.mine = &ops_->descriptors[2 * i];
      side.theirs = &ops_->descriptors[2 * i + 1];
      *side.mine = {kDescriptorMagic, tag_, BufferShape::Of(*side.buffers), kDescriptorSeal};
      const Kind mine = side.sending ? Kind::kSendDescriptor : Kind::kRecvDescriptor;
      const Kind theirs = side.sending ? Kind::kRecvDescriptor : Kind::kSendDescriptor;
      try {
        side.in = transport_->Start(*ops_, false, side.peer, SlotOf(theirs, tag_), side.theirs,
                                    sizeof(Descriptor));
        side.out = transport_->Start(*ops_, true, side.peer, SlotOf(mine, tag_), side.mine,
                                     sizeof(Descriptor));
      } catch (...) {
        if (posting_.ok()) posting_ = GlooExceptionStatus(LostConnection(who_, side.peer));
      }
    }
  }

  bool describing() const { return state_ == State::kDescribing; }

  // Starts the data once every descriptor arrived and matched; waits only for receives whose
  // descriptor has landed. A failure finishes the exchange (its Wait reports it).
  void Advance() {
    if (state_ != State::kDescribing) return;
    if (!posting_.ok()) {
      Finish(posting_).IgnoreError();
      return;
    }
    for (Side& side : sides_) {
      if (!side.in->done && !Arrived(*side.theirs)) return;
    }
    const Clock::time_point grace = Clock::now() + std::chrono::seconds(1);
    for (Side& side : sides_) {
      try {
        if (!transport_->WaitOne(*side.in, grace)) return;
      } catch (...) {
        Finish(GlooExceptionStatus(LostConnection(who_, side.peer))).IgnoreError();
        return;
      }
      const Descriptor& theirs = *side.theirs;
      absl::Status status;
      if (theirs.magic != kDescriptorMagic || theirs.tag != tag_) {
        status = absl::InternalError(
            absl::StrCat(who_, ": rank ", side.peer, " sent a garbled descriptor"));
      } else if (!side.mine->shape.SameAs(theirs.shape)) {
        status = ShapeMismatch(who_, side.sending, side.peer, side.mine->shape, theirs.shape);
      }
      if (!status.ok()) {
        Finish(status).IgnoreError();
        return;
      }
    }
    state_ = State::kMoving;
    PostData();
  }

  absl::Status Wait() override {
    if (waited_) return absl::FailedPreconditionError(absl::StrCat(who_, ": Wait called twice"));
    waited_ = true;
    const Clock::time_point deadline = transport_->Deadline();
    while (state_ != State::kFinished) {
      Advance();
      Op* next = Incomplete();
      if (state_ == State::kFinished) break;
      if (next == nullptr) {
        Finish(absl::OkStatus()).IgnoreError();
        break;
      }
      const auto failed = [this] {
        FindFailed();
        return state_ == State::kFinished;
      };
      if (failed()) break;
      try {
        if (!transport_->WaitFor(*next, deadline, failed)) Finish(TimedOut()).IgnoreError();
      } catch (...) {
        Finish(GlooExceptionStatus(LostConnection(who_, next->peer))).IgnoreError();
      }
    }
    return outcome_;
  }

 private:
  enum class State { kDescribing, kMoving, kFinished };

  // This rank's side of one message.
  struct Side {
    int32_t peer;
    bool sending;
    const std::vector<TransportBuffer>* buffers;
    Descriptor* mine = nullptr;
    Descriptor* theirs = nullptr;
    Op* out = nullptr;  // this rank's descriptor
    Op* in = nullptr;   // the peer's
  };

  // One operation per non-empty buffer; both sides post them in list order on one slot, and
  // Gloo matches the operations of a slot between two ranks in order.
  void PostData() {
    for (const Side& side : sides_) {
      try {
        for (const TransportBuffer& b : *side.buffers) {
          if (b.bytes == 0) continue;
          moving_.push_back(transport_->Start(*ops_, side.sending, side.peer,
                                              SlotOf(Kind::kData, tag_), b.data, b.bytes));
        }
      } catch (...) {
        Finish(GlooExceptionStatus(LostConnection(who_, side.peer))).IgnoreError();
        return;
      }
      moving_.push_back(side.out);  // sent long ago; its memory goes with the exchange
    }
  }

  // The operations the current state waits for: the peers' descriptors, then the data (and
  // this rank's descriptors).
  std::vector<Op*> Awaited() const {
    std::vector<Op*> ops;
    if (state_ == State::kDescribing) {
      for (const Side& side : sides_) ops.push_back(side.in);
    } else if (state_ == State::kMoving) {
      ops = moving_;
    }
    return ops;
  }

  // The first awaited operation not known to be done (null when all are).
  Op* Incomplete() const {
    for (Op* op : Awaited()) {
      if (!op->done) return op;
    }
    return nullptr;
  }

  // Finishes the exchange if an operation not done failed (its connection broke), without
  // blocking: the peer that died is named even while this rank waits on another one.
  void FindFailed() {
    for (Op* op : Awaited()) {
      if (op->done) continue;
      try {
        GlooWaiter::ThrowIfFailed(*op->buffer,
                                  op->send ? GlooWaiter::Op::kSend : GlooWaiter::Op::kRecv);
      } catch (...) {
        Finish(GlooExceptionStatus(LostConnection(who_, op->peer))).IgnoreError();
        return;
      }
    }
  }

  // Names every peer still owing something.
  absl::Status TimedOut() const {
    std::vector<std::string> missing;
    const auto note = [&](std::string s) {
      if (std::find(missing.begin(), missing.end(), s) == missing.end()) missing.push_back(s);
    };
    for (const Side& side : sides_) {
      if (state_ == State::kDescribing && !side.in->done && !Arrived(*side.theirs)) {
        note(absl::StrCat("rank ", side.peer, " did not post its ",
                          side.sending ? "receive from" : "send to", " this rank"));
      }
    }
    for (const Op* op : moving_) {
      if (state_ == State::kMoving && !op->done) {
        note(absl::StrCat("rank ", op->peer, " did not complete the transfer ",
                          op->send ? "from" : "to", " this rank"));
      }
    }
    return absl::DeadlineExceededError(absl::StrCat(who_, ": timed out after ",
                                                    absl::FormatDuration(transport_->timeout()),
                                                    ": ", absl::StrJoin(missing, ", ")));
  }

  absl::Status Finish(absl::Status status) {
    const bool data_posted = state_ == State::kMoving;
    state_ = State::kFinished;
    transport_->Unregister(this);
    if (status.ok()) {
      ops_.reset();  // every operation completed
    } else {
      status = transport_->Fail(status, std::move(ops_), data_posted);
    }
    outcome_ = status;
    return status;
  }

  GlooTransport* const transport_;
  const uint64_t tag_;
  const std::string who_;
  const std::vector<SendOp> sends_;  // Gloo points into these until the data moved
  const std::vector<RecvOp> recvs_;
  std::vector<Side> sides_;
  std::unique_ptr<GlooOps> ops_;
  std::vector<Op*> moving_;  // the data operations, then the descriptor sends
  absl::Status posting_;
  State state_ = State::kDescribing;
  absl::Status outcome_;
  bool waited_ = false;
};

bool GlooTransport::WaitFor(Op& op, Clock::time_point deadline,
                            const std::function<bool()>& between) {
  constexpr std::chrono::milliseconds kAdvanceEvery(1);
  constexpr std::chrono::milliseconds kBetweenEvery(2);
  while (true) {
    bool describing = false;
    for (GlooExchange* exchange : std::vector<GlooExchange*>(pending_)) {
      exchange->Advance();  // may finish it (and unregister it), never destroys it
      describing = describing || exchange->describing();
    }
    if (op.done || (between && between())) return true;
    const Clock::time_point now = Clock::now();
    if (now >= deadline) return false;
    Clock::time_point until = deadline;
    if (describing) until = std::min(until, now + kAdvanceEvery);
    if (between) until = std::min(until, now + kBetweenEvery);
    if (WaitOne(op, until)) return true;
  }
}

absl::StatusOr<std::unique_ptr<PendingExchange>> GlooTransport::Post(uint64_t tag,
                                                                     std::vector<SendOp> sends,
                                                                     std::vector<RecvOp> recvs) {
  const std::string who = Who("gloo", rank(), tag);
  RETURN_IF_ERROR(CheckUsable(who));
  if (tag > kGlooMaxTag) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": tag: must be below 2^60"));
  }
  RETURN_IF_ERROR(CheckPostArguments(who, rank(), world_size(), sends, recvs));
  auto exchange = std::make_unique<GlooExchange>(this, tag, std::move(sends), std::move(recvs));
  exchange->PostDescriptors();
  return exchange;
}

// Every rank tells every other one it entered: a rank that times out knows which peer is
// missing (a dissemination barrier would only know its neighbour).
absl::Status GlooTransport::Barrier() {
  const std::string who = absl::StrCat("gloo rank ", rank(), ", barrier ", barriers_);
  RETURN_IF_ERROR(CheckUsable(who));
  const uint64_t slot = SlotOf(Kind::kBarrier, barriers_++ & kGlooMaxTag);
  const Clock::time_point deadline = Deadline();
  auto ops = std::make_unique<GlooOps>();
  for (const bool send : {false, true}) {
    for (int32_t peer = 0; peer < world_size(); ++peer) {
      if (peer == rank()) continue;
      try {
        Start(*ops, send, peer, slot, nullptr, 0);
      } catch (...) {
        return Fail(GlooExceptionStatus(LostConnection(who, peer)), std::move(ops), false);
      }
    }
  }
  for (const std::unique_ptr<Op>& op : ops->ops) {  // every peer's message, then this rank's
    try {
      if (!WaitFor(*op, deadline)) {
        return Fail(absl::DeadlineExceededError(
                        absl::StrCat(who, ": timed out after ", absl::FormatDuration(timeout()),
                                     "; rank ", op->peer, " never entered")),
                    std::move(ops), false);
      }
    } catch (...) {
      return Fail(GlooExceptionStatus(LostConnection(who, op->peer)), std::move(ops), false);
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<Transport> NewConnectedGlooTransport(
    std::shared_ptr<gloo::transport::Device> device,
    std::shared_ptr<gloo::rendezvous::Context> context, absl::Duration timeout) {
  return std::make_unique<GlooTransport>(std::move(device), std::move(context), timeout);
}

}  // namespace gloo_internal
}  // namespace fcp
