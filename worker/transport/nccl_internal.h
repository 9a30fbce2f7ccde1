// Shared by the files of the nccl transport (nccl_transport.cc: exchanges; nccl_connect.cc:
// communicator setup, watchdog, teardown and NewNcclTransport); not an API.
//
// One NCCL group per exchange on a communication stream; completion is an event on that stream,
// which Wait polls; a watchdog thread polls the communicator's asynchronous error and the waits'
// deadlines, and aborts the communicator on either. Every NCCL call and every change of state is
// under one mutex (NCCL communicators are not thread-safe); Wait polls without holding it.
//
// Per exchange slot (kNcclMaxInFlight of them), device and pinned host words:
//   send_words[peer] = tag  ──ncclSend──▶  the peer's recv_words[this rank]  ──copy──▶  host
// copied back on the communication stream before the slot's completion event, so Wait reads the
// tags every peer posted without another synchronisation.
#ifndef FCP_WORKER_TRANSPORT_NCCL_INTERNAL_H_
#define FCP_WORKER_TRANSPORT_NCCL_INTERNAL_H_

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "worker/transport/nccl_transport.h"

namespace fcp {
namespace nccl_internal {

using Clock = std::chrono::steady_clock;

inline constexpr uint64_t kBarrierTag = ~uint64_t{0};

inline std::chrono::nanoseconds ToChrono(absl::Duration d) { return absl::ToChronoNanoseconds(d); }

// ncclGetErrorString of `result`, with the communicator's last error when there is one.
std::string NcclMessage(ncclResult_t result, ncclComm_t comm);

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

}  // namespace nccl_internal
}  // namespace fcp

#endif  // FCP_WORKER_TRANSPORT_NCCL_INTERNAL_H_
