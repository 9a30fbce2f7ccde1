// One NCCL group per exchange on a communication stream; completion is an event on that stream,
// which Wait polls; a watchdog thread polls the communicator's asynchronous error and the waits'
// deadlines, and aborts the communicator on either. Every NCCL call and every change of state is
// under one mutex (NCCL communicators are not thread-safe); Wait polls without holding it.
//
// Per exchange slot (kNcclMaxInFlight of them), device and pinned host words:
//   send_words[peer] = tag  ──ncclSend──▶  the peer's recv_words[this rank]  ──copy──▶  host
// copied back on the communication stream before the slot's completion event, so Wait reads the
// tags every peer posted without another synchronisation.
#include "worker/nccl_transport.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "gloo/rendezvous/store.h"
#include "kernels/cuda_status.h"

namespace fcp {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kBarrierTag = ~uint64_t{0};

std::chrono::nanoseconds ToChrono(absl::Duration d) { return absl::ToChronoNanoseconds(d); }

std::string NcclMessage(ncclResult_t result, ncclComm_t comm) {
  std::string message = ncclGetErrorString(result);
  const char* last = comm != nullptr ? ncclGetLastError(comm) : nullptr;
  if (last != nullptr && last[0] != '\0') absl::StrAppend(&message, " (", last, ")");
  return message;
}

// Sleeps a little longer each time: spin first (an exchange usually lands within microseconds of
// the compute it overlaps), then up to 100 µs.
class Backoff {
 public:
  void Pause() {
    if (++rounds_ < 64) {
      std::this_thread::yield();
      return;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(std::min(100, rounds_ - 63)));
  }

 private:
  int rounds_ = 0;
};

class NcclTransport;

class NcclExchange final : public PendingExchange {
 public:
  NcclExchange(NcclTransport* transport, int slot, uint64_t tag, std::string peers,
               std::vector<int32_t> tagged_peers)
      : transport_(transport),
        slot_(slot),
        tag_(tag),
        peers_(std::move(peers)),
        tagged_peers_(std::move(tagged_peers)) {}
  ~NcclExchange() override;
  absl::Status Wait() override;

 private:
  friend class NcclTransport;
  NcclTransport* transport_;
  int slot_;  // -1: nothing was posted
  uint64_t tag_;
  std::string peers_;                  // "rank 2 (send, recv), rank 3 (recv)", for messages
  std::vector<int32_t> tagged_peers_;  // peers whose tag word this rank receives
  bool waited_ = false;
  absl::Status result_;
};

class NcclTransport final : public Transport {
 public:
  NcclTransport(const NcclOptions& options, int device) : options_(options), device_(device) {}
  ~NcclTransport() override;

  absl::Status Init(const ncclUniqueId& id);

  int32_t rank() const override { return options_.rank; }
  int32_t world_size() const override { return options_.world_size; }
  absl::string_view name() const override { return "nccl"; }
  bool device_buffers() const override { return true; }

  absl::StatusOr<std::unique_ptr<PendingExchange>> Post(uint64_t tag, std::vector<SendOp> sends,
                                                        std::vector<RecvOp> recvs) override;
  absl::Status Barrier() override;

  absl::Status WaitFor(NcclExchange& exchange);

 private:
  std::string Where(uint64_t tag) const {
    return tag == kBarrierTag ? absl::StrCat("nccl rank ", rank(), ", barrier")
                              : absl::StrCat("nccl rank ", rank(), ", tag ", tag);
  }
  uint64_t* SendWords(int slot) const { return device_words_ + 2 * slot * world_size(); }
  uint64_t* RecvWords(int slot) const { return SendWords(slot) + world_size(); }
  uint64_t* HostSendWords(int slot) const { return host_words_ + 2 * slot * world_size(); }
  uint64_t* HostRecvWords(int slot) const { return HostSendWords(slot) + world_size(); }

  // Enqueues `calls` (NCCL operations, issued inside one group) under `tag` on the stream.
  absl::StatusOr<std::unique_ptr<PendingExchange>> Enqueue(
      uint64_t tag, std::string peers, std::vector<int32_t> tagged_peers,
      const std::function<ncclResult_t(int slot)>& calls);
  // Polls the communicator until a non-blocking call's work is enqueued (or fails, or times out).
  absl::Status AwaitEnqueuedLocked(uint64_t tag, const std::string& peers);
  // Records the first failure, aborts the communicator; later calls return `status`.
  void FailLocked(absl::Status status);
  absl::Status FailureLocked() const { return failure_; }
  void Watchdog();

