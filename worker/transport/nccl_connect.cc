// The nccl transport's communicator: NewNcclTransport exchanges the unique id through the store,
// Init creates the non-blocking communicator, its stream, events and tag words, the watchdog
// thread aborts it on an asynchronous error or a wait past its deadline, and the destructor
// finalises it (nccl_internal.h has the design).
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "gloo/rendezvous/store.h"
#include "kernels/cuda_status.h"
#include "worker/transport/nccl_internal.h"

namespace fcp {
namespace nccl_internal {

std::string NcclMessage(ncclResult_t result, ncclComm_t comm) {
  std::string message = ncclGetErrorString(result);
  const char* last = comm != nullptr ? ncclGetLastError(comm) : nullptr;
  if (last != nullptr && last[0] != '\0') absl::StrAppend(&message, " (", last, ")");
  return message;
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

}  // namespace nccl_internal

using nccl_internal::NcclMessage;
using nccl_internal::NcclTransport;
using nccl_internal::ToChrono;

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
