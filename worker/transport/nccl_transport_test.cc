// The nccl transport on real GPUs: a one-rank communicator on any machine with a CUDA device;
// exchanges whose every byte is checked, a peer that never posts (the watchdog aborts within the
// timeout, naming the peer and the tag) and ranks posting in different orders with two or more
// devices (NCCL refuses two ranks of one communicator on one GPU). Every test skips, saying why,
// where there are not enough devices.
#include "worker/transport/nccl_transport.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "worker/transport/file_rendezvous.h"
#include "worker/transport/transport_testing.h"

namespace fcp {
namespace {

int DeviceCount() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

#define SKIP_WITHOUT_DEVICES(n)                                                                 \
  do {                                                                                          \
    if (DeviceCount() < (n)) {                                                                  \
      GTEST_SKIP() << "GPU test skipped: needs " << (n) << " CUDA device(s), this machine has " \
                   << DeviceCount();                                                            \
    }                                                                                           \
  } while (false)

// `world` ranks as threads, rank r on device r, meeting in a temporary directory.
class NcclRanks {
 public:
  explicit NcclRanks(int32_t world, absl::Duration timeout = absl::Seconds(20))
      : transports_(world), status_(world) {
    absl::StatusOr<std::shared_ptr<gloo::rendezvous::Store>> store = OpenFileStore(dir_.path());
    if (!store.ok()) {
      status_.assign(world, store.status());
      return;
    }
    std::vector<std::thread> threads;
    for (int32_t r = 0; r < world; ++r) {
      threads.emplace_back([&, r] {
        NcclOptions options;
        options.rank = r;
        options.world_size = world;
        options.device = r;
        options.key = "test/nccl-id";
        options.timeout = timeout;
        absl::StatusOr<std::unique_ptr<Transport>> t = NewNcclTransport(options, **store);
        status_[r] = t.status();
        if (t.ok()) transports_[r] = std::move(*t);
      });
    }
    for (std::thread& t : threads) t.join();
  }
  absl::Status status(int32_t r) const { return status_[r]; }
  Transport& operator[](int32_t r) { return *transports_[r]; }

  // body(rank's transport) on every rank at once (each thread on its rank's device).
  std::vector<absl::Status> Run(const std::function<absl::Status(Transport&)>& body) {
    std::vector<absl::Status> results(transports_.size());
    std::vector<std::thread> threads;
    for (size_t r = 0; r < transports_.size(); ++r) {
      threads.emplace_back([&, r] {
        cudaSetDevice(static_cast<int>(r));
        results[r] = body(*transports_[r]);
      });
    }
    for (std::thread& t : threads) t.join();
    return results;
  }