  const NcclOptions options_;
  const int device_;

  mutable std::mutex mu_;  // NCCL calls and everything below
  ncclComm_t comm_ = nullptr;
  std::atomic<bool> broken_{false};
  absl::Status failure_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t compute_ready_ = nullptr;
  std::vector<cudaEvent_t> slot_done_;
  std::vector<bool> slot_busy_;
  int next_slot_ = 0;
  uint64_t* device_words_ = nullptr;  // per slot: send words, recv words (world_size each)
  uint64_t* host_words_ = nullptr;    // pinned, same layout
  float* barrier_word_ = nullptr;
  struct Waiting {
    uint64_t tag;
    std::string peers;
    Clock::time_point deadline;
  };
  std::map<const NcclExchange*, Waiting> waiting_;

  std::mutex watchdog_mu_;
  std::condition_variable watchdog_cv_;
  bool stop_ = false;
  std::thread watchdog_;
};

NcclExchange::~NcclExchange() {
  if (!waited_ && slot_ >= 0) Wait().IgnoreError();  // the slot's words stay in use until done
}

absl::Status NcclExchange::Wait() {
  if (waited_) return result_;
  waited_ = true;
  result_ = slot_ < 0 ? absl::OkStatus() : transport_->WaitFor(*this);
  return result_;
}

absl::Status NcclTransport::Init(const ncclUniqueId& id) {
  CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const Clock::time_point deadline = Clock::now() + ToChrono(options_.timeout);
  std::lock_guard<std::mutex> lock(mu_);
  ncclResult_t r = ncclCommInitRankConfig(&comm_, options_.world_size, id, options_.rank, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    const std::string message = NcclMessage(r, comm_);
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
    return absl::InternalError(
        absl::StrCat("nccl rank ", rank(), ": ncclCommInitRankConfig: ", message));
  }
  ncclResult_t state = r;
  while (state == ncclInProgress) {
    if (Clock::now() > deadline) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
      return absl::DeadlineExceededError(
          absl::StrCat("nccl rank ", rank(), ": the communicator of ", world_size(),
                       " ranks was not ready after ", absl::FormatDuration(options_.timeout),
                       " (a rank did not join?)"));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) break;
  }
  if (state != ncclSuccess) {
    const std::string message = NcclMessage(state, comm_);
    ncclCommAbort(comm_);
    comm_ = nullptr;
    return absl::InternalError(
        absl::StrCat("nccl rank ", rank(), ": communicator setup: ", message));
  }
  CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&compute_ready_, cudaEventDisableTiming));
  slot_done_.assign(kNcclMaxInFlight, nullptr);
  slot_busy_.assign(kNcclMaxInFlight, false);
  for (cudaEvent_t& e : slot_done_) {
    CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  const size_t words = 2 * kNcclMaxInFlight * static_cast<size_t>(world_size());
  CUDA_RETURN_IF_ERROR(cudaMalloc(&device_words_, words * sizeof(uint64_t)));
  CUDA_RETURN_IF_ERROR(cudaMallocHost(&host_words_, words * sizeof(uint64_t)));
  CUDA_RETURN_IF_ERROR(cudaMalloc(&barrier_word_, sizeof(float)));
  CUDA_RETURN_IF_ERROR(cudaMemsetAsync(barrier_word_, 0, sizeof(float), stream_));
  watchdog_ = std::thread([this] { Watchdog(); });
  return absl::OkStatus();
}

