// The nccl transport's exchanges: Post and Barrier enqueue one NCCL group on the communication
// stream in a free slot, and Wait polls the slot's completion event, then checks the tags the
// peers sent (nccl_internal.h has the design).
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "kernels/cuda_status.h"
#include "worker/transport/nccl_internal.h"

namespace fcp {
namespace nccl_internal {

NcclExchange::~NcclExchange() {
  if (!waited_ && slot_ >= 0) Wait().IgnoreError();  // the slot's words stay in use until done
}

absl::Status NcclExchange::Wait() {
  if (waited_) return result_;
  waited_ = true;
  result_ = slot_ < 0 ? absl::OkStatus() : transport_->WaitFor(*this);
  return result_;
}

absl::StatusOr<std::unique_ptr<PendingExchange>> NcclTransport::Enqueue(
    uint64_t tag, std::string peers, std::vector<int32_t> tagged_peers,
    const std::function<ncclResult_t(int slot)>& calls) {
  std::lock_guard<std::mutex> lock(mu_);
  if (broken_) return FailureLocked();
  int slot = -1;
  for (int i = 0; i < kNcclMaxInFlight && slot < 0; ++i) {
    const int s = (next_slot_ + i) % kNcclMaxInFlight;
    if (slot_busy_[s]) continue;
    slot = s;
  }
  if (slot < 0) {
    return absl::FailedPreconditionError(absl::StrCat(Where(tag), ": more than ", kNcclMaxInFlight,
                                                      " exchanges posted and not waited"));
  }
  next_slot_ = (slot + 1) % kNcclMaxInFlight;
  const size_t words = static_cast<size_t>(world_size()) * sizeof(uint64_t);
  std::fill(HostSendWords(slot), HostSendWords(slot) + world_size(), tag);
  std::fill(HostRecvWords(slot), HostRecvWords(slot) + world_size(), ~tag);  // "not received"
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(SendWords(slot), HostSendWords(slot), words,
                                       cudaMemcpyHostToDevice, stream_));
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(RecvWords(slot), HostRecvWords(slot), words,
                                       cudaMemcpyHostToDevice, stream_));
  if (options_.compute_stream != nullptr) {
    // Sends read what the compute stream's kernels wrote before this Post.
    CUDA_RETURN_IF_ERROR(
        cudaEventRecord(compute_ready_, static_cast<cudaStream_t>(options_.compute_stream)));
    CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(stream_, compute_ready_, 0));
  }
  ncclResult_t r = ncclGroupStart();
  const ncclResult_t issued = r == ncclSuccess ? calls(slot) : r;
  r = ncclGroupEnd();
  if (issued != ncclSuccess && issued != ncclInProgress) r = issued;
  if (r != ncclSuccess && r != ncclInProgress) {
    FailLocked(absl::InternalError(
        absl::StrCat(Where(tag), ": ", NcclMessage(r, comm_), "; communicator aborted")));
    return FailureLocked();
  }
  if (r == ncclInProgress) RETURN_IF_ERROR(AwaitEnqueuedLocked(tag, peers));
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(HostRecvWords(slot), RecvWords(slot), words,
                                       cudaMemcpyDeviceToHost, stream_));
  CUDA_RETURN_IF_ERROR(cudaEventRecord(slot_done_[slot], stream_));
  slot_busy_[slot] = true;
  return std::unique_ptr<PendingExchange>(
      new NcclExchange(this, slot, tag, std::move(peers), std::move(tagged_peers)));
}