 private:
  TempDir dir_;
  std::vector<std::unique_ptr<Transport>> transports_;
  std::vector<absl::Status> status_;
};

// Device copies of the pattern to `to`, exchanged with `peer` both ways under `tag`, checked.
absl::Status DevicePattern(Transport& t, uint64_t tag, int32_t peer, size_t bytes) {
  const int32_t me = t.rank();
  std::vector<void*> memory;
  auto device_copy = [&](const std::vector<uint8_t>& host) {
    void* p = nullptr;
    cudaMalloc(&p, std::max<size_t>(host.size(), 1));
    cudaMemcpy(p, host.data(), host.size(), cudaMemcpyHostToDevice);
    memory.push_back(p);
    return p;
  };
  SendOp send{peer, {}};
  const std::vector<size_t> out_sizes = PatternSizes(me, peer, tag, bytes);
  for (size_t b = 0; b < out_sizes.size(); ++b) {
    std::vector<uint8_t> data(out_sizes[b]);
    for (size_t j = 0; j < data.size(); ++j) data[j] = PatternByte(me, peer, tag, b, j);
    send.buffers.push_back({device_copy(data), data.size()});
  }
  RecvOp recv{peer, {}};
  const std::vector<size_t> in_sizes = PatternSizes(peer, me, tag, bytes);
  for (size_t size : in_sizes) {
    recv.buffers.push_back({device_copy(std::vector<uint8_t>(size, 0xEE)), size});
  }
  std::vector<TransportBuffer> received = recv.buffers;
  absl::Status status = t.Exchange(tag, {send}, {recv});
  for (size_t b = 0; status.ok() && b < received.size(); ++b) {
    std::vector<uint8_t> host(received[b].bytes);
    cudaMemcpy(host.data(), received[b].data, host.size(), cudaMemcpyDeviceToHost);
    for (size_t j = 0; j < host.size(); ++j) {
      if (host[j] != PatternByte(peer, me, tag, b, j)) {
        status = absl::DataLossError(absl::StrCat("rank ", me, ": buffer ", b, " byte ", j));
        break;
      }
    }
  }
  for (void* p : memory) cudaFree(p);
  return status;
}

TEST(NcclTransportTest, OneRankBarriersAndRefusesItselfAsPeer) {
  SKIP_WITHOUT_DEVICES(1);
  NcclRanks ranks(1);
  ASSERT_TRUE(ranks.status(0).ok()) << ranks.status(0);
  Transport& t = ranks[0];
  EXPECT_EQ(t.name(), "nccl");
  EXPECT_TRUE(t.Barrier().ok());
  EXPECT_TRUE(t.Exchange(1, {}, {}).ok());
  absl::Status self = t.Post(2, {{0, {}}}, {}).status();
  EXPECT_EQ(self.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(self.message(), "nccl rank 0, tag 2: send to rank 0: itself"))
      << self;
  EXPECT_EQ(t.Post(3, {}, {{1, {}}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(t.Barrier().ok());  // argument errors leave the communicator usable
}

TEST(NcclTransportTest, TwoRanksExchangeEveryByteOverManyRounds) {
  SKIP_WITHOUT_DEVICES(2);
  NcclRanks ranks(2);
  ASSERT_TRUE(ranks.status(0).ok() && ranks.status(1).ok()) << ranks.status(0) << ranks.status(1);
  for (const absl::Status& s : ranks.Run([](Transport& t) -> absl::Status {
         for (uint64_t tag = 1; tag <= 20; ++tag) {
           absl::Status s = DevicePattern(t, tag, 1 - t.rank(), tag * 4099);
           if (!s.ok()) return s;
         }
         return t.Barrier();
       })) {
    EXPECT_TRUE(s.ok()) << s;
  }
}

TEST(NcclTransportTest, SilentPeerTimesOutNamingItAndAbortsTheCommunicator) {
  SKIP_WITHOUT_DEVICES(2);
  NcclRanks ranks(2, absl::Seconds(3));
  ASSERT_TRUE(ranks.status(0).ok() && ranks.status(1).ok());
  ranks[0].set_timeout(absl::Seconds(1));
  std::vector<absl::Status> results = ranks.Run([](Transport& t) -> absl::Status {
    if (t.rank() == 1) return absl::OkStatus();  // never posts
    const auto start = std::chrono::steady_clock::now();
    absl::Status s = DevicePattern(t, 5, 1, 1 << 20);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (seconds > 10) return absl::InternalError(absl::StrCat("took ", seconds, " s"));
    return s;
  });
  EXPECT_EQ(results[0].code(), absl::StatusCode::kDeadlineExceeded) << results[0];
  EXPECT_TRUE(absl::StrContains(results[0].message(), "nccl rank 0, tag 5")) << results[0];
  EXPECT_TRUE(absl::StrContains(results[0].message(), "rank 1")) << results[0];
  EXPECT_TRUE(absl::StrContains(results[0].message(), "aborted")) << results[0];
  EXPECT_EQ(ranks[0].Barrier().code(), absl::StatusCode::kDeadlineExceeded);  // stays failed
}

TEST(NcclTransportTest, RanksPostingInDifferentOrdersAreCaught) {
  SKIP_WITHOUT_DEVICES(2);
  NcclRanks ranks(2);
  ASSERT_TRUE(ranks.status(0).ok() && ranks.status(1).ok());
  std::vector<absl::Status> results = ranks.Run([](Transport& t) -> absl::Status {
    void* buffer = nullptr;
    cudaMalloc(&buffer, 64);
    const int32_t peer = 1 - t.rank();
    absl::Status s;
    for (uint64_t tag : t.rank() == 0 ? std::vector<uint64_t>{1, 2} : std::vector<uint64_t>{2, 1}) {
      s.Update(t.Exchange(tag, {{peer, {{buffer, 64}}}}, {{peer, {{buffer, 64}}}}));
    }
    cudaFree(buffer);
    return s;
  });
  for (const absl::Status& s : results) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "same order")) << s;
  }
}

}  // namespace
}  // namespace fcp