NcclTransport::~NcclTransport() {
  if (watchdog_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(watchdog_mu_);
      stop_ = true;
    }
    watchdog_cv_.notify_all();
    watchdog_.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (comm_ != nullptr) {
    // Finalize flushes what is in flight; a peer that never answers would keep it in progress,
    // so it gets the timeout and then an abort.
    const Clock::time_point deadline = Clock::now() + ToChrono(options_.timeout);
    ncclResult_t state = ncclCommFinalize(comm_);
    while (state == ncclInProgress && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) break;
    }
    if (state == ncclSuccess) {
      ncclCommDestroy(comm_);
    } else {
      ncclCommAbort(comm_);
    }
    comm_ = nullptr;
  }
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  for (cudaEvent_t e : slot_done_) {
    if (e != nullptr) cudaEventDestroy(e);
  }
  if (compute_ready_ != nullptr) cudaEventDestroy(compute_ready_);
  if (device_words_ != nullptr) cudaFree(device_words_);
  if (host_words_ != nullptr) cudaFreeHost(host_words_);
  if (barrier_word_ != nullptr) cudaFree(barrier_word_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

void NcclTransport::FailLocked(absl::Status status) {
  if (broken_) return;
  failure_ = std::move(status);
  broken_ = true;
  if (comm_ != nullptr) {
    ncclCommAbort(comm_);
    comm_ = nullptr;
  }
}

void NcclTransport::Watchdog() {
  cudaSetDevice(device_);
  std::unique_lock<std::mutex> stop_lock(watchdog_mu_);
  while (!watchdog_cv_.wait_for(stop_lock, ToChrono(options_.watchdog_interval),
                                [this] { return stop_; })) {
    std::lock_guard<std::mutex> lock(mu_);
    if (broken_ || comm_ == nullptr) continue;
    ncclResult_t state = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(comm_, &state);
    if (r != ncclSuccess || (state != ncclSuccess && state != ncclInProgress)) {
      const ncclResult_t error = r != ncclSuccess ? r : state;
      FailLocked(absl::InternalError(
          absl::StrCat("nccl rank ", rank(), ": asynchronous error: ", NcclMessage(error, comm_),
                       "; communicator aborted")));
      continue;
    }
    const Clock::time_point now = Clock::now();
    for (const auto& [exchange, waiting] : waiting_) {
      if (now < waiting.deadline) continue;
      FailLocked(absl::DeadlineExceededError(
          absl::StrCat(Where(waiting.tag), ": timed out after ", absl::FormatDuration(timeout()),
                       " waiting for ", waiting.peers, "; communicator aborted")));
      break;
    }
  }
}

absl::Status NcclTransport::AwaitEnqueuedLocked(uint64_t tag, const std::string& peers) {
  const Clock::time_point deadline = Clock::now() + ToChrono(timeout());
  ncclResult_t state = ncclInProgress;
  while (state == ncclInProgress) {
    if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) break;
    if (state != ncclInProgress) break;
    if (Clock::now() > deadline) {
      FailLocked(absl::DeadlineExceededError(
          absl::StrCat(Where(tag), ": ", peers, " did not connect within ",
                       absl::FormatDuration(timeout()), "; communicator aborted")));
      return FailureLocked();
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  if (state != ncclSuccess) {
    FailLocked(absl::InternalError(
        absl::StrCat(Where(tag), ": ", NcclMessage(state, comm_), "; communicator aborted")));
    return FailureLocked();
  }
  return absl::OkStatus();
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

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> NewNcclTransport(const NcclOptions& options,
                                                            gloo::rendezvous::Store& store) {
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("nccl: rank ", options.rank, " not in a world of ", options.world_size));
  }
  if (options.key.empty()) return absl::InvalidArgumentError("nccl: key: must not be empty");
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("nccl: timeout: must be > 0");
  }
  int device = options.device;
  if (device < 0) {
    CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  } else {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  }
  ncclUniqueId id;
  try {
    if (options.rank == 0) {
      const ncclResult_t r = ncclGetUniqueId(&id);
      if (r != ncclSuccess) {
        return absl::InternalError(
            absl::StrCat("nccl rank 0: ncclGetUniqueId: ", NcclMessage(r, nullptr)));
      }
      const char* bytes = reinterpret_cast<const char*>(&id);
      store.set(options.key, std::vector<char>(bytes, bytes + sizeof id));
    } else {
      store.wait({options.key},
                 std::chrono::duration_cast<std::chrono::milliseconds>(ToChrono(options.timeout)));
      const std::vector<char> bytes = store.get(options.key);
      if (bytes.size() != sizeof id) {
        return absl::InvalidArgumentError(absl::StrCat("nccl rank ", options.rank, ": key '",
                                                       options.key, "' holds ", bytes.size(),
                                                       " bytes, not an NCCL unique id"));
      }
      std::memcpy(&id, bytes.data(), sizeof id);
    }
  } catch (const std::exception& e) {
    return absl::DeadlineExceededError(absl::StrCat(
        "nccl rank ", options.rank, ": rendezvous on key '", options.key, "': ", e.what()));
  }
  auto transport = std::make_unique<NcclTransport>(options, device);
  transport->set_timeout(options.timeout);
  RETURN_IF_ERROR(transport->Init(id));
  return std::unique_ptr<Transport>(std::move(transport));
}

}  // namespace fcp