absl::StatusOr<std::unique_ptr<PendingExchange>> NcclTransport::Post(uint64_t tag,
                                                                     std::vector<SendOp> sends,
                                                                     std::vector<RecvOp> recvs) {
  // Peers in range, not this rank, each at most once per list.
  std::map<int32_t, std::string> roles;  // peer -> "send", "recv", "send, recv"
  std::vector<bool> sent(world_size(), false), received(world_size(), false);
  auto check = [&](int32_t peer, bool is_send) -> absl::Status {
    if (peer < 0 || peer >= world_size() || peer == rank()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(tag), ": ", is_send ? "send to" : "receive from", " rank ", peer, ": ",
                       peer == rank() ? "itself" : "out of range"));
    }
    std::vector<bool>& seen = is_send ? sent : received;
    if (seen[peer]) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(tag), ": rank ", peer, " twice in ", is_send ? "sends" : "receives"));
    }
    seen[peer] = true;
    std::string& role = roles[peer];
    absl::StrAppend(&role, role.empty() ? "" : ", ", is_send ? "send" : "recv");
    return absl::OkStatus();
  };
  for (const SendOp& op : sends) RETURN_IF_ERROR(check(op.peer, true));
  for (const RecvOp& op : recvs) RETURN_IF_ERROR(check(op.peer, false));
  if (sends.empty() && recvs.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (broken_) return FailureLocked();
    return std::unique_ptr<PendingExchange>(new NcclExchange(this, -1, tag, "", {}));
  }
  std::vector<std::string> described;
  for (const auto& [peer, role] : roles)
    described.push_back(absl::StrCat("rank ", peer, " (", role, ")"));
  std::vector<int32_t> tagged;
  for (const RecvOp& op : recvs) tagged.push_back(op.peer);
  return Enqueue(tag, absl::StrJoin(described, ", "), std::move(tagged), [&](int slot) {
    for (const SendOp& op : sends) {
      ncclResult_t r =
          ncclSend(SendWords(slot) + op.peer, sizeof(uint64_t), ncclUint8, op.peer, comm_, stream_);
      for (const TransportBuffer& b : op.buffers) {
        if (r == ncclSuccess && b.bytes > 0) {
          r = ncclSend(b.data, b.bytes, ncclUint8, op.peer, comm_, stream_);
        }
      }
      if (r != ncclSuccess) return r;
    }
    for (const RecvOp& op : recvs) {
      ncclResult_t r =
          ncclRecv(RecvWords(slot) + op.peer, sizeof(uint64_t), ncclUint8, op.peer, comm_, stream_);
      for (const TransportBuffer& b : op.buffers) {
        if (r == ncclSuccess && b.bytes > 0) {
          r = ncclRecv(b.data, b.bytes, ncclUint8, op.peer, comm_, stream_);
        }
      }
      if (r != ncclSuccess) return r;
    }
    return ncclSuccess;
  });
}

absl::Status NcclTransport::Barrier() {
  ASSIGN_OR_RETURN(std::unique_ptr<PendingExchange> pending,
                   Enqueue(kBarrierTag, "every rank (all-reduce)", {}, [this](int) {
                     return ncclAllReduce(barrier_word_, barrier_word_, 1, ncclFloat32, ncclSum,
                                          comm_, stream_);
                   }));
  return pending->Wait();
}

absl::Status NcclTransport::WaitFor(NcclExchange& exchange) {
  const int slot = exchange.slot_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiting_[&exchange] = {exchange.tag_, exchange.peers_, Clock::now() + ToChrono(timeout())};
  }
  auto done_waiting = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    waiting_.erase(&exchange);
  };
  Backoff backoff;
  for (;;) {
    if (broken_) {
      done_waiting();
      std::lock_guard<std::mutex> lock(mu_);
      return FailureLocked();
    }
    const cudaError_t q = cudaEventQuery(slot_done_[slot]);
    if (q == cudaSuccess) break;
    if (q != cudaErrorNotReady) {
      done_waiting();
      std::lock_guard<std::mutex> lock(mu_);
      FailLocked(CudaStatus(q, absl::StrCat(Where(exchange.tag_), ": cudaEventQuery"), __FILE__,
                            __LINE__));
      return FailureLocked();
    }
    backoff.Pause();
  }
  done_waiting();
  std::lock_guard<std::mutex> lock(mu_);
  slot_busy_[slot] = false;
  for (int32_t peer : exchange.tagged_peers_) {
    const uint64_t got = HostRecvWords(slot)[peer];
    if (got == exchange.tag_) continue;
    FailLocked(absl::FailedPreconditionError(absl::StrCat(
        Where(exchange.tag_), ": rank ", peer, " posted tag ", got,
        " in this place; ranks must post their exchanges with each other in the same order; "
        "communicator aborted")));
    return FailureLocked();
  }
  return absl::OkStatus();
}

}  // namespace nccl_internal
}  // namespace fcp
